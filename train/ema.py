"""``--ema DECAY``: an exponential moving average of the weights and BatchNorm statistics, one hook.

After every batch's update the average moves towards the module's values, in place, on the CPU::

    ema = decay * ema + (1 - decay) * w

with no ramp and no bias correction: the average starts as a copy of the starting weights (on ``--resume``,
the average saved with the resumed checkpoint). ``w`` is read from the module's device arrays (not
``Module.get_params``, which copies everything): device 0 for the weights, identical on every device after
an update; the mean over the devices for the BatchNorm statistics, which each device keeps for its own slice
(``Module.get_params`` averages them the same way). Fixed (``--freeze``) parameters never change: their copy
is kept and never updated.

Validation: when :class:`train.callbacks.Validator` validated an epoch, the average is scored on the same
iterator with the same metric (swapped into the module, swapped back exactly: the raw weights stay
bit-identical); one log line gives both mAPs and the epoch's history record gets ``ema_mAP``.
:class:`train.callbacks.KeepBest` keeps choosing on the raw weights' mAP.

Files: a run directory of its own, ``RunDir(prefix).ema()`` = ``<prefix>-ema`` (core/run_dir.py):
``<prefix>-ema-symbol.json`` and ``<prefix>-ema-%04d.params`` every epoch (mid-epoch: ``-%04d.%05d.params``,
removed once a later epoch's is saved), ``<prefix>-ema-config.yaml`` and ``<prefix>-ema.classes``, so
``evaluate.py / demo.py / deploy.py --prefix <prefix>-ema --epoch N`` load it as any checkpoint. Each file is
written atomically, before the main checkpoint's ``.params`` commits that position. Only the writing worker
(rank 0) keeps an average.
"""
import contextlib
import logging
import os
import time

import mxnet as mx

from config.errors import UserError
from config.schema import flag_words
from core.checkpoint import load_params_file
from evaluate import runner
from train.callbacks import Hook

LOG = logging.getLogger('train')


def check_decay(decay):
    """UserError unless ``0 <= decay < 1`` (0: no average)."""
    if not 0 <= decay < 1:
        raise UserError('%s %s is out of range: give a decay in [0, 1), e.g. 0.999 (0: off)'
                        % (flag_words('solver.ema'), decay))


def device_arrays(module):
    """The module's live arrays: ``({param name: [array per device]}, {aux name: [array per device]})``.

    Read through the executor group that ``Module`` keeps private, anew each time (a reshape rebinds it).
    """
    execs = module._exec_group.execs
    group = module._exec_group
    return ({name: [exe.arg_dict[name] for exe in execs] for name in group.param_names},
            {name: [exe.aux_dict[name] for exe in execs] for name in group.aux_names})


def read_into(arrays, out):
    """``out`` (CPU) := the mean of ``arrays`` (one per device; a single one is copied exactly)."""
    arrays[0].copyto(out)
    for other in arrays[1:]:
        out += other.as_in_context(out.context)
    if len(arrays) > 1:
        out /= len(arrays)


def cpu_copies(blocks, first_only=False):
    """``{name: CPU array}`` holding each block's value (device 0's with ``first_only``, else the mean)."""
    copies = {}
    for name, arrays in blocks.items():
        copies[name] = mx.nd.zeros(arrays[0].shape, ctx=mx.cpu(), dtype=arrays[0].dtype)
        read_into(arrays[:1] if first_only else arrays, copies[name])
    return copies


@contextlib.contextmanager
def swapped_in(module, arg_values, aux_values):
    """Inside the block, every device array of ``module`` holds ``arg_values`` / ``aux_values`` (CPU arrays by
    name); after it, exactly its own values again (kept as copies on its device meanwhile)."""
    args, aux = device_arrays(module)
    targets = [(args[name], value) for name, value in arg_values.items()] + [
        (aux[name], value) for name, value in aux_values.items()]
    saved = [[array.copy() for array in arrays] for arrays, _ in targets]
    try:
        for arrays, value in targets:
            for array in arrays:
                value.copyto(array)
        yield
    finally:
        for (arrays, _), copies in zip(targets, saved):
            for array, copy in zip(arrays, copies):
                copy.copyto(array)
        mx.nd.waitall()


class WeightAverage(Hook):
    """The moving average of the module's weights and BatchNorm statistics (see the module docstring).

    Parameters
    ----------
    decay : float
        In (0, 1): the weight of the old average at every update.
    symbol : mx.sym.Symbol
        The float32 training graph the checkpoints keep.
    run_dir : core.run_dir.RunDir
        The run's files; the average goes to ``run_dir.ema()``.
    config : omegaconf.DictConfig
        The resolved configuration, copied beside the average (evaluate.py reads network and classes there).
    val_iter : mx.io.DataIter, optional
        The validation iterator; None: the average is not validated.
    metric : mx.metric.EvalMetric, optional
        A VOC metric like the Validator's (an instance of its own).
    resume : (int, int), optional
        ``(epochs done, batches of the next)`` of the resumed checkpoint, whose average is restored.
    """

    def __init__(self, decay, symbol, run_dir, config, val_iter=None, metric=None, resume=None):
        self.decay, self.symbol, self.config = float(decay), symbol, config
        self.main_run, self.run = run_dir, run_dir.ema()
        self.val_iter, self.metric, self.resume = val_iter, metric, resume
        self.args = self.aux = None            # {name: (shape) CPU NDArray}: the average
        self.buffers = {}                      # {name: CPU NDArray}: the current value, scaled
        self.fixed = set()
        self.updates = 0
        self.validation = None

    # ----------------------------------------------------------------------------------------- events
    def before_train(self, state):
        args, aux = device_arrays(state.module)
        self.fixed = set(state.module._fixed_param_names or ())   # Module keeps them private; read only
        self.args, self.aux = cpu_copies(args, first_only=True), cpu_copies(aux)
        self.buffers = {name: value.copy() for name, value in list(self.args.items()) + list(self.aux.items())}
        restored = self.resume is not None and self.restore(*self.resume)
        if not restored:
            self.updates = 0
        self.run.write_class_names(self.config.data.class_names)
        self.run.write_config(self.config)
        LOG.info('EMA of the weights, decay %g, %s; saved every epoch as %s-NNNN.params (evaluate.py --prefix %s)',
                 self.decay, 'restored after %d updates' % self.updates if restored else 'from the starting weights',
                 self.run.prefix, self.run.prefix)

    def before_epoch(self, state):
        self.remove_superseded()

    def after_batch(self, state):
        mx.nd.waitall()     # MKLDNN's BatchNorm writes its statistics outside the dependency tracking: let them land
        args, aux = device_arrays(state.module)
        for name, arrays in args.items():
            if name not in self.fixed:
                self.blend(name, arrays[:1], self.args[name])
        for name, arrays in aux.items():
            self.blend(name, arrays, self.aux[name])
        for value in self.aux.values():     # read before the next forward writes the statistics again
            value.wait_to_read()
        self.updates += 1

    def after_epoch(self, state):
        if state.validation is not None and self.val_iter is not None:
            self.validate(state)
        self.save(state.epoch + 1)

    def after_train(self, state):
        self.remove_superseded()

    def state_dict(self):
        return {'decay': self.decay, 'updates': self.updates}

    def load_state_dict(self, saved):
        self.updates = int(saved.get('updates', 0))

    # ----------------------------------------------------------------------------------------- work
    def blend(self, name, arrays, average):
        """``average = decay * average + (1 - decay) * current``, in place (``current``: mean of ``arrays``)."""
        current = self.buffers[name]
        read_into(arrays, current)
        current *= 1.0 - self.decay
        average *= self.decay
        average += current

    def validate(self, state):
        """Score the average like the Validator scored the weights; log both, record ``ema_mAP``."""
        tic = time.time()
        with swapped_in(state.module, self.args, self.aux):
            self.validation = runner.score(state.detector(), self.val_iter, self.metric)
        value = self.validation['mAP']
        LOG.info('Epoch[%d] Validation %s: weights %.4f, EMA %.4f (decay %g, %.1f s)', state.epoch + 1,
                 self.metric.name, state.validation['mAP'], value, self.decay, time.time() - tic)
        if state.history and state.history[-1].get('epoch') == state.epoch + 1:
            state.history[-1]['ema_mAP'] = value

    def save(self, epochs_done, batches_done=0):
        """The average as checkpoint ``epochs_done`` (mid-epoch: ``batches_done`` > 0) of ``<prefix>-ema``."""
        return self.run.save_checkpoint(epochs_done, self.symbol, self.args, self.aux, batch=batches_done)

    def save_interrupted(self, state):
        """The mid-epoch average after batch ``state.batch`` of epoch ``state.epoch`` (as the Checkpointer's)."""
        return self.save(state.epoch, state.batch + 1)

    def restore(self, epoch, batch):
        """Load the average saved with checkpoint ``(epoch, batch)``; False (one log line) when there is none
        or it does not fit the network."""
        path = self.run.params_path(epoch, batch)
        if not os.path.isfile(path):
            LOG.info('%s does not exist: the EMA restarts from the resumed weights', path)
            return False
        args, aux = load_params_file(path, '--resume')
        if not (fits(args, self.args) and fits(aux, self.aux)):
            LOG.info('%s does not fit the network: the EMA restarts from the resumed weights', path)
            return False
        for saved, average in ((args, self.args), (aux, self.aux)):
            for name, value in saved.items():
                value.astype(average[name].dtype).copyto(average[name])
        return True

    def remove_superseded(self):
        """Remove the average's mid-epoch checkpoints older than the newest full epoch of the run."""
        epochs = self.main_run.epochs()
        if epochs:
            self.run.remove_mid_epoch_before(epochs[-1])


def fits(saved, arrays):
    """Whether ``saved`` has exactly the names and shapes of ``arrays`` (both ``{name: NDArray}``)."""
    return set(saved) == set(arrays) and all(saved[name].shape == arrays[name].shape for name in arrays)


def build_hooks(config, symbol, run_dir, val_iter, metric, start, writes=True):
    """``[WeightAverage]`` when ``config.solver.ema`` > 0 on the writing worker, else ``[]``.

    ``start`` is :func:`train.train_net.starting_point`'s ``(kind, epoch)``: on a resume, the average of that
    checkpoint (``config.run.resume_batch`` batches into the next epoch) is restored.
    """
    check_decay(config.solver.ema)
    if not config.solver.ema or not writes:
        return []
    kind, epoch = start
    resume = (epoch, config.run.resume_batch) if kind == 'resume' else None
    return [WeightAverage(config.solver.ema, symbol, run_dir, config, val_iter, metric, resume)]


def saving_average_first(hooks, save_interrupted):
    """``save_interrupted`` (the Checkpointer's) preceded by the average's mid-epoch save, when a
    :class:`WeightAverage` is among ``hooks``: the main ``.params`` commits last."""
    averages = [hook for hook in hooks if isinstance(hook, WeightAverage)]
    if not averages:
        return save_interrupted

    def save(state):
        for average in averages:
            average.save_interrupted(state)
        return save_interrupted(state)
    return save
