"""A training worker for tests/test_distributed.py, run by tools/launch.py as ``python -m tests.dist_worker
SETTINGS.json OUT_DIR``: trains with ``train_net(**settings)`` and writes what the test compares, per rank,
into ``OUT_DIR``: ``pid-<rank>`` at the start, and after training ``params-<rank>.params`` (every parameter
and BatchNorm statistic this worker holds) and ``history-<rank>.json`` (the per-epoch losses)."""
import json
import os
import sys

from config.runtime import configure_threads


def main(settings_path, out_dir):
    configure_threads()
    import mxnet as mx

    from config.errors import run_cli
    from train.callbacks import Hook
    from train.train_net import train_net

    rank = os.environ.get('SSD_WORKER_RANK', '0')
    with open(os.path.join(out_dir, 'pid-%s' % rank), 'w') as handle:
        handle.write(str(os.getpid()))

    class SaveWorkerState(Hook):
        def after_train(self, state):
            if state.error is not None:
                return
            arg_params, aux_params = state.module.get_params()
            arrays = {'arg:' + name: value for name, value in arg_params.items()}
            arrays.update({'aux:' + name: value for name, value in aux_params.items()})
            mx.nd.save(os.path.join(out_dir, 'params-%s.params' % rank), arrays)
            with open(os.path.join(out_dir, 'history-%s.json' % rank), 'w') as handle:
                json.dump(state.history, handle)

    with open(settings_path) as handle:
        settings = json.load(handle)
    run_cli(lambda: train_net(hooks=[SaveWorkerState()], **settings))


if __name__ == '__main__':
    main(*sys.argv[1:3])
