"""deploy.py and evaluate/deploy_net.py: the deploy checkpoint loads with Module and SymbolBlock and detects
exactly what the training graph detects; the NumPy decoding documented for ONNX consumers equals
MultiBoxDetection; bad input is one line."""
import json
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from core.run_dir import RunDir
from dataset.iterator import DetRecordIter
from evaluate import deploy_net
from evaluate.model import bind_detector, load_model
from symbol import multibox
from tests.test_train import make_dataset, tiny_run
from tools.scripts import ROOT, load_script

CLASSES = ('circle', 'square', 'ring')
SIDE, BATCH = 64, 4


DEPLOY = load_script('deploy.py')


def run_deploy(*flags):
    return DEPLOY.main(DEPLOY.parse_args(list(flags)))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch of mobilenet0.25 at 64 px on three classes: (prefix, val_rec)."""
    root = tmp_path_factory.mktemp('deploy')
    train_rec, val_rec = make_dataset(root, 16, 8, classes=','.join(CLASSES))
    prefix = str(root / 'm' / 'ssd')
    tiny_run(train_rec, prefix, lr=0.01)
    return prefix, val_rec


@pytest.fixture(scope='module')
def deployed(trained):
    """The deploy checkpoint of epoch 1, written by deploy.py."""
    return run_deploy('--prefix', trained[0], '--epoch', '1')


@pytest.fixture(scope='module')
def images(trained):
    """(8, 3, 64, 64): four validation images as the network takes them, then four random ones."""
    prefix, val_rec = trained
    model = load_model(prefix, 1)
    val_iter = DetRecordIter(val_rec, BATCH, SIDE, mean_pixels=model.mean_pixels, std_pixels=model.std_pixels)
    real = val_iter.next().data[0].asnumpy()
    noise = np.random.RandomState(0).uniform(-120, 120, real.shape).astype(np.float32)
    return mx.nd.array(np.concatenate([real, noise]))


def copy_checkpoint(prefix, directory, with_config=True):
    """Copy epoch 1 of ``prefix`` (with its -config.yaml and .classes unless ``with_config`` is False)."""
    os.makedirs(directory, exist_ok=True)
    copy = os.path.join(str(directory), 'ssd')
    source, target = RunDir(prefix), RunDir(copy)
    pairs = [(source.params_path(1), target.params_path(1))]
    if with_config:
        pairs += [(source.config_path, target.config_path), (source.classes_path, target.classes_path)]
    for source_path, target_path in pairs:
        shutil.copy(source_path, target_path)
    return copy


def train_graph_detections(prefix, data):
    """The ``detection`` output of the TRAINING graph (dummy label, is_train=False) on ``data``."""
    symbol = mx.sym.load(prefix + '-symbol.json')
    saved = mx.nd.load(prefix + '-0001.params')
    args = {key[4:]: value for key, value in saved.items() if key.startswith('arg:')}
    auxs = {key[4:]: value for key, value in saved.items() if key.startswith('aux:')}
    module = mx.mod.Module(symbol, data_names=('data',), label_names=('label',), context=mx.cpu())
    module.bind(data_shapes=[('data', data.shape)], label_shapes=[('label', (data.shape[0], 1, 6))],
                for_training=False)
    module.set_params(args, auxs)
    module.forward(mx.io.DataBatch([data], [mx.nd.full((data.shape[0], 1, 6), -1)]), is_train=False)
    return module.get_outputs()[multibox.output_positions(symbol)[multibox.DETECTION]].asnumpy()


def test_files_are_named_after_the_prefix_and_hold_only_the_detection_graph(trained, deployed):
    prefix, _ = trained
    folder = os.path.dirname(prefix)
    assert deployed.symbol == os.path.join(folder, 'deploy_ssd-symbol.json')
    assert deployed.params == os.path.join(folder, 'deploy_ssd-0001.params')
    assert sorted(name for name in os.listdir(folder) if name.startswith('deploy_')) == [
        'deploy_ssd-0001.params', 'deploy_ssd-config.yaml', 'deploy_ssd-symbol.json', 'deploy_ssd.classes']
    with open(deployed.classes) as handle:
        assert handle.read() == 'circle\nsquare\nring\n'
    symbol = mx.sym.load(deployed.symbol)
    assert symbol.list_outputs() == ['detection_output'] and 'label' not in symbol.list_arguments()
    operators = {node['op'] for node in json.loads(symbol.tojson())['nodes']}
    assert '_contrib_MultiBoxDetection' in operators
    assert not operators & {'SoftmaxOutput', 'MakeLoss', '_contrib_MultiBoxTarget', 'smooth_l1'}
    saved = mx.nd.load(deployed.params)
    assert set(saved) == ({'arg:' + name for name in symbol.list_arguments() if name != 'data'}
                          | {'aux:' + name for name in symbol.list_auxiliary_states()})
    config = RunDir(deployed.prefix).read_config()             # the configuration schema's YAML
    assert (config.model.network, config.model.data_shape, list(config.data.class_names)) == (
        'mobilenet0.25', 64, list(CLASSES))
    provenance = deploy_net.read_provenance(deployed.config)    # its header comment
    assert provenance['deployed_from'] == {'prefix': prefix, 'epoch': 1} and provenance['nms_topk'] == 400


def test_module_and_symbolblock_detections_equal_the_training_graphs(trained, deployed, images):
    prefix, _ = trained
    expected = train_graph_detections(prefix, images)
    symbol, args, auxs = mx.model.load_checkpoint(deployed.prefix, 1)
    module = mx.mod.Module(symbol, data_names=('data',), label_names=None, context=mx.cpu())
    module.bind(data_shapes=[('data', images.shape)], for_training=False)
    module.set_params(args, auxs, allow_missing=False, allow_extra=False)
    module.forward(mx.io.DataBatch([images]), is_train=False)
    from_module = module.get_outputs()[0].asnumpy()
    block = mx.gluon.nn.SymbolBlock.imports(deployed.symbol, ['data'], deployed.params, ctx=mx.cpu())
    from_block = block(images).asnumpy()
    assert expected.shape == (8, from_module.shape[1], 6)
    kept = (expected[:, :, 0] >= 0).sum(axis=1)
    assert (kept > 0).all(), kept                     # every image, real and random, has detections to compare
    np.testing.assert_allclose(from_module, expected, atol=1e-5)
    np.testing.assert_allclose(from_block, expected, atol=1e-5)


@pytest.mark.parametrize('nms_topk, force', [(400, False), (5, True), (-1, False)])
def test_numpy_decoding_of_the_body_equals_multibox_detection(trained, images, nms_topk, force):
    model = load_model(trained[0], 1, force_suppress=force)
    detector = bind_detector(model, [mx.cpu()], len(images), nms_topk=nms_topk)
    detector.forward(mx.io.DataBatch([images]), is_train=False)
    expected = detector.get_outputs()[0].asnumpy()
    body = deploy_net.model_body_symbol(model)
    executor = body.simple_bind(mx.cpu(), data=images.shape, grad_req='null')
    executor.copy_params_from(*model.deploy_params(body))
    outputs = [output.asnumpy() for output in executor.forward(is_train=False, data=images)]
    position = multibox.output_positions(body)
    cls_prob, loc_preds, anchors = (outputs[position[name]] for name in ('cls_prob', 'loc_preds', 'anchors'))
    num_anchors = expected.shape[1]
    assert cls_prob.shape == (8, 4, num_anchors) and loc_preds.shape == (8, num_anchors * 4)
    assert anchors.shape == (1, num_anchors, 4)
    np.testing.assert_allclose(deploy_net.compute_anchors(model), anchors)
    ours = deploy_net.decode_detections(cls_prob, loc_preds, anchors, nms_thresh=model.nms_thresh,
                                        force_suppress=force, nms_topk=nms_topk)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    kept = (expected[:, :, 0] >= 0).sum(axis=1)
    assert kept.min() > 0 and (kept.max() <= 5 if nms_topk == 5 else kept.max() > 5)


def test_decode_boxes_by_hand():
    anchors = np.array([[[0.2, 0.2, 0.6, 0.4]]], np.float32)            # centre (0.4, 0.3), size 0.4 x 0.2
    offsets = np.array([[1.0, -2.0, np.log(2) / 0.2, 0.0]], np.float32)  # x +0.1*0.4, y -0.2*0.2, width x2
    boxes = deploy_net.decode_boxes(offsets, anchors)
    np.testing.assert_allclose(boxes, [[[0.04, 0.16, 0.84, 0.36]]], atol=1e-6)
    prob = np.array([[[0.1], [0.2], [0.7]]], np.float32)              # background, class 0, class 1
    rows = deploy_net.decode_detections(prob, offsets, anchors)
    np.testing.assert_allclose(rows, [[[1, 0.7, 0.04, 0.16, 0.84, 0.36]]], atol=1e-6)


def test_onnx_body_has_no_multibox_operator(trained):
    model = load_model(trained[0], 1)
    operators = {node['op'] for node in json.loads(deploy_net.model_body_symbol(model, False).tojson())['nodes']}
    assert 'softmax' in operators and 'Convolution' in operators
    assert not {op for op in operators if 'MultiBox' in op}
    assert deploy_net.unsupported_operator(AttributeError(
        'No conversion function registered for op type _contrib_MultiBoxPrior yet.')) == '_contrib_MultiBoxPrior'


def test_onnx_without_the_package_is_one_line_and_writes_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnx', None)     # as in an environment without onnx (import fails)
    copy = copy_checkpoint(trained[0], tmp_path)
    with pytest.raises(UserError, match=r'--onnx needs the onnx package.*pip install onnx==1\.14\.1'):
        run_deploy('--prefix', copy, '--epoch', '1', '--onnx')
    assert sorted(os.listdir(tmp_path)) == ['ssd-0001.params', 'ssd-config.yaml', 'ssd.classes']
    too_new = type(sys)('onnx')                         # an onnx >= 1.19: no onnx.mapping
    too_new.__version__ = '1.19.0'
    monkeypatch.setitem(sys.modules, 'onnx', too_new)
    monkeypatch.setitem(sys.modules, 'onnx.mapping', None)
    with pytest.raises(UserError, match=r'onnx 1\.19\.0 has no onnx\.mapping.*pip install onnx==1\.14\.1'):
        run_deploy('--prefix', copy, '--epoch', '1', '--onnx')
    assert len(os.listdir(tmp_path)) == 3


def test_onnx_body_run_by_onnx_equals_the_mxnet_body(trained, images, tmp_path):
    """The exported body, run by onnx's own reference evaluator, gives MXNet's cls_prob and loc_preds; the
    anchors file holds MultiBoxPrior's anchors (decoding them is tested against MultiBoxDetection above)."""
    onnx = pytest.importorskip('onnx')
    from onnx.reference import ReferenceEvaluator
    copy = copy_checkpoint(trained[0], tmp_path)
    paths = run_deploy('--prefix', copy, '--epoch', '1', '--onnx')
    graph = onnx.load(paths.onnx)
    onnx.checker.check_model(graph)
    image = images[:1].asnumpy()                                             # (1, 3, SIDE, SIDE)
    theirs = dict(zip([output.name for output in graph.graph.output],
                      ReferenceEvaluator(graph).run(None, {graph.graph.input[0].name: image})))
    model = load_model(copy, 1)
    body = deploy_net.model_body_symbol(model, with_anchors=True)
    arg_params, aux_params = model.deploy_params(body)
    executor = body.simple_bind(mx.cpu(), data=image.shape, grad_req='null')
    executor.copy_params_from(arg_params, aux_params)
    ours = dict(zip(body.list_outputs(), (out.asnumpy() for out in executor.forward(data=mx.nd.array(image)))))
    for name in (multibox.CLS_PROB, multibox.LOC_PREDS):
        onnx_value = next(value for key, value in theirs.items() if key.startswith(name))
        mxnet_value = next(value for key, value in ours.items() if key.startswith(name))
        assert onnx_value.shape == mxnet_value.shape, name
        np.testing.assert_allclose(onnx_value, mxnet_value, atol=1e-4, err_msg=name)
    anchors = next(value for key, value in ours.items() if key.startswith(multibox.ANCHORS))
    np.testing.assert_allclose(np.load(paths.anchors), anchors, atol=1e-6)


def test_another_data_shape_and_reloading_the_deploy_checkpoint(trained, tmp_path, capsys):
    copy = copy_checkpoint(trained[0], tmp_path)
    paths = run_deploy('--prefix', copy, '--epoch', '1', '--data-shape', '128', '--nms', '0.3', '--nms-topk', '50')
    printed = capsys.readouterr().out
    assert paths.symbol in printed and paths.params in printed and 'circle, square, ring' in printed
    symbol = mx.sym.load(paths.symbol)
    anchors_at = {side: symbol.infer_shape(data=(1, 3, side, side))[1][0][1] for side in (64, 128)}
    attributes = symbol.attr_dict()['detection']
    assert (float(attributes['nms_threshold']), int(attributes['nms_topk'])) == (0.3, 50)
    model = load_model(paths.prefix, 1)                # the deploy checkpoint loads like a training one
    assert (model.data_shape, model.class_names, model.nms_thresh) == (128, CLASSES, 0.3)
    detector = bind_detector(model, [mx.cpu()], 1)
    detector.forward(mx.io.DataBatch([mx.nd.zeros((1, 3, 128, 128))]), is_train=False)
    assert detector.get_outputs()[0].shape == (1, anchors_at[128], 6) and anchors_at[128] > 3 * anchors_at[64]


def test_wrong_class_count_names_both_numbers(trained, tmp_path):
    with pytest.raises(UserError, match=r'--num-class 5, checkpoint .* has 3 classes'):
        run_deploy('--prefix', trained[0], '--epoch', '1', '--num-class', '5')
    bare = copy_checkpoint(trained[0], tmp_path, with_config=False)      # an old checkpoint: flags needed
    flags = ['--prefix', bare, '--epoch', '1', '--network', 'mobilenet0.25', '--data-shape', '64']
    with pytest.raises(UserError, match=r'5 classes asked for .*/ssd-0001.params was trained with 3; pass '
                                        r'--num-class 3'):
        run_deploy(*flags, '--num-class', '5')
    with pytest.raises(UserError, match=r'parameter \S+ has shape .* network mobilenet0.5 needs .* check --network'):
        run_deploy(*flags[:4], '--network', 'mobilenet0.5', '--data-shape', '64', '--num-class', '3')
    assert sorted(os.listdir(tmp_path)) == ['ssd-0001.params']
    paths = run_deploy(*flags, '--num-class', '3')
    assert load_model(paths.prefix, 1).class_names == ('class_0', 'class_1', 'class_2')


def test_missing_epoch_is_one_line_listing_the_saved_epochs(trained):
    result = subprocess.run([sys.executable, str(ROOT / 'deploy.py'), '--prefix', trained[0], '--epoch', '7'],
                            capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr.count('\n') == 1
    assert result.stderr.startswith('error: ') and result.stderr.rstrip().endswith(
        'ssd-0007.params does not exist; epochs saved under this prefix: 1')
