"""ResNet-50 and ResNet-101 (v1, bottleneck, BatchNorm) feature layers, laid out as gluoncv's ``resnet50_v1``.

The graph mirrors ``gluoncv.model_zoo.resnet50_v1`` / ``resnet101_v1`` (``ResNetV1`` + ``BottleneckV1`` in
gluoncv/model_zoo/resnet.py; not the ``resnet50_v1b`` family of resnetv1b.py), so its ImageNet weights load
one-to-one through :func:`gluoncv_name_map`:

- stem: 7x7/2 conv (64, no bias) -> BatchNorm -> ReLU -> 3x3/2 max pooling (pad 1);
- bottleneck unit: 1x1 conv **carrying the unit's stride** (channels/4, with bias) -> BN -> ReLU -> 3x3 conv
  (channels/4, stride 1, no bias) -> BN -> ReLU -> 1x1 conv (channels, with bias) -> BN; the first unit of each
  stage has a 1x1 conv (stride of the stage, no bias) + BN shortcut; output ReLU(body + shortcut);
- stages of 3/4/6/3 units (resnet50) or 3/4/23/3 (resnet101) with 256/512/1024/2048 channels, strides
  1/2/2/2 on top of the stem's 4.

BatchNorm everywhere uses ``eps=1e-5``, ``momentum=0.9`` and a learnable gamma, as gluon's ``nn.BatchNorm``.
The ImageNet weights expect RGB input normalized with mean (123.675, 116.28, 103.53) and std
(58.395, 57.12, 57.375).

Exposed layers (keys of :func:`feature_layers`, in order)
---------------------------------------------------------
========  ======  ========  ==========================
key       stride  channels  symbol name (``_output``)
========  ======  ========  ==========================
stage1    4       256       ``stage1_unit3_relu``
stage2    8       512       ``stage2_unit4_relu``
stage3    16      1024      ``stage3_unit6_relu`` (``stage3_unit23_relu`` for resnet101)
stage4    32      2048      ``stage4_unit3_relu``
========  ======  ========  ==========================

Parameter names (stable; checkpoints and pretrained loading rely on them)
-------------------------------------------------------------------------
``S`` is the stage (1..4), ``U`` the unit within it (1..units), ``C`` the stage's channels and ``Cin`` its
input channels; BN layers own ``_gamma``, ``_beta`` (arguments) and ``_moving_mean``, ``_moving_var``
(auxiliary states), which are gluon's ``_running_mean`` / ``_running_var``. gluoncv numbers the convolutions
and BatchNorms of a stage with one counter each, in creation order: unit 1 takes conv0..conv3 (conv3 is the
shortcut), unit U > 1 takes conv{3U-2}..conv{3U}; ``k`` below is 0 for unit 1 and 3U-2 otherwise.

====================================  ==========================  =======================================
ours                                  shape                       gluoncv ``resnet50_v1`` (prefix removed)
====================================  ==========================  =======================================
stem_conv_weight                      (64, 3, 7, 7)               conv0_weight
stem_bn_*                             (64,)                       batchnorm0_*
stageS_unitU_conv1_weight, _bias      (C/4, Cin or C, 1, 1)       stageS_conv{k}_weight, _bias
stageS_unitU_bn1_*                    (C/4,)                      stageS_batchnorm{k}_*
stageS_unitU_conv2_weight             (C/4, C/4, 3, 3)            stageS_conv{k+1}_weight
stageS_unitU_bn2_*                    (C/4,)                      stageS_batchnorm{k+1}_*
stageS_unitU_conv3_weight, _bias      (C, C/4, 1, 1)              stageS_conv{k+2}_weight, _bias
stageS_unitU_bn3_*                    (C,)                        stageS_batchnorm{k+2}_*
stageS_unit1_downsample_conv_weight   (C, Cin, 1, 1)              stageS_conv3_weight
stageS_unit1_downsample_bn_*          (C,)                        stageS_batchnorm3_*
====================================  ==========================  =======================================

:func:`gluoncv_name_map` spells the whole map out (297 names for resnet50, 586 for resnet101). A gluoncv
``.params`` file is read by building ``resnet50_v1(pretrained=False)``, calling ``load_parameters`` on it
(which accepts both gluon file formats) and renaming ``collect_params()`` through the map.
"""
import collections

import mxnet as mx

from config.errors import UserError
from symbol.common import conv_bn, gluon_layer_names

UNITS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}  # bottleneck units in stages 1..4
STAGE_CHANNELS = (256, 512, 1024, 2048)  # output channels of stages 1..4
STAGE_STRIDES = (1, 2, 2, 2)  # stride of each stage's first unit
STEM_CHANNELS = 64
def check_num_layers(num_layers, backbone='resnet'):
    """Raise :class:`UserError` unless ``num_layers`` is a supported depth (of ``backbone``, named in it)."""
    if num_layers not in UNITS_PER_STAGE:
        raise UserError('%s with %r layers is not available; choose num_layers from %s'
                        % (backbone, num_layers, ', '.join(str(depth) for depth in sorted(UNITS_PER_STAGE))))


def bottleneck(data, name, channels, stride, downsample, use_global_stats=False):
    """One v1 bottleneck unit as gluoncv's ``BottleneckV1`` (stride on the first 1x1 conv).

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, Cin, H, W).
    name : str
        Unit name, e.g. ``'stage2_unit1'``.
    channels : int
        Output channels C; the inner convolutions have C/4.
    stride : int
        1 or 2.
    downsample : bool
        Whether the shortcut is a 1x1 conv + BN (first unit of a stage) instead of the identity.
    use_global_stats : bool
        Frozen BatchNorm.

    Returns
    -------
    mx.sym.Symbol
        (B, C, H/stride, W/stride), named ``<name>_relu``.
    """
    inner = channels // 4
    body = conv_bn(data, name + '_conv1', name + '_bn1', inner, 1, stride, no_bias=False,
                   use_global_stats=use_global_stats)
    body = mx.sym.Activation(body, act_type='relu', name=name + '_relu1')
    body = conv_bn(body, name + '_conv2', name + '_bn2', inner, 3, 1, 1, use_global_stats=use_global_stats)
    body = mx.sym.Activation(body, act_type='relu', name=name + '_relu2')
    body = conv_bn(body, name + '_conv3', name + '_bn3', channels, 1, no_bias=False,
                   use_global_stats=use_global_stats)
    shortcut = data
    if downsample:
        shortcut = conv_bn(data, name + '_downsample_conv', name + '_downsample_bn', channels, 1, stride,
                           use_global_stats=use_global_stats)
    return mx.sym.Activation(body + shortcut, act_type='relu', name=name + '_relu')


def stem(data, use_global_stats=False):
    """7x7/2 conv, BN, ReLU and 3x3/2 max pooling: (B, 3, H, W) -> (B, 64, H/4, W/4) for H, W divisible by 4."""
    body = conv_bn(data, 'stem_conv', 'stem_bn', STEM_CHANNELS, 7, 2, 3, use_global_stats=use_global_stats)
    body = mx.sym.Activation(body, act_type='relu', name='stem_relu')
    return mx.sym.Pooling(body, name='stem_pool', pool_type='max', kernel=(3, 3), stride=(2, 2), pad=(1, 1))


def feature_layers(data, num_layers=50, use_global_stats=False):
    """The ResNet v1 body up to stage 4, its four stage outputs exposed by name.

    Parameters
    ----------
    data : mx.sym.Symbol
        Images, (B, 3, H, W), RGB normalized with the ImageNet mean and std (module docstring).
    num_layers : int
        50 or 101.
    use_global_stats : bool
        Freeze every BatchNorm to its moving statistics (useful for small training batches).

    Returns
    -------
    collections.OrderedDict
        ``'stage1'`` .. ``'stage4'`` -> Symbol, shapes (B, 256, H/4, W/4), (B, 512, H/8, W/8),
        (B, 1024, H/16, W/16), (B, 2048, H/32, W/32) when H and W are divisible by 32.

    Raises
    ------
    UserError
        For an unsupported ``num_layers``.
    """
    check_num_layers(num_layers)
    body = stem(data, use_global_stats)
    layers = collections.OrderedDict()
    specs = zip(UNITS_PER_STAGE[num_layers], STAGE_CHANNELS, STAGE_STRIDES)
    for stage, (num_units, channels, stride) in enumerate(specs, start=1):
        for unit in range(1, num_units + 1):
            body = bottleneck(body, 'stage%d_unit%d' % (stage, unit), channels,
                              stride if unit == 1 else 1, unit == 1, use_global_stats)
        layers['stage%d' % stage] = body
    return layers


def gluoncv_name_map(num_layers=50):
    """Our parameter and auxiliary-state names -> gluoncv ``resnet<num_layers>_v1`` names without the prefix.

    Covers the whole feature part (everything but gluoncv's final ``dense0`` classifier), one-to-one.

    Parameters
    ----------
    num_layers : int
        50 or 101.

    Returns
    -------
    dict
        e.g. ``'stage2_unit2_conv1_bias' -> 'stage2_conv4_bias'``, ``'stem_bn_moving_mean' ->
        'batchnorm0_running_mean'``.
    """
    check_num_layers(num_layers)
    names = gluon_layer_names([('conv', 'stem_conv', False), ('bn', 'stem_bn', False)], '')
    for stage, num_units in enumerate(UNITS_PER_STAGE[num_layers], start=1):
        layers = []  # gluon's creation order: body conv/bn pairs, then the shortcut
        for unit in range(1, num_units + 1):
            unit_name = 'stage%d_unit%d' % (stage, unit)
            for index, has_bias in ((1, True), (2, False), (3, True)):
                layers += [('conv', '%s_conv%d' % (unit_name, index), has_bias),
                           ('bn', '%s_bn%d' % (unit_name, index), False)]
            if unit == 1:
                layers += [('conv', unit_name + '_downsample_conv', False),
                           ('bn', unit_name + '_downsample_bn', False)]
        names.update(gluon_layer_names(layers, 'stage%d_' % stage))
    return names
