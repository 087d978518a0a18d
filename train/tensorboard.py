"""TensorBoard event files of a training run, through tensorboardX, under ``<prefix>-tb/`` (rank 0).

Every summary's step is the count of updates done when it was taken (epoch ``e``, 0-based batch ``b`` of
``n`` per epoch: ``e * n + b + 1``; an epoch's own values at ``(e + 1) * n``), so batch and epoch curves
share one axis, and a resumed run's writer purges what an earlier run wrote from its first step on::

    train/<loss>, train/lr, train/images_per_second    every ``run.frequent`` batches (running losses)
    epoch/<loss>, epoch/lr, epoch/images_per_second    after each epoch (the epoch's losses, as the history)
    val/mAP, val_ap/<class>                            after each validation
    train/batch_0 .. train/batch_2                     the first training batches with their boxes (images)
    val/detections                                     the first validation batch, detections and ground truth
    pr_curve/<class>                                   precision-recall data at 101 score thresholds

Without tensorboardX, :func:`tensorboard_hooks` logs one warning and training goes on without it.
"""
import logging
import time

import numpy as np

from train import callbacks, visuals

LOG = logging.getLogger('train')
TB_SUFFIX = '-tb'                  # <prefix>-tb/: the event files
PR_THRESHOLDS = 101                # score thresholds 0, 0.01, ..., 1 of the PR-curve data


def tensorboard_dir(prefix):
    """``<prefix>-tb``."""
    return prefix + TB_SUFFIX


def tensorboard_hooks(prefix, data, frequent, validator=None, sample=None):
    """``[TensorBoardLog]``, or ``[]`` with one warning line when tensorboardX does not import.

    Parameters
    ----------
    prefix : str
    data : config section ``data``
        ``class_names``, ``mean_pixels``, ``std_pixels``.
    frequent : int
        Batch scalars every this many batches.
    validator : train.callbacks.Validator, optional
    sample : train.visuals.ValidationSample, optional
    """
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        LOG.warning('TensorBoard off: %s (pip install tensorboardX==2.6.5, or pass --no-tensorboard)', err)
        return []
    return [TensorBoardLog(SummaryWriter, tensorboard_dir(prefix), data.class_names, data.mean_pixels,
                           data.std_pixels, frequent, validator, sample)]


def updates_done(state):
    """Updates done after the batch in progress: ``epoch * num_batches + batch + 1``."""
    return state.epoch * state.num_batches + state.batch + 1


class TensorBoardLog(callbacks.Hook):
    """Scalars, images and PR curves of the run (module docstring) in ``logdir``; no state to save.

    Parameters
    ----------
    make_writer : callable
        ``make_writer(logdir=..., purge_step=...)``: ``tensorboardX.SummaryWriter``.
    logdir : str
    class_names : sequence of str
    mean_pixels, std_pixels : (3,) floats
    frequent : int
    validator : train.callbacks.Validator, optional
        Its metric holds the latest validation's matches (the PR curves).
    sample : train.visuals.ValidationSample, optional
        The first validation batch and its detections.
    """

    def __init__(self, make_writer, logdir, class_names, mean_pixels, std_pixels, frequent, validator=None,
                 sample=None):
        self.make_writer, self.logdir, self.class_names = make_writer, logdir, tuple(class_names)
        self.mean_pixels, self.std_pixels = mean_pixels, std_pixels
        self.frequent, self.validator, self.sample = max(int(frequent), 1), validator, sample
        self.writer = None
        self.images_sent = self.count = 0
        self.tic = self.epoch_tic = None

    def before_epoch(self, state):
        if self.writer is None:        # the first step of this run is known now (a resumed one skips batches)
            self.writer = self.make_writer(logdir=self.logdir, purge_step=updates_done(state))
            LOG.info('TensorBoard: tensorboard --logdir %s', self.logdir)
        self.tic = self.epoch_tic = time.time()
        self.count = 0

    def batch_fetched(self, state):
        if self.images_sent >= visuals.NUM_TRAIN_BATCHES:
            return
        batch = state.data_batch
        grid = visuals.batch_grid(batch.data[0].asnumpy(), batch.label[0].asnumpy(), self.mean_pixels,
                                  self.std_pixels, self.class_names)
        step = state.epoch * state.num_batches + state.data_batch_index + 1
        self.writer.add_image('train/batch_%d' % self.images_sent, grid, step, dataformats='HWC')
        self.images_sent += 1

    def after_batch(self, state):
        self.count += 1
        if (state.batch + 1) % self.frequent:
            return
        speed = self.count * state.batch_size / max(time.time() - self.tic, 1e-9)
        self.add_scalars('train', state, updates_done(state), speed)
        self.tic, self.count = time.time(), 0

    def after_epoch(self, state):
        step = (state.epoch + 1) * state.num_batches
        speed = state.num_batches * state.batch_size / max(time.time() - self.epoch_tic, 1e-9)
        self.add_scalars('epoch', state, step, speed)
        if state.validation is not None:
            self.add_validation(state, step)
        self.writer.flush()

    def after_train(self, state):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def add_scalars(self, group, state, step, speed):
        """``<group>/<loss>`` for each training loss, ``<group>/lr``, ``<group>/images_per_second``."""
        for name, value in state.losses().items():
            self.writer.add_scalar('%s/%s' % (group, name), value, step)
        self.writer.add_scalar(group + '/lr', state.learning_rate(), step)
        self.writer.add_scalar(group + '/images_per_second', speed, step)

    def add_validation(self, state, step):
        """mAP and the AP of each class (NaN ones left out), the detections picture and the PR curves."""
        self.writer.add_scalar('val/mAP', state.validation['mAP'], step)
        for name in self.class_names:
            if not np.isnan(state.validation[name]):
                self.writer.add_scalar('val_ap/' + name, state.validation[name], step)
        if self.sample is not None:
            grid = visuals.detections_grid(*self.sample.get(state), self.class_names)
            self.writer.add_image('val/detections', grid, step, dataformats='HWC')
        for name, (scores, outcomes, positives) in zip(self.class_names,
                                                       visuals.ranked_detections(self.validator.metric)):
            if positives:
                counts = visuals.threshold_counts(scores, outcomes, positives, PR_THRESHOLDS)
                self.writer.add_pr_curve_raw('pr_curve/' + name, counts['tp'], counts['fp'], counts['tn'],
                                             counts['fn'], counts['precision'], counts['recall'], step,
                                             num_thresholds=PR_THRESHOLDS)
