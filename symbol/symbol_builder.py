"""The SSD graphs: one shared body, a training head and a deploy head.

Body: backbone feature layers -> extra layers -> optional L2 normalization -> per-layer 3x3 loc/cls heads
-> MultiBoxPrior anchors -> concatenation. :func:`get_symbol_train` and :func:`get_symbol` build the same
body (same parameter names, so trained parameters load into the deploy graph) and differ only in their
heads. Settings come as plain keyword arguments; :mod:`symbol.symbol_factory` holds them per network.
"""
import importlib
from collections import OrderedDict

import mxnet as mx

from symbol import common, multibox


def backbone_module(backbone):
    """The module ``symbol.<backbone>``, which exposes ``feature_layers(data, **kwargs)``."""
    return importlib.import_module('symbol.' + backbone)


def feature_maps(data, backbone, backbone_kwargs, from_layers, extra_filters, extra_strides, extra_pads,
                 extra_min_1x1=0):
    """The feature layers that carry heads: the named backbone layers, then the extra layers.

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, 3, S, S) images.
    backbone : str
        Module name in :mod:`symbol` (``'vgg16_reduced'``, ``'mobilenet'``, ...).
    backbone_kwargs : dict
        Keyword arguments of its ``feature_layers``.
    from_layers : sequence of str
        Backbone layer names, in order; the extra layers grow from the last one.
    extra_filters, extra_strides, extra_pads : sequence of int
        Filters, stride and padding of each extra layer's 3x3 convolution.
    extra_min_1x1 : int
        Fewest filters of an extra layer's 1x1 convolution (otherwise half its 3x3 filters).

    Returns
    -------
    collections.OrderedDict
        name -> (B, C_k, h_k, w_k) symbol.
    """
    available = backbone_module(backbone).feature_layers(data, **backbone_kwargs)
    features = OrderedDict((name, available[name]) for name in from_layers)
    features.update(common.extra_layers(features[from_layers[-1]], extra_filters, extra_strides, extra_pads,
                                        first_position=len(from_layers), min_1x1_filters=extra_min_1x1))
    return features


def ssd_body(num_classes, data_shape, sizes, ratios, normalizations, steps, **feature_settings):
    """Build the body on a ``data`` variable: box offsets, class scores and anchors of every anchor.

    Parameters
    ----------
    num_classes : int
        Object classes, background excluded.
    data_shape : int
        Input side S in pixels.
    sizes, ratios, normalizations, steps :
        Per feature layer; see :func:`symbol.common.multibox_layers`.
    **feature_settings :
        ``backbone``, ``backbone_kwargs``, ``from_layers``, ``extra_filters``, ``extra_strides``,
        ``extra_pads``, ``extra_min_1x1``; see :func:`feature_maps`.

    Returns
    -------
    tuple of mx.sym.Symbol
        loc_preds (B, A * 4), cls_preds (B, 1 + num_classes, A), anchors (1, A, 4).
    """
    features = feature_maps(mx.sym.Variable('data'), **feature_settings)
    return common.multibox_layers(features, num_classes, sizes, ratios, normalizations, steps, data_shape)


def get_symbol_train(num_classes, nms_thresh=multibox.NMS['nms_thresh'],
                     force_suppress=multibox.NMS['force_suppress'], nms_topk=multibox.NMS['nms_topk'],
                     overlap_threshold=multibox.OVERLAP_THRESHOLD, **body_settings):
    """The training graph: inputs ``data`` (B, 3, S, S) and ``label`` (B, N, 6), -1 padded.

    Parameters
    ----------
    num_classes : int
        Object classes, background excluded.
    nms_thresh, force_suppress, nms_topk :
        Non-maximum suppression of the detection output; see :data:`symbol.multibox.NMS`.
    overlap_threshold : float
        IoU from which an anchor is trained as a positive; see :func:`symbol.multibox.targets`.
    **body_settings :
        ``data_shape`` and the network settings of :func:`ssd_body`.

    Returns
    -------
    mx.sym.Symbol
        Group of outputs named as in :data:`symbol.multibox.TRAIN_OUTPUTS`:
        ``cls_prob`` (B, 1 + num_classes, A) softmax, loss over positives and mined negatives;
        ``loc_loss`` (B, A * 4) smooth-L1 of the positives' offsets;
        ``cls_label`` (B, A) class targets, no gradient;
        ``detection`` (B, A, 6) decoded detections after NMS, no gradient.
    """
    loc_preds, cls_preds, anchor_boxes = ssd_body(num_classes, **body_settings)
    loc_target, loc_mask, cls_target = multibox.targets(anchor_boxes, mx.sym.Variable('label'), cls_preds,
                                                             overlap_threshold)
    cls_prob = mx.sym.SoftmaxOutput(cls_preds, cls_target, ignore_label=multibox.IGNORE_LABEL, use_ignore=True,
                                    multi_output=True, normalization='valid', name=multibox.CLS_PROB)
    masked_error = loc_mask * (loc_preds - loc_target)
    loc_loss = mx.sym.MakeLoss(mx.sym.smooth_l1(masked_error, scalar=1.0, name='loc_smooth_l1'),
                               normalization='valid', name=multibox.LOC_LOSS)
    cls_label = mx.sym.BlockGrad(cls_target, name=multibox.CLS_LABEL)
    detection = multibox.detections(cls_prob, loc_preds, anchor_boxes, nms_thresh, force_suppress, nms_topk,
                                    name='detection_raw')
    detection = mx.sym.BlockGrad(detection, name=multibox.DETECTION)
    return mx.sym.Group([cls_prob, loc_loss, cls_label, detection])


def get_symbol(num_classes, nms_thresh=multibox.NMS['nms_thresh'], force_suppress=multibox.NMS['force_suppress'],
               nms_topk=multibox.NMS['nms_topk'], **body_settings):
    """The deploy graph: input ``data`` (B, 3, S, S), one output ``detection``.

    Parameters are those of :func:`get_symbol_train`.

    Returns
    -------
    mx.sym.Symbol
        ``detection`` (B, A, 6) rows ``[cls, score, xmin, ymin, xmax, ymax]`` sorted by score, cls -1 for
        suppressed rows; see :func:`symbol.multibox.detections`.
    """
    loc_preds, cls_preds, anchor_boxes = ssd_body(num_classes, **body_settings)
    cls_prob = mx.sym.softmax(cls_preds, axis=1, name=multibox.CLS_PROB)
    return multibox.detections(cls_prob, loc_preds, anchor_boxes, nms_thresh, force_suppress, nms_topk,
                               name=multibox.DETECTION)
