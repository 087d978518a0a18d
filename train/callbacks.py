"""Training hooks, one concern each, called by :func:`train.train_net.fit` in the order they are given.

Each hook may implement ``epoch_begin(state)``, ``batch_begin(state)``, ``batch_end(state)``,
``epoch_end(state)`` and ``stop(state)`` (training ends with an error). :func:`train.train_net.build_hooks`
puts them in this order:

1. :class:`StopOnNonFinite` (batch end) before anything logs or saves a NaN;
2. :class:`ProgressBar` and :class:`BatchLogger` (batch end);
3. :class:`MonitorHook` (batch begin/end), only with ``--monitor``;
4. :class:`Checkpointer` (epoch end) before :class:`Validator`, so a failing validation keeps the epoch;
5. :class:`Validator`, then :class:`KeepBest`, which reads the validation result;
6. :class:`History` (epoch end), so each epoch's record holds its validation values;
7. :class:`CurvePlotter` (epoch end), last: it draws the history.
"""
import logging
import math
import time

import mxnet as mx
import numpy as np
from tqdm import tqdm

from config.errors import UserError
from core.atomic import atomic_paths, write_json
from train.curves import plot_training_curves
from core.checkpoint import checkpoint_paths, save_params

LOG = logging.getLogger('train')


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; training stopped."""


class TrainState:
    """What the hooks share: the module, the epoch and batch in progress, the latest values.

    Attributes
    ----------
    module : mx.mod.Module
    metric : mx.metric.EvalMetric
        Training losses (names and running values from ``metric.get()``).
    epoch : int
        0-based epoch in progress; its checkpoint is saved as epoch ``epoch + 1``.
    batch : int
        0-based batch in progress.
    num_batches, batch_size : int
    last_checkpoint : str or None
        The newest ``.params`` file written.
    validation : dict or None
        ``{name: value}`` of the latest validation (per-class AP and 'mAP').
    lr_history : list of float
        Learning rate of every update, in order.
    history : list of dict
        Per epoch: losses, mAP, seconds since ``started``.
    started : float
        ``time.time()`` when training began (the state was made).
    """

    def __init__(self, module, metric, num_batches, batch_size, last_checkpoint=None):
        self.module, self.metric = module, metric
        self.num_batches, self.batch_size = num_batches, batch_size
        self.epoch = self.batch = 0
        self.last_checkpoint = last_checkpoint
        self.validation = None
        self.lr_history, self.history = [], []
        self.started = time.time()

    def losses(self):
        """``{name: running value}`` of the training metric this epoch."""
        names, values = self.metric.get()
        return dict(zip(names, values))

    def learning_rate(self):
        """The learning rate the optimizer used for its latest update."""
        return self.module._optimizer.learning_rate  # Module keeps its optimizer private; read-only use


class StopOnNonFinite:
    """Stops training when a loss becomes NaN or infinite, naming the last good checkpoint."""

    def batch_end(self, state):
        losses = state.losses()
        if all(math.isfinite(value) for value in losses.values()):
            return
        keep = state.last_checkpoint or 'none was written yet'
        raise TrainingDiverged(
            'loss is not finite at epoch %d batch %d (%s); training stopped. Last good checkpoint: %s. Lower --lr '
            'or add --warmup-epochs, and check the labels' % (state.epoch + 1, state.batch + 1,
                                                               format_values(losses), keep))


def format_values(values, precision=4):
    """``{'a': 1.0}`` -> ``'a=1.0000'``."""
    return ' '.join('%s=%.*f' % (name, precision, value) for name, value in values.items())


class ProgressBar:
    """A tqdm bar per epoch: images done, img/s, ETA, batch i/n, the losses."""

    def __init__(self):
        self.bar = None

    def epoch_begin(self, state):
        self.bar = tqdm(total=state.num_batches * state.batch_size, unit='img', leave=False,
                        desc='epoch %d' % (state.epoch + 1), dynamic_ncols=True)

    def batch_end(self, state):
        self.bar.set_postfix_str('batch %d/%d %s' % (state.batch + 1, state.num_batches,
                                                     format_values(state.losses(), 3)), refresh=False)
        self.bar.update(state.batch_size)

    def epoch_end(self, state):
        self.bar.close()

    def stop(self, state):
        if self.bar is not None:
            self.bar.close()


class BatchLogger:
    """A plain log line every ``frequent`` batches and at the end of each epoch: speed, losses, LR."""

    def __init__(self, frequent):
        self.frequent = max(int(frequent), 1)
        self.tic = self.epoch_tic = None
        self.count = 0

    def epoch_begin(self, state):
        self.tic = self.epoch_tic = time.time()
        self.count = 0

    def batch_end(self, state):
        self.count += 1
        if (state.batch + 1) % self.frequent:
            return
        speed = self.count * state.batch_size / max(time.time() - self.tic, 1e-9)
        LOG.info('Epoch[%d] Batch[%d/%d] Speed: %.1f img/s %s lr=%.6g', state.epoch + 1, state.batch + 1,
                 state.num_batches, speed, format_values(state.losses()), state.learning_rate())
        self.tic, self.count = time.time(), 0

    def epoch_end(self, state):
        seconds = time.time() - self.epoch_tic
        LOG.info('Epoch[%d] Train %s (%.1f s, %.1f img/s over the whole epoch, %.0f s since the start)',
                 state.epoch + 1, format_values(state.losses()), seconds,
                 state.num_batches * state.batch_size / max(seconds, 1e-9), time.time() - state.started)


class MonitorHook:
    """``mx.mon.Monitor`` statistics of the arrays matching ``pattern`` every ``interval`` batches."""

    def __init__(self, module, interval, pattern):
        self.monitor = mx.mon.Monitor(interval, pattern=pattern)
        module.install_monitor(self.monitor)

    def batch_begin(self, state):
        self.monitor.tic()

    def batch_end(self, state):
        for batch, name, value in self.monitor.toc():
            LOG.info('Monitor batch %d %s %s', batch, name, value)


def save_checkpoint(module, symbol, prefix, epoch):
    """Write ``<prefix>-symbol.json``, ``-%04d.states`` and ``-%04d.params`` under temporary names, then
    rename them (the ``.params`` last, so a ``.params`` file always has its ``.states``).

    Returns
    -------
    str
        The ``.params`` path.
    """
    symbol_path, params_path, states_path = checkpoint_paths(prefix, epoch)
    mx.nd.waitall()   # the last batch's BatchNorm running-statistic updates may still be in flight
    arg_params, aux_params = module.get_params()
    with atomic_paths(symbol_path, states_path, params_path) as (symbol_tmp, states_tmp, params_tmp):
        symbol.save(symbol_tmp)
        module.save_optimizer_states(states_tmp)
        save_params(params_tmp, arg_params, aux_params)
    return params_path


class Checkpointer:
    """Saves a checkpoint (weights, optimizer states, symbol) after every epoch."""

    def __init__(self, symbol, prefix):
        self.symbol, self.prefix = symbol, prefix

    def epoch_end(self, state):
        state.last_checkpoint = save_checkpoint(state.module, self.symbol, self.prefix, state.epoch + 1)
        LOG.info('Epoch[%d] saved %s', state.epoch + 1, state.last_checkpoint)


def validate(module, val_iter, metric, detection_name):
    """Run the training module (``is_train=False``) over the whole validation iterator.

    Parameters
    ----------
    module : mx.mod.Module
        Bound for training, on batches shaped like ``val_iter``'s.
    val_iter : mx.io.DataIter
        Labels (B, N, 6), -1 padded; the padded images of the last batch are left out.
    metric : evaluate.eval_metric.MApMetric
    detection_name : str
        The detection output's name in ``module.output_names``.

    Returns
    -------
    dict
        ``{class name: AP, ..., 'mAP': value}``.
    """
    metric.reset()
    val_iter.reset()
    position = module.output_names.index(detection_name)
    for batch in val_iter:
        module.forward(batch, is_train=False)
        real = batch.data[0].shape[0] - batch.pad
        detections = module.get_outputs()[position].asnumpy()[:real]
        metric.update_arrays(batch.label[0].asnumpy()[:real], detections)
    names, values = metric.get()
    return dict(zip(names, values))


class Validator:
    """Validation every ``interval`` epochs and after the last one; logs mAP and the AP of every class."""

    def __init__(self, val_iter, metric, detection_name, interval, end_epoch):
        self.val_iter, self.metric, self.detection_name = val_iter, metric, detection_name
        self.interval, self.end_epoch = max(int(interval), 1), end_epoch

    def epoch_end(self, state):
        epoch = state.epoch + 1
        if epoch % self.interval and epoch != self.end_epoch:
            state.validation = None
            return
        tic = time.time()
        state.validation = validate(state.module, self.val_iter, self.metric, self.detection_name)
        per_class = {name: value for name, value in state.validation.items() if name != 'mAP'}
        LOG.info('Epoch[%d] Validation %s=%.4f (%.1f s)', epoch, self.metric.name, state.validation['mAP'],
                 time.time() - tic)
        LOG.info('Epoch[%d] AP per class: %s', epoch, format_values(per_class))


class KeepBest:
    """Records the epoch with the best validation mAP in ``<prefix>-best.json``."""

    def __init__(self, path, metric_name, best=None):
        self.path, self.metric_name = path, metric_name
        self.best = best or {}

    def epoch_end(self, state):
        if state.validation is None:
            return
        value = state.validation['mAP']
        if np.isnan(value) or value <= self.best.get('mAP', -1.0):
            return
        self.best = {'epoch': state.epoch + 1, 'mAP': value, 'metric': self.metric_name,
                     'params': state.last_checkpoint, 'ap_per_class': state.validation}
        write_json(self.path, self.best, indent=2)
        LOG.info('Epoch[%d] best %s so far: %.4f, recorded in %s', state.epoch + 1, self.metric_name, value,
                 self.path)


class History:
    """Keeps per-epoch losses and validation values in ``state.history`` (returned by train_net)."""

    def epoch_end(self, state):
        record = {'epoch': state.epoch + 1, 'seconds': round(time.time() - state.started, 1)}
        record.update(state.losses())
        if state.validation is not None:
            record['mAP'] = state.validation['mAP']
        state.history.append(record)


class CurvePlotter:
    """Redraws ``<prefix>-curves.png`` (losses and validation mAP per epoch) after every epoch."""

    def __init__(self, path, metric_name):
        self.path, self.metric_name = path, metric_name

    def epoch_end(self, state):
        plot_training_curves(state.history, self.path, self.metric_name)
        if state.epoch == 0:
            LOG.info('training curves: %s (redrawn every epoch)', self.path)


class TqdmLogHandler(logging.StreamHandler):
    """Writes log lines through ``tqdm.write`` so that they do not break a progress bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never stop training
            self.handleError(record)
