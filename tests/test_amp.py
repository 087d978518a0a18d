"""train/amp.py and train.py --amp / --loss-scale: which operators run in which precision, the static loss scale,
and the one-line errors where a precision cannot run (fp16 on the CPU; bf16 on GPUs and on CPUs without
AVX-512). Training in bfloat16 itself is tested where the CPU can run it."""
import logging

import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError, run_cli
from core.checkpoint import load_checkpoint_params
from core.run_dir import RunDir
from symbol import symbol_factory
from tests.test_train import NETWORK, SHAPE, make_dataset, tiny_run
from tools.scripts import load_script
from train import amp

BF16_PROBLEM = amp.bf16_problem()
BFLOAT16 = np.dtype([('bfloat16', np.uint16)])        # how MXNet's infer_type names bfloat16
LOW_PRECISION = {'bf16': BFLOAT16, 'fp16': np.dtype(np.float16)}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """40 training and 16 validation images with six classes."""
    return make_dataset(tmp_path_factory.mktemp('amp_data'), 40, 16)


def node_types(symbol, op_names):
    """``{node name: output dtype}`` of the nodes of ``symbol`` whose operator is in ``op_names``
    (inputs: float32 data and label)."""
    internals = symbol.get_internals()
    _, types, _ = internals.infer_type(data='float32', label='float32')
    by_output = dict(zip(internals.list_outputs(), (np.dtype(t) for t in types)))
    return {node['name']: by_output[node['name'] + '_output'] for node in amp.graph_nodes(symbol)
            if node['op'] in op_names and node['name'] + '_output' in by_output}


def argument_types(symbol):
    arg_types, _, aux_types = symbol.infer_type(data='float32', label='float32')
    names = symbol.list_arguments() + symbol.list_auxiliary_states()
    return dict(zip(names, (np.dtype(t) for t in arg_types + aux_types)))


@pytest.mark.parametrize('mode', ['bf16', 'fp16'])
@pytest.mark.parametrize('network', ['mobilenet0.25', 'vgg16_reduced'])
def test_convolutions_run_low_precision_while_weights_losses_and_multibox_stay_float32(mode, network):
    shape = 64 if network == 'mobilenet0.25' else 300
    symbol = symbol_factory.get_symbol_train(network, shape, 3)
    converted = amp.convert_symbol(symbol, mode)
    assert converted.list_outputs() == symbol.list_outputs()
    assert converted.list_arguments() == symbol.list_arguments()
    convolutions = node_types(converted, {'Convolution'})
    assert len(convolutions) == len(node_types(symbol, {'Convolution'})) > 10
    assert set(convolutions.values()) == {LOW_PRECISION[mode]}
    kept = node_types(converted, {'SoftmaxOutput', 'MakeLoss', 'smooth_l1', 'L2Normalization', 'BlockGrad',
                                  '_contrib_MultiBoxPrior', '_contrib_MultiBoxTarget', '_contrib_MultiBoxDetection'})
    assert set(kept.values()) == {np.dtype(np.float32)}
    assert ('relu4_3_norm' in kept) == (network == 'vgg16_reduced')             # the L2-normalised layer
    assert set(argument_types(converted).values()) == {np.dtype(np.float32)}   # master weights, data, label
    _, output_types, _ = converted.infer_type(data='float32', label='float32')
    assert {np.dtype(t) for t in output_types} == {np.dtype(np.float32)}


def test_none_leaves_the_graph_alone():
    symbol = symbol_factory.get_symbol_train(NETWORK, SHAPE, 3)
    assert amp.convert_symbol(symbol, 'none') is symbol


def test_loss_scale_multiplies_the_gradients_and_leaves_the_outputs():
    """128 is a power of two: the scaled gradients are the plain ones times 128 exactly; the optimizer's
    rescale_grad of 1 / (devices x 128) gives back the unscaled update."""
    from train.schedule import optimizer_params

    symbol = symbol_factory.get_symbol_train(NETWORK, SHAPE, 3)
    scaled = amp.scale_losses(symbol, 128)
    heads = {node['op']: node['attrs']['grad_scale'] for node in amp.graph_nodes(scaled) if node['op'] in amp.LOSS_OPS}
    assert heads == {'SoftmaxOutput': '128.0', 'MakeLoss': '128.0'}
    rng = np.random.RandomState(0)
    label = np.full((2, 4, 6), -1, np.float32)
    label[:, 0] = [1, 0.1, 0.2, 0.6, 0.7, 0]
    label[1, 1] = [2, 0.5, 0.5, 0.9, 0.95, 0]
    batch = mx.io.DataBatch(data=[mx.nd.array(rng.normal(size=(2, 3, SHAPE, SHAPE)))], label=[mx.nd.array(label)])
    results = []
    for graph in (symbol, scaled):
        module = mx.mod.Module(graph, data_names=('data',), label_names=('label',))
        module.bind(data_shapes=[('data', (2, 3, SHAPE, SHAPE))], label_shapes=[('label', (2, 4, 6))])
        mx.random.seed(3)
        module.init_params(mx.init.Xavier())
        module.forward_backward(batch)
        grads = {name: arrays[0].asnumpy() for name, arrays in zip(module._exec_group.param_names,
                                                                    module._exec_group.grad_arrays)}
        results.append(([output.asnumpy() for output in module.get_outputs()], grads))
    (plain_outputs, plain_grads), (scaled_outputs, scaled_grads) = results
    for plain, scaled_output in zip(plain_outputs, scaled_outputs):
        np.testing.assert_array_equal(plain, scaled_output)
    assert np.abs(plain_grads['conv0_weight']).sum() > 0
    for name in plain_grads:
        np.testing.assert_allclose(scaled_grads[name], 128 * plain_grads[name], rtol=1e-6, atol=1e-12, err_msg=name)
    assert optimizer_params('sgd', 0.1, 0.9, 0, None, 2, 0, loss_scale=128)['rescale_grad'] == 1 / 256
    assert amp.effective_loss_scale('fp16', None, 128) == 128 and amp.effective_loss_scale('bf16', None, 128) == 1
    assert amp.effective_loss_scale('none', 4, 128) == 4


def test_training_with_a_loss_scale_ends_at_the_same_weights(data, tmp_path):
    """The scale multiplies the gradients in the graph and the optimizer divides it out: same run, same
    weights (up to float32 rounding), and the saved graph is the plain one."""
    tiny_run(data[0], tmp_path / 'plain', lr=0.01)
    tiny_run(data[0], tmp_path / 'scaled', lr=0.01, loss_scale=1024.0)
    plain = load_checkpoint_params(str(tmp_path / 'plain'), 1, 'test')[0]
    scaled = load_checkpoint_params(str(tmp_path / 'scaled'), 1, 'test')[0]
    moved = [name for name in plain if not np.allclose(plain[name].asnumpy(), 0)]
    assert len(moved) > 10
    for name in plain:
        np.testing.assert_allclose(scaled[name].asnumpy(), plain[name].asnumpy(), rtol=1e-3, atol=1e-5, err_msg=name)
    with open(str(tmp_path / 'scaled') + '-symbol.json') as handle:
        assert '1024' not in handle.read()                     # checkpoints keep the unscaled graph
    config = RunDir(str(tmp_path / 'scaled')).read_config()
    assert config.solver.amp == 'none' and config.solver.loss_scale == 1024.0


def train_cli_error(argv, capsys):
    script = load_script('train.py')
    with pytest.raises(SystemExit) as stop:
        run_cli(script.main, script.parse_args(argv))
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_fp16_on_the_cpu_is_one_line_naming_the_flag(data, tmp_path, capsys):
    line = train_cli_error(['--train-path', data[0], '--val-path', '', '--cpu', '--network', NETWORK,
                            '--data-shape', str(SHAPE), '--pretrained', '', '--prefix', str(tmp_path / 'm'),
                            '--amp', 'fp16', '--log', ''], capsys)
    assert '--amp fp16 runs on GPUs only' in line and '--gpus' in line


def test_bf16_on_gpus_is_an_error_naming_fp16():
    with pytest.raises(UserError, match='--amp bf16 runs on the CPU only.*--amp fp16'):
        amp.check_supported('bf16', [mx.gpu(0)])
    amp.check_supported('fp16', [mx.gpu(0), mx.gpu(1)])      # fine: the GPUs themselves are checked by --gpus
    amp.check_supported('none', [mx.cpu()])


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_bf16_without_the_fast_instructions_warns(monkeypatch):
    recorder = Recorder()
    logging.getLogger('train').addHandler(recorder)
    try:
        monkeypatch.setattr(amp, 'bf16_problem', lambda: None)
        monkeypatch.setattr(amp, 'cpu_model_and_flags', lambda: ('Test CPU', {'avx512f', 'avx512bw'}))
        amp.check_supported('bf16', [mx.cpu()])
        assert len(recorder.messages) == 1
        assert 'Test CPU' in recorder.messages[0] and 'slower than float32' in recorder.messages[0]
        monkeypatch.setattr(amp, 'cpu_model_and_flags', lambda: ('Test CPU', {'avx512f', 'avx512_bf16'}))
        amp.check_supported('bf16', [mx.cpu()])
        assert len(recorder.messages) == 1                      # no second warning: the CPU has AVX512_BF16
    finally:
        logging.getLogger('train').removeHandler(recorder)


@pytest.mark.skipif(BF16_PROBLEM is None, reason='this CPU runs bfloat16 convolutions')
def test_bf16_on_a_cpu_without_it_is_one_line_naming_the_cpu(data, tmp_path, capsys):
    line = train_cli_error(['--train-path', data[0], '--val-path', '', '--cpu', '--network', NETWORK,
                            '--data-shape', str(SHAPE), '--pretrained', '', '--prefix', str(tmp_path / 'm'),
                            '--amp', 'bf16', '--log', ''], capsys)
    assert line.startswith('error: --amp bf16: this CPU (') and 'leave --amp out' in line
    assert BF16_PROBLEM in line
    assert not (tmp_path / 'm-symbol.json').exists()           # refused before anything was written


@pytest.mark.skipif(BF16_PROBLEM is not None, reason='this CPU cannot run bfloat16 convolutions: %s' % BF16_PROBLEM)
def test_bf16_training_learns_like_float32_and_saves_a_float32_checkpoint(data, tmp_path):
    plain = tiny_run(data[0], tmp_path / 'fp32', lr=0.01, end_epoch=3)
    mixed = tiny_run(data[0], tmp_path / 'bf16', lr=0.01, end_epoch=3, amp='bf16')
    for run in (plain, mixed):
        assert run['history'][-1]['CrossEntropy'] < run['history'][0]['CrossEntropy']
    assert mixed['history'][-1]['CrossEntropy'] == pytest.approx(plain['history'][-1]['CrossEntropy'], rel=0.1)
    args = load_checkpoint_params(str(tmp_path / 'bf16'), 3, 'test')[0]
    assert {np.dtype(array.dtype) for array in args.values()} == {np.dtype(np.float32)}   # NDArray.dtype is a type
    with open(str(tmp_path / 'bf16') + '-symbol.json') as handle:
        assert 'amp_cast' not in handle.read()
