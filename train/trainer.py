"""The training loop: MXNet's own ``Module.fit``, with our hooks reached through its callbacks.

``Module.fit`` runs forward, backward, update and the training metric; :class:`Trainer` hands it

- ``batch_end_callback``: every hook's ``after_batch``, then the user's callbacks (e.g.
  ``mx.callback.Speedometer``);
- ``epoch_end_callback``: every hook's ``after_epoch`` (checkpoint, validation, best, history, curves, saved
  state), then the user's (e.g. ``mx.callback.do_checkpoint``);
- the training iterator wrapped in :class:`EpochBatches`, whose first fetch of an epoch is the
  ``before_epoch`` event (fit has no epoch-begin callback) and which ends an epoch before a padded batch;
- every batch :class:`EpochBatches` hands to fit, first to the hooks' ``batch_fetched(state)``, with
  ``state.data_batch`` the batch and ``state.data_batch_index`` its 0-based place in the epoch. That is the one
  moment its arrays are surely the ones the network trains on: fit fetches batch ``i + 1`` before batch ``i``'s
  batch-end callback, and the C++ prefetching iterator refills its buffers a few fetches later (5 with the default
  prefetch buffer, measured; dataset/iterator.py), so a hook that keeps pixels copies them there (train/visuals.py
  draws the first training batches so);
- the user's ``eval_end_callback``\\ s go to :class:`train.callbacks.Validator` (see there why validation is
  not fit's ``eval_data``).

The module arrives bound, with its weights loaded and its optimizer (and, on resume, optimizer state)
initialised, so fit's own bind / init_params / init_optimizer are no-ops; their "already initialised"
notices are filtered, and so are its 0-based ``Epoch[0] Train-...`` lines (BatchLogger logs them 1-based,
as every other line). Where fit cannot do what later issues ask: it has no mid-epoch stop other than an
exception raised from a callback (SIGINT/SIGTERM: :meth:`Trainer.stop_after_batch` saves a mid-epoch
checkpoint, then raises one), and it always runs whole epochs of the iterator it is given (the partial last
batch is dropped, and a resumed mid-epoch run's first batches skipped, by :class:`EpochBatches`). ``fit`` may be
given a later end than the planned one (``planned_end``, a time budget that may grow); a hook that moves
``state.end_epoch`` below fit's end ends fit after that epoch's callbacks (:class:`RunEnded`).
"""
import logging
import os
import signal
import sys
import threading
import warnings

import mxnet as mx

from train.callbacks import TrainingInterrupted

LOG = logging.getLogger('train')
# fit's notices for a module that is ready, and its 0-based per-epoch lines that BatchLogger prints 1-based
FIT_NOTICES = ('Already bound', 'optimizer already initialized', '] Train-', '] Time cost=')


class RunEnded(Exception):
    """Raised after the last epoch's callbacks when a hook moved ``state.end_epoch`` before fit's own end."""


class EpochBatches(mx.io.DataIter):
    """``data_iter`` as epochs of ``num_batches`` full batches for ``Module.fit``.

    The wrapped iterator is reset once per epoch, lazily at the epoch's first fetch (as the loop before fit
    did, so shuffles and therefore results are unchanged); that fetch calls ``on_epoch_start()``. Each batch
    returned to fit (skipped and padded ones are not) goes first to ``on_batch(batch, index)``, ``index`` its
    0-based place in the epoch, while its arrays still hold it.
    """

    def __init__(self, data_iter, num_batches, on_epoch_start, skip_first=0, on_batch=None):
        super().__init__(data_iter.batch_size)
        self.data_iter, self.num_batches, self.on_epoch_start = data_iter, num_batches, on_epoch_start
        self.on_batch = on_batch
        self.fetched = 0
        self.skip_first = skip_first      # batches of the first epoch a mid-epoch checkpoint had trained

    @property
    def provide_data(self):
        return self.data_iter.provide_data

    @property
    def provide_label(self):
        return self.data_iter.provide_label

    def reset(self):
        self.fetched = 0

    def next(self):
        if self.fetched == 0:
            self.data_iter.reset()
            for _ in range(self.skip_first):     # read, not trained: the resumed run goes on where it stopped
                self.data_iter.next()
            self.fetched, self.skip_first = self.skip_first, 0
            self.on_epoch_start()
        batch = self.data_iter.next() if self.fetched < self.num_batches else None
        if batch is None or batch.pad:
            self.end_epoch()
        if self.on_batch is not None:
            self.on_batch(batch, self.fetched)
        self.fetched += 1
        return batch

    @staticmethod
    def end_epoch():
        """The epoch's end, right after its last update: fit reads the parameters next (and writes them back to
        every device). MKLDNN's BatchNorm writes its running statistics outside the engine's dependency
        tracking, so a read now could see the values before the last batch; ``waitall`` lets them land."""
        mx.nd.waitall()
        raise StopIteration


class DropNotices(logging.Filter):
    """Drops fit's notices that the module is already bound and initialised."""

    def filter(self, record):
        return not any(notice in record.getMessage() for notice in FIT_NOTICES)


class Trainer:
    """Runs ``Module.fit`` over ``hooks``; the hooks' and counters' state is saved and restored by name.

    Parameters
    ----------
    state : train.callbacks.TrainState
        Module (bound, initialised), metric, batches per epoch.
    hooks : list of train.callbacks.Hook
    extra_state : dict, optional
        JSON values saved beside the hooks' state (e.g. the frozen parameter names).
    """

    def __init__(self, state, hooks, extra_state=None):
        self.state, self.hooks = state, list(hooks)
        self.extra_state = dict(extra_state or {})
        self.next_epoch = self.batch_offset = 0
        self.stop_signal = None
        self.on_interrupt = None
        self.fit_end = None
        self.state.data_batch, self.state.data_batch_index = None, -1

    def call(self, event):
        for hook in self.hooks:
            getattr(hook, event)(self.state)

    def batch_fetched(self, batch, index):
        """:class:`EpochBatches`' ``on_batch``: ``state.data_batch`` / ``state.data_batch_index`` set, then every
        hook's ``batch_fetched(state)``, for the hooks that have one (see the module docstring)."""
        self.state.data_batch, self.state.data_batch_index = batch, index
        for hook in self.hooks:
            observer = getattr(hook, 'batch_fetched', None)   # user hooks need not derive from Hook
            if observer is not None:
                observer(self.state)

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self, epochs_done=None, batches_done=0):
        """``{'epoch', 'batch', 'hooks': {name: state}, ...extra_state}``: the position (epochs done, batches of
        the next; default: after the current epoch) and every hook's state."""
        epochs_done = self.state.epoch + 1 if epochs_done is None else epochs_done
        saved = dict(self.extra_state, epoch=epochs_done, batch=batches_done, hooks={})
        for hook in self.hooks:
            value = hook.state_dict()
            if value:
                saved['hooks'][hook.name] = value
        return saved

    def load_state_dict(self, saved):
        """Give each hook its saved state (hooks missing from ``saved`` keep a fresh one)."""
        for hook in self.hooks:
            if hook.name in saved.get('hooks', {}):
                hook.load_state_dict(saved['hooks'][hook.name])

    # ------------------------------------------------------------------------------------------ events
    def batch_end(self, param):
        self.state.epoch, self.state.batch = param.epoch, param.nbatch + self.batch_offset
        self.call('after_batch')
        if self.stop_signal is not None:
            self.stop_after_batch()

    def epoch_end(self, epoch, symbol, arg_params, aux_params):
        self.state.epoch = epoch
        self.call('after_epoch')
        self.next_epoch, self.batch_offset = epoch + 1, 0

    def end_if_moved(self, epoch, symbol, arg_params, aux_params):
        """fit's last epoch-end callback: ends fit after epoch ``epoch`` (0-based) when ``state.end_epoch`` was
        moved to it."""
        if self.state.end_epoch < self.fit_end and epoch + 1 >= self.state.end_epoch:
            raise RunEnded()

    # ------------------------------------------------------------------------------------------ signals
    def request_stop(self, signum, frame):
        """SIGINT / SIGTERM: stop after the batch in progress (saved); a second signal exits at once."""
        if self.stop_signal is not None:
            os._exit(128 + signum)        # the last complete checkpoint is intact: every write is atomic
        self.stop_signal = signum
        print('\n%s: finishing this batch and saving a checkpoint (send it again to exit at once)'
              % signal.Signals(signum).name, file=sys.stderr)

    def stop_after_batch(self):
        """Save the mid-epoch checkpoint and stop with one line naming it and how to go on."""
        saved = self.on_interrupt(self.state) if self.on_interrupt else None
        name = signal.Signals(self.stop_signal).name
        raise TrainingInterrupted('%s: stopped at epoch %d batch %d; saved %s; continue with the same command and '
                                  '--resume last' % (name, self.state.epoch + 1, self.state.batch + 1,
                                                     saved or 'nothing'), 128 + self.stop_signal)

    def install_signal_handlers(self):
        """Our SIGINT/SIGTERM handlers (main thread only); returns the previous ones to restore."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, self.request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}

    def epoch_start(self):
        self.state.epoch, self.state.batch = self.next_epoch, self.batch_offset
        self.call('before_epoch')

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, train_iter, begin_epoch, end_epoch, batch_end_callbacks=(), epoch_end_callbacks=(),
            monitor=None, skip_batches=0, on_interrupt=None, planned_end=None):
        """Train epochs ``begin_epoch`` .. ``end_epoch - 1`` with ``Module.fit``.

        Parameters
        ----------
        train_iter : mx.io.DataIter
        begin_epoch, end_epoch : int
        planned_end : int, optional
            The epoch the run is planned to end after when hooks may move its end within ``end_epoch`` (a time
            budget, train/budget.py): ``state.end_epoch`` starts there. Default: ``end_epoch``.
        batch_end_callbacks, epoch_end_callbacks : sequence of callable
            The user's MXNet callbacks, called after ours.
        monitor : mx.mon.Monitor, optional
        skip_batches : int
            Batches of the first epoch already trained (a mid-epoch checkpoint): read and left out.
        on_interrupt : callable, optional
            ``on_interrupt(state) -> path``: saves the mid-epoch checkpoint when SIGINT/SIGTERM arrives; training
            then stops with :class:`train.callbacks.TrainingInterrupted` (exit status 128 + the signal).
        """
        module, state = self.state.module, self.state
        state.epoch = self.next_epoch = begin_epoch
        self.fit_end = end_epoch
        state.end_epoch = planned = end_epoch if planned_end is None else min(planned_end, end_epoch)
        self.batch_offset, self.on_interrupt = skip_batches, on_interrupt
        batches = EpochBatches(train_iter, state.num_batches, self.epoch_start, skip_first=skip_batches,
                               on_batch=self.batch_fetched)
        self.call('before_train')
        notices = DropNotices()
        module.logger.addFilter(notices)
        previous = self.install_signal_handlers()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', message='Parameters already initialized')
                module.fit(batches, eval_metric=state.metric, begin_epoch=begin_epoch, num_epoch=end_epoch,
                           batch_end_callback=[self.batch_end] + list(batch_end_callbacks),
                           epoch_end_callback=[self.epoch_end] + list(epoch_end_callbacks) + [self.end_if_moved],
                           monitor=monitor)
        except RunEnded:
            if state.end_epoch != planned:
                LOG.info('the run ends after epoch %d instead of the %d first planned', state.end_epoch, planned)
        except BaseException as err:
            state.error = err
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            module.logger.removeFilter(notices)
            self.call('after_train')
        return state
