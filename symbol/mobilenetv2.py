"""MobileNetV2 feature layers with a width multiplier, laid out as gluoncv's ``mobilenetv2_<multiplier>``.

The graph mirrors ``gluoncv.model_zoo.MobileNetV2`` (gluoncv/model_zoo/mobilenet.py), so its ImageNet
weights load one-to-one through :func:`gluoncv_name_map`:

- stem: 3x3/2 conv (32m channels) -> BN -> ReLU6;
- 17 inverted-residual blocks (``block0`` .. ``block16``): 1x1 expand conv (Cin * t) -> BN -> ReLU6 (absent
  when t = 1, i.e. in block0) -> 3x3 depthwise conv carrying the stride -> BN -> ReLU6 -> 1x1 project conv
  (Cout) -> BN, linear; the input is added back when the stride is 1 and Cin == Cout;
- head: 1x1 conv to 1280 channels (1280m when m > 1) -> BN -> ReLU6.

Channels are ``int(c * multiplier)`` of 32 (stem), 16, 24, 24, 32 x3, 64 x4, 96 x3, 160 x3, 320 (blocks);
expansion t = 6 except block0; strides 2 (stem) and 2 in blocks 1, 3, 6, 13. Convolutions have no bias;
BatchNorm uses ``eps=1e-5``, ``momentum=0.9`` and a learnable gamma, as gluon's ``nn.BatchNorm``. The ImageNet
weights expect RGB input normalized with mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375).

Exposed layers (keys of :func:`feature_layers`, in order)
---------------------------------------------------------
==============  ======  ===============  ===========================================================
key             stride  channels (m=1)   symbol name (``_output``)
==============  ======  ===============  ===========================================================
block2          4       24               ``block2_add``
block5          8       32               ``block5_add``
block12         16      96               ``block12_add``
block13_expand  16      576              ``block13_expand_relu`` (SSDLite's first detection layer)
block16         32      320              ``block16_project_bn``
head            32      1280             ``head_relu``
==============  ======  ===============  ===========================================================

Parameter names (stable; checkpoints and pretrained loading rely on them)
-------------------------------------------------------------------------
BN layers own ``_gamma``, ``_beta`` (arguments) and ``_moving_mean``, ``_moving_var`` (auxiliary states),
which are gluon's ``_running_mean`` / ``_running_var``. ``i`` is the block (0..16).

==========================  ==================  ==============================================================
ours                        shape               gluoncv ``mobilenetv2_1.0`` (prefix removed)
==========================  ==================  ==============================================================
stem_conv_weight            (32m, 3, 3, 3)      features_conv0_weight
stem_bn_*                   (32m,)              features_batchnorm0_*
blocki_expand_conv_weight   (Cin*6, Cin, 1, 1)  features_linearbottlenecki_conv0_weight
blocki_expand_bn_*          (Cin*6,)            features_linearbottlenecki_batchnorm0_*
blocki_dwise_conv_weight    (E, 1, 3, 3)        features_linearbottlenecki_conv1_weight (conv0 in block0)
blocki_dwise_bn_*           (E,)                features_linearbottlenecki_batchnorm1_* (batchnorm0 in block0)
blocki_project_conv_weight  (Cout, E, 1, 1)     features_linearbottlenecki_conv2_weight (conv1 in block0)
blocki_project_bn_*         (Cout,)             features_linearbottlenecki_batchnorm2_* (batchnorm1 in block0)
head_conv_weight            (1280, 320m, 1, 1)  features_conv1_weight
head_bn_*                   (1280,)             features_batchnorm1_*
==========================  ==================  ==============================================================

``E`` is the block's expanded width (Cin * t). :func:`gluoncv_name_map` spells the whole map out; gluoncv's
``output_pred`` classifier is not part of the features.
"""
import collections

import mxnet as mx

from symbol import common
from symbol.common import conv_bn, gluon_layer_names

MULTIPLIERS = (1.0, 0.75, 0.5, 0.25)  # widths gluoncv publishes ImageNet weights for
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (expansion t, output channels before the multiplier, stride) of block0 .. block16
BLOCKS = ((1, 16, 1),
          (6, 24, 2), (6, 24, 1),
          (6, 32, 2), (6, 32, 1), (6, 32, 1),
          (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
          (6, 96, 1), (6, 96, 1), (6, 96, 1),
          (6, 160, 2), (6, 160, 1), (6, 160, 1),
          (6, 320, 1))
EXPOSED_BLOCKS = (2, 5, 12, 16)  # block outputs at strides 4, 8, 16, 32
EXPOSED_EXPANSION = 13  # the expansion of this block (stride 16, before its stride-2 depthwise conv)


def check_multiplier(multiplier):
    """Raise :class:`UserError` unless ``multiplier`` is one of :data:`MULTIPLIERS`."""
    common.check_multiplier(multiplier, 'mobilenetv2', MULTIPLIERS)


def block_widths(multiplier):
    """Input and output channels of every block at this width.

    Returns
    -------
    list of (int, int, int, int)
        ``(t, in_channels, out_channels, stride)`` for block0 .. block16.
    """
    widths = []
    in_channels = int(STEM_CHANNELS * multiplier)
    for expansion, channels, stride in BLOCKS:
        out_channels = int(channels * multiplier)
        widths.append((expansion, in_channels, out_channels, stride))
        in_channels = out_channels
    return widths


def conv_bn_relu6(data, name, num_filter, kernel, stride=1, pad=0, num_group=1, use_global_stats=False):
    """``<name>_conv`` (no bias) -> ``<name>_bn`` -> ReLU6 named ``<name>_relu``; (B, Cin, H, W) -> (B, F, H', W')."""
    body = conv_bn(data, name + '_conv', name + '_bn', num_filter, kernel, stride, pad, num_group,
                   use_global_stats=use_global_stats)
    return mx.sym.clip(body, a_min=0.0, a_max=6.0, name=name + '_relu')


def inverted_residual(data, name, expansion, in_channels, out_channels, stride, use_global_stats=False):
    """One MobileNetV2 block as gluoncv's ``LinearBottleneck``.

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, in_channels, H, W).
    name : str
        Block name, e.g. ``'block5'``.
    expansion : int
        t; the block has no expand conv when t == 1.
    in_channels, out_channels, stride : int
        Widths and the depthwise conv's stride.
    use_global_stats : bool
        Frozen BatchNorm.

    Returns
    -------
    (mx.sym.Symbol, mx.sym.Symbol)
        The block output (B, out_channels, H/stride, W/stride), named ``<name>_add`` with the residual and
        ``<name>_project_bn`` without; and the expanded tensor (B, in_channels * t, H, W).
    """
    width = in_channels * expansion
    expanded = data
    if expansion != 1:
        expanded = conv_bn_relu6(data, name + '_expand', width, 1, use_global_stats=use_global_stats)
    body = conv_bn_relu6(expanded, name + '_dwise', width, 3, stride, 1, num_group=width,
                         use_global_stats=use_global_stats)
    body = conv_bn(body, name + '_project_conv', name + '_project_bn', out_channels, 1,
                   use_global_stats=use_global_stats)
    if stride == 1 and in_channels == out_channels:
        body = mx.sym.elemwise_add(body, data, name=name + '_add')
    return body, expanded


def feature_layers(data, multiplier=1.0, use_global_stats=False):
    """The MobileNetV2 body with its head conv, six layers at strides 4..32 exposed by name.

    Parameters
    ----------
    data : mx.sym.Symbol
        Images, (B, 3, H, W), RGB normalized with the ImageNet mean and std (module docstring).
    multiplier : float
        Width multiplier, one of :data:`MULTIPLIERS`.
    use_global_stats : bool
        Freeze every BatchNorm to its moving statistics.

    Returns
    -------
    collections.OrderedDict
        ``'block2'`` (B, int(24m), H/4, W/4), ``'block5'`` (B, int(32m), H/8, W/8), ``'block12'``
        (B, int(96m), H/16, W/16), ``'block13_expand'`` (B, 6 int(96m), H/16, W/16), ``'block16'``
        (B, int(320m), H/32, W/32) and ``'head'`` (B, 1280, H/32, W/32), for H and W divisible by 32.

    Raises
    ------
    UserError
        For an unsupported ``multiplier``.
    """
    check_multiplier(multiplier)
    body = conv_bn_relu6(data, 'stem', int(STEM_CHANNELS * multiplier), 3, 2, 1,
                         use_global_stats=use_global_stats)
    layers = collections.OrderedDict()
    for index, (expansion, in_channels, out_channels, stride) in enumerate(block_widths(multiplier)):
        name = 'block%d' % index
        body, expanded = inverted_residual(body, name, expansion, in_channels, out_channels, stride,
                                           use_global_stats)
        if index == EXPOSED_EXPANSION:
            layers[name + '_expand'] = expanded
        if index in EXPOSED_BLOCKS:
            layers[name] = body
    head_channels = int(HEAD_CHANNELS * multiplier) if multiplier > 1.0 else HEAD_CHANNELS
    layers['head'] = conv_bn_relu6(body, 'head', head_channels, 1, use_global_stats=use_global_stats)
    return layers


def gluoncv_name_map(multiplier=1.0):
    """Our parameter and auxiliary-state names -> gluoncv ``mobilenetv2_<multiplier>`` names without the prefix.

    Covers the whole feature part (everything but gluoncv's ``output_pred`` classifier), one-to-one.

    Parameters
    ----------
    multiplier : float
        One of :data:`MULTIPLIERS`.

    Returns
    -------
    dict
        e.g. ``'block3_dwise_conv_weight' -> 'features_linearbottleneck3_conv1_weight'``,
        ``'head_bn_moving_var' -> 'features_batchnorm1_running_var'``.
    """
    check_multiplier(multiplier)
    outer = [('conv', 'stem_conv', False), ('bn', 'stem_bn', False),
             ('conv', 'head_conv', False), ('bn', 'head_bn', False)]
    names = gluon_layer_names(outer, 'features_')
    for index, (expansion, _, _) in enumerate(BLOCKS):
        steps = ('expand', 'dwise', 'project') if expansion != 1 else ('dwise', 'project')
        layers = []
        for step in steps:
            layers += [('conv', 'block%d_%s_conv' % (index, step), False),
                       ('bn', 'block%d_%s_bn' % (index, step), False)]
        names.update(gluon_layer_names(layers, 'features_linearbottleneck%d_' % index))
    return names
