"""Per-network SSD settings as data, and the graphs built from them.

:data:`NETWORKS` maps a ``--network`` name to its settings per supported input side. A setting is a plain
dict of the keyword arguments of :func:`symbol.symbol_builder.ssd_body`:

- ``backbone`` / ``backbone_kwargs``: module in :mod:`symbol` and the arguments of its ``feature_layers``;
- ``from_layers``: backbone layers that carry heads (names from the backbone's docstring);
- ``extra_filters`` / ``extra_strides`` / ``extra_pads``: extra layers grown from the last backbone layer,
  each a 1x1 convolution to half the filters (at least ``extra_min_1x1``) then a 3x3 convolution with this
  stride and padding; layer ``k`` of all feature layers (0-based) is named ``multi_feat_<k>_conv_3x3_relu``
  and its parameters ``multi_feat_<k>_conv_1x1_conv_*`` / ``multi_feat_<k>_conv_3x3_conv_*``, as in MXNet's
  SSD example, whose networks (vgg16_reduced, resnet50_preact, resnet101_preact, inceptionv3) also take its
  128-filter floor;
- per feature layer (backbone layers then extra layers): ``sizes`` (anchor sides, fractions of the input),
  ``ratios`` (aspect ratios), ``normalizations`` (initial L2-normalization scale, None: not normalized) and
  ``steps`` (anchor spacing in pixels; None: input side / feature side).

Any setting, or any backbone argument (``multiplier``, ``num_layers``, ``use_global_stats`` for a frozen
BatchNorm), can be overridden by keyword.
"""
import copy
import numbers

import mxnet as mx

from config.errors import UserError
from symbol import common, multibox, symbol_builder

ANY_MULTIPLE_OF_32 = 'a multiple of 32 from 64'   # key of settings valid at any such input side
MIN_SIDE = 64                                      # smallest input side of fully convolutional networks
SHAPE_STEP = 32                                    # their input side must be divisible by their stride

RATIOS_3 = (1, 2, .5)                              # square, wide, tall
RATIOS_5 = (1, 2, .5, 3, 1. / 3)                   # plus very wide and very tall
EXAMPLE_MIN_1X1 = 128                              # MXNet's SSD example: its extra 1x1 convs have >= 128 filters
SIZES_6 = ((.1, .141), (.2, .272), (.37, .447), (.54, .619), (.71, .79), (.88, .961))
SIZES_7 = ((.07, .1025), (.15, .2121), (.3, .3674), (.45, .5196), (.6, .6708), (.75, .8216), (.9, .9721))

VGG16_REDUCED_300 = dict(               # SSD300 of the paper: 8732 anchors
    backbone='vgg16_reduced', backbone_kwargs={},
    from_layers=('relu4_3', 'relu7'),
    extra_filters=(512, 256, 256, 256), extra_strides=(2, 2, 1, 1), extra_pads=(1, 1, 0, 0),
    extra_min_1x1=EXAMPLE_MIN_1X1,
    sizes=SIZES_6, ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
    normalizations=(20, None, None, None, None, None),
    steps=(8, 16, 32, 64, 100, 300),
)
VGG16_REDUCED_512 = dict(               # SSD512 as MXNet's SSD example builds it: 24576 anchors. Its last
    backbone='vgg16_reduced', backbone_kwargs={},  # extra layer has stride 1 (a 2x2 map, the paper's is 1x1:
    from_layers=('relu4_3', 'relu7'),               # 24564), so the example's checkpoints detect the same here
    extra_filters=(512, 256, 256, 256, 256), extra_strides=(2, 2, 2, 2, 1), extra_pads=(1, 1, 1, 1, 1),
    extra_min_1x1=EXAMPLE_MIN_1X1,
    sizes=SIZES_7, ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
    normalizations=(20, None, None, None, None, None, None),
    steps=(8, 16, 32, 64, 128, 256, 512),
)
RESNET = dict(                          # strides 16 and 32, then four extra layers (6132 anchors at 512)
    backbone='resnet', backbone_kwargs={'num_layers': 50, 'use_global_stats': False},
    from_layers=('stage3', 'stage4'),
    extra_filters=(512, 256, 256, 128), extra_strides=(2, 2, 2, 2), extra_pads=(1, 1, 1, 1), extra_min_1x1=0,
    sizes=SIZES_6, ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
    normalizations=(None,) * 6, steps=None,
)
MOBILENET = dict(                       # strides 16 and 32, then four extra layers
    backbone='mobilenet', backbone_kwargs={'multiplier': 1.0, 'use_global_stats': False},
    from_layers=('relu22', 'relu26'),
    extra_filters=(512, 256, 256, 128), extra_strides=(2, 2, 2, 2), extra_pads=(1, 1, 1, 1), extra_min_1x1=0,
    sizes=SIZES_6, ratios=(RATIOS_3,) + (RATIOS_5,) * 5,
    normalizations=(None,) * 6, steps=None,
)
MOBILENETV2 = dict(                     # SSDLite layout: the stride-16 expansion and the head, four extras
    backbone='mobilenetv2', backbone_kwargs={'multiplier': 1.0, 'use_global_stats': False},
    from_layers=('block13_expand', 'head'),
    extra_filters=(512, 256, 256, 128), extra_strides=(2, 2, 2, 2), extra_pads=(1, 1, 1, 1), extra_min_1x1=0,
    sizes=SIZES_6, ratios=(RATIOS_3,) + (RATIOS_5,) * 5,
    normalizations=(None,) * 6, steps=None,
)

RESNET_PREACT = dict(                   # MXNet's SSD example 'resnet50': stage 3 and 4 outputs, four extras
    backbone='resnet_preact', backbone_kwargs={'num_layers': 50, 'use_global_stats': False},
    from_layers=('_plus12', '_plus15'),   # stride 16 and 32 (stage 3 / 4 outputs); see symbol/resnet_preact.py
    extra_filters=(512, 256, 256, 128), extra_strides=(2, 2, 2, 2), extra_pads=(1, 1, 1, 1),
    extra_min_1x1=EXAMPLE_MIN_1X1,
    sizes=SIZES_6, ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
    normalizations=(None,) * 6, steps=None,
)
RESNET101_PREACT = dict(RESNET_PREACT, backbone_kwargs={'num_layers': 101, 'use_global_stats': False},
                        from_layers=('_plus29', '_plus32'))   # resnet101's stage 3 and 4 outputs
INCEPTIONV3 = dict(                     # MXNet's SSD example 'inceptionv3' (5186 anchors at 512)
    backbone='inceptionv3', backbone_kwargs={},
    from_layers=('ch_concat_mixed_7_chconcat', 'ch_concat_mixed_10_chconcat'),
    extra_filters=(512, 256, 256, 128), extra_strides=(2, 2, 2, 2), extra_pads=(1, 1, 1, 1),
    extra_min_1x1=EXAMPLE_MIN_1X1,
    sizes=SIZES_6, ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
    normalizations=(None,) * 6, steps=None,
)


def with_backbone_kwargs(settings, **backbone_kwargs):
    """A copy of ``settings`` with some backbone arguments replaced."""
    settings = copy.deepcopy(settings)
    settings['backbone_kwargs'].update(backbone_kwargs)
    return settings


NETWORKS = {
    'vgg16_reduced': {300: VGG16_REDUCED_300, 512: VGG16_REDUCED_512},
    'resnet50': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(RESNET, num_layers=50)},
    'resnet101': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(RESNET, num_layers=101)},
    # MXNet's SSD example's networks: 300 is its train.py default, 512 its published models
    'resnet50_preact': {300: RESNET_PREACT, ANY_MULTIPLE_OF_32: RESNET_PREACT},
    'resnet101_preact': {300: RESNET101_PREACT, ANY_MULTIPLE_OF_32: RESNET101_PREACT},
    'inceptionv3': {300: INCEPTIONV3, 512: INCEPTIONV3},   # needs a side >= 75; unpadded layers shrink maps
    'mobilenet': {ANY_MULTIPLE_OF_32: MOBILENET},
    'mobilenet1.0': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENET, multiplier=1.0)},
    'mobilenet0.75': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENET, multiplier=0.75)},
    'mobilenet0.5': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENET, multiplier=0.5)},
    'mobilenet0.25': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENET, multiplier=0.25)},
    'mobilenetv2': {ANY_MULTIPLE_OF_32: MOBILENETV2},
    'mobilenetv2_1.0': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENETV2, multiplier=1.0)},
    'mobilenetv2_0.75': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENETV2, multiplier=0.75)},
    'mobilenetv2_0.5': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENETV2, multiplier=0.5)},
    'mobilenetv2_0.25': {ANY_MULTIPLE_OF_32: with_backbone_kwargs(MOBILENETV2, multiplier=0.25)},
}
PER_LAYER_KEYS = ('sizes', 'ratios', 'normalizations')   # one entry per feature layer (steps too, unless None)


def list_networks():
    """Names accepted by ``--network``, sorted."""
    return sorted(NETWORKS)


def supported_shapes(network):
    """The input sides ``network`` supports, in words: e.g. ``'300, 512'``."""
    return ', '.join(str(shape) for shape in NETWORKS[network])


def lookup_settings(network, data_shape):
    """The table's settings of ``network`` at input side ``data_shape``; UserError when there are none."""
    if network not in NETWORKS:
        raise UserError('unknown network %r; choose one of: %s' % (network, ', '.join(list_networks())))
    shapes = NETWORKS[network]
    if not isinstance(data_shape, numbers.Integral) or isinstance(data_shape, bool):
        raise UserError('data_shape must be one integer (the square input side), got %r' % (data_shape,))
    if data_shape in shapes:
        return shapes[data_shape]
    if ANY_MULTIPLE_OF_32 in shapes and data_shape >= MIN_SIDE and data_shape % SHAPE_STEP == 0:
        return shapes[ANY_MULTIPLE_OF_32]
    raise UserError('network %r does not support data_shape %d; valid: %s'
                    % (network, data_shape, supported_shapes(network)))


def apply_overrides(settings, network, overrides):
    """Replace settings (or backbone arguments) by keyword; an unknown keyword is a UserError."""
    for key, value in overrides.items():
        if key in settings and key != 'backbone_kwargs':
            settings[key] = value
        elif key in settings['backbone_kwargs']:
            settings['backbone_kwargs'][key] = value
        else:
            valid = sorted(set(settings) - {'backbone_kwargs'} | set(settings['backbone_kwargs']))
            raise UserError('unknown setting %r for network %r; valid: %s' % (key, network, ', '.join(valid)))
    return settings


def length_of(settings, key, network):
    """``len(settings[key])``; UserError when the setting is not a list."""
    if not isinstance(settings[key], (list, tuple)):
        raise UserError('network %r: %s must be a list with one entry per layer, got %r'
                        % (network, key, settings[key]))
    return len(settings[key])


def check_lengths(settings, network):
    """UserError unless the extra-layer lists agree and every per-layer list has one entry per layer."""
    extras = [length_of(settings, key, network) for key in ('extra_filters', 'extra_strides', 'extra_pads')]
    if len(set(extras)) != 1:
        raise UserError('network %r: extra_filters, extra_strides and extra_pads must have equal lengths, got '
                        '%d, %d, %d' % (network, extras[0], extras[1], extras[2]))
    if not length_of(settings, 'from_layers', network):
        raise UserError('network %r: from_layers must name at least one backbone layer' % network)
    num_layers = len(settings['from_layers']) + extras[0]
    keys = PER_LAYER_KEYS + (('steps',) if settings['steps'] is not None else ())
    for key in keys:
        if length_of(settings, key, network) != num_layers:
            raise UserError('network %r: %s has %d entries but there are %d feature layers (%d from_layers + '
                            '%d extra layers)' % (network, key, len(settings[key]), num_layers,
                                                  len(settings['from_layers']), extras[0]))


def get_config(network, data_shape, **overrides):
    """The settings of ``network`` at input side ``data_shape``, with overrides applied.

    Parameters
    ----------
    network : str
        One of :func:`list_networks`.
    data_shape : int
        Square input side in pixels.
    **overrides :
        Settings (see the module docstring) or backbone arguments to replace.

    Returns
    -------
    dict
        Keyword arguments of :func:`symbol.symbol_builder.ssd_body`, ``data_shape`` included; a fresh copy.

    Raises
    ------
    UserError
        Unknown network, unsupported data shape, unknown override, or per-layer lists of the wrong length.
    """
    settings = copy.deepcopy(lookup_settings(network, data_shape))
    settings = apply_overrides(settings, network, overrides)
    check_lengths(settings, network)
    settings['data_shape'] = data_shape
    return settings


def backbone_param_shapes(network, probe_side=128):
    """``{name: shape}`` of the backbone parameters and auxiliary states of ``network`` (heads excluded).

    Parameter shapes do not depend on the input side; ``probe_side`` only has to be one the backbone takes.
    """
    settings = next(iter(NETWORKS[network].values()))
    layers = symbol_builder.backbone_module(settings['backbone']).feature_layers(
        mx.sym.Variable('data'), **settings['backbone_kwargs'])
    body = mx.sym.Group([layers[name] for name in settings['from_layers']])
    return common.param_shapes(body, data=(1, 3, probe_side, probe_side))


def networks_fitting(saved_shapes):
    """The networks whose every backbone parameter is in ``saved_shapes`` with the same shape.

    Parameters
    ----------
    saved_shapes : dict of str -> tuple
        A checkpoint's parameter and auxiliary-state shapes.

    Returns
    -------
    list of str
        ``--network`` names, sorted; for a hint when a checkpoint does not fit the network asked for.
    """
    fitting = []
    for network in list_networks():
        try:
            shapes = backbone_param_shapes(network)
        except mx.base.MXNetError:
            continue
        if all(tuple(saved_shapes.get(name, ())) == tuple(shape) for name, shape in shapes.items()):
            fitting.append(network)
    return fitting


def fitting_networks_hint(saved_shapes):
    """``'; its backbone fits --network a, b'`` (or ``''``) to end an error about a checkpoint that does not fit."""
    fitting = networks_fitting(saved_shapes)
    return '; its backbone fits --network %s' % ', '.join(fitting) if fitting else ''


def check_feature_maps(settings, network):
    """UserError unless every named backbone layer exists and every feature map is at least 1x1."""
    data_shape = settings['data_shape']
    feature_settings = {key: settings[key] for key in ('backbone', 'backbone_kwargs', 'from_layers',
                                                       'extra_filters', 'extra_strides', 'extra_pads',
                                                       'extra_min_1x1')}
    available = symbol_builder.backbone_module(settings['backbone']).feature_layers(
        mx.sym.Variable('data'), **settings['backbone_kwargs'])
    unknown = [name for name in settings['from_layers'] if name not in available]
    if unknown:
        raise UserError('network %r: backbone %r has no layer %s; valid: %s' % (
            network, settings['backbone'], ', '.join(unknown), ', '.join(available)))
    features = symbol_builder.feature_maps(mx.sym.Variable('data'), **feature_settings)
    for name, feature in features.items():
        try:
            feature.infer_shape(data=(1, 3, data_shape, data_shape))
        except mx.base.MXNetError:
            raise UserError('network %r at data_shape %d: feature layer %r would be empty; use a larger data '
                            'shape or smaller extra_strides / larger extra_pads' % (network, data_shape, name))


def check_detection_settings(num_classes, nms_thresh, nms_topk):
    """UserError for a class count below 1, an NMS threshold outside (0, 1], or nms_topk 0 or below -1."""
    if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise UserError('num_classes must be a positive integer, got %r' % (num_classes,))
    if not 0 < nms_thresh <= 1:
        raise UserError('nms_thresh must be in (0, 1], got %r' % (nms_thresh,))
    if not isinstance(nms_topk, numbers.Integral) or nms_topk == 0 or nms_topk < -1:
        raise UserError('nms_topk must be a positive integer or -1 (keep all), got %r' % (nms_topk,))


def build(builder, network, data_shape, num_classes, nms_thresh, force_suppress, nms_topk, overrides,
          **graph_kwargs):
    """Validate everything the user chose, then call ``builder`` with the network's settings."""
    check_detection_settings(num_classes, nms_thresh, nms_topk)
    settings = get_config(network, data_shape, **overrides)
    check_feature_maps(settings, network)
    return builder(num_classes, nms_thresh=nms_thresh, force_suppress=force_suppress, nms_topk=nms_topk,
                   **graph_kwargs, **settings)


def get_symbol_train(network, data_shape, num_classes, nms_thresh=multibox.NMS['nms_thresh'],
                     force_suppress=multibox.NMS['force_suppress'], nms_topk=multibox.NMS['nms_topk'],
                     overlap_threshold=multibox.OVERLAP_THRESHOLD, **overrides):
    """The training graph of ``network``; see :func:`symbol.symbol_builder.get_symbol_train`.

    Parameters
    ----------
    network : str
        One of :func:`list_networks`.
    data_shape : int
        Square input side in pixels.
    num_classes : int
        Object classes, background excluded.
    nms_thresh, force_suppress, nms_topk :
        Non-maximum suppression of the ``detection`` output; see :data:`symbol.multibox.NMS`.
    overlap_threshold : float
        IoU from which an anchor is trained as a positive, in (0, 1].
    **overrides :
        Settings to replace; see :func:`get_config`.

    Returns
    -------
    mx.sym.Symbol
        Inputs ``data`` (B, 3, S, S) and ``label`` (B, N, 6); outputs named by
        :data:`symbol.multibox.TRAIN_OUTPUTS`.
    """
    if not 0 < overlap_threshold <= 1:
        raise UserError('overlap_threshold (anchor matching IoU) must be in (0, 1], got %r' % (overlap_threshold,))
    return build(symbol_builder.get_symbol_train, network, data_shape, num_classes, nms_thresh,
                 force_suppress, nms_topk, overrides, overlap_threshold=overlap_threshold)


def get_symbol(network, data_shape, num_classes, nms_thresh=multibox.NMS['nms_thresh'],
               force_suppress=multibox.NMS['force_suppress'], nms_topk=multibox.NMS['nms_topk'], **overrides):
    """The deploy graph of ``network``: input ``data`` (B, 3, S, S), output ``detection`` (B, A, 6).

    Parameters are those of :func:`get_symbol_train`.
    """
    return build(symbol_builder.get_symbol, network, data_shape, num_classes, nms_thresh, force_suppress,
                 nms_topk, overrides)
