"""ResNet-50 and ResNet-101 with pre-activation bottlenecks (ResNet v2), laid out as MXNet's model zoo ResNet.

This is the ResNet of MXNet's SSD example (``example/ssd/symbol/resnet.py``, after tornadomeet's ResNet) and
of the model zoo's ImageNet files ``resnet-50-0000.params`` / ``resnet-101-0000.params``, not GluonCV's v1
ResNet of :mod:`symbol.resnet`. Parameter names are theirs, so both kinds of files load by name:

- input: identity ``id`` -> BatchNorm ``bn_data`` with gamma fixed to 1, which normalizes the input
  channels by its own statistics (the SSD example feeds it mean-subtracted RGB, as this project's default
  ``mean_pixels`` do);
- stem: 7x7/2 conv ``conv0`` (64, no bias) -> BN ``bn0`` -> ReLU ``relu0`` -> 3x3/2 max pooling (pad 1);
- unit (pre-activation): BN ``bn1`` -> ReLU -> 1x1 conv ``conv1`` (C/4) -> BN ``bn2`` -> ReLU -> 3x3 conv
  ``conv2`` (C/4) **carrying the unit's stride** -> BN ``bn3`` -> ReLU -> 1x1 conv ``conv3`` (C); no conv has
  a bias. The first unit of each stage adds a 1x1 conv ``sc`` (C, the stage's stride) of the unit's first
  activation; the others add their input unchanged. The sum is not activated;
- stages of 3/4/6/3 units (resnet50) or 3/4/23/3 (resnet101) with 256/512/1024/2048 channels, strides
  1/2/2/2 on top of the stem's 4.

BatchNorm everywhere: ``eps=2e-5``, ``momentum=0.9``, learnable gamma except in ``bn_data``.

Parameter names (``S`` stage 1..4, ``U`` unit 1..units, ``C`` the stage's channels, ``Cin`` the unit's input
channels: the previous stage's, 64 for stage 1, or C for U > 1). BatchNorm layers own ``_gamma``, ``_beta``
(arguments) and ``_moving_mean``, ``_moving_var`` (auxiliary states)::

    bn_data_*                      (3,)
    conv0_weight                   (64, 3, 7, 7)
    bn0_*                          (64,)
    stageS_unitU_bn1_*             (Cin,)
    stageS_unitU_conv1_weight      (C/4, Cin, 1, 1)
    stageS_unitU_bn2_*             (C/4,)
    stageS_unitU_conv2_weight      (C/4, C/4, 3, 3)
    stageS_unitU_bn3_*             (C/4,)
    stageS_unitU_conv3_weight      (C, C/4, 1, 1)
    stageS_unit1_sc_weight         (C, Cin, 1, 1)

The model zoo's classifier files also hold ``bn1_*`` (2048,) and ``fc1_weight`` / ``fc1_bias`` after the
last unit; the detector does not use them. ``--pretrained model/resnet-50 --epoch 0`` loads every other
array of ``resnet-50-0000.params`` (253 for resnet50, 508 for resnet101) by name.

Exposed layers (keys of :func:`feature_layers`, in order)
---------------------------------------------------------
A unit's output is the sum ``_plus<n>``, ``n`` its 0-based index among all units of the network: the name
MXNet gives it in the model zoo's and the SSD example's graphs. The SSD example names the heads of its
backbone feature layers after these sums (``_plus12_loc_pred_conv_weight``), so the keys are these names.

==========  ==========  ======  ========  ==============================
resnet50    resnet101   stride  channels  the output of
==========  ==========  ======  ========  ==============================
``_plus2``  ``_plus2``  4       256       stage 1 (its last unit)
``_plus6``  ``_plus6``  8       512       stage 2
``_plus12`` ``_plus29`` 16      1024      stage 3
``_plus15`` ``_plus32`` 32      2048      stage 4
==========  ==========  ======  ========  ==============================

Every 3x3 convolution and pooling pads by 1 and each strided 3x3 agrees with its strided 1x1 shortcut, so
any input side works: a side S gives stride-32 maps of ceil(S / 32), e.g. 10x10 at 300, 16x16 at 512.
"""
import collections

import mxnet as mx

from symbol.resnet import STAGE_CHANNELS, STAGE_STRIDES, STEM_CHANNELS, UNITS_PER_STAGE, check_num_layers

# The stages are those of the v1 ResNet (symbol/resnet.py): units, channels and strides per stage.
BN_EPS = 2e-5  # the model zoo ResNet's BatchNorm epsilon
BN_MOMENTUM = 0.9


def unit_output_name(index):
    """The name of the sum ending unit ``index`` (0-based over the whole network): ``'_plus<index>'``."""
    return '_plus%d' % index


def batchnorm(data, name, use_global_stats=False, fix_gamma=False):
    """BatchNorm ``name`` as the model zoo ResNet sets it up; (B, C, H, W) -> (B, C, H, W)."""
    return mx.sym.BatchNorm(data, name=name, fix_gamma=fix_gamma, eps=BN_EPS, momentum=BN_MOMENTUM,
                            use_global_stats=use_global_stats)


def bn_relu(data, bn_name, relu_name, use_global_stats=False):
    """BatchNorm ``bn_name`` then ReLU ``relu_name``; (B, C, H, W) -> (B, C, H, W)."""
    return mx.sym.Activation(batchnorm(data, bn_name, use_global_stats), act_type='relu', name=relu_name)


def conv(data, name, num_filter, kernel, stride=1, pad=0):
    """A square convolution without bias; parameter ``<name>_weight``."""
    return mx.sym.Convolution(data, name=name, num_filter=num_filter, kernel=(kernel, kernel),
                              stride=(stride, stride), pad=(pad, pad), no_bias=True)


def preact_bottleneck(data, name, index, channels, stride, project, use_global_stats=False):
    """One pre-activation bottleneck unit (stride on the 3x3 convolution).

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, Cin, H, W).
    name : str
        Unit name, e.g. ``'stage2_unit1'``; prefix of its layers.
    index : int
        0-based index of the unit in the network; names the output sum.
    channels : int
        Output channels C; the inner convolutions have C/4.
    stride : int
        1 or 2.
    project : bool
        Whether the shortcut is the 1x1 convolution ``<name>_sc`` (first unit of a stage) instead of the
        identity.
    use_global_stats : bool
        Frozen BatchNorm.

    Returns
    -------
    mx.sym.Symbol
        (B, C, ceil(H / stride), ceil(W / stride)), named ``_plus<index>``, not activated.
    """
    inner = channels // 4
    activated = bn_relu(data, name + '_bn1', name + '_relu1', use_global_stats)
    body = conv(activated, name + '_conv1', inner, 1)
    body = bn_relu(body, name + '_bn2', name + '_relu2', use_global_stats)
    body = conv(body, name + '_conv2', inner, 3, stride, 1)
    body = bn_relu(body, name + '_bn3', name + '_relu3', use_global_stats)
    body = conv(body, name + '_conv3', channels, 1)
    shortcut = conv(activated, name + '_sc', channels, 1, stride) if project else data
    return mx.sym.elemwise_add(body, shortcut, name=unit_output_name(index))


def stem(data, use_global_stats=False):
    """Input BatchNorm, 7x7/2 conv, BN, ReLU, 3x3/2 max pooling: (B, 3, H, W) -> (B, 64, ~H/4, ~W/4)."""
    body = mx.sym.identity(data, name='id')
    body = batchnorm(body, 'bn_data', use_global_stats, fix_gamma=True)
    body = conv(body, 'conv0', STEM_CHANNELS, 7, 2, 3)
    body = bn_relu(body, 'bn0', 'relu0', use_global_stats)
    return mx.sym.Pooling(body, name='pooling0', pool_type='max', kernel=(3, 3), stride=(2, 2), pad=(1, 1))


def feature_layers(data, num_layers=50, use_global_stats=False):
    """The pre-activation ResNet body up to stage 4, its four stage outputs exposed by name.

    Parameters
    ----------
    data : mx.sym.Symbol
        Images, (B, 3, H, W).
    num_layers : int
        50 or 101.
    use_global_stats : bool
        Freeze every BatchNorm to its moving statistics (useful for small training batches).

    Returns
    -------
    collections.OrderedDict
        ``'_plus<n>'`` (module docstring) -> Symbol, shapes (B, 256, H/4, W/4), (B, 512, H/8, W/8),
        (B, 1024, H/16, W/16), (B, 2048, H/32, W/32) when H and W are divisible by 32.

    Raises
    ------
    UserError
        For an unsupported ``num_layers``.
    """
    check_num_layers(num_layers, 'resnet_preact')
    body = stem(data, use_global_stats)
    layers = collections.OrderedDict()
    index = 0
    specs = zip(UNITS_PER_STAGE[num_layers], STAGE_CHANNELS, STAGE_STRIDES)
    for stage, (num_units, channels, stride) in enumerate(specs, start=1):
        for unit in range(1, num_units + 1):
            body = preact_bottleneck(body, 'stage%d_unit%d' % (stage, unit), index, channels,
                                     stride if unit == 1 else 1, unit == 1, use_global_stats)
            index += 1
        layers[unit_output_name(index - 1)] = body
    return layers
