"""A training worker of bench/bench_distributed.py, run by tools/launch.py as ``python -m bench.distributed_worker
SETTINGS.json OUT_DIR``: trains with ``train_net(hooks=[StepTimer(...)], **settings['train'])`` and writes
``OUT_DIR/worker-<rank>.json`` with what it measured:

- ``step_s``: the seconds of every step after ``settings['warmup']`` untimed ones, each step timed from the end of
  the previous one to its own end (its forward, backward, gradient push/pull and update, the metric and the
  next batch's fetch), with ``mx.nd.waitall()`` at the end of every step so that a step's time is its own;
- ``img_s``: ``batch_size x timed steps / their seconds``;
- ``comm_s`` (a distributed kvstore only): after the epoch's last step, ``settings['comm_rounds']`` timed rounds
  (after one untimed) of what a step sends and receives: ``kvstore.pushpull`` of every parameter's gradient
  array, in the module's order and priorities (as ``mxnet.model._update_params`` does), then ``waitall``.
  Every worker runs the same rounds (a synchronous kvstore waits for all of them), so the rounds are aligned.

With ``settings['barrier'] = [FOLDER, COUNT]`` (independent processes on a local kvstore, which nothing else
synchronises), each process writes ``FOLDER/ready-<rank>`` once its module is ready and waits (at most
:data:`BARRIER_SECONDS`) until COUNT such files exist, so that their timed steps run at the same time.
"""
import json
import os
import sys
import time

from config.runtime import configure_threads

BARRIER_SECONDS = 120.0


def wait_for_the_others(folder, count, rank):
    """Write ``folder/ready-<rank>``; return once ``count`` ready files exist (RuntimeError after
    :data:`BARRIER_SECONDS`)."""
    with open(os.path.join(folder, 'ready-%s' % rank), 'w'):
        pass
    deadline = time.monotonic() + BARRIER_SECONDS
    while sum(name.startswith('ready-') for name in os.listdir(folder)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError('%d processes were not ready after %g s' % (count, BARRIER_SECONDS))
        time.sleep(0.02)


def make_timer(out_path, warmup, comm_rounds, barrier=None):
    """The hook that times the steps (and the communication) and writes ``out_path``; ``barrier``:
    ``(folder, count)`` of :func:`wait_for_the_others`."""
    import mxnet as mx

    from train.callbacks import Hook

    class StepTimer(Hook):
        def __init__(self):
            self.last = None
            self.step_s = []
            self.comm_s = []

        def before_train(self, state):
            if barrier:
                wait_for_the_others(barrier[0], barrier[1], os.environ.get('SSD_WORKER_RANK', '0'))

        def before_epoch(self, state):
            mx.nd.waitall()
            self.last = time.perf_counter()

        def after_batch(self, state):
            mx.nd.waitall()
            now = time.perf_counter()
            if state.batch >= warmup:
                self.step_s.append(now - self.last)
            self.last = now

        def after_epoch(self, state):
            module = state.module
            kvstore = module._kvstore                 # Module keeps its kvstore private; the one it trained with
            if kvstore is None or 'dist' not in kvstore.type or comm_rounds <= 0:
                return
            executors = module._exec_group
            pairs = [(name, grads) for name, grads in zip(executors.param_names, executors.grad_arrays)
                     if grads[0] is not None]
            mx.nd.waitall()
            for round_index in range(comm_rounds + 1):        # the first round is untimed
                start = time.perf_counter()
                for index, (name, grads) in enumerate(pairs):
                    kvstore.pushpull(name, grads, out=grads, priority=-index)
                mx.nd.waitall()
                if round_index:
                    self.comm_s.append(time.perf_counter() - start)
            self.gradient_mb = sum(grads[0].size * 4 for _, grads in pairs) / 2.0 ** 20

        def after_train(self, state):
            if state.error is not None or not self.step_s:
                return
            result = dict(rank=int(os.environ.get('SSD_WORKER_RANK', '0')), batch_size=state.batch_size,
                          steps=len(self.step_s), step_s=[round(s, 5) for s in self.step_s],
                          img_s=state.batch_size * len(self.step_s) / sum(self.step_s),
                          omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                          num_workers=int(os.environ.get('SSD_NUM_WORKERS', '1')))
            if self.comm_s:
                result.update(comm_s=[round(s, 5) for s in self.comm_s], gradient_mb=round(self.gradient_mb, 2))
            with open(out_path + '.tmp', 'w') as handle:
                json.dump(result, handle)
            os.replace(out_path + '.tmp', out_path)

    return StepTimer()


def main(settings_path, out_dir):
    configure_threads()
    from config.errors import run_cli
    from train.train_net import train_net

    with open(settings_path) as handle:
        settings = json.load(handle)
    rank = os.environ.get('SSD_WORKER_RANK', '0')
    timer = make_timer(os.path.join(out_dir, 'worker-%s.json' % rank), settings['warmup'], settings['comm_rounds'],
                       settings.get('barrier'))
    run_cli(lambda: train_net(hooks=[timer], **settings['train']))


if __name__ == '__main__':
    main(*sys.argv[1:3])
