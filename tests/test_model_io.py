"""evaluate/model.py: a trained checkpoint reloads with its training configuration; bad input is one line."""
import os
import shutil

import cv2
import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from core.checkpoint import available_epochs
from evaluate.model import bind_detector, load_model, preprocess_image
from symbol import multibox
from tests.test_train import make_dataset, tiny_run

OVERRIDES = dict(from_layers=('relu22', 'relu26'), extra_filters=(), extra_strides=(), extra_pads=(),
                 sizes=((0.2, 0.3), (0.5, 0.7)), ratios=((1, 2, 0.5),) * 2, normalizations=(None, None))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two epochs of a tiny model with network overrides and input std; returns (prefix, val_rec)."""
    root = tmp_path_factory.mktemp('model_io')
    train_rec, val_rec = make_dataset(root, 24, 8, classes='circle,square,ring')
    prefix = str(root / 'm' / 'ssd')
    tiny_run(train_rec, prefix, end_epoch=2, network_overrides=OVERRIDES, std_pixels=(58.0, 57.0, 56.0),
             nms_thresh=0.3, lr=0.01)
    return prefix, val_rec


def test_configuration_and_classes_come_from_the_checkpoint(trained):
    prefix, _ = trained
    model = load_model(prefix, 2)
    assert (model.network, model.data_shape, model.class_names) == ('mobilenet0.25', 64, ('circle', 'square',
                                                                                         'ring'))
    assert model.std_pixels == (58.0, 57.0, 56.0) and model.nms_thresh == 0.3
    assert model.network_overrides['from_layers'] == ['relu22', 'relu26']
    attrs = model.deploy_symbol().attr_dict()
    assert float(attrs['detection']['nms_threshold']) == 0.3
    assert 'relu22_anchors' in attrs and not any(name.startswith('multi_feat') for name in attrs)
    args, auxs = model.deploy_params()
    assert set(args) == set(model.deploy_symbol().list_arguments()) - {'data'}
    assert available_epochs(prefix) == [1, 2]


def test_deploy_graph_gives_the_train_graphs_detections(trained):
    prefix, _ = trained
    model = load_model(prefix, 2)
    data = mx.nd.array(np.random.RandomState(0).uniform(-2, 2, (2, 3, 64, 64)))
    deploy = bind_detector(model, [mx.cpu()], 2)
    deploy.forward(mx.io.DataBatch([data]), is_train=False)
    ours = deploy.get_outputs()[0].asnumpy()
    train_symbol = mx.sym.load(prefix + '-symbol.json')
    executor = train_symbol.simple_bind(mx.cpu(), data=(2, 3, 64, 64), label=(2, 1, 6), grad_req='null')
    executor.copy_params_from(model.arg_params, model.aux_params, allow_extra_params=True)
    outputs = executor.forward(is_train=False, data=data, label=mx.nd.full((2, 1, 6), -1))
    theirs = outputs[multibox.output_positions(train_symbol)[multibox.DETECTION]].asnumpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize('kwargs, words', [
    (dict(epoch=7), r'ssd-0007.params does not exist; epochs saved under this prefix: 1, 2'),
    (dict(epoch=2, num_class=5), r'--num-class 5, checkpoint .* has 3 classes'),
    (dict(epoch=2, network='resnet50'), r'--network resnet50 contradicts the checkpoint, trained with '
                                        r'mobilenet0.25'),
])
def test_bad_input_is_one_line(trained, kwargs, words):
    prefix, _ = trained
    with pytest.raises(UserError, match=words):
        load_model(prefix, **kwargs)


def test_old_checkpoint_without_config_needs_the_flags(trained, tmp_path):
    prefix, _ = trained
    bare = str(tmp_path / 'old')
    shutil.copy(prefix + '-0002.params', bare + '-0002.params')
    with pytest.raises(UserError, match='--network is needed'):
        load_model(bare, 2, num_class=3)
    with pytest.raises(UserError, match='no --num-class or --class-names'):
        load_model(bare, 2, network='mobilenet0.25', data_shape=64)
    model = load_model(bare, 2, network='mobilenet0.25', data_shape=64, num_class=3)
    assert model.class_names == ('class_0', 'class_1', 'class_2') and model.std_pixels == (1.0, 1.0, 1.0)
    with open(bare + '-0003.params', 'wb') as handle:
        handle.write(b'not a params file')
    with pytest.raises(UserError, match='not an MXNet parameter file'):
        load_model(bare, 3, network='mobilenet0.25', data_shape=64, num_class=3)
    assert not os.path.exists(bare + '-config.json') and not os.path.exists(bare + '-config.yaml')


def test_preprocess_resizes_and_scales_like_the_validation_iterator(trained):
    prefix, _ = trained
    model = load_model(prefix, 2)
    image = np.zeros((30, 90, 3), np.uint8)
    image[:, :45] = (0, 0, 255)                                   # left half red (BGR)
    data = preprocess_image(image, model)
    assert data.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(data[0, 0, 10, 5], (255 - 123.68) / 58.0, rtol=1e-5)   # red channel, left
    np.testing.assert_allclose(data[0, 0, 10, 60], (0 - 123.68) / 58.0, rtol=1e-5)    # right half
    np.testing.assert_allclose(data[0, 2, 10, 5], (0 - 103.939) / 56.0, rtol=1e-5)    # blue channel
    assert cv2 is not None
