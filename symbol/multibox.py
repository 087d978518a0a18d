"""Anchors, target encoding, detection decoding and the graph's output names: every setting lives here once.

The box coding is the SSD one: a ground-truth box ``(xmin, ymin, xmax, ymax)`` matched to an anchor with
centre ``(ax, ay)`` and size ``(aw, ah)`` is encoded as::

    ((gx - ax) / aw / v0, (gy - ay) / ah / v1, log(gw / aw) / v2, log(gh / ah) / v3)

with ``(v0, v1, v2, v3) = VARIANCES``. ``MultiBoxTarget`` encodes and ``MultiBoxDetection`` decodes with
the same :data:`VARIANCES`, so the two can never disagree.

Coordinates are normalized to [0, 1] of the network input everywhere.
"""
import mxnet as mx

VARIANCES = (0.1, 0.1, 0.2, 0.2)     # box-regression scale for centre x, centre y, width, height
OVERLAP_THRESHOLD = 0.5               # anchor-to-ground-truth IoU from which an anchor is a positive
NEGATIVE_MINING_RATIO = 3             # hard negatives kept per positive anchor
NEGATIVE_MINING_THRESHOLD = 0.5       # anchors overlapping a ground truth above this are never negatives
MINIMUM_NEGATIVE_SAMPLES = 0          # hard negatives kept even for an image without objects
IGNORE_LABEL = -1                     # class target of anchors that are neither positive nor mined negative
BACKGROUND_ID = 0                     # class index of background in the softmax; objects are 1 + class id
DETECTION_THRESHOLD = 0.01            # class probability below which an anchor yields no detection
CLIP_ANCHORS = False                  # anchors may extend past the image border, as in the SSD paper
CLIP_DETECTIONS = True                # decoded boxes are clipped to [0, 1]
NMS = dict(
    nms_thresh=0.45,                  # IoU above which the lower-scored of two detections is suppressed
    force_suppress=False,             # True: suppress across classes too, not only within one class
    nms_topk=400,                     # detections kept per image before NMS (by score); -1 keeps all
)

# Output names of the graphs, read by name downstream. MXNet appends '_output' to each symbol name in
# ``symbol.list_outputs()``; use :func:`output_key` / :func:`output_positions` rather than positions.
CLS_PROB = 'cls_prob'                 # (B, 1 + num_classes, num_anchors) softmax class probabilities
LOC_LOSS = 'loc_loss'                 # (B, num_anchors * 4) smooth-L1 localization loss per coordinate
CLS_LABEL = 'cls_label'               # (B, num_anchors) class target per anchor: 0 background, -1 ignored
DETECTION = 'detection'               # (B, num_anchors, 6) [cls, score, xmin, ymin, xmax, ymax], -1 rows
LOC_PREDS = 'loc_preds'               # (B, A * 4) box offsets of the body graph deploy.py --onnx exports
ANCHORS = 'anchors'                   # (1, A, 4) anchors [xmin, ymin, xmax, ymax] of that body graph
TRAIN_OUTPUTS = (CLS_PROB, LOC_LOSS, CLS_LABEL, DETECTION)   # outputs of the train graph, in order
DEPLOY_OUTPUTS = (DETECTION,)                                # outputs of the deploy graph


def output_key(name):
    """The name MXNet lists for the output of symbol ``name``: ``'cls_prob'`` -> ``'cls_prob_output'``."""
    return name + '_output'


def output_positions(symbol):
    """Map each output name of a graph (without ``_output``) to its position in the outputs list.

    Parameters
    ----------
    symbol : mx.sym.Symbol
        A graph built by :mod:`symbol.symbol_builder`.

    Returns
    -------
    dict
        e.g. ``{'cls_prob': 0, 'loc_loss': 1, 'cls_label': 2, 'detection': 3}`` for the train graph.
    """
    suffix = output_key('')
    return {name[:-len(suffix)] if name.endswith(suffix) else name: position
            for position, name in enumerate(symbol.list_outputs())}


def num_anchors_per_position(sizes, ratios):
    """Anchors MultiBoxPrior places at each feature-map position: every size at ratio 1, plus the first
    size at every other ratio."""
    return len(sizes) + len(ratios) - 1


def anchors(feature, sizes, ratios, step=None, name=None):
    """Anchor boxes centred on every position of a feature map.

    Parameters
    ----------
    feature : mx.sym.Symbol
        (B, C, h, w) feature map.
    sizes : sequence of float
        Anchor sides as fractions of the input side.
    ratios : sequence of float
        Width / height aspect ratios.
    step : float, optional
        Distance between anchor centres as a fraction of the input side; None: ``1 / h`` and ``1 / w``.
    name : str, optional
        Symbol name.

    Returns
    -------
    mx.sym.Symbol
        (1, h * w * num_anchors_per_position, 4) anchors ``[xmin, ymin, xmax, ymax]``, normalized.
    """
    steps = (-1.0, -1.0) if step is None else (float(step), float(step))
    return mx.sym.contrib.MultiBoxPrior(feature, sizes=tuple(sizes), ratios=tuple(ratios), clip=CLIP_ANCHORS,
                                        steps=steps, name=name)


def targets(anchor_boxes, labels, cls_preds, overlap_threshold=OVERLAP_THRESHOLD, name='multibox_target'):
    """Training targets for every anchor: matched box offsets, their mask, and class targets.

    Parameters
    ----------
    anchor_boxes : mx.sym.Symbol
        (1, A, 4) anchors.
    labels : mx.sym.Symbol
        (B, N, 6) ``[cls, xmin, ymin, xmax, ymax, difficult]``, -1 padded.
    cls_preds : mx.sym.Symbol
        (B, 1 + num_classes, A) class scores, used to pick hard negatives.
    overlap_threshold : float
        IoU with a ground-truth box from which an anchor is a positive (each box also keeps its best anchor).
    name : str
        Symbol name.

    Returns
    -------
    tuple of mx.sym.Symbol
        ``loc_target`` (B, A * 4) encoded offsets, ``loc_mask`` (B, A * 4) 1 where the anchor is positive,
        ``cls_target`` (B, A): 0 background, 1 + class for positives, ``IGNORE_LABEL`` otherwise.
    """
    result = mx.sym.contrib.MultiBoxTarget(
        anchor_boxes, labels, cls_preds, overlap_threshold=overlap_threshold, ignore_label=IGNORE_LABEL,
        negative_mining_ratio=NEGATIVE_MINING_RATIO, negative_mining_thresh=NEGATIVE_MINING_THRESHOLD,
        minimum_negative_samples=MINIMUM_NEGATIVE_SAMPLES, variances=VARIANCES, name=name)
    return result[0], result[1], result[2]


def detections(cls_prob, loc_preds, anchor_boxes, nms_thresh=NMS['nms_thresh'],
               force_suppress=NMS['force_suppress'], nms_topk=NMS['nms_topk'], name=DETECTION):
    """Decode box offsets against the anchors and apply non-maximum suppression.

    Parameters
    ----------
    cls_prob : mx.sym.Symbol
        (B, 1 + num_classes, A) class probabilities, background first.
    loc_preds : mx.sym.Symbol
        (B, A * 4) predicted offsets, encoded as :func:`targets` encodes them.
    anchor_boxes : mx.sym.Symbol
        (1, A, 4) anchors.
    nms_thresh, force_suppress, nms_topk :
        See :data:`NMS`.
    name : str
        Symbol name.

    Returns
    -------
    mx.sym.Symbol
        (B, A, 6) rows ``[cls, score, xmin, ymin, xmax, ymax]``, sorted by score; ``cls`` is the 0-based
        object class, or -1 for a suppressed row (which keeps its place) and for the rows after the last
        anchor whose best object score reaches ``DETECTION_THRESHOLD``.
    """
    return mx.sym.contrib.MultiBoxDetection(
        cls_prob, loc_preds, anchor_boxes, clip=CLIP_DETECTIONS, threshold=DETECTION_THRESHOLD,
        background_id=BACKGROUND_ID, nms_threshold=nms_thresh, force_suppress=force_suppress,
        variances=VARIANCES, nms_topk=nms_topk, name=name)
