"""ResNet v1 and MobileNetV2 backbones: exposed layer shapes, and equivalence with gluoncv's models.

gluoncv's models are built locally with ``pretrained=False`` (never downloaded) and given random weights;
copying them through ``gluoncv_name_map`` into our symbols must reproduce gluoncv's outputs.
"""
import functools

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import get_model

from config.errors import UserError
from symbol import mobilenetv2, resnet

# key -> (channels, stride), read off the ResNet paper's table 1 (conv2_x .. conv5_x)
RESNET_LAYERS = {'stage1': (256, 4), 'stage2': (512, 8), 'stage3': (1024, 16), 'stage4': (2048, 32)}
# multiplier -> channels of block2, block5, block12, block13_expand, block16, head: int(c * m) of
# 24, 32, 96, 6 * 96, 320 and a fixed 1280
MOBILENETV2_CHANNELS = {1.0: (24, 32, 96, 576, 320, 1280),
                        0.5: (12, 16, 48, 288, 160, 1280),
                        0.25: (6, 8, 24, 144, 80, 1280)}
MOBILENETV2_STRIDES = {'block2': 4, 'block5': 8, 'block12': 16, 'block13_expand': 16, 'block16': 32, 'head': 32}
GLUONCV_NAMES = {('resnet', 50): 'resnet50_v1', ('resnet', 101): 'resnet101_v1',
                 ('mobilenetv2', 1.0): 'mobilenetv2_1.0', ('mobilenetv2', 0.25): 'mobilenetv2_0.25'}
BACKBONES = {'resnet': resnet, 'mobilenetv2': mobilenetv2}


def output_shapes(layers, side, batch=2):
    """``{key: shape}`` of every exposed layer for a (batch, 3, side, side) input."""
    _, shapes, _ = mx.sym.Group(list(layers.values())).infer_shape(data=(batch, 3, side, side))
    return dict(zip(layers, shapes))


def our_shapes(layers, side=64):
    """``{parameter or auxiliary-state name: shape}`` of the symbol holding ``layers``, without ``data``."""
    group = mx.sym.Group(list(layers.values()))
    arg_shapes, _, aux_shapes = group.infer_shape(data=(1, 3, side, side))
    shapes = dict(zip(group.list_arguments(), arg_shapes))
    shapes.update(zip(group.list_auxiliary_states(), aux_shapes))
    del shapes['data']
    return shapes


@functools.lru_cache(maxsize=None)
def gluoncv_net(family, width):
    """gluoncv's model for (``'resnet'``, depth) or (``'mobilenetv2'``, multiplier), random weights, no download.

    Every parameter, BatchNorm statistics included, is drawn at random so that a wrongly mapped one shows.
    """
    net = get_model(GLUONCV_NAMES[(family, width)], pretrained=False)
    net.initialize()
    net(mx.nd.zeros((1, 3, 64, 64)))  # completes gluon's deferred shape inference
    rng = np.random.RandomState(7)
    for name, param in net.collect_params().items():
        shape = param.shape
        if name.endswith('weight'):
            value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif name.endswith('gamma'):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith('running_var'):  # above 1, which keeps 50 layers' activations in single digits
            value = rng.uniform(2.0, 4.0, shape)
        elif name.endswith('beta'):  # wide enough that some ReLU6 clip at 6
            value = rng.normal(0, 1.0, shape)
        else:  # bias, running_mean
            value = rng.normal(0, 0.1, shape)
        param.set_data(mx.nd.array(value))
    return net


def gluoncv_feature_params(net):
    """``{name without the network prefix: Parameter}`` of the feature part (no classifier)."""
    return {name[len(net.prefix):]: param for name, param in net.features.collect_params().items()}


def run_ours(layers, name_map, net, image):
    """Forward ``image`` through our ``layers`` holding ``net``'s weights, BatchNorm in inference mode.

    Returns ``{key: (B, C, H, W) numpy array}``.
    """
    theirs = gluoncv_feature_params(net)
    executor = mx.sym.Group(list(layers.values())).simple_bind(mx.cpu(), data=image.shape, grad_req='null')
    for arrays in (executor.arg_dict, executor.aux_dict):
        for name, array in arrays.items():
            if name != 'data':
                array[:] = theirs[name_map[name]].data()
    outputs = executor.forward(is_train=False, data=mx.nd.array(image))
    return {key: output.asnumpy() for key, output in zip(layers, outputs)}


@pytest.mark.parametrize('side', [224, 512])
@pytest.mark.parametrize('num_layers', [50, 101])
def test_resnet_layers_have_stride_4_to_32(num_layers, side):
    layers = resnet.feature_layers(mx.sym.Variable('data'), num_layers)
    shapes = output_shapes(layers, side)
    assert list(layers) == ['stage1', 'stage2', 'stage3', 'stage4']
    for key, (channels, stride) in RESNET_LAYERS.items():
        assert shapes[key] == (2, channels, side // stride, side // stride)
    assert layers['stage3'].name == 'stage3_unit%d_relu' % (6 if num_layers == 50 else 23)


@pytest.mark.parametrize('side', [224, 512])
@pytest.mark.parametrize('multiplier', [1.0, 0.5, 0.25])
def test_mobilenetv2_layers_have_stride_4_to_32(multiplier, side):
    layers = mobilenetv2.feature_layers(mx.sym.Variable('data'), multiplier)
    shapes = output_shapes(layers, side)
    assert list(layers) == list(MOBILENETV2_STRIDES)
    for key, channels in zip(MOBILENETV2_STRIDES, MOBILENETV2_CHANNELS[multiplier]):
        stride = MOBILENETV2_STRIDES[key]
        assert shapes[key] == (2, channels, side // stride, side // stride)


def test_unsupported_depth_and_width_are_one_line_errors():
    data = mx.sym.Variable('data')
    with pytest.raises(UserError, match=r'^resnet with 34 layers .*choose num_layers from 50, 101$'):
        resnet.feature_layers(data, 34)
    with pytest.raises(UserError, match=r'^mobilenetv2 width multiplier 0\.3 .*choose one of 1\.0, 0\.75, 0\.5, '
                                        r'0\.25$'):
        mobilenetv2.feature_layers(data, 0.3)
    with pytest.raises(UserError):
        resnet.gluoncv_name_map(152)


def test_resnet50_has_as_many_parameters_as_gluoncv_features():
    ours = our_shapes(resnet.feature_layers(mx.sym.Variable('data'), 50))
    theirs = gluoncv_feature_params(gluoncv_net('resnet', 50))
    assert len(ours) == len(theirs) == 297  # 53 convs (4 shortcuts) + 53 BNs x 4 + 32 biased 1x1 convs
    assert sum(np.prod(shape) for shape in ours.values()) == sum(p.data().size for p in theirs.values())


@pytest.mark.parametrize('family, width', sorted(GLUONCV_NAMES, key=str))
def test_name_map_is_a_bijection_onto_gluoncv_features_with_equal_shapes(family, width):
    backbone = BACKBONES[family]
    ours = our_shapes(backbone.feature_layers(mx.sym.Variable('data'), width))
    theirs = gluoncv_feature_params(gluoncv_net(family, width))
    name_map = backbone.gluoncv_name_map(width)
    assert set(name_map) == set(ours)
    assert set(name_map.values()) == set(theirs)
    assert len(set(name_map.values())) == len(name_map)
    for our_name, their_name in name_map.items():
        assert ours[our_name] == theirs[their_name].shape, (our_name, their_name)


def test_resnet50_reproduces_gluoncv_outputs_from_mapped_weights():
    net = gluoncv_net('resnet', 50)
    image = np.random.RandomState(0).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    ours = run_ours(resnet.feature_layers(mx.sym.Variable('data'), 50), resnet.gluoncv_name_map(50), net, image)
    children = list(net.features._children.values())  # conv, bn, relu, pool, stage1..stage4, global pooling
    x = functools.reduce(lambda y, layer: layer(y), children[:4], mx.nd.array(image))
    for key, stage in zip(RESNET_LAYERS, children[4:8]):
        x = stage(x)
        expected = x.asnumpy()
        assert np.abs(expected).max() > 0.1, key  # not a collapsed activation
        assert np.abs(ours[key] - expected).max() < 1e-3, key


def test_mobilenetv2_reproduces_gluoncv_outputs_from_mapped_weights():
    net = gluoncv_net('mobilenetv2', 1.0)
    image = np.random.RandomState(0).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    ours = run_ours(mobilenetv2.feature_layers(mx.sym.Variable('data'), 1.0),
                    mobilenetv2.gluoncv_name_map(1.0), net, image)
    children = list(net.features._children.values())  # conv, bn, relu6, block0..block16, conv, bn, relu6, pool
    expected, x = {}, mx.nd.array(image)
    for index, layer in enumerate(children[:-1]):
        if index == 3 + 13:  # block13's expansion: the first three layers of its body
            expected['block13_expand'] = functools.reduce(lambda y, part: part(y),
                                                          list(layer.out._children.values())[:3], x)
        x = layer(x)
        if 3 <= index < 20 and index - 3 in mobilenetv2.EXPOSED_BLOCKS:
            expected['block%d' % (index - 3)] = x
    expected['head'] = x
    assert set(expected) == set(ours)
    assert (ours['block13_expand'] == 6.0).any()  # ReLU6 clipped somewhere, so a plain ReLU would show
    for key, value in expected.items():
        assert np.abs(value.asnumpy()).max() > 0.1, key
        assert np.abs(ours[key] - value.asnumpy()).max() < 1e-3, key


@pytest.mark.parametrize('frozen', [True, False])
def test_use_global_stats_makes_training_forward_use_moving_statistics(frozen):
    block5 = mobilenetv2.feature_layers(mx.sym.Variable('data'), 0.25, use_global_stats=frozen)['block5']
    arg_shapes, _, aux_shapes = block5.infer_shape(data=(2, 3, 64, 64))
    rng = np.random.RandomState(3)
    args = {name: mx.nd.array(rng.uniform(0.5, 1.0, shape)) for name, shape in
            zip(block5.list_arguments(), arg_shapes)}
    aux = {name: mx.nd.full(shape, 2.0) for name, shape in  # far from the batch's own statistics
           zip(block5.list_auxiliary_states(), aux_shapes)}

    def forward(is_train):
        # grad_req='write' as in training: a grad_req='null' executor gets MXNet's MKLDNN inference pass, which
        # folds BatchNorm into the convolutions whatever is_train says
        executor = block5.bind(mx.cpu(), args=dict(args), aux_states={k: v.copy() for k, v in aux.items()},
                               args_grad={k: mx.nd.zeros(v.shape) for k, v in args.items()}, grad_req='write')
        return executor.forward(is_train=is_train)[0].asnumpy()

    assert np.allclose(forward(True), forward(False), rtol=1e-4, atol=1e-5) == frozen
