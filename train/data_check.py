"""An early warning for broken training data: ``--validate-on-train N``.

The old MXNet example's most common silent failure is a data bug (class ids shifted by one, boxes in pixels
instead of fractions, x and y swapped): the loss falls, because the network learns whatever the labels say,
and only the validation mAP, hours later, shows that nothing useful was learnt. After the first epoch,
:class:`TrainDataCheck` scores ``N`` batches of the *training* records without augmentation. A network that
has just been fit to those labels should find at least some of them again; when that mAP is near zero while
the loss fell, the labels and the images disagree, and a warning says what to look at.
"""
import logging

from evaluate import runner
from train.callbacks import Hook

LOG = logging.getLogger('train')
NEAR_ZERO_MAP = 0.01        # below this the network finds (almost) none of the boxes it was trained on


def loss_fell(first, epoch):
    """Whether a training loss of the epoch as a whole (``{name: value}``) is below its first batch's value.

    Any of them: with labels that do not match the images the classification loss still falls (the network
    learns that most anchors are background) while the box loss wanders; a loss that falls is the sign that
    training itself runs, which is what makes a near-zero mAP on the training images suspicious.
    """
    return any(epoch[name] < value for name, value in first.items() if name in epoch)


class TrainDataCheck(Hook):
    """After epoch 1: mAP on ``num_batches`` unaugmented training batches, and a warning when it is near zero
    while the loss fell.

    Parameters
    ----------
    make_iter : callable
        ``make_iter()`` -> a fresh iterator over the training records, unaugmented, unshuffled (made when
        needed: it costs decoding threads).
    metric : mx.metric.EvalMetric
        A VOC mAP metric of its own (not the validator's).
    num_batches : int
    """

    def __init__(self, make_iter, metric, num_batches):
        self.make_iter, self.metric, self.num_batches = make_iter, metric, num_batches
        self.first_losses = None
        self.result = None          # {'mAP', 'loss_fell', 'warned'} once the check ran

    def after_batch(self, state):
        if state.epoch == 0 and self.first_losses is None:
            self.first_losses = state.losses()

    def after_epoch(self, state):
        if state.epoch != 0 or self.result is not None:
            return
        values = runner.score(state.detector(), self.make_iter(), self.metric, num_batch=self.num_batches)
        fell = loss_fell(self.first_losses or {}, state.losses())
        warned = fell and values['mAP'] < NEAR_ZERO_MAP
        self.result = dict(mAP=values['mAP'], loss_fell=fell, warned=warned)
        moves = ', '.join('%s %.3f -> %.3f' % (name, value, state.losses().get(name, float('nan')))
                          for name, value in (self.first_losses or {}).items())
        LOG.info('Epoch[1] training-data check: %d unaugmented training batches score %s %.4f (the loss %s: first '
                 'batch -> epoch %s)', self.num_batches, self.metric.name, values['mAP'],
                 'fell' if fell else 'did not fall', moves)
        if warned:
            LOG.warning('warning: the loss fell but the network finds almost none of the training boxes it was '
                        'trained on (mAP %.4f < %g): the labels may not match the images (class ids, boxes in '
                        'pixels instead of 0..1, x/y swapped). Look at them drawn: python tools/rec_info.py '
                        '<train .rec> --show 16 --out preview.png', values['mAP'], NEAR_ZERO_MAP)
