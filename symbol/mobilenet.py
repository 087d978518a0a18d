"""MobileNet v1 with a width multiplier, built from 27 convolution units (convolution, BatchNorm, ReLU).

Unit 0 is a 3x3 stride-2 convolution with ``32 * multiplier`` filters. Then come 13 depthwise-separable
blocks; block ``j`` (1..13) is unit ``2j - 1`` (3x3 depthwise, stride 1 or 2) followed by unit ``2j`` (1x1
pointwise). Blocks 2, 4, 6 and 12 have stride 2, so the network's stride is 32: any input side divisible by
32 gives whole feature maps.

Parameter names, for unit ``k`` = 0..26::

    conv{k}_weight                     (F, C / groups, kh, kw), no bias
    bn{k}_gamma, bn{k}_beta            (F,)  learned scale and shift (fix_gamma=False, eps=1e-5)
    bn{k}_moving_mean, bn{k}_moving_var (F,) auxiliary states

These map one-to-one onto GluonCV's ``mobilenet1.0`` (and 0.75 / 0.5 / 0.25): its ``features`` sequence holds
three children per unit, so ``conv{k}_weight`` is ``features.{3k}.weight`` and ``bn{k}_gamma``,
``bn{k}_beta``, ``bn{k}_moving_mean``, ``bn{k}_moving_var`` are ``features.{3k+1}.gamma``, ``.beta``,
``.running_mean``, ``.running_var`` (in the prefixed naming, ``mobilenet0_conv{k}_weight`` and
``mobilenet0_batchnorm{k}_*``, spelled out by :func:`gluoncv_name_map`). GluonCV's classifier
(``output.*``) has no counterpart here. Its ImageNet weights expect RGB input normalized with mean
(123.68, 116.779, 103.939) and std (58.393, 57.12, 57.375).

Feature layers returned by :func:`feature_layers` (``m`` = multiplier)::

    relu10   stride 8    int(256 * m) channels   end of block 5
    relu22   stride 16   int(512 * m) channels   end of block 11
    relu26   stride 32   int(1024 * m) channels  end of block 13
"""
from collections import OrderedDict

import mxnet as mx

from symbol import common

MULTIPLIERS = (1.0, 0.75, 0.5, 0.25)   # widths GluonCV publishes ImageNet weights for
STEM_FILTERS = 32
# (output filters, stride) of the 13 depthwise-separable blocks, before the width multiplier.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
FEATURE_UNITS = {10: 'relu10', 22: 'relu22', 26: 'relu26'}   # unit index -> exposed feature name
NUM_UNITS = 1 + 2 * len(BLOCKS)        # convolution units: the stem and two per block
def check_multiplier(multiplier):
    """Raise :class:`UserError` unless ``multiplier`` is one of :data:`MULTIPLIERS`."""
    common.check_multiplier(multiplier, 'mobilenet', MULTIPLIERS)


def conv_bn_relu(data, unit, num_filter, kernel, stride, num_group=1, use_global_stats=False):
    """Unit ``unit``: convolution ``conv{unit}`` (no bias), BatchNorm ``bn{unit}``, ReLU ``relu{unit}``.

    Returns the (B, num_filter, h / stride, w / stride) activation.
    """
    pad = (kernel - 1) // 2
    norm = common.conv_bn(data, 'conv%d' % unit, 'bn%d' % unit, num_filter, kernel, stride, pad, num_group,
                          use_global_stats=use_global_stats)
    return mx.sym.Activation(norm, act_type='relu', name='relu%d' % unit)


def feature_layers(data, multiplier=1.0, use_global_stats=False):
    """Build MobileNet v1 on ``data`` and return its feature layers by name.

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, 3, S, S) mean-subtracted RGB images, S divisible by 32.
    multiplier : float
        Width multiplier, one of :data:`MULTIPLIERS`: every layer has ``int(filters * multiplier)`` filters.
    use_global_stats : bool
        Freeze every BatchNorm to its moving statistics (useful for small training batches).

    Returns
    -------
    collections.OrderedDict
        ``'relu10'`` (stride 8), ``'relu22'`` (stride 16), ``'relu26'`` (stride 32) -> (B, C, S / stride,
        S / stride) symbols.

    Raises
    ------
    UserError
        For an unsupported ``multiplier``.
    """
    check_multiplier(multiplier)
    layers = OrderedDict()
    channels = int(STEM_FILTERS * multiplier)
    body = conv_bn_relu(data, 0, channels, kernel=3, stride=2, use_global_stats=use_global_stats)
    for block, (filters, stride) in enumerate(BLOCKS, start=1):
        depthwise_unit, pointwise_unit = 2 * block - 1, 2 * block
        body = conv_bn_relu(body, depthwise_unit, channels, kernel=3, stride=stride, num_group=channels,
                            use_global_stats=use_global_stats)
        channels = int(filters * multiplier)
        body = conv_bn_relu(body, pointwise_unit, channels, kernel=1, stride=1,
                            use_global_stats=use_global_stats)
        if pointwise_unit in FEATURE_UNITS:
            layers[FEATURE_UNITS[pointwise_unit]] = body
    return layers


def gluoncv_name_map(multiplier=1.0):
    """Our parameter and auxiliary-state names -> GluonCV ``mobilenet<multiplier>`` names without the
    ``mobilenet0_`` prefix (the names are the same for every multiplier; the shapes are not).

    Parameters
    ----------
    multiplier : float
        One of :data:`MULTIPLIERS`.

    Returns
    -------
    dict
        e.g. ``'conv3_weight' -> 'conv3_weight'``, ``'bn3_moving_var' -> 'batchnorm3_running_var'``
        (structurally, GluonCV's ``features.9.weight`` and ``features.10.running_var``).
    """
    check_multiplier(multiplier)
    names = {}
    for unit in range(NUM_UNITS):
        names['conv%d_weight' % unit] = 'conv%d_weight' % unit
        for ours, theirs in common.BN_SUFFIXES:
            names['bn%d_%s' % (unit, ours)] = 'batchnorm%d_%s' % (unit, theirs)
    return names
