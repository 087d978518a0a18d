"""Pictures of a training run in its run directory (rank 0): what the network sees and what it finds.

::

    <prefix>-train_batch0.jpg ... -train_batch2.jpg   the run's first 3 training batches as the network sees
                                                      them (augmented, de-normalised), boxes and class names
    <prefix>-pr_curves.png                            at the best epoch: every class's precision-recall curve
    <prefix>-val_detections.jpg                       at the best epoch: the first validation batch, detections
                                                      in their class colour, ground truth in white

:class:`RunPictures` writes them (atomically, core/atomic.py). It runs after :class:`train.callbacks.KeepBest`
(the best epoch is known) and before the checkpointer; it keeps no state (a resumed run draws its own first
batches again). The training batches come from the trainer's ``batch_fetched`` event (train/trainer.py): the
one moment the prefetching iterator's arrays surely hold the batch fit trains. The drawing is
:mod:`evaluate.visualize`'s (as tools/preview_batches.py's); :mod:`train.tensorboard` sends the same
pictures to TensorBoard.
"""
import logging
import math

import mxnet as mx
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from config.defaults import DETECT
from core.atomic import atomic_paths
from evaluate import runner
from evaluate.draw_detections import save_picture
from evaluate.eval_metric import TRUE_POSITIVE, precision_recall
from evaluate.visualize import class_color, denormalise, draw_boxes, tile_images
from train import callbacks

LOG = logging.getLogger('train')

# New defaults of this module (candidates for config/defaults.py):
NUM_TRAIN_BATCHES = 3                   # first training batches drawn, each into its own picture
DETECTION_THRESH = DETECT['thresh']     # lowest detection score drawn, demo.py's
MAX_VAL_IMAGES = 16                     # validation images drawn, at most (the first batch's)
TRAIN_BATCH_SUFFIX, PR_CURVES_SUFFIX, VAL_DETECTIONS_SUFFIX = '-train_batch%d.jpg', '-pr_curves.png', \
    '-val_detections.jpg'


# ----------------------------------------------------------------------------------------------- pixels
def grid_columns(count):
    """Columns of a near-square grid of ``count`` images: ``ceil(sqrt(count))`` (8 images: 3 x 3 cells)."""
    return max(1, int(math.ceil(math.sqrt(count))))


def batch_grid(data, labels, mean_pixels, std_pixels, class_names):
    """A training batch as one picture: its images de-normalised, their boxes and class names drawn.

    Parameters
    ----------
    data : (B, 3, H, W) float32
        As the network sees it.
    labels : (B, N, 6) float32
        ``[cls, xmin, ymin, xmax, ymax, difficult]``, normalized, -1 padded.
    mean_pixels, std_pixels : (3,) floats
    class_names : sequence of str

    Returns
    -------
    (rows * H + (rows - 1) * 2, cols * W + (cols - 1) * 2, 3) uint8 RGB
        ``cols`` = :func:`grid_columns` (B), 2-pixel gaps (:func:`evaluate.visualize.tile_images`).
    """
    images = denormalise(data, mean_pixels, std_pixels)
    drawn = [draw_boxes(image, label, class_names) for image, label in zip(images, labels)]
    return tile_images(drawn, grid_columns(len(drawn)))


def detections_grid(images, labels, detections, class_names, thresh=DETECTION_THRESH):
    """Validation images with their ground truth (white, no caption) and detections scoring at least ``thresh``
    (class colour, "name score") drawn on top.

    Parameters
    ----------
    images : (B, H, W, 3) uint8 RGB
    labels : (B, N, 6) float32
        Ground truth, -1 padded.
    detections : (B, A, 6) float32
        ``[cls, score, xmin, ymin, xmax, ymax]``, ``cls < 0`` rows suppressed.
    class_names : sequence of str
    thresh : float

    Returns
    -------
    (H', W', 3) uint8 RGB grid, :func:`grid_columns` (B) images a row
    """
    drawn = []
    for image, label, found in zip(images, labels, detections):
        truth = draw_boxes(image, label[label[:, 0] >= 0, 1:5], class_names)       # 4 columns: white, no caption
        kept = found[(found[:, 0] >= 0) & (found[:, 1] >= thresh)]
        drawn.append(draw_boxes(truth, kept[:, [0, 2, 3, 4, 5]], class_names, scores=kept[:, 1]))
    return tile_images(drawn, grid_columns(len(drawn)))


def save_rgb(picture, path):
    """An RGB picture as a JPEG (quality 95, no chroma subsampling) or PNG, atomically."""
    save_picture(np.ascontiguousarray(picture[:, :, ::-1]), path)


# ------------------------------------------------------------------------------------------- validation
def first_validation_batch(module, val_iter, max_images=MAX_VAL_IMAGES):
    """The first batch of ``val_iter`` run through ``module`` (``is_train=False``): its real images.

    Parameters
    ----------
    module : mx.mod.Module
        Bound for ``val_iter``'s batch, with a ``detection`` output (read by name).
    val_iter : mx.io.DataIter
        Reset here; left mid-epoch (every scoring pass resets it first).
    max_images : int

    Returns
    -------
    data : (R, 3, H, W) float32
        Network input of the ``R`` real images (padding fillers and those past ``max_images`` left out).
    labels : (R, N, 6) float32
    detections : (R, A, 6) float32
    """
    val_iter.reset()
    batch = val_iter.next()
    real = min(batch.data[0].shape[0] - batch.pad, max_images)
    data, labels = batch.data[0].asnumpy()[:real], batch.label[0].asnumpy()[:real]
    module.forward(mx.io.DataBatch(data=batch.data, label=batch.label), is_train=False)
    detections = module.get_outputs()[runner.detection_position(module)].asnumpy()[:real]
    return data, labels, detections


class ValidationSample:
    """The first validation batch and its detections, computed once per validated epoch for every hook that
    asks (:class:`RunPictures`, :class:`train.tensorboard.TensorBoardLog`)."""

    def __init__(self, val_iter, mean_pixels, std_pixels):
        self.val_iter, self.mean_pixels, self.std_pixels = val_iter, mean_pixels, std_pixels
        self.epoch, self.value = None, None

    def get(self, state):
        """``(images (R, H, W, 3) uint8 RGB, labels (R, N, 6), detections (R, A, 6))`` of ``state.epoch``."""
        if self.epoch != state.epoch:
            data, labels, detections = first_validation_batch(state.module, self.val_iter)
            self.epoch = state.epoch
            self.value = denormalise(data, self.mean_pixels, self.std_pixels), labels, detections
        return self.value


def ranked_detections(metric):
    """Per class, the detections a VOC metric matched in its latest pass, by decreasing score: its
    :meth:`evaluate.eval_metric.MApMetric.ranked_detections` (``(scores, outcomes, positives)`` per class)."""
    return metric.ranked_detections()


def threshold_counts(scores, outcomes, positives, num_thresholds=101):
    """True/false positives and negatives at score thresholds ``k / (T - 1)``, ``k = 0 .. T - 1``: TensorBoard's
    raw PR-curve data. A detection counts at threshold ``k`` when ``floor(score * (T - 1)) >= k``, the bins of
    TensorBoard's own ``pr_curve`` (a score of exactly 0.3 counts at 0.3).

    Parameters
    ----------
    scores : (D,) float
    outcomes : (D,) int8
        TRUE_POSITIVE / FALSE_POSITIVE.
    positives : int
        Ground truths of the class.
    num_thresholds : int
        ``T``.

    Returns
    -------
    dict of (T,) float64
        ``tp``, ``fp``, ``tn`` (0: detection has no true negatives), ``fn = positives - tp``, ``precision``
        ``tp / (tp + fp)`` (0 where nothing is detected), ``recall`` ``tp / positives``.
    """
    bins = np.floor(np.asarray(scores, np.float64) * (num_thresholds - 1))            # (D,)
    counted = bins[None, :] >= np.arange(num_thresholds)[:, None]                       # (T, D)
    hits = np.asarray(outcomes) == TRUE_POSITIVE
    tp = (counted & hits).sum(axis=1).astype(np.float64)
    fp = (counted & ~hits).sum(axis=1).astype(np.float64)
    return dict(tp=tp, fp=fp, tn=np.zeros_like(tp), fn=positives - tp,
                precision=tp / np.maximum(tp + fp, 1e-7), recall=tp / max(positives, 1))


def plot_pr_curves(ranked, class_names, ap_per_class, path, title):
    """Every class's precision-recall curve on one figure, its AP in the legend; a PNG written atomically.

    Parameters
    ----------
    ranked : list of (scores, outcomes, positives)
        From :func:`ranked_detections`.
    class_names : sequence of str
    ap_per_class : dict
        ``{class name: AP}`` (NaN for a class without ground truth).
    path : str
    title : str
    """
    figure = Figure(figsize=(6, 5))            # not pyplot's registry (train/curves.py says why)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for class_id, (name, (_, outcomes, positives)) in enumerate(zip(class_names, ranked)):
        color = np.asarray(class_color(class_id)) / 255.0
        if not positives:
            axes.plot([], [], color=color, label='%s: no ground truth' % name)
            continue
        precision, recall = precision_recall(outcomes, positives)
        note = '' if len(outcomes) else ' (no detections)'
        axes.plot(recall, precision, color=color, lw=1.5, label='%s AP %.3f%s' % (name, ap_per_class[name], note))
    axes.set(xlabel='recall', ylabel='precision', xlim=(0, 1.02), ylim=(0, 1.02), title=title)
    axes.legend(loc='lower left', fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_paths(path) as (temporary,):
        figure.savefig(temporary, format='png', dpi=80)


# ------------------------------------------------------------------------------------------------ hook
class RunPictures(callbacks.Hook):
    """Writes the run directory's pictures (module docstring): the first training batches, and at each new
    best epoch the PR curves and the validation detections.

    Parameters
    ----------
    prefix : str
        The run's prefix (``RunDir.prefix``).
    class_names : sequence of str
    mean_pixels, std_pixels : (3,) floats
        The input normalisation to undo.
    validator : train.callbacks.Validator or None
        Its metric holds the latest validation's matches; None: no validation pictures.
    keep_best : train.callbacks.KeepBest or None
    sample : ValidationSample or None
        Shared with the TensorBoard hook, so the first validation batch runs once per epoch.
    """

    def __init__(self, prefix, class_names, mean_pixels, std_pixels, validator=None, keep_best=None, sample=None):
        self.prefix, self.class_names = prefix, tuple(class_names)
        self.mean_pixels, self.std_pixels = mean_pixels, std_pixels
        self.validator, self.keep_best, self.sample = validator, keep_best, sample
        self.pr_curves_path, self.val_detections_path = prefix + PR_CURVES_SUFFIX, prefix + VAL_DETECTIONS_SUFFIX
        self.drawn = 0

    def batch_path(self, number):
        return self.prefix + TRAIN_BATCH_SUFFIX % number

    def batch_fetched(self, state):
        if self.drawn >= NUM_TRAIN_BATCHES:
            return
        batch = state.data_batch
        grid = batch_grid(batch.data[0].asnumpy(), batch.label[0].asnumpy(), self.mean_pixels, self.std_pixels,
                          self.class_names)
        save_rgb(grid, self.batch_path(self.drawn))
        self.drawn += 1
        if self.drawn == NUM_TRAIN_BATCHES:
            LOG.info('the first %d training batches as the network sees them: %s ...', NUM_TRAIN_BATCHES,
                     self.batch_path(0))

    def after_epoch(self, state):
        if state.validation is None or self.keep_best is None or self.keep_best.best.get('epoch') != state.epoch + 1:
            return
        metric = self.validator.metric
        plot_pr_curves(ranked_detections(metric), self.class_names, state.validation, self.pr_curves_path,
                       'epoch %d: %s %.3f' % (state.epoch + 1, metric.name, state.validation['mAP']))
        save_rgb(detections_grid(*self.sample.get(state), self.class_names), self.val_detections_path)
        LOG.info('Epoch[%d] best-epoch pictures: %s, %s', state.epoch + 1, self.pr_curves_path,
                 self.val_detections_path)


def visual_hooks(config, run_dir, hooks):
    """The picture hooks of a run (rank 0): :class:`RunPictures`, and :class:`train.tensorboard.TensorBoardLog`
    when ``config.run.tensorboard`` (and tensorboardX imports; else one warning). They read the
    :class:`train.callbacks.Validator` and :class:`train.callbacks.KeepBest` among ``hooks``, so they go after
    them."""
    from train import tensorboard
    validator = next((hook for hook in hooks if isinstance(hook, callbacks.Validator)), None)
    keep_best = next((hook for hook in hooks if isinstance(hook, callbacks.KeepBest)), None)
    data = config.data
    sample = ValidationSample(validator.val_iter, data.mean_pixels, data.std_pixels) if validator else None
    made = [RunPictures(run_dir.prefix, data.class_names, data.mean_pixels, data.std_pixels, validator, keep_best,
                        sample)]
    if config.run.tensorboard:
        made += tensorboard.tensorboard_hooks(run_dir.prefix, data, config.run.frequent, validator, sample)
    return made
