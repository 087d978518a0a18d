"""benchmark_score.py: the graph is built and timed at the data shape asked for, one result per batch size,
the JSON file holds what was printed; trained weights load; bad flags are one line."""
import dataclasses
import json

import mxnet as mx
import pytest

from config.errors import UserError
from core.checkpoint import save_params
from symbol import symbol_factory
from tools.scripts import load_script

NETWORK, NUM_CLASS = 'mobilenet0.25', 3
QUICK = ['--num-batches', '3', '--warmup', '1', '--cpu']


BENCH = load_script('benchmark_score.py')


def run_benchmark(*flags):
    return BENCH.main(BENCH.parse_args(QUICK + list(flags)))   # flags given win over QUICK


def anchors_of(side):
    """Anchors of the deploy graph at input side ``side``, from MXNet's shape inference."""
    symbol = symbol_factory.get_symbol(NETWORK, side, NUM_CLASS)
    return symbol.infer_shape(data=(1, 3, side, side))[1][0][1]


def as_json(result):
    """A result as json.load gives it back (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(result)))


@pytest.mark.parametrize('graph_flags', [[], ['--deploy']])
def test_each_data_shape_is_built_and_timed_as_asked(tmp_path, capsys, graph_flags):
    anchors = {}
    for side in (64, 128):
        out = tmp_path / ('bench_%d.json' % side)
        results = run_benchmark('--network', NETWORK, '--data-shape', str(side), '--num-class', str(NUM_CLASS),
                                '--batch-size', '1,2', '--out', str(out), *graph_flags)
        assert [result.batch_size for result in results] == [1, 2]
        for result in results:
            assert result.data_shape == (result.batch_size, 3, side, side)
            assert result.num_anchors == anchors_of(side)
            assert result.graph == ('deploy' if graph_flags else 'body') and result.weights == 'random'
            assert result.images_per_second > 0 and result.ms_per_batch > 0
            assert result.images_per_second == pytest.approx(result.batch_size * 1000 / result.ms_per_batch)
        anchors[side] = results[0].num_anchors
        printed = capsys.readouterr().out.splitlines()
        assert printed[:2] == [result.line() for result in results] and printed[2] == 'wrote %s' % out
        assert printed[1].startswith('%s %s 3x%dx%d batch 2: ' % (NETWORK, results[1].graph, side, side))
        with open(out) as handle:
            saved = json.load(handle)
        assert saved['results'] == [as_json(result) for result in results] and saved['threads']
    assert anchors[128] > anchors[64]


def test_trained_weights_from_a_checkpoint(tmp_path):
    """An old-style checkpoint (params only, flags name the network): its weights are what gets timed."""
    symbol = symbol_factory.get_symbol_train(NETWORK, 64, NUM_CLASS)
    executor = symbol.simple_bind(mx.cpu(), data=(1, 3, 64, 64), label=(1, 1, 6), grad_req='null')
    prefix = str(tmp_path / 'old')
    save_params(prefix + '-0002.params', {name: mx.nd.ones(array.shape) * 0.01 for name, array
                                           in executor.arg_dict.items() if name not in ('data', 'label')},
                {name: mx.nd.ones(array.shape) for name, array in executor.aux_dict.items()})
    flags = ['--prefix', prefix, '--epoch', '2', '--network', NETWORK, '--data-shape', '64', '--batch-size', '1']
    results = run_benchmark(*flags, '--num-class', str(NUM_CLASS), '--deploy')
    assert results[0].weights == prefix + '-0002.params' and results[0].data_shape == (1, 3, 64, 64)
    assert results[0].num_anchors == anchors_of(64)
    with pytest.raises(UserError, match=r'5 classes asked for .* trained with 3'):
        run_benchmark(*flags, '--num-class', '5')
    with pytest.raises(UserError, match=r'epochs saved under this prefix: 2'):
        run_benchmark(*flags[:3], '9', *flags[4:], '--num-class', str(NUM_CLASS))


@pytest.mark.parametrize('flags, words', [
    (['--batch-size', '0,2'], '--batch-size 0,2 must list positive whole numbers'),
    (['--num-batches', '0'], '--num-batches must be >= 1'),
    (['--prefix', 'model/x'], '--prefix and --epoch go together'),
    (['--data-shape', '100'], "network 'mobilenet0.25' does not support data_shape 100"),
])
def test_bad_flags_are_one_line(flags, words):
    with pytest.raises(UserError, match=words):
        run_benchmark('--network', NETWORK, '--batch-size', '1', *flags)
