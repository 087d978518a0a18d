"""The networks of MXNet's SSD example (resnet50_preact, resnet101_preact, inceptionv3): parameter names
generated here from the example's naming rules, hand-checked shapes and anchor counts, checkpoints written
with the example's names loading with nothing missing, and the model zoo's ImageNet classifiers loading as
``--pretrained`` backbones with nothing newly initialised in the backbone."""
import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from config.schema import from_flat
from core import checkpoint as params
from core.run_dir import RunDir
from evaluate.model import check_params_fit, load_model
from symbol import inceptionv3, resnet_preact, symbol_factory
from train.train_net import initial_params

NUM_CLASSES = 3
BN_ARGS = ('gamma', 'beta')
BN_AUX = ('moving_mean', 'moving_var')
RESNET_UNITS = {'resnet50_preact': (3, 4, 6, 3), 'resnet101_preact': (3, 4, 23, 3)}
RESNET_CHANNELS = (256, 512, 1024, 2048)
EXTRA_FILTERS = (512, 256, 256, 128)   # the example's resnet and inceptionv3 extra layers, positions 2..5
ANCHORS_PER_POSITION = (4, 6, 6, 6, 4, 4)  # 3 ratios + 1 extra size (4) or 5 ratios + 1 (6) per layer


# ---------------------------------------------------------------- the example's naming rules, spelled out
def batchnorm_names(layer):
    """``(args, aux)`` of BatchNorm ``layer``."""
    return ['%s_%s' % (layer, s) for s in BN_ARGS], ['%s_%s' % (layer, s) for s in BN_AUX]


def resnet_feature_names(units):
    """The example's resnet feature layers: MXNet auto-names the k-th (0-based) ``+`` of the graph
    ``_plus<k>``; each unit ends in one, and the example takes the last unit of stages 3 and 4."""
    return ['_plus%d' % (sum(units[:3]) - 1), '_plus%d' % (sum(units) - 1)]


def resnet_backbone_names(units):
    """``(args, aux)`` of the model zoo ResNet up to its last unit (no ``bn1``, ``fc1``)."""
    args, aux = ['conv0_weight'], []
    for layer in ('bn_data', 'bn0'):
        args += batchnorm_names(layer)[0]
        aux += batchnorm_names(layer)[1]
    for stage, num_units in enumerate(units, start=1):
        for unit in range(1, num_units + 1):
            prefix = 'stage%d_unit%d' % (stage, unit)
            for k in (1, 2, 3):
                bn_args, bn_aux = batchnorm_names('%s_bn%d' % (prefix, k))
                args += bn_args + ['%s_conv%d_weight' % (prefix, k)]
                aux += bn_aux
            if unit == 1:
                args.append(prefix + '_sc_weight')
    return args, aux


INCEPTION_BRANCH_UNITS = {  # unit names of a block after '<block>_', by the example's Inception7A..E
    'A': ['conv', 'tower_conv', 'tower_conv_1', 'tower_1_conv', 'tower_1_conv_1', 'tower_1_conv_2',
          'tower_2_conv'],
    'B': ['conv', 'tower_conv', 'tower_conv_1', 'tower_conv_2'],
    'C': ['conv', 'tower_conv', 'tower_conv_1', 'tower_conv_2', 'tower_1_conv', 'tower_1_conv_1',
          'tower_1_conv_2', 'tower_1_conv_3', 'tower_1_conv_4', 'tower_2_conv'],
    'D': ['tower_conv', 'tower_conv_1', 'tower_1_conv', 'tower_1_conv_1', 'tower_1_conv_2', 'tower_1_conv_3'],
    'E': ['conv', 'tower_conv', 'tower_mixed_conv', 'tower_mixed_conv_1', 'tower_1_conv', 'tower_1_conv_1',
          'tower_1_mixed_conv', 'tower_1_mixed_conv_1', 'tower_2_conv'],
}
INCEPTION_BLOCK_KINDS = (('mixed', 'A'), ('mixed_1', 'A'), ('mixed_2', 'A'), ('mixed_3', 'B'), ('mixed_4', 'C'),
                         ('mixed_5', 'C'), ('mixed_6', 'C'), ('mixed_7', 'C'), ('mixed_8', 'D'), ('mixed_9', 'E'),
                         ('mixed_10', 'E'))


def inception_backbone_names():
    """``(args, aux)`` of Inception-v3 up to mixed_10: per unit ``<unit>_conv2d_weight`` and BN
    ``<unit>_batchnorm``."""
    units = ['conv', 'conv_1', 'conv_2', 'conv_3', 'conv_4']
    for block, kind in INCEPTION_BLOCK_KINDS:
        units += ['%s_%s' % (block, unit) for unit in INCEPTION_BRANCH_UNITS[kind]]
    args, aux = [], []
    for unit in units:
        bn_args, bn_aux = batchnorm_names(unit + '_batchnorm')
        args += [unit + '_conv2d_weight'] + bn_args
        aux += bn_aux
    return args, aux


def ssd_names(feature_names, num_extra):
    """The example's extra layers (``multi_feat_<k>``, k counting all feature layers) and heads."""
    names = []
    layers = list(feature_names)
    for k in range(len(feature_names), len(feature_names) + num_extra):
        for conv in ('1x1', '3x3'):
            names += ['multi_feat_%d_conv_%s_conv_%s' % (k, conv, s) for s in ('weight', 'bias')]
        layers.append('multi_feat_%d_conv_3x3_relu' % k)
    for layer in layers:
        for head in ('loc', 'cls'):
            names += ['%s_%s_pred_conv_%s' % (layer, head, s) for s in ('weight', 'bias')]
    return names


def example_names(network):
    """``(args, aux)`` of ``network`` in the SSD example, from the rules above."""
    if network == 'inceptionv3':
        args, aux = inception_backbone_names()
        features = ['ch_concat_mixed_7_chconcat', 'ch_concat_mixed_10_chconcat']
    else:
        args, aux = resnet_backbone_names(RESNET_UNITS[network])
        features = resnet_feature_names(RESNET_UNITS[network])
    return args + ssd_names(features, len(EXTRA_FILTERS)), aux


# ------------------------------------------------------------------------------------------------ helpers
def train_shapes(network, side):
    """``(arg shapes, aux shapes)`` of the train graph, ``data`` and ``label`` left out."""
    symbol = symbol_factory.get_symbol_train(network, side, NUM_CLASSES)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, side, side), label=(1, 4, 6))
    args = dict(zip(symbol.list_arguments(), arg_shapes))
    del args['data'], args['label']
    return args, dict(zip(symbol.list_auxiliary_states(), aux_shapes))


def num_anchors(network, side):
    """A of the deploy graph's (1, A, 6) detections."""
    _, out_shapes, _ = symbol_factory.get_symbol(network, side, NUM_CLASSES).infer_shape(data=(1, 3, side, side))
    return out_shapes[0][1]


def resnet50_example_shapes():
    """``{name: shape}`` of resnet50_preact's backbone by the model zoo's widths, written out by hand."""
    shapes = {'conv0_weight': (64, 3, 7, 7)}
    shapes.update({'bn_data_' + s: (3,) for s in BN_ARGS + BN_AUX})
    shapes.update({'bn0_' + s: (64,) for s in BN_ARGS + BN_AUX})
    in_channels = 64
    for stage, (num_units, channels) in enumerate(zip(RESNET_UNITS['resnet50_preact'], RESNET_CHANNELS), 1):
        inner = channels // 4
        for unit in range(1, num_units + 1):
            prefix = 'stage%d_unit%d' % (stage, unit)
            unit_in = in_channels if unit == 1 else channels
            for k, width in ((1, unit_in), (2, inner), (3, inner)):
                shapes.update({'%s_bn%d_%s' % (prefix, k, s): (width,) for s in BN_ARGS + BN_AUX})
            shapes[prefix + '_conv1_weight'] = (inner, unit_in, 1, 1)
            shapes[prefix + '_conv2_weight'] = (inner, inner, 3, 3)
            shapes[prefix + '_conv3_weight'] = (channels, inner, 1, 1)
            if unit == 1:
                shapes[prefix + '_sc_weight'] = (channels, unit_in, 1, 1)
        in_channels = channels
    return shapes


def resnet50_ssd_example_shapes(num_classes):
    """Backbone, extra layers (1x1 to max(128, F // 2)) and heads of the example's resnet50, by hand."""
    shapes = resnet50_example_shapes()
    layers = [('_plus12', 1024), ('_plus15', 2048)]
    in_channels = 2048
    for k, filters in enumerate(EXTRA_FILTERS, start=2):
        squeezed = max(128, filters // 2)
        shapes.update({'multi_feat_%d_conv_1x1_conv_weight' % k: (squeezed, in_channels, 1, 1),
                       'multi_feat_%d_conv_1x1_conv_bias' % k: (squeezed,),
                       'multi_feat_%d_conv_3x3_conv_weight' % k: (filters, squeezed, 3, 3),
                       'multi_feat_%d_conv_3x3_conv_bias' % k: (filters,)})
        layers.append(('multi_feat_%d_conv_3x3_relu' % k, filters))
        in_channels = filters
    for (layer, channels), anchors in zip(layers, ANCHORS_PER_POSITION):
        for head, outputs in (('loc', anchors * 4), ('cls', anchors * (num_classes + 1))):
            shapes['%s_%s_pred_conv_weight' % (layer, head)] = (outputs, channels, 3, 3)
            shapes['%s_%s_pred_conv_bias' % (layer, head)] = (outputs,)
    return shapes


def save_example_checkpoint(prefix, epoch, shapes, aux_names):
    """What the example's ``mx.model.save_checkpoint`` writes: ``arg:``/``aux:`` arrays, random values."""
    arrays = {('aux:' if name in aux_names else 'arg:') + name: mx.nd.random.uniform(-1, 1, shape)
              for name, shape in shapes.items()}
    mx.nd.save(params.checkpoint_paths(prefix, epoch)[1], arrays)


# ------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('network', ['resnet50_preact', 'resnet101_preact', 'inceptionv3'])
def test_parameter_names_are_the_examples(network):
    args, aux = train_shapes(network, 300)
    expected_args, expected_aux = example_names(network)
    assert len(expected_args) == len(set(expected_args)) and len(expected_aux) == len(set(expected_aux))
    assert sorted(args) == sorted(expected_args)
    assert sorted(aux) == sorted(expected_aux)


def test_parameter_counts_by_hand():
    # resnet50: bn_data, conv0, bn0 (4 + 1 + 4), 16 units of 3 BN (4 each) + 3 convs, 4 shortcuts
    assert sum(map(len, resnet_backbone_names(RESNET_UNITS['resnet50_preact']))) == 9 + 16 * 15 + 4 == 253
    assert sum(map(len, resnet_backbone_names(RESNET_UNITS['resnet101_preact']))) == 9 + 33 * 15 + 4 == 508
    # inceptionv3: 5 stem units + 3 A x 7 + B 4 + 4 C x 10 + D 6 + 2 E x 9 = 94 units of 5 names each
    assert sum(map(len, inception_backbone_names())) == 94 * 5
    assert len(ssd_names(['a', 'b'], 4)) == 4 * 4 + 6 * 4   # 4 extras x 2 convs x 2, 6 layers x 2 heads x 2


def test_resnet_preact_shapes_by_hand():
    args, aux = train_shapes('resnet50_preact', 256)
    assert args['conv0_weight'] == (64, 3, 7, 7)
    assert args['stage1_unit1_sc_weight'] == (256, 64, 1, 1)
    assert args['stage2_unit1_conv2_weight'] == (128, 128, 3, 3)
    assert args['stage4_unit1_sc_weight'] == (2048, 1024, 1, 1)
    assert args['stage4_unit3_conv3_weight'] == (2048, 512, 1, 1)
    assert aux['stage4_unit3_bn1_moving_var'] == (2048,)
    # heads: 4 anchors x (1 + 3 classes) on the stride-16 output, 6 x 4 offsets on the stride-32 one
    assert args['_plus12_cls_pred_conv_weight'] == (16, 1024, 3, 3)
    assert args['_plus15_loc_pred_conv_weight'] == (24, 2048, 3, 3)
    # extra layers: 1x1 to max(128, F // 2), so the last one (F = 128) keeps 128
    assert args['multi_feat_2_conv_1x1_conv_weight'] == (256, 2048, 1, 1)
    assert args['multi_feat_5_conv_1x1_conv_weight'] == (128, 256, 1, 1)
    assert args['multi_feat_5_conv_3x3_relu_cls_pred_conv_weight'] == (16, 128, 3, 3)
    assert train_shapes('resnet101_preact', 256)[0]['_plus29_cls_pred_conv_weight'] == (16, 1024, 3, 3)


def test_resnet50_preact_every_shape_matches_the_hand_written_example():
    args, aux = train_shapes('resnet50_preact', 512)
    assert dict(args, **aux) == resnet50_ssd_example_shapes(NUM_CLASSES)


def test_inceptionv3_shapes_by_hand():
    args, _ = train_shapes('inceptionv3', 300)
    assert args['conv_conv2d_weight'] == (32, 3, 3, 3)
    assert args['conv_4_conv2d_weight'] == (192, 80, 3, 3)
    assert args['mixed_tower_conv_1_conv2d_weight'] == (64, 48, 5, 5)
    assert args['mixed_4_tower_1_conv_1_conv2d_weight'] == (128, 128, 7, 1)
    assert args['mixed_8_tower_conv_1_conv2d_weight'] == (320, 192, 3, 3)
    assert args['mixed_10_tower_1_mixed_conv_1_conv2d_weight'] == (384, 384, 3, 1)
    # mixed_7: 4 x 192 channels; mixed_10: 320 + 4 x 384 + 192 = 2048
    assert args['ch_concat_mixed_7_chconcat_cls_pred_conv_weight'] == (16, 768, 3, 3)
    assert args['ch_concat_mixed_10_chconcat_loc_pred_conv_weight'] == (24, 2048, 3, 3)
    assert args['multi_feat_2_conv_1x1_conv_weight'] == (256, 2048, 1, 1)


@pytest.mark.parametrize('backbone, kwargs, side, expected', [
    # ceil(S / 4), ceil(S / 8), ...: 300 -> 150 (conv0) -> 75 (pooling) -> 38 -> 19 -> 10
    (resnet_preact, {'num_layers': 50}, 300, {'_plus2': (256, 75), '_plus6': (512, 38), '_plus12': (1024, 19),
                                              '_plus15': (2048, 10)}),
    (resnet_preact, {'num_layers': 101}, 64, {'_plus2': (256, 16), '_plus6': (512, 8), '_plus29': (1024, 4),
                                              '_plus32': (2048, 2)}),
    # mixed_2: 64 + 64 + 96 + 64 channels; sides as in the anchor test below
    (inceptionv3, {}, 300, {'ch_concat_mixed_2_chconcat': (288, 35), 'ch_concat_mixed_7_chconcat': (768, 17),
                            'ch_concat_mixed_10_chconcat': (2048, 8)}),
    (inceptionv3, {}, 512, {'ch_concat_mixed_2_chconcat': (288, 61), 'ch_concat_mixed_7_chconcat': (768, 30),
                            'ch_concat_mixed_10_chconcat': (2048, 14)}),
])
def test_feature_layers_channels_and_sides(backbone, kwargs, side, expected):
    layers = backbone.feature_layers(mx.sym.Variable('data'), **kwargs)
    _, out_shapes, _ = mx.sym.Group(list(layers.values())).infer_shape(data=(1, 3, side, side))
    assert list(layers) == list(expected)
    assert [shape[1:] for shape in out_shapes] == [(c, n, n) for c, n in expected.values()]
    assert [layer.name for layer in layers.values()] == list(expected)


@pytest.mark.parametrize('network, side, sides, total', [
    # ceil(S / 16), ceil(S / 32), then 3x3 stride-2 pad-1 extras: ceil(n / 2)
    ('resnet50_preact', 300, (19, 10, 5, 3, 2, 1), 1444 + 600 + 150 + 54 + 16 + 4),
    ('resnet101_preact', 512, (32, 16, 8, 4, 2, 1), 4096 + 1536 + 384 + 96 + 16 + 4),
    ('resnet50_preact', 96, (6, 3, 2, 1, 1, 1), 144 + 54 + 24 + 6 + 4 + 4),
    # f(n) = (n - 3) // 2 + 1: 512 -> 255 -> 253 -> 126 -> 124 -> 61 (mixed_2) -> 30 (mixed_7) -> 14 (mixed_10)
    ('inceptionv3', 512, (30, 14, 7, 4, 2, 1), 3600 + 1176 + 294 + 96 + 16 + 4),
    # 300 -> 149 -> 147 -> 73 -> 71 -> 35 -> 17 -> 8
    ('inceptionv3', 300, (17, 8, 4, 2, 1, 1), 1156 + 384 + 96 + 24 + 4 + 4),
])
def test_anchor_counts_from_feature_sides(network, side, sides, total):
    assert sum(n * n * a for n, a in zip(sides, ANCHORS_PER_POSITION)) == total
    assert num_anchors(network, side) == total


def test_unsupported_settings_are_one_line_errors():
    with pytest.raises(UserError, match=r'^network \'inceptionv3\' does not support data_shape 256; valid: 300, '
                                        r'512$'):
        symbol_factory.get_symbol('inceptionv3', 256, NUM_CLASSES)
    with pytest.raises(UserError, match=r'^resnet_preact with 34 layers is not available; choose num_layers '
                                        r'from 50, 101$'):
        symbol_factory.get_symbol('resnet50_preact', 256, NUM_CLASSES, num_layers=34)
    with pytest.raises(UserError, match=r'^network \'resnet50_preact\' does not support data_shape 100'):
        symbol_factory.get_symbol('resnet50_preact', 100, NUM_CLASSES)


def test_example_checkpoint_loads_with_nothing_missing(tmp_path):
    prefix = str(tmp_path / 'resnet50_ssd_512')
    shapes = resnet50_ssd_example_shapes(num_classes=20)
    aux_names = set(example_names('resnet50_preact')[1])
    save_example_checkpoint(prefix, 240, shapes, aux_names)
    model = load_model(prefix, 240, network='resnet50_preact', data_shape=512, num_class=20)
    symbol = model.deploy_symbol()
    check_params_fit(model, symbol)   # raises on any missing parameter or wrong shape
    assert set(model.arg_params) | set(model.aux_params) == set(shapes)
    assert set(model.aux_params) == aux_names
    deploy_args, deploy_aux = model.deploy_params()
    assert len(deploy_args) + len(deploy_aux) == len(shapes) == 253 + 40


def pretrained_report(network, prefix, epoch):
    """The load report of ``--pretrained <prefix> --epoch <epoch>`` for ``network`` at 256 (or 300)."""
    side = 300 if network == 'inceptionv3' else 256
    settings = symbol_factory.get_config(network, side)
    args, aux = train_shapes(network, side)
    config = from_flat(network=network, data_shape=side, pretrained=prefix, epoch=epoch, class_names=['a', 'b', 'c'])
    _, _, report = initial_params(config, RunDir(prefix), dict(args, **aux), settings, set(aux))
    return report


def test_model_zoo_resnet50_classifier_loads_as_pretrained_backbone(tmp_path):
    prefix = str(tmp_path / 'resnet-50')
    shapes = resnet50_example_shapes()
    shapes.update({'bn1_' + s: (2048,) for s in BN_ARGS + BN_AUX})   # the classifier's final BN and fc1
    shapes.update({'fc1_weight': (1000, 2048), 'fc1_bias': (1000,)})
    save_example_checkpoint(prefix, 0, shapes, {name for name in shapes if name.endswith(BN_AUX)})
    report = pretrained_report('resnet50_preact', prefix, 0)
    features = resnet_feature_names(RESNET_UNITS['resnet50_preact'])
    assert sorted(report.initialised) == sorted(ssd_names(features, len(EXTRA_FILTERS)))   # heads, extras only
    assert len(report.loaded) == 253 and not report.mismatched
    assert sorted(report.unused) == ['bn1_beta', 'bn1_gamma', 'bn1_moving_mean', 'bn1_moving_var', 'fc1_bias',
                                     'fc1_weight']
    by_path = pretrained_report('resnet50_preact', prefix + '-0000.params', 0)   # the file itself, not prefix
    assert (by_path.loaded, by_path.initialised, by_path.unused) == (report.loaded, report.initialised,
                                                                    report.unused)
    assert by_path.source == prefix + '-0000.params'


def test_inceptionv3_classifier_loads_as_pretrained_backbone(tmp_path):
    prefix = str(tmp_path / 'Inception-7')
    args, aux = inception_backbone_names()
    our_args, our_aux = train_shapes('inceptionv3', 300)   # sizes from the graph, names from the rule
    shapes = {name: dict(our_args, **our_aux)[name] for name in args + aux}
    shapes.update({'fc1_weight': (1000, 2048), 'fc1_bias': (1000,)})
    save_example_checkpoint(prefix, 1, shapes, set(aux))
    report = pretrained_report('inceptionv3', prefix, 1)
    features = ['ch_concat_mixed_7_chconcat', 'ch_concat_mixed_10_chconcat']
    assert sorted(report.initialised) == sorted(ssd_names(features, len(EXTRA_FILTERS)))
    assert len(report.loaded) == 94 * 5 and sorted(report.unused) == ['fc1_bias', 'fc1_weight']


def test_resnet50_preact_detects_at_64_pixels():
    # sides 4 (stride 16), 2 (stride 32), then 1, 1, 1, 1: 16 * 4 + 4 * 6 + 6 + 6 + 4 + 4 = 108 anchors
    deploy = symbol_factory.get_symbol('resnet50_preact', 64, NUM_CLASSES)
    anchors = deploy.get_internals()['multibox_anchors_output']
    group = mx.sym.Group([deploy, anchors])
    executor = group.simple_bind(mx.cpu(), data=(2, 3, 64, 64), grad_req='null')
    mx.random.seed(0)
    for name, array in list(executor.arg_dict.items()) + list(executor.aux_dict.items()):
        if name != 'data':
            array[:] = mx.nd.random.uniform(0.5, 1, array.shape) if name.endswith('_var') else \
                mx.nd.random.normal(0, 0.05, array.shape)
    outputs = executor.forward(is_train=False, data=mx.nd.ones((2, 3, 64, 64)))
    detections, boxes = [out.asnumpy() for out in outputs]
    assert detections.shape == (2, 108, 6) and boxes.shape == (1, 108, 4)
    # the first anchor of _plus12: centre (1/8, 1/8) of the 4x4 map, side 0.1
    assert np.allclose(boxes[0, 0], [0.075, 0.075, 0.175, 0.175], atol=1e-6)
    # the last: centre (1/2, 1/2) of multi_feat_5's 1x1 map, ratio 1/2: width .88 / sqrt(2), height .88 * sqrt(2)
    half_w, half_h = 0.88 / np.sqrt(2) / 2, 0.88 * np.sqrt(2) / 2
    assert np.allclose(boxes[0, -1], [0.5 - half_w, 0.5 - half_h, 0.5 + half_w, 0.5 + half_h], atol=1e-6)
    kept = detections[detections[:, :, 0] >= 0]
    assert len(kept) and ((kept[:, 1] >= 0) & (kept[:, 1] <= 1)).all() and (kept[:, 0] < NUM_CLASSES).all()
