"""Building blocks of the SSD body (extra feature layers, L2 normalization, the multibox heads) and of the
backbones (convolution + BatchNorm set up as gluon's, gluon parameter-name maps, width checks).

Parameter names follow MXNet's SSD example (``example/ssd/symbol/common.py``), so checkpoints move between
the two unchanged. ``<layer>`` is a feature layer's name: a backbone layer such as ``relu4_3``, or
``multi_feat_<k>_conv_3x3_relu`` for an extra layer, ``k`` its 0-based position among all feature layers
(the first extra layer of vgg16_reduced, after ``relu4_3`` and ``relu7``, is ``multi_feat_2``)::

    multi_feat_{k}_conv_1x1_conv_weight/_bias              extra layer k, 1x1 convolution
    multi_feat_{k}_conv_3x3_conv_weight/_bias              extra layer k, 3x3 convolution
    <layer>_scale                 (1, C, 1, 1) learnable L2-normalization scale
    <layer>_loc_pred_conv_weight/_bias                     box-offset head, 4 outputs per anchor
    <layer>_cls_pred_conv_weight/_bias                     class head, 1 + num_classes outputs per anchor

Only the class heads depend on the number of classes (see :func:`is_class_head_param`).
"""
import collections
import json
import re

import mxnet as mx

from config.errors import UserError
from symbol import multibox

LOC_HEAD = '_loc_pred_conv'          # suffix of the box-offset head convolutions
CLS_HEAD = '_cls_pred_conv'          # suffix of the class head convolutions
SCALE_WD_MULT = 0.1                  # weight-decay multiplier of the L2-normalization scales


def graph_nodes(symbol):
    """The nodes of ``symbol``'s JSON graph: dicts with ``op``, ``name``, ``inputs`` and maybe ``attrs``."""
    return json.loads(symbol.tojson())['nodes']


def param_shapes(symbol, **input_shapes):
    """``{name: shape}`` of every parameter and auxiliary state of ``symbol`` for the given input shapes.

    Parameters
    ----------
    symbol : mx.sym.Symbol
    **input_shapes : tuple
        Shapes of the inputs, e.g. ``data=(1, 3, 300, 300)``; they are left out of the result.

    Returns
    -------
    dict of str -> tuple
    """
    arg_shapes, _, aux_shapes = symbol.infer_shape(**input_shapes)
    shapes = {name: shape for name, shape in zip(symbol.list_arguments(), arg_shapes) if name not in input_shapes}
    shapes.update(zip(symbol.list_auxiliary_states(), aux_shapes))
    return shapes


# --- backbone building blocks shared by resnet, mobilenet and mobilenetv2 ----------------------------------
BN_EPS = 1e-5  # gluon nn.BatchNorm's default; mx.sym.BatchNorm's own default (1e-3) would not match
BN_MOMENTUM = 0.9
# our BatchNorm parameter suffix -> gluon's
BN_SUFFIXES = (('gamma', 'gamma'), ('beta', 'beta'),
               ('moving_mean', 'running_mean'), ('moving_var', 'running_var'))


def conv_bn(data, conv_name, bn_name, num_filter, kernel, stride=1, pad=0, num_group=1, no_bias=True,
            use_global_stats=False):
    """Convolution followed by BatchNorm, both set up as gluon's ``nn.Conv2D`` / ``nn.BatchNorm`` defaults.

    Parameters
    ----------
    data : mx.sym.Symbol
        Input, (B, Cin, H, W).
    conv_name, bn_name : str
        Layer names; parameters become ``<conv_name>_weight`` (+ ``_bias``) and ``<bn_name>_gamma`` etc.
    num_filter, kernel, stride, pad, num_group : int
        Square kernel, stride and padding; ``num_group`` > 1 for depthwise convolutions.
    no_bias : bool
        Whether the convolution omits its bias.
    use_global_stats : bool
        Normalize with the moving statistics even in training (frozen BatchNorm).

    Returns
    -------
    mx.sym.Symbol
        (B, num_filter, H', W'), not activated.
    """
    conv = mx.sym.Convolution(data, name=conv_name, num_filter=num_filter, kernel=(kernel, kernel),
                              stride=(stride, stride), pad=(pad, pad), num_group=num_group, no_bias=no_bias)
    return mx.sym.BatchNorm(conv, name=bn_name, fix_gamma=False, eps=BN_EPS, momentum=BN_MOMENTUM,
                            use_global_stats=use_global_stats)


def gluon_layer_names(layers, scope):
    """Map our parameter names onto gluon's for layers that gluon numbers by a counter in creation order.

    Parameters
    ----------
    layers : list of (str, str, bool)
        ``(kind, our_layer_name, has_bias)`` in gluon's creation order; ``kind`` is ``'conv'`` or ``'bn'``.
    scope : str
        Gluon's name scope of these layers without the network prefix, e.g. ``'stage2_'`` or ``''``.

    Returns
    -------
    dict
        ``{our_parameter_name: gluon_parameter_name}``, e.g. ``'stem_bn_moving_var' -> 'batchnorm0_running_var'``.
    """
    counters = collections.Counter()
    names = {}
    for kind, ours, has_bias in layers:
        theirs = '%s%s%d' % (scope, 'conv' if kind == 'conv' else 'batchnorm', counters[kind])
        counters[kind] += 1
        if kind == 'conv':
            suffixes = (('weight', 'weight'),) + ((('bias', 'bias'),) if has_bias else ())
        else:
            suffixes = BN_SUFFIXES
        for our_suffix, their_suffix in suffixes:
            names['%s_%s' % (ours, our_suffix)] = '%s_%s' % (theirs, their_suffix)
    return names


def check_multiplier(multiplier, network, multipliers):
    """Raise :class:`UserError` unless ``multiplier`` is one of ``multipliers`` (the widths of ``network``)."""
    if multiplier not in multipliers:
        raise UserError('%s width multiplier %r is not available; choose one of %s'
                        % (network, multiplier, ', '.join(str(width) for width in multipliers)))


def is_class_head_param(param_name):
    """True for parameters whose shape depends on the number of classes (the class heads)."""
    return CLS_HEAD + '_' in param_name


def is_prediction_head_param(param_name):
    """True for the box-offset and class head parameters."""
    return CLS_HEAD + '_' in param_name or LOC_HEAD + '_' in param_name


def conv_relu(data, name, num_filter, kernel, stride=1, pad=0):
    """Convolution ``name + '_conv'`` (with bias), then ReLU ``name + '_relu'``; returns (B, F, h', w')."""
    conv = mx.sym.Convolution(data, kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad),
                              num_filter=num_filter, name=name + '_conv')
    return mx.sym.Activation(conv, act_type='relu', name=name + '_relu')


def extra_layer_name(position):
    """The name of the extra feature layer at 0-based ``position`` among all feature layers."""
    return 'multi_feat_%d_conv_3x3_relu' % position


def extra_layers(body, num_filters, strides, pads, first_position, min_1x1_filters=0):
    """Feature layers added after the backbone: each a 1x1 convolution to half the filters, then a 3x3.

    Parameters
    ----------
    body : mx.sym.Symbol
        (B, C, h, w) the backbone's last feature layer.
    num_filters, strides, pads : sequence of int
        Output filters, stride and padding of each extra layer's 3x3 convolution.
    first_position : int
        0-based position of the first extra layer among all feature layers (the number of backbone
        feature layers); it numbers the layer names as MXNet's SSD example does.
    min_1x1_filters : int
        Lower bound of the 1x1 convolution's filters: ``max(min_1x1_filters, F // 2)`` (the example uses 128).

    Returns
    -------
    collections.OrderedDict
        ``'multi_feat_<k>_conv_3x3_relu'`` -> (B, F_k, h_k, w_k) symbols, each computed from the previous one.
    """
    layers = collections.OrderedDict()
    for position, (num_filter, stride, pad) in enumerate(zip(num_filters, strides, pads), start=first_position):
        prefix = 'multi_feat_%d_conv' % position
        squeezed = conv_relu(body, prefix + '_1x1', max(min_1x1_filters, num_filter // 2), kernel=1)
        body = conv_relu(squeezed, prefix + '_3x3', num_filter, kernel=3, stride=stride, pad=pad)
        layers[extra_layer_name(position)] = body
    return layers


# The project's names of the extra layers before they followed the example (2026-11): extra layer n, 1-based.
LEGACY_EXTRA_NAME = re.compile(r'^extra(\d+)_(1x1|3x3|loc_pred_conv|cls_pred_conv)_(weight|bias)$')


def rename_legacy_extra_layers(names):
    """New names for parameters of the project's earlier ``extra<n>_*`` naming; ``{}`` when there are none.

    Extra layer ``n`` (1-based) of a network with ``F`` backbone feature layers is at position ``F + n - 1``;
    ``F`` is the number of backbone layers carrying class heads (``<layer>_cls_pred_conv_weight``).

    Parameters
    ----------
    names : collection of str
        Parameter names of a checkpoint.

    Returns
    -------
    dict
        ``{old_name: new_name}``, e.g. ``'extra1_1x1_weight' -> 'multi_feat_2_conv_1x1_conv_weight'`` after two
        backbone layers, ``'extra1_cls_pred_conv_bias' -> 'multi_feat_2_conv_3x3_relu_cls_pred_conv_bias'``.
    """
    legacy = {name: LEGACY_EXTRA_NAME.match(name) for name in names}
    legacy = {name: match for name, match in legacy.items() if match}
    if not legacy or any(name.startswith('multi_feat_') for name in names):
        return {}
    head_weight = CLS_HEAD + '_weight'
    backbone_layers = sum(1 for name in names if name.endswith(head_weight) and name not in legacy)
    renamed = {}
    for name, match in legacy.items():
        number, part, kind = int(match.group(1)), match.group(2), match.group(3)
        position = backbone_layers + number - 1
        if part in ('1x1', '3x3'):
            renamed[name] = 'multi_feat_%d_conv_%s_conv_%s' % (position, part, kind)
        else:
            renamed[name] = '%s_%s_%s' % (extra_layer_name(position), part, kind)
    return renamed


def l2_normalize(feature, name, num_channels, scale):
    """Normalize each position's channel vector to unit length, then multiply by a learnable scale.

    Parameters
    ----------
    feature : mx.sym.Symbol
        (B, C, h, w) feature map.
    name : str
        The layer's name; the scale parameter is ``name + '_scale'``.
    num_channels : int
        C.
    scale : float
        Initial value of every channel's scale (20 in the SSD paper).

    Returns
    -------
    mx.sym.Symbol
        (B, C, h, w).
    """
    normalized = mx.sym.L2Normalization(feature, mode='channel', name=name + '_norm')
    weight = mx.sym.Variable(name + '_scale', shape=(1, num_channels, 1, 1), init=mx.init.Constant(scale),
                             attr={'__wd_mult__': str(SCALE_WD_MULT)})
    return mx.sym.broadcast_mul(weight, normalized, name=name + '_scaled')


def channels_of(layers, data_shape):
    """Channel count of each feature layer for a (1, 3, data_shape, data_shape) input.

    Returns
    -------
    list of int
        One per layer, in order.
    """
    channels = []
    for layer in layers.values():
        _, out_shapes, _ = layer.infer_shape(data=(1, 3, data_shape, data_shape))
        channels.append(out_shapes[0][1])
    return channels


def flatten_positions(prediction):
    """(B, K, h, w) -> (B, h * w * K): per position, its K values, in the anchors' order."""
    return mx.sym.flatten(mx.sym.transpose(prediction, axes=(0, 2, 3, 1)))


def prediction_heads(feature, name, num_anchors, num_classes):
    """3x3 convolutions predicting box offsets and class scores for each anchor of a feature map.

    Parameters
    ----------
    feature : mx.sym.Symbol
        (B, C, h, w).
    name : str
        The layer's name, prefix of the head parameters.
    num_anchors : int
        a, anchors per position.
    num_classes : int
        Object classes, background excluded.

    Returns
    -------
    tuple of mx.sym.Symbol
        loc (B, h * w * a * 4) and cls (B, h * w * a * (1 + num_classes)).
    """
    loc = mx.sym.Convolution(feature, kernel=(3, 3), pad=(1, 1), num_filter=num_anchors * 4,
                             name=name + LOC_HEAD)
    cls = mx.sym.Convolution(feature, kernel=(3, 3), pad=(1, 1), num_filter=num_anchors * (num_classes + 1),
                             name=name + CLS_HEAD)
    return flatten_positions(loc), flatten_positions(cls)


def multibox_layers(features, num_classes, sizes, ratios, normalizations, steps, data_shape):
    """Heads and anchors on every feature layer, concatenated over layers.

    Parameters
    ----------
    features : collections.OrderedDict
        name -> (B, C_k, h_k, w_k) feature maps, in order.
    num_classes : int
        Object classes, background excluded.
    sizes, ratios : sequence of sequence of float
        Per layer, anchor sizes (fractions of the input side) and aspect ratios.
    normalizations : sequence of float or None
        Per layer, the initial L2-normalization scale; None or a value <= 0: not normalized.
    steps : sequence of float or None
        Per layer, the anchor-centre spacing in pixels; None (the whole or one entry): 1 / feature side.
    data_shape : int
        Input side in pixels.

    Returns
    -------
    tuple of mx.sym.Symbol
        loc_preds (B, A * 4), cls_preds (B, 1 + num_classes, A), anchors (1, A, 4).
    """
    steps = steps or [None] * len(features)
    channels = channels_of(features, data_shape)
    locs, clss, anchor_boxes = [], [], []
    for index, (name, feature) in enumerate(features.items()):
        scale = normalizations[index]
        if scale is not None and scale > 0:
            feature = l2_normalize(feature, name, channels[index], scale)
        count = multibox.num_anchors_per_position(sizes[index], ratios[index])
        loc, cls = prediction_heads(feature, name, count, num_classes)
        locs.append(loc)
        clss.append(cls)
        step = None if steps[index] is None else steps[index] / float(data_shape)
        anchor_boxes.append(mx.sym.flatten(multibox.anchors(feature, sizes[index], ratios[index], step,
                                                            name=name + '_anchors')))
    loc_preds = mx.sym.concat(*locs, dim=1, name='multibox_loc_pred')
    cls_preds = mx.sym.transpose(mx.sym.reshape(mx.sym.concat(*clss, dim=1), shape=(0, -1, num_classes + 1)),
                                 axes=(0, 2, 1), name='multibox_cls_pred')
    anchor_boxes = mx.sym.reshape(mx.sym.concat(*anchor_boxes, dim=1), shape=(0, -1, 4),
                                  name='multibox_anchors')
    return loc_preds, cls_preds, anchor_boxes
