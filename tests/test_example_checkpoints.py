"""Checkpoints of MXNet's SSD example (apache/mxnet v1.x ``example/ssd``) load here, and ours load there.

The example names its parameters by rules (``example/ssd/symbol/common.py``, ``vgg16_reduced.py``): the
VGG convolutions ``conv<g>_<i>`` and ``fc6``/``fc7``; the L2-normalization scale ``relu4_3_scale``; extra
layer ``k`` (0-based position among all feature layers) ``multi_feat_<k>_conv_1x1_conv`` and
``multi_feat_<k>_conv_3x3_conv``; the heads ``<layer>_loc_pred_conv`` / ``<layer>_cls_pred_conv`` on
``relu4_3``, ``relu7`` and every ``multi_feat_<k>_conv_3x3_relu``. :func:`example_vgg16_reduced_names` writes
those rules out; a checkpoint with exactly those names (no ``-config.json``, no ``.classes``: what the
example's ``mx.model.save_checkpoint`` leaves) is scored, fine-tuned and deployed with nothing initialised anew.
"""
import os

import mxnet as mx
import numpy as np
import pytest

from config.defaults import EXAMPLE_MEAN_PIXELS
from config.errors import UserError, run_cli
from core.checkpoint import load_checkpoint_params, save_params
from core.run_dir import RunDir
from evaluate.model import check_params_fit, load_model
from symbol import common, symbol_factory
from tests.test_train import make_dataset, tiny_run
from tools.scripts import load_script

VGG_GROUPS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))   # (group, convolutions) of VGG-16
EXTRA_LAYERS = {300: 4, 512: 5}                          # SSD300 / SSD512 extra layers after relu7
NUM_CLASSES = 3


def example_vgg16_reduced_names(data_shape):
    """The example's vgg16_reduced parameter names at ``data_shape``, from its naming rules (sorted)."""
    layers = ['conv%d_%d' % (group, index) for group, count in VGG_GROUPS for index in range(1, count + 1)]
    layers += ['fc6', 'fc7']
    positions = range(2, 2 + EXTRA_LAYERS[data_shape])            # after relu4_3 and relu7
    layers += ['multi_feat_%d_conv_%s_conv' % (k, kind) for k in positions for kind in ('1x1', '3x3')]
    feature_layers = ['relu4_3', 'relu7'] + ['multi_feat_%d_conv_3x3_relu' % k for k in positions]
    layers += ['%s_%s_pred_conv' % (layer, head) for layer in feature_layers for head in ('loc', 'cls')]
    return sorted(['%s_%s' % (layer, kind) for layer in layers for kind in ('weight', 'bias')] +
                  ['relu4_3_scale'])


@pytest.mark.parametrize('data_shape, count', [(300, 71), (512, 79)])
def test_our_vgg16_reduced_names_are_the_examples(data_shape, count):
    # 15 convolutions + 4 (5) extra layers x 2 + 6 (7) layers x 2 heads, each weight and bias, + 1 scale
    expected = example_vgg16_reduced_names(data_shape)
    assert len(expected) == count == 2 * (15 + 2 * EXTRA_LAYERS[data_shape] + 2 * (2 + EXTRA_LAYERS[data_shape])) + 1
    symbol = symbol_factory.get_symbol_train('vgg16_reduced', data_shape, NUM_CLASSES)
    assert sorted(set(symbol.list_arguments()) - {'data', 'label'}) == expected
    assert symbol.list_auxiliary_states() == []


def example_checkpoint(prefix, data_shape=300, epoch=1):
    """A vgg16_reduced checkpoint as the example saves it: the example's names, random values, no config.

    Shapes: the convolutions' from the graph; e.g. ``multi_feat_2_conv_1x1_conv_weight`` (256, 1024, 1, 1).
    """
    names = example_vgg16_reduced_names(data_shape)
    symbol = symbol_factory.get_symbol_train('vgg16_reduced', data_shape, NUM_CLASSES)
    shapes = dict(zip(symbol.list_arguments(), symbol.infer_shape(
        data=(1, 3, data_shape, data_shape), label=(1, 1, 6))[0]))
    rng = np.random.RandomState(0)
    arg_params = {name: mx.nd.array(rng.normal(0, 0.01, shapes[name])) for name in names}
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    symbol.save(prefix + '-symbol.json')
    save_params('%s-%04d.params' % (prefix, epoch), arg_params, {})
    return arg_params


@pytest.fixture(scope='module')
def example(tmp_path_factory):
    """(prefix of an example-style checkpoint, epoch 1; train .rec; val .rec) with three classes."""
    root = tmp_path_factory.mktemp('example')
    train_rec, val_rec = make_dataset(root, 4, 4, classes='circle,square,ring')
    prefix = str(root / 'model' / 'ssd_vgg16_reduced_300')
    example_checkpoint(prefix)
    return prefix, train_rec, val_rec


EXAMPLE_FLAGS = ['--network', 'vgg16_reduced', '--data-shape', '300', '--num-class', str(NUM_CLASSES)]


def test_example_checkpoint_is_scored_with_every_parameter_and_the_examples_mean(example, tmp_path):
    prefix, _, val_rec = example
    model = load_model(prefix, 1, network='vgg16_reduced', data_shape=300, num_class=NUM_CLASSES)
    assert model.mean_pixels == EXAMPLE_MEAN_PIXELS == (123, 117, 104)
    check_params_fit(model, model.deploy_symbol())                  # raises when one parameter is missing
    script = load_script('evaluate.py')
    summary = run_cli(script.main, script.parse_args(
        ['--rec-path', val_rec, '--prefix', prefix, '--epoch', '1', '--cpu', '--batch-size', '2',
         '--out', str(tmp_path / 'eval')] + EXAMPLE_FLAGS))
    assert summary['num_images'] == 4 and summary['class_names'] == ['class_0', 'class_1', 'class_2']


def test_example_checkpoint_fine_tunes_with_nothing_initialised_anew(example, tmp_path):
    prefix, train_rec, _ = example
    ours = str(tmp_path / 'tuned')
    for suffix in ('-symbol.json', '-0001.params'):
        with open(prefix + suffix, 'rb') as source, open(ours + suffix, 'wb') as target:
            target.write(source.read())
    tiny_run(train_rec, ours, network='vgg16_reduced', data_shape=300, batch_size=2, finetune=1, end_epoch=2,
             lr=1e-4, log=ours + '.log')
    assert 'weights from %s-0001.params: 71 loaded, 0 newly initialised, 0 shape mismatches, 0 unused' % ours \
        in open(ours + '.log').read()
    tuned, _ = load_checkpoint_params(ours, 2, 'test')
    assert sorted(tuned) == example_vgg16_reduced_names(300)      # ours load in the example: same names


def test_example_checkpoint_deploys_with_every_parameter(example):
    prefix, _, _ = example
    script = load_script('deploy.py')
    paths = run_cli(script.main, script.parse_args(['--prefix', prefix, '--epoch', '1'] + EXAMPLE_FLAGS))
    deployed = mx.sym.load(paths.symbol)
    arg_params, _ = load_checkpoint_params(paths.prefix, 1, 'test')
    assert set(arg_params) == set(deployed.list_arguments()) - {'data'}
    assert len(arg_params) == 71


def test_a_network_the_checkpoint_does_not_fit_names_the_one_it_fits(example):
    prefix, _, _ = example
    model = load_model(prefix, 1, network='mobilenet', data_shape=320, num_class=NUM_CLASSES)
    with pytest.raises(UserError, match=r'lacks \d+ parameters of network mobilenet .*; check --network; its '
                                        r'backbone fits --network vgg16_reduced$'):
        check_params_fit(model, model.deploy_symbol())


def test_the_projects_earlier_extra_layer_names_still_load(tmp_path):
    train_rec, _ = make_dataset(tmp_path, 8, 2)
    prefix = str(tmp_path / 'new')
    tiny_run(train_rec, prefix)                   # mobilenet0.25: relu22, relu26 + 4 extra layers
    current, aux_params = load_checkpoint_params(prefix, 1, 'test')
    # extra layer n (1-based) was 'extra<n>'; it is at position n + 1 after the two backbone layers
    parts = {'1x1_conv': '1x1', '3x3_conv': '3x3', '3x3_relu_loc_pred_conv': 'loc_pred_conv',
             '3x3_relu_cls_pred_conv': 'cls_pred_conv'}
    legacy = {name: value for name, value in current.items() if not name.startswith('multi_feat_')}
    for n in range(1, 5):
        for new_part, old_part in parts.items():
            for kind in ('weight', 'bias'):
                legacy['extra%d_%s_%s' % (n, old_part, kind)] = current['multi_feat_%d_conv_%s_%s' % (
                    n + 1, new_part, kind)]
    assert legacy['extra2_cls_pred_conv_weight'] is current['multi_feat_3_conv_3x3_relu_cls_pred_conv_weight']
    assert len(legacy) == len(current) and not any(name.startswith('multi_feat') for name in legacy)
    save_params(str(tmp_path / 'old-0001.params'), legacy, aux_params)
    reloaded, _ = load_checkpoint_params(str(tmp_path / 'old'), 1, 'test')
    assert sorted(reloaded) == sorted(current)
    for name, value in current.items():
        assert np.array_equal(reloaded[name].asnumpy(), value.asnumpy()), name
    assert common.rename_legacy_extra_layers(list(current)) == {}       # current names stay as they are


def test_resume_that_cannot_load_names_the_missing_parameters(tmp_path):
    train_rec, _ = make_dataset(tmp_path, 8, 2)
    prefix = str(tmp_path / 'run')
    tiny_run(train_rec, prefix)
    arg_params, aux_params = load_checkpoint_params(prefix, 1, 'test')
    for name in ('relu26_cls_pred_conv_bias', 'multi_feat_5_conv_3x3_conv_weight'):
        del arg_params[name]
    save_params(prefix + '-0001.params', arg_params, aux_params)
    with pytest.raises(UserError) as error:
        tiny_run(train_rec, prefix, resume=1, end_epoch=2)
    message = str(error.value)
    assert message.startswith('--resume 1: %s-0001.params does not fit the network: 2 parameters missing from '
                              'the file (' % prefix)
    assert 'relu26_cls_pred_conv_bias' in message and 'multi_feat_5_conv_3x3_conv_weight' in message
    assert message.endswith('same --network mobilenet0.25 and --data-shape 64; its backbone fits --network '
                            'mobilenet0.25') and '\n' not in message


def test_resume_with_another_layout_says_what_the_checkpoint_was_trained_with(tmp_path):
    train_rec, _ = make_dataset(tmp_path, 8, 2)
    prefix = str(tmp_path / 'run')
    tiny_run(train_rec, prefix)
    layout = dict(ratios=((1,),) * 6)           # 2 anchors per position instead of 4: other head shapes
    with pytest.raises(UserError) as error:
        tiny_run(train_rec, prefix, resume=1, end_epoch=2, network_overrides=layout)
    message = str(error.value)
    # 6 layers x 2 heads x (weight, bias); relu22: 4 anchors x 7 scores in the file, 2 x 7 now
    assert 'does not fit the network: 24 of another shape (relu22_cls_pred_conv_weight (28, 128, 3, 3) in the ' \
           'file, (14, 128, 3, 3) here, ' in message and 'missing' not in message
    assert RunDir(prefix).read_config().model.network_overrides is None
    assert message.endswith("it was trained with network overrides None (checkpoint) vs {'ratios': [[1], [1], "
                            "[1], [1], [1], [1]]} (now)")
