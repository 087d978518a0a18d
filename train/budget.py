"""``--time-budget MINUTES``: the schedule fitted to the time a user has, measured on this machine first.

A short run should not be a long run cut off: with a budget, the run measures how long one epoch takes here
(:func:`measure_epoch`), computes how many epochs fit (:func:`epochs_within`), and stretches or squeezes the
configured schedule onto them (:func:`fitted_solver`): ``end_epoch`` becomes that count, ``lr_steps`` keep their
place as fractions of the run, cosine / poly decay to ``final_lr`` at the new end, and the warm-up keeps its
length in epochs (it is about the first updates' stability, not the run's length) unless it would take more
than a quarter of the run.

The measurement trains nothing: it times ``forward_backward`` on a few training batches and ``forward``
(inference, detection output included) on a few more, then puts the BatchNorm running statistics back, since
a training-mode forward moves them. The clock of the budget starts with the measurement, and the history's
``seconds`` (train/callbacks.py) start there too, so a run's last record says how much of the budget it used.

Epochs can take longer than measured (validation passes that find more boxes as the network learns, a machine
shared with other work) or, after a slow start, less: :class:`BudgetKeeper` checks the clock before every epoch and
moves the run's end to the epochs that fit, placing the LR steps not yet passed (or the cosine / poly end) on
the new length. It ends the run earlier as soon as the epochs left no longer fit; it adds epochs only when they
fit with :data:`EXTEND_MARGIN` to spare, and at most up to :data:`MAX_EXTENSION` times the fitted length, so
the budget stays an upper bound that a noisy first epoch does not leave half used.

A resumed run does not measure again: it keeps the fitted schedule its ``<prefix>-config.yaml`` holds, so every
update after the resume sees the learning rate the uninterrupted run would have.
"""
import collections
import logging
import math
import statistics
import time

import mxnet as mx

from config.errors import UserError
from config.schema import flag_words, resolved
from train import schedule
from train.callbacks import Hook

LOG = logging.getLogger('train')

WARMUP_BATCHES = 3              # untimed first batches: oneDNN creates its primitives on the first passes
TIMED_TRAIN_BATCHES = 20        # forward + backward passes timed, with their fetches (1/6 of a demo epoch)
TIMED_INFERENCE_BATCHES = 4     # inference passes timed, for the validation's share
EPOCH_OVERHEAD_SECONDS = 3.0    # per epoch: the iterator's restart and slower first batches, the updates and the
                                # checkpoint, state, curves and pictures (demo, 2 cores: epochs took 2-5 s more
                                # than 125 timed passes)
MAX_WARMUP_SHARE = 0.25         # a warm-up longer than this share of the fitted run is shortened to it
EXTEND_MARGIN = 1.15            # epochs are added only if they fit at 1.15x the typical epoch's time
MAX_EXTENSION = 2.0             # a run grows to at most twice its fitted length (its checkpoints are checked free)

EpochCost = collections.namedtuple('EpochCost', 'train_seconds validation_seconds overhead_seconds')
EpochCost.__doc__ = """Predicted wall time of one epoch: its training batches, its validation pass (0 when the
epoch is not validated on average: divided by ``val_interval``) and the per-epoch writes."""


def check_budget(solver, distributed):
    """UserError for a budget that cannot be used: negative, or on a worker group (each worker would measure
    its own speed and fit another number of epochs)."""
    if solver.time_budget < 0:
        raise UserError('%s %g: give minutes above 0, or 0 to train until %s'
                        % (flag_words('solver.time_budget'), solver.time_budget, flag_words('solver.end_epoch')))
    if solver.time_budget > 0 and distributed:
        raise UserError('%s is for one machine: with --kv-store %s give %s instead'
                        % (flag_words('solver.time_budget'), solver.kv_store, flag_words('solver.end_epoch')))


def _timed_passes(data_iter, count, run_one):
    """Seconds per batch of fetching the next batch of ``data_iter`` and ``run_one(batch)``, over ``count``
    batches (waited for). The fetch is timed with the pass: the iterator decodes the next batches on its own
    threads meanwhile, which share the cores with the pass as they do in training."""
    mx.nd.waitall()
    tic = time.time()
    for batch in _batches(data_iter, count):
        run_one(batch)
        mx.nd.waitall()     # as the training metric's read of the outputs does after every batch
    return (time.time() - tic) / max(count, 1)


def _batches(data_iter, count):
    """The next ``count`` batches of ``data_iter``, one at a time (reset when it runs out)."""
    for _ in range(count):
        try:
            yield data_iter.next()
        except StopIteration:
            data_iter.reset()
            yield data_iter.next()


def measure_epoch(module, train_iter, num_batches, num_val_batches, val_interval, detector=None):
    """Time this module's passes and predict one epoch's wall time.

    Parameters
    ----------
    module : mx.mod.Module
        Bound for training, parameters initialised. Its parameters are unchanged on return (no update is made;
        the BatchNorm running statistics are restored).
    train_iter : mx.io.DataIter
        The training iterator; the batches read are not trained on (the trainer resets it before epoch 1).
    num_batches : int
        Training batches per epoch.
    num_val_batches : int
        Validation batches per pass (0: no validation).
    val_interval : int
        Validation every this many epochs.
    detector : mx.mod.Module, optional
        The module validation runs (train/callbacks.py ``bound_detector``); default ``module``.

    Returns
    -------
    EpochCost
    """
    _, aux_before = module.get_params()
    _timed_passes(train_iter, WARMUP_BATCHES, module.forward_backward)
    train_pass = _timed_passes(train_iter, TIMED_TRAIN_BATCHES, module.forward_backward)
    infer_pass = 0.0
    if num_val_batches:
        detector = module if detector is None else detector
        labels = detector.label_names
        infer_pass = _timed_passes(train_iter, TIMED_INFERENCE_BATCHES, lambda batch: detector.forward(
            mx.io.DataBatch(data=batch.data, label=batch.label if labels else None), is_train=False))
    arg_params, _ = module.get_params()
    module.set_params(arg_params, aux_before)
    mx.nd.waitall()
    return EpochCost(train_pass * num_batches, infer_pass * num_val_batches / max(val_interval, 1),
                     EPOCH_OVERHEAD_SECONDS)


def epochs_within(budget_seconds, cost):
    """The most whole epochs of ``cost`` that fit into ``budget_seconds`` (at least 1)."""
    per_epoch = sum(cost)
    return max(1, int(math.floor(budget_seconds / per_epoch)))


def placed_step(step, configured_epochs, epochs):
    """Epoch ``step`` of a ``configured_epochs``-epoch run at the same fraction of an ``epochs`` run, on a whole
    epoch from 1 to ``epochs - 1``."""
    return min(max(int(round(step * epochs / float(configured_epochs))), 1), max(epochs - 1, 1))


def capped_warmup(warmup_epochs, epochs):
    """The warm-up of an ``epochs``-epoch fitted run: at most :data:`MAX_WARMUP_SHARE` of it."""
    return min(warmup_epochs, MAX_WARMUP_SHARE * epochs)


def scaled_steps(lr_steps, configured_epochs, epochs):
    """``lr_steps`` (epochs of a ``configured_epochs``-epoch run) at the same fractions of an ``epochs`` run.

    Each lands on a whole epoch from 1 to ``epochs - 1``; two that land together count once.

    Examples
    --------
    >>> scaled_steps([14, 18], 20, 10)
    [7, 9]
    """
    steps = []
    for step in lr_steps:
        placed = placed_step(step, configured_epochs, epochs)
        if placed not in steps:
            steps.append(placed)
    return steps


def fitted_solver(solver, begin_epoch, epochs):
    """The ``solver`` keys that fit its schedule to ``epochs`` epochs after ``begin_epoch``.

    Returns
    -------
    dict
        Dotted keys -> values: ``solver.end_epoch``, ``solver.lr_steps``, ``solver.warmup_epochs``.
    """
    configured = max(solver.end_epoch - begin_epoch, 1)
    warmup = capped_warmup(solver.warmup_epochs, epochs)
    steps = [begin_epoch + step for step in
             scaled_steps([step - begin_epoch for step in solver.lr_steps if step > begin_epoch], configured, epochs)]
    return {'solver.end_epoch': begin_epoch + epochs, 'solver.lr_steps': steps, 'solver.warmup_epochs': warmup}


def saved_fit(saved_config, solver):
    """The fitted keys of the run being resumed, read from its ``<prefix>-config.yaml``; None when that run had
    no (or another) budget, so the budget is fitted anew."""
    if saved_config is None or saved_config.solver.time_budget != solver.time_budget:
        return None
    saved = saved_config.solver
    return {'solver.end_epoch': saved.end_epoch, 'solver.lr_steps': list(saved.lr_steps),
            'solver.warmup_epochs': saved.warmup_epochs}


def decay_words(kind, steps):
    """How the fitted LR decays, for the log: ``'LR steps [6, 8]'`` or ``'cosine decay to the end'``."""
    return 'LR steps %s' % list(steps) if kind == 'step' else '%s decay to the end' % kind


def describe_fit(minutes, cost, epochs, fit, measured_seconds, kind='step'):
    """The log line of a fitted budget (``kind``: the LR scheduler, solver.lr_scheduler)."""
    return ('time budget %g min: one epoch takes %.1f s training + %.1f s validation + %.1f s writes here '
            '(measured in %.1f s) -> %d epochs: end epoch %d, %s, warm-up %g epochs'
            % (minutes, cost.train_seconds, cost.validation_seconds, cost.overhead_seconds, measured_seconds,
               epochs, fit['solver.end_epoch'], decay_words(kind, fit['solver.lr_steps']),
               fit['solver.warmup_epochs']))


now = time.time       # the clock BudgetKeeper reads (a test gives it a clock of its own)


def replaced_steps(configured_steps, configured_epochs, begin_epoch, current_steps, done, epochs):
    """LR steps after moving a run's end: the steps passed stay, the others land at their fraction of the run.

    Parameters
    ----------
    configured_steps : list of int
        The steps the configuration gave (epochs after ``begin_epoch``), before any fit.
    configured_epochs : int
        The configured run's length in epochs after ``begin_epoch``.
    begin_epoch : int
    current_steps : list of int
        The steps of the schedule running now; the first ones, up to epoch ``done``, have been passed (a step at
        ``done`` takes effect with the next update).
    done : int
        Epochs trained.
    epochs : int
        The new length after ``begin_epoch``.

    Returns
    -------
    list of int
        Increasing epochs; a step not yet passed lands at ``done`` or later and before the new end (two that land
        together count once).

    Examples
    --------
    >>> replaced_steps([14, 18], 20, 0, [7, 9], 4, 6)      # a 10-epoch fit cut to 6 after epoch 4
    [4, 5]
    """
    passed = [step for step in current_steps if step <= done]
    steps = list(passed)
    for step in configured_steps[len(passed):]:
        placed = max(begin_epoch + placed_step(step - begin_epoch, configured_epochs, epochs), done)
        if placed not in steps:
            steps.append(placed)
    return steps


def extension_limit(begin_epoch, fitted_end):
    """The last epoch a run fitted to end after ``fitted_end`` may grow to (``MAX_EXTENSION`` times as long)."""
    return begin_epoch + int(math.floor(MAX_EXTENSION * (fitted_end - begin_epoch)))


class BudgetKeeper(Hook):
    """Keeps a fitted run inside its budget: before every epoch from the third on, the epochs left are predicted
    from the epochs trained since the first (their median wall time, validation and writes included: one slow
    epoch on a shared machine does not decide; the first is left out, it also pays one-time work, e.g. the batch
    pictures and the validation graph's first pass, and on the demo set took 48 s where the next took 36). When
    fewer fit than planned, the run's end (``state.end_epoch``) moves back; when more fit with
    :data:`EXTEND_MARGIN` to spare, it moves forward, up to ``max_end``. Either way the optimizer gets the
    schedule of the new length.

    Parameters
    ----------
    solver : config section
        The configured solver, before the fit (its ``lr_steps`` and ``end_epoch`` give the steps' fractions).
    fitted : config
        The whole configuration the run started with, fitted.
    begin_epoch : int
    remaining_seconds : float
        Budget left when the keeper is made (the measurement spent the rest).
    iterations_per_epoch : int
    on_refit : callable, optional
        ``on_refit(config)`` with the configuration of the new length after each move (train_net writes
        ``<prefix>-config.yaml`` again, so a resume keeps the moved schedule).

    Attributes
    ----------
    max_end : int
        The last epoch the run may grow to (:func:`extension_limit`): the trainer's ``fit`` runs up to it and
        ends at ``state.end_epoch``.
    """

    def __init__(self, solver, fitted, begin_epoch, remaining_seconds, iterations_per_epoch, on_refit=None):
        self.configured_steps = [step for step in solver.lr_steps if step > begin_epoch]
        self.configured_epochs = max(solver.end_epoch - begin_epoch, 1)
        self.fitted, self.begin_epoch = fitted, begin_epoch
        self.remaining_seconds, self.iterations_per_epoch = remaining_seconds, iterations_per_epoch
        self.on_refit = on_refit
        self.steps = list(fitted.solver.lr_steps)
        self.max_end = extension_limit(begin_epoch, fitted.solver.end_epoch)
        self.starts = []           # (clock, epoch) at each epoch's start

    def typical_epoch_seconds(self):
        """Median wall time of the epochs trained since the first (at least one), from their start times."""
        clocks = [clock for clock, _ in self.starts[1:]]
        return statistics.median(later - earlier for earlier, later in zip(clocks, clocks[1:]))

    def before_epoch(self, state):
        clock = now()
        self.starts.append((clock, state.epoch))
        if len(self.starts) < 3:
            return
        per_epoch = self.typical_epoch_seconds()
        seconds_left = self.remaining_seconds - (clock - self.starts[0][0])
        end = max(state.epoch + int(math.floor(seconds_left / per_epoch)), state.epoch + 1)
        longer = min(state.epoch + int(math.floor(seconds_left / (per_epoch * EXTEND_MARGIN))), self.max_end)
        if end < state.end_epoch:
            self.move_end(state, end, per_epoch)
        elif longer > state.end_epoch:
            self.move_end(state, longer, per_epoch)

    def move_end(self, state, end, per_epoch):
        """End the run after epoch ``end`` with the schedule placed on it (the warm-up capped as in
        :func:`fitted_solver`)."""
        epochs = end - self.begin_epoch
        self.steps = replaced_steps(self.configured_steps, self.configured_epochs, self.begin_epoch, self.steps,
                                    state.epoch, epochs)
        self.fitted = resolved(self.fitted, {
            'solver.end_epoch': end, 'solver.lr_steps': list(self.steps),
            'solver.warmup_epochs': capped_warmup(self.fitted.solver.warmup_epochs, epochs)})
        state.module._optimizer.lr_scheduler = schedule.solver_scheduler(  # Module keeps its optimizer private
            self.fitted.solver, self.iterations_per_epoch)
        LOG.info('time budget: epochs take %.1f s here, %s than measured: the run ends after epoch %d instead '
                 'of %d, %s', per_epoch, 'longer' if end < state.end_epoch else 'less', end, state.end_epoch,
                 decay_words(self.fitted.solver.lr_scheduler, self.steps))
        state.end_epoch = end
        if self.on_refit is not None:
            self.on_refit(self.fitted)
