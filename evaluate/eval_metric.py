"""PASCAL VOC mean average precision: ``MApMetric`` (all-point area, VOC2010+) and ``VOC07MApMetric`` (11-point).

Both give the numbers of GluonCV's ``VOCMApMetric`` / ``VOC07MApMetric`` (tests/test_metrics.py checks it to
1e-6), computed batch-wise with NumPy instead of a Python loop per detection:

- a detection matches the ground truth of its class with which it has the highest IoU, if that IoU is at
  least ``ovp_thresh``; detections are taken in score order within each image, and a ground truth already
  matched by a higher-scored detection turns later ones into false positives (no re-assignment);
- a detection matched to a *difficult* ground truth is neither a true nor a false positive, and difficult
  ground truths are not counted as positives (unless ``use_difficult``, which treats them as ordinary);
- images without ground truth count: every detection in them is a false positive;
- a class without (non-difficult) ground truth has AP NaN and is left out of the mean, as in GluonCV.

Coordinates. Boxes here are normalized to [0, 1], so IoU uses ``width = xmax - xmin`` (no offset).
GluonCV adds 1 to ``xmax`` and ``ymax`` of every box before its IoU ("integer typed bounding boxes"), i.e.
pixel widths ``xmax - xmin + 1``; on normalized boxes that would make every IoU close to 1. Both agree
exactly on pixel boxes ``(S*xmin, S*ymin, S*xmax - 1, S*ymax - 1)`` given to GluonCV for boxes
``(xmin, ymin, xmax, ymax)`` given here (IoU does not change with the scale ``S``); the equality test does that.

Ties. Detections with equal scores keep their arrival order (image order, then their order in the image),
as the VOC devkit's stable sort does; GluonCV's ``argsort()[::-1]`` breaks such ties arbitrarily, so the
equality holds for detections without tied scores.
"""
import mxnet as mx
import numpy as np

from config.errors import UserError
from symbol.multibox import DETECTION, output_key

DETECTION_OUTPUT = output_key(DETECTION)   # 'detection_output': the graph output this metric reads
LABEL_NAME = 'label'                       # the data iterator's label name
VOC07_RECALL_POINTS = np.arange(0., 1.1, 0.1)   # 0, 0.1, ..., 1.0, the exact floats GluonCV compares with
TRUE_POSITIVE, FALSE_POSITIVE, IGNORED = 1, 0, -1   # outcome of one detection


def box_iou(boxes_a, boxes_b):
    """Intersection over union of boxes paired by broadcasting, for normalized coordinates (no +1 on widths).

    Parameters
    ----------
    boxes_a : (..., 4) float
        ``[xmin, ymin, xmax, ymax]``.
    boxes_b : (..., 4) float
        ``[xmin, ymin, xmax, ymax]``, broadcastable against ``boxes_a``: ``(A, 1, 4)`` with ``(N, 4)``
        gives every pair, ``(P, 4)`` with ``(P, 4)`` gives row-aligned pairs.

    Returns
    -------
    (...) float64
        IoU of each pair, shape of the broadcast leading dimensions; 0 where the union is empty.
    """
    ax1, ay1, ax2, ay2 = np.moveaxis(np.asarray(boxes_a, dtype=np.float64), -1, 0)
    bx1, by1, bx2, by2 = np.moveaxis(np.asarray(boxes_b, dtype=np.float64), -1, 0)
    width = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    height = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    intersection = width * height
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def valid_ground_truth(labels):
    """The ground-truth rows of a batch, with padding rows moved to the end and trimmed.

    Parameters
    ----------
    labels : (B, N, >=5) float
        ``[cls, xmin, ymin, xmax, ymax, (difficult)]`` rows, padded with ``cls < 0`` rows anywhere.

    Returns
    -------
    classes : (B, M) int64
        Class of each kept row, -1 for padding; ``M`` is the largest object count of one image.
    boxes : (B, M, 4) float
        ``[xmin, ymin, xmax, ymax]``.
    difficult : (B, M) bool
        True for difficult objects (False when ``labels`` has no sixth column).
    """
    labels = np.asarray(labels)
    valid = labels[..., 0] >= 0
    width = int(valid.sum(axis=1).max(initial=0))
    order = np.argsort(~valid, axis=1, kind='stable')[:, :width]       # (B, M) valid rows first
    rows = np.take_along_axis(labels, order[..., None], axis=1)         # (B, M, columns)
    kept = np.take_along_axis(valid, order, axis=1)
    classes = np.where(kept, rows[..., 0], -1).astype(np.int64)
    difficult = rows[..., 5] > 0 if labels.shape[-1] > 5 else np.zeros(kept.shape, dtype=bool)
    return classes, rows[..., 1:5], difficult & kept


def best_ground_truth(det_image, det_class, det_boxes, gt_classes, gt_boxes, ovp_thresh):
    """For each detection, its best-overlapping ground truth of the same class in the same image.

    Parameters
    ----------
    det_image, det_class : (D,) int64
        Image index in the batch and class of each detection.
    det_boxes : (D, 4) float
    gt_classes : (B, M) int64
        From :func:`valid_ground_truth`, -1 for padding.
    gt_boxes : (B, M, 4) float
    ovp_thresh : float
        Minimum IoU of a match.

    Returns
    -------
    (D,) int64
        Column of the matched ground truth in ``gt_classes``, or -1 when no same-class IoU reaches the
        threshold (the first column wins among equal IoUs).
    """
    same_class = gt_classes[det_image] == det_class[:, None]                   # (D, M)
    det_index, gt_index = np.nonzero(same_class)
    iou = np.full(same_class.shape, -1.0)
    iou[det_index, gt_index] = box_iou(det_boxes[det_index], gt_boxes[det_image[det_index], gt_index])
    best = iou.argmax(axis=1) if iou.shape[1] else np.zeros(len(det_class), dtype=np.int64)
    best[iou.max(axis=1, initial=-1.0) < ovp_thresh] = -1
    return best


def match_batch(labels, detections, ovp_thresh=0.5, use_difficult=False):
    """True/false-positive outcome of every detection of a batch, and the positives per class.

    Parameters
    ----------
    labels : (B, N, >=5) float
        ``[cls, xmin, ymin, xmax, ymax, (difficult)]``, -1 padded.
    detections : (B, A, 6) float
        ``[cls, score, xmin, ymin, xmax, ymax]``; rows with ``cls < 0`` (suppressed or padding) are skipped
        wherever they are.
    ovp_thresh : float
        Minimum IoU for a true positive.
    use_difficult : bool
        Treat difficult objects as ordinary ones.

    Returns
    -------
    classes : (D,) int64
        Class of each valid detection, in image order and by decreasing score within an image.
    scores : (D,) float64
    outcomes : (D,) int8
        ``TRUE_POSITIVE``, ``FALSE_POSITIVE`` or ``IGNORED`` (matched to a difficult object).
    positives : (K,) int64
        Count of (non-difficult) ground truths per class, ``K`` = largest class in ``labels`` + 1.
    """
    gt_classes, gt_boxes, difficult = valid_ground_truth(labels)
    if use_difficult:
        difficult = np.zeros_like(difficult)
    det_image, det_row = np.nonzero(detections[..., 0] >= 0)
    rows = np.asarray(detections)[det_image, det_row].astype(np.float64)         # (D, 6)
    order = np.lexsort((-rows[:, 1], det_image))                                # by image, score descending
    det_image, rows = det_image[order], rows[order]
    det_class = rows[:, 0].astype(np.int64)
    best = best_ground_truth(det_image, det_class, rows[:, 2:6], gt_classes, gt_boxes, ovp_thresh)
    outcomes = np.full(len(best), FALSE_POSITIVE, dtype=np.int8)
    matched = np.nonzero(best >= 0)[0]
    _, first = np.unique(det_image[matched] * gt_classes.shape[1] + best[matched], return_index=True)
    outcomes[matched[first]] = TRUE_POSITIVE                   # the first (highest-scored) claim of each object
    outcomes[matched[difficult[det_image[matched], best[matched]]]] = IGNORED
    counted = (gt_classes >= 0) & ~difficult
    positives = np.bincount(gt_classes[counted], minlength=int(gt_classes.max(initial=-1)) + 1)
    return det_class, rows[:, 1], outcomes, positives


def precision_recall(outcomes, num_positives):
    """Cumulative precision and recall along detections sorted by decreasing score.

    Parameters
    ----------
    outcomes : (D,) int8
        ``TRUE_POSITIVE`` / ``FALSE_POSITIVE`` in score order (no ``IGNORED``).
    num_positives : int
        Ground truths of the class, > 0.

    Returns
    -------
    precision, recall : (D,) float64
    """
    true_positives = np.cumsum(outcomes == TRUE_POSITIVE)
    ranks = np.arange(1, len(outcomes) + 1)
    return true_positives / ranks, true_positives / num_positives


def area_average_precision(precision, recall):
    """Area under the precision-recall curve made monotone from the right (VOC2010+ all-point AP).

    Parameters
    ----------
    precision, recall : (D,) float64
        From :func:`precision_recall`.

    Returns
    -------
    float
    """
    recall = np.concatenate(([0.], recall, [1.]))
    precision = np.concatenate(([0.], precision, [0.]))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def eleven_point_average_precision(precision, recall):
    """Mean over recall thresholds 0, 0.1, ..., 1 of the best precision at that recall or above (VOC2007).

    Parameters
    ----------
    precision, recall : (D,) float64
        From :func:`precision_recall`; ``recall`` is non-decreasing.

    Returns
    -------
    float
    """
    envelope = np.append(np.maximum.accumulate(precision[::-1])[::-1], 0.)    # 0 past the last detection
    first_reaching = np.searchsorted(recall, VOC07_RECALL_POINTS, side='left')
    return float(np.sum(envelope[first_reaching]) / len(VOC07_RECALL_POINTS))


def _as_numpy(array):
    """NDArray or array-like -> numpy array."""
    return array.asnumpy() if isinstance(array, mx.nd.NDArray) else np.asarray(array)


def _pick(arrays, names, wanted, what):
    """The array called ``wanted`` from a list aligned with ``names`` (or the only one / a bare array)."""
    if isinstance(arrays, (mx.nd.NDArray, np.ndarray)):
        return arrays
    if names is not None:
        if wanted not in names:
            raise ValueError('%s %r is not among %s' % (what, wanted, list(names)))
        return arrays[list(names).index(wanted)]
    if len(arrays) != 1:
        raise ValueError('%d %ss given and no names to find %r among them: pass %s_names'
                         % (len(arrays), what, wanted, what))
    return arrays[0]


class MApMetric(mx.metric.EvalMetric):
    """Mean average precision over classes, each AP the area under the interpolated PR curve (VOC2010+).

    Parameters
    ----------
    ovp_thresh : float
        Minimum IoU of a true positive.
    use_difficult : bool
        Count difficult objects as ordinary ones instead of ignoring them.
    class_names : sequence of str, optional
        One name per class id; without it classes are named ``class_<id>`` and their number is the largest
        class id seen + 1.
    pred_name : str
        Name of the detection output, ``(B, A, 6)`` rows ``[cls, score, xmin, ymin, xmax, ymax]``.
    label_name : str
        Name of the label, ``(B, N, 6)`` rows ``[cls, xmin, ymin, xmax, ymax, difficult]``, -1 padded.
    output_names, label_names : list of str, optional
        Names of the lists given to :meth:`update` (e.g. ``symbol.list_outputs()``), so that the detection
        output and the label are found by name in them.
    name : str
        Metric name.
    """

    def __init__(self, ovp_thresh=0.5, use_difficult=False, class_names=None, pred_name=DETECTION_OUTPUT,
                 label_name=LABEL_NAME, output_names=None, label_names=None, name='mAP'):
        self.ovp_thresh = float(ovp_thresh)
        self.use_difficult = bool(use_difficult)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.pred_name = pred_name
        self.label_name = label_name
        super().__init__(name, output_names=output_names, label_names=label_names)

    def reset(self):
        """Forget every detection and ground truth seen."""
        super().reset()
        self._classes, self._scores, self._outcomes = [], [], []
        self._positives = np.zeros(0, dtype=np.int64)

    def update_dict(self, label, pred):
        """Update from name -> array dicts, as ``Module.update_metric`` calls it."""
        for wanted, arrays, what in ((self.label_name, label, 'label'), (self.pred_name, pred, 'output')):
            if wanted not in arrays:
                raise ValueError('%s %r is not among %s' % (what, wanted, list(arrays)))
        self.update_arrays(_as_numpy(label[self.label_name]), _as_numpy(pred[self.pred_name]))

    def update(self, labels, preds):
        """Update from lists of arrays aligned with ``label_names`` / ``output_names`` (or single arrays).

        Parameters
        ----------
        labels : list of NDArray
            Holds the ``(B, N, 6)`` label.
        preds : list of NDArray
            Holds the ``(B, A, 6)`` detection output.
        """
        label = _pick(labels, self.label_names, self.label_name, 'label')
        detection = _pick(preds, self.output_names, self.pred_name, 'output')
        self.update_arrays(_as_numpy(label), _as_numpy(detection))

    def update_arrays(self, labels, detections):
        """Add one batch.

        Parameters
        ----------
        labels : (B, N, >=5) array
            ``[cls, xmin, ymin, xmax, ymax, (difficult)]``, -1 padded, normalized coordinates.
        detections : (B, A, 6) array
            ``[cls, score, xmin, ymin, xmax, ymax]``, rows with ``cls < 0`` skipped.
        """
        labels, detections = np.asarray(labels), np.asarray(detections)
        self._check_shapes(labels, detections)
        classes, scores, outcomes, positives = match_batch(labels, detections, self.ovp_thresh,
                                                           self.use_difficult)
        self._check_class_ids(max(len(positives) - 1, classes.max(initial=-1)))
        self._classes.append(classes)
        self._scores.append(scores)
        self._outcomes.append(outcomes)
        if len(positives) > len(self._positives):
            self._positives = np.pad(self._positives, (0, len(positives) - len(self._positives)))
        self._positives[:len(positives)] += positives

    def get(self):
        """Per-class AP and their mean.

        Returns
        -------
        names : list of str
            The class names, then ``'mAP'``.
        values : list of float
            AP per class (NaN for a class without non-difficult ground truth), then the mean of the others
            (NaN when no class has ground truth).
        """
        aps = self.average_precisions()
        names = self.class_names or ['class_%d' % c for c in range(len(aps))]
        known = aps[~np.isnan(aps)]
        mean = float(known.mean()) if len(known) else float('nan')
        return names + ['mAP'], [float(ap) for ap in aps] + [mean]

    def ranked_detections(self):
        """Per class, what the metric matched since its reset, by decreasing score (ties in arrival order);
        detections matched to difficult objects (``IGNORED``) left out, as the AP leaves them out.

        Returns
        -------
        list of (scores (D,) float64, outcomes (D,) int8, positives int)
            One per class (``class_names``, else every class seen); ``outcomes`` TRUE_POSITIVE /
            FALSE_POSITIVE; ``positives`` the class's non-difficult ground-truth boxes.
        """
        classes, scores, outcomes = (np.concatenate(parts) if parts else np.zeros(0)
                                     for parts in (self._classes, self._scores, self._outcomes))
        counted = outcomes != IGNORED
        classes, scores, outcomes = classes[counted], scores[counted], outcomes[counted]
        num_classes = len(self.class_names) if self.class_names else \
            int(max(len(self._positives), classes.max(initial=-1) + 1))
        order = np.lexsort((-scores, classes))                   # by class, then score descending (stable)
        bounds = np.searchsorted(classes[order], np.arange(num_classes + 1))
        positives = np.pad(self._positives, (0, max(num_classes - len(self._positives), 0)))
        return [(scores[order[bounds[cls]:bounds[cls + 1]]].astype(np.float64),
                 outcomes[order[bounds[cls]:bounds[cls + 1]]].astype(np.int8), int(positives[cls]))
                for cls in range(num_classes)]

    def average_precisions(self):
        """AP of every class, ``(num_classes,)`` float64, NaN for classes without ground truth."""
        ranked = self.ranked_detections()
        aps = np.full(len(ranked), np.nan)
        for cls, (_, outcomes, positives) in enumerate(ranked):
            if positives > 0:
                aps[cls] = self._average_precision(*precision_recall(outcomes, positives))
        return aps

    def _average_precision(self, precision, recall):
        return area_average_precision(precision, recall)

    def _check_shapes(self, labels, detections):
        if labels.ndim != 3 or labels.shape[-1] < 5:
            raise ValueError('labels must be (B, N, 6) [cls, xmin, ymin, xmax, ymax, difficult], got shape %s'
                             % (labels.shape,))
        if detections.ndim != 3 or detections.shape[-1] != 6:
            raise ValueError('detections must be (B, A, 6) [cls, score, xmin, ymin, xmax, ymax], got shape %s'
                             % (detections.shape,))
        if labels.shape[0] != detections.shape[0]:
            raise ValueError('%d label rows for %d detection rows' % (labels.shape[0], detections.shape[0]))

    def _check_class_ids(self, largest):
        if self.class_names is not None and largest >= len(self.class_names):
            raise UserError('class id %d in the labels or detections, but only %d class names (%s...): the '
                            'data was packed with more classes than the network has; check --num-class and '
                            'the .classes file' % (largest, len(self.class_names),
                                                   ', '.join(self.class_names[:3])))


class VOC07MApMetric(MApMetric):
    """Mean average precision with the PASCAL VOC2007 11-point AP (recall 0, 0.1, ..., 1).

    Takes the parameters of :class:`MApMetric`.
    """

    def _average_precision(self, precision, recall):
        return eleven_point_average_precision(precision, recall)
