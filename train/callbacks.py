"""Training hooks, one concern each, run by :class:`train.trainer.Trainer` in the order they are given.

Every hook derives from :class:`Hook` and overrides what it needs: ``before_train``, ``before_epoch``,
``batch_fetched``, ``after_batch``, ``after_epoch``, ``after_train`` (also after an error: ``state.error`` is set), and
``state_dict`` / ``load_state_dict`` for what must survive a ``--resume`` (saved with each checkpoint in
``<prefix>-%04d.trainer.json``). :func:`train.train_net.build_hooks` puts them in this order:

0. in a group of workers, train/distributed.py's :class:`~train.distributed.AverageAuxStates`, first;
1. :class:`StopOnNonFinite` (after batch) before anything logs or saves a NaN;
2. :class:`LearningRateLog`, :class:`ProgressBar` and :class:`BatchLogger` (after batch);
3. ``--validate-on-train``'s :class:`train.data_check.TrainDataCheck` (after epoch 1);
4. :class:`Validator`, then :class:`KeepBest`, which reads the validation result;
5. :class:`History` (after epoch), so each epoch's record holds its validation values;
6. ``--ema``'s :class:`train.ema.WeightAverage` (after batch; after epoch it validates and saves the average);
7. :class:`CurvePlotter` (after epoch): it draws the history; then the pictures of train/visuals.py and the
   TensorBoard events of train/tensorboard.py (rank 0);
8. the user's hooks, then :class:`Checkpointer`, last: weights, optimizer and every hook's state of the
   finished epoch go into one checkpoint set (core/run_dir.py), committed by its ``.params``.
"""
import logging
import math
import time

import mxnet as mx
import numpy as np
from tqdm import tqdm

from config.errors import UserError
from core.checkpoint import save_optimizer_states
from evaluate import runner
from evaluate.evaluate_net import unfused_graphs
from train.curves import plot_training_curves

LOG = logging.getLogger('train')


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; training stopped."""


class TrainingInterrupted(UserError):
    """SIGINT or SIGTERM: the batch in progress was finished and saved; ``exit_status`` is 128 + the signal."""

    def __init__(self, message, exit_status):
        super().__init__(message)
        self.exit_status = exit_status


def bound_detector(module, detector_symbol):
    """``detector_symbol`` (input ``data``, output ``detection``) bound for inference on the arrays of ``module``
    (a bound, initialised training module), for its batch shape, unfused as evaluate.py binds (its detections
    are then bit-identical to the train graph's); see :meth:`TrainState.detector`."""
    detector = mx.mod.Module(detector_symbol, data_names=('data',), label_names=None,
                             context=module._context)            # Module keeps its contexts private
    with unfused_graphs():
        detector.bind(module.data_shapes, for_training=False, shared_module=module)
    return detector


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
        Learning rate of every update of this process, in order.
    history : list of dict
        Per epoch: losses, mAP, seconds since ``started`` (restored on resume).
    started : float
        ``time.time()`` when training began: when the state was made, or given (a time budget's clock starts
        when it measures the epoch, train/budget.py).
    error : BaseException or None
        Set before ``after_train`` when training stopped with an error.
    detector_symbol : mx.sym.Symbol or None
        The deploy graph (input ``data``, output ``detection``) that :meth:`detector` binds for validation.
    end_epoch : int or None
        The epoch (1-based) the run ends after; set by the trainer, and a hook may move it while training runs,
        up to the end the trainer's ``fit`` was given (a time budget whose epochs take longer or less time than
        measured, train/budget.py): the run then ends there.
    """

    def __init__(self, module, metric, num_batches, batch_size, last_checkpoint=None, started=None,
                 detector_symbol=None):
        self.module, self.metric = module, metric
        self.detector_symbol = detector_symbol
        self.num_batches, self.batch_size = num_batches, batch_size
        self.epoch = self.batch = 0
        self.last_checkpoint = last_checkpoint
        self.validation = None
        self.lr_history, self.history = [], []
        self.started = time.time() if started is None else started
        self.error = None
        self.end_epoch = None

    def losses(self):
        """``{name: running value}`` of the training metric this epoch."""
        names, values = self.metric.get()
        return dict(zip(names, values))

    def detector(self):
        """The module a validation pass runs (``is_train=False``, ``detection`` output); call once per pass.

        With a ``detector_symbol``: that deploy graph, bound on the training module's own parameter and BatchNorm
        arrays (``shared_module``: no copy, so it sees every update and every weight swap, e.g. the EMA's). It
        skips what the train graph computes for the losses (anchor matching, the loss heads): the demo's
        validation ran 1.7x faster so (95 -> 160 img/s, 2-core Xeon). Bound without oneDNN's BatchNorm folding,
        as evaluate.py binds: folded, scores move by ~1e-7 and an undertrained network's mAP then differs from
        evaluate.py's; and the folding happens once, at the first forward, so it would not follow later updates.
        A new module per call (bound in ~15 ms). Without a ``detector_symbol``: the training module itself.
        """
        if self.detector_symbol is None:
            return self.module
        return bound_detector(self.module, self.detector_symbol)

    def learning_rate(self):
        """The learning rate the optimizer used for its latest update."""
        return self.module._optimizer.learning_rate  # Module keeps its optimizer private; read-only use

    def num_update(self):
        """Updates the optimizer has made since the start of the schedule (MXNet counts from 1)."""
        return int(self.module._optimizer.num_update)


class Hook:
    """The hook contract: every method is a no-op here; ``name`` keys the hook's saved state."""

    @property
    def name(self):
        return type(self).__name__

    def before_train(self, state):
        """Once, before the first epoch (after the weights and optimizer are ready)."""

    def before_epoch(self, state):
        """Before the first batch of each epoch."""

    def batch_fetched(self, state):
        """When fit receives each training batch (``state.data_batch``, ``state.data_batch_index``), before it
        trains on it: the one moment its arrays surely hold it (train/trainer.py)."""

    def after_batch(self, state):
        """After each batch's update and metric."""

    def after_epoch(self, state):
        """After each epoch's last batch (parameters synchronised across devices)."""

    def after_train(self, state):
        """Once at the end, also when training stopped with an error (``state.error``)."""

    def state_dict(self):
        """What this hook needs after a resume, as JSON values."""
        return {}

    def load_state_dict(self, saved):
        """Restore :meth:`state_dict`'s values."""


class StopOnNonFinite(Hook):
    """Stops training when a loss becomes NaN or infinite, naming the last good checkpoint."""

    def after_batch(self, state):
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


class LearningRateLog(Hook):
    """The learning rate of every update in ``state.lr_history``; its position (update count, rate) is saved."""

    def __init__(self):
        self.position = {}

    def after_batch(self, state):
        state.lr_history.append(state.learning_rate())
        self.position = {'num_update': state.num_update(), 'lr': state.lr_history[-1]}

    def state_dict(self):
        return dict(self.position)

    def load_state_dict(self, saved):
        self.position = dict(saved)


class ProgressBar(Hook):
    """A tqdm bar per epoch: images done, img/s, ETA, batch i/n, the losses."""

    def __init__(self):
        self.bar = None

    def before_epoch(self, state):
        self.bar = tqdm(total=state.num_batches * state.batch_size, unit='img', leave=False,
                        desc='epoch %d' % (state.epoch + 1), dynamic_ncols=True)

    def after_batch(self, state):
        self.bar.set_postfix_str('batch %d/%d %s' % (state.batch + 1, state.num_batches,
                                                     format_values(state.losses(), 3)), refresh=False)
        self.bar.update(state.batch_size)

    def after_epoch(self, state):
        self.close()

    def after_train(self, state):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class BatchLogger(Hook):
    """A plain log line every ``frequent`` batches and at the end of each epoch: speed, losses, LR."""

    def __init__(self, frequent):
        self.frequent = max(int(frequent), 1)
        self.tic = self.epoch_tic = None
        self.count = 0

    def before_epoch(self, state):
        self.tic = self.epoch_tic = time.time()
        self.count = 0

    def after_batch(self, state):
        self.count += 1
        if (state.batch + 1) % self.frequent:
            return
        speed = self.count * state.batch_size / max(time.time() - self.tic, 1e-9)
        LOG.info('Epoch[%d] Batch[%d/%d] Speed: %.1f img/s %s lr=%.6g', state.epoch + 1, state.batch + 1,
                 state.num_batches, speed, format_values(state.losses()), state.learning_rate())
        self.tic, self.count = time.time(), 0

    def after_epoch(self, state):
        seconds = time.time() - self.epoch_tic
        LOG.info('Epoch[%d] Train %s (%.1f s, %.1f img/s over the whole epoch, %.0f s since the start)',
                 state.epoch + 1, format_values(state.losses()), seconds,
                 state.num_batches * state.batch_size / max(seconds, 1e-9), time.time() - state.started)


class LoggedMonitor(mx.mon.Monitor):
    """``mx.mon.Monitor`` (given to ``Module.fit``) whose statistics go to the training log."""

    def toc_print(self):
        for batch, name, value in self.toc():
            LOG.info('Monitor batch %d %s %s', batch, name, value)


class Checkpointer(Hook):
    """Saves a checkpoint after every epoch, through the run dir: float32 symbol, optimizer state, the trainer's
    state (``trainer_state(epochs_done, batches_done)``: every hook's, so it runs last) and the weights, as one
    set committed by its ``.params``. :meth:`save_interrupted` saves the same mid-epoch."""

    def __init__(self, symbol, run, trainer_state, save_states=True):
        self.symbol, self.run, self.trainer_state = symbol, run, trainer_state
        self.save_states = save_states      # False under dist_async: the optimizer state is on the servers

    def save(self, state, epochs_done, batches_done=0):
        mx.nd.waitall()   # the last batch's BatchNorm running-statistic updates may still be in flight
        arg_params, aux_params = state.module.get_params()
        state.last_checkpoint = self.run.save_checkpoint(
            epochs_done, self.symbol, arg_params, aux_params,
            write_states=(lambda path: save_optimizer_states(state.module, path)) if self.save_states else None,
            trainer_state=self.trainer_state(epochs_done, batches_done), batch=batches_done)
        return state.last_checkpoint

    def after_epoch(self, state):
        self.save(state, state.epoch + 1)
        self.run.remove_mid_epoch_before(state.epoch + 1)
        LOG.info('Epoch[%d] saved %s', state.epoch + 1, state.last_checkpoint)

    def save_interrupted(self, state):
        """The mid-epoch checkpoint after batch ``state.batch`` of epoch ``state.epoch``; returns its path."""
        return self.save(state, state.epoch, state.batch + 1)


class Validator(Hook):
    """Validation every ``interval`` epochs and after the last one; logs mAP and the AP of every class.

    Validation is not ``Module.fit``'s ``eval_data``: fit's ``score`` would count the padded images of the
    last batch and run every epoch. It runs here (fit's epoch-end callback) through the evaluation core, and
    hands its metric to ``eval_end_callbacks`` as fit would (``mx.model.BatchEndParam``), so MXNet callbacks
    written for fit's ``eval_end_callback`` (e.g. ``mx.callback.LogValidationMetricsCallback``) work.
    """

    def __init__(self, val_iter, metric, interval, end_epoch, eval_end_callbacks=()):
        self.val_iter, self.metric = val_iter, metric
        self.interval, self.end_epoch = max(int(interval), 1), end_epoch
        self.eval_end_callbacks = list(eval_end_callbacks)

    def after_epoch(self, state):
        epoch = state.epoch + 1
        last = state.end_epoch if state.end_epoch is not None else self.end_epoch
        if epoch % self.interval and epoch != last:
            state.validation = None
            return
        tic = time.time()
        state.validation = runner.score(state.detector(), self.val_iter, self.metric)
        per_class = {name: value for name, value in state.validation.items() if name != 'mAP'}
        LOG.info('Epoch[%d] Validation %s=%.4f (%.1f s)', epoch, self.metric.name, state.validation['mAP'],
                 time.time() - tic)
        LOG.info('Epoch[%d] AP per class: %s', epoch, format_values(per_class))
        for callback in self.eval_end_callbacks:
            callback(mx.model.BatchEndParam(epoch=state.epoch, nbatch=state.num_batches, eval_metric=self.metric,
                                            locals=None))


class KeepBest(Hook):
    """Records the epoch with the best validation mAP in ``<prefix>-best.json``."""

    def __init__(self, run, metric_name):
        self.run, self.metric_name = run, metric_name
        self.best = {}

    def after_epoch(self, state):
        if state.validation is None:
            return
        value = state.validation['mAP']
        if np.isnan(value) or value <= self.best.get('mAP', -1.0):
            return
        self.best = {'epoch': state.epoch + 1, 'mAP': value, 'metric': self.metric_name,
                     'params': self.run.params_path(state.epoch + 1), 'ap_per_class': state.validation}
        self.run.write_best(self.best)
        LOG.info('Epoch[%d] best %s so far: %.4f, recorded in %s', state.epoch + 1, self.metric_name, value,
                 self.run.best_path)

    def state_dict(self):
        return dict(self.best)

    def load_state_dict(self, saved):
        self.best = dict(saved)


class History(Hook):
    """Keeps per-epoch losses and validation values in ``state.history`` (returned by train_net); a resumed
    run starts from the records saved with its checkpoint, so ``-curves.png`` shows every epoch."""

    def __init__(self):
        self.records = []
        self.offset = 0.0

    def before_train(self, state):
        state.history = self.records
        self.offset = self.records[-1]['seconds'] if self.records else 0.0   # a resumed run's clock goes on

    def after_epoch(self, state):
        record = {'epoch': state.epoch + 1, 'seconds': round(self.offset + time.time() - state.started, 1)}
        record.update(state.losses())
        if state.validation is not None:
            record['mAP'] = state.validation['mAP']
        self.records.append(record)

    def state_dict(self):
        return {'records': list(self.records)}

    def load_state_dict(self, saved):
        self.records = list(saved.get('records', []))


class CurvePlotter(Hook):
    """Redraws ``<prefix>-curves.png`` (losses and validation mAP per epoch) after every epoch."""

    def __init__(self, path, metric_name):
        self.path, self.metric_name = path, metric_name
        self.announced = False

    def after_epoch(self, state):
        plot_training_curves(state.history, self.path, self.metric_name)
        if not self.announced:
            LOG.info('training curves: %s (redrawn every epoch)', self.path)
            self.announced = True


class TqdmLogHandler(logging.StreamHandler):
    """Writes log lines through ``tqdm.write`` so that they do not break a progress bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never stop training
            self.handleError(record)
