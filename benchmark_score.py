"""Forward speed of an SSD network at the input side asked for: images/s and ms per batch, per batch size.

Example::

    python benchmark_score.py --network mobilenet0.25 --data-shape 192 --batch-size 1,8,32 --cpu
    python benchmark_score.py --prefix model/demo/ssd_demo --epoch 20 --deploy --cpu --out bench.json

The graph is built at ``--data-shape`` (anchors and feature maps follow it) and fed random input of that
shape. Without ``--deploy`` the body alone is timed (backbone, heads, softmax, anchors: what an ONNX export
or any consumer runs); ``--deploy`` adds ``MultiBoxDetection`` (box decoding and NMS, as deploy.py's graph),
whose cost depends on how many anchors score above 0.01, so it varies with the weights: give ``--prefix``
and ``--epoch`` for trained weights (network, side and classes then come from the checkpoint), otherwise
the weights are random (Xavier). Each batch is timed from ``forward`` until every output is computed
(``mx.nd.waitall``), after ``--warmup`` untimed batches; the figure is the median over ``--num-batches``.
"""
import argparse
import dataclasses
import os
import statistics
import time

from config.defaults import BENCHMARK
from config.errors import UserError, run_cli
from config.runtime import configure_threads
from config.schema import DEFAULTS
from core import atomic
from tools.cli import add_device_args, comma_ints

BATCH_SIZES = BENCHMARK['batch_sizes']    # see config/defaults.py
NUM_CLASS = BENCHMARK['num_class']
NUM_BATCHES = BENCHMARK['num_batches']
WARMUP_BATCHES = BENCHMARK['warmup_batches']


@dataclasses.dataclass
class BenchmarkResult:
    """The speed of one network at one batch size.

    Attributes
    ----------
    network : str
    data_shape : tuple of int
        (B, 3, S, S) as the timed module was bound.
    num_anchors : int
        Anchors of the graph at that side (grows with S: the graph was built for it).
    batch_size : int
    graph : str
        ``'deploy'`` (with MultiBoxDetection) or ``'body'``.
    weights : str
        ``'random'`` or the checkpoint's params file.
    context : str
    num_batches : int
        Timed batches.
    ms_per_batch : float
        Median of the timed batches.
    images_per_second : float
        ``batch_size / median seconds``.
    """
    network: str
    data_shape: tuple
    num_anchors: int
    batch_size: int
    graph: str
    weights: str
    context: str
    num_batches: int
    ms_per_batch: float
    images_per_second: float

    def line(self):
        """One printed line: network, shape, batch, images/s, ms/batch."""
        return '%s %s %s batch %d: %.1f images/s, %.2f ms/batch (median of %d, %s, %s weights)' % (
            self.network, self.graph, 'x'.join(map(str, self.data_shape[1:])), self.batch_size,
            self.images_per_second, self.ms_per_batch, self.num_batches, self.context,
            'random' if self.weights == 'random' else 'trained')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    network = parser.add_argument_group('network')
    network.add_argument('--network', '-n', default=None,
                         help='network name (default: the checkpoint\'s with --prefix, else %s)'
                              % DEFAULTS.model.network)
    network.add_argument('--data-shape', '--shape', '-w', type=int, default=None,
                         help='input side in pixels (default: the checkpoint\'s with --prefix, else %d)'
                              % DEFAULTS.model.data_shape)
    network.add_argument('--num-class', '--class_num', '-class', type=int, default=None,
                         help='object classes (default: the checkpoint\'s with --prefix, else %d)' % NUM_CLASS)
    network.add_argument('--deploy', action='store_true',
                         help='time the deploy graph with MultiBoxDetection (decoding + NMS), not the body alone')
    network.add_argument('--prefix', default=None, help='checkpoint prefix for trained weights (default: random)')
    network.add_argument('--epoch', type=int, default=None, help='checkpoint epoch (with --prefix)')
    timing = parser.add_argument_group('timing')
    timing.add_argument('--batch-size', '--batch_size', '-b', type=comma_ints, default=BATCH_SIZES,
                        help='comma-separated batch sizes (default %s; 0, as in MXNet\'s example, is that default)'
                             % ','.join(map(str, BATCH_SIZES)))
    timing.add_argument('--num-batches', type=int, default=NUM_BATCHES, help='timed batches per batch size')
    timing.add_argument('--warmup', type=int, default=WARMUP_BATCHES, help='untimed batches first')
    timing.add_argument('--out', default='', help='also write the results to this JSON file')
    add_device_args(parser)
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def batch_sizes(given):
    """``--batch-size`` values; ``0`` alone (MXNet's example: every size) is the default list, with a note."""
    if tuple(given) == (0,):
        print('note: --batch-size 0 (MXNet\'s example: a sweep) times the default sizes %s'
              % ','.join(map(str, BATCH_SIZES)))
        return tuple(BATCH_SIZES)
    return tuple(given)


def check_args(args):
    """UserError for flags that cannot work together or values out of range."""
    if not args.batch_size or min(args.batch_size) < 1:
        raise UserError('--batch-size %s must list positive whole numbers, e.g. 1,8,32'
                        % ','.join(map(str, args.batch_size)))
    if args.num_batches < 1 or args.warmup < 0:
        raise UserError('--num-batches must be >= 1 and --warmup >= 0, got %d and %d'
                        % (args.num_batches, args.warmup))
    if (args.prefix is None) != (args.epoch is None):
        raise UserError('--prefix and --epoch go together: give both for trained weights, neither for random ones')


def graph_and_weights(args):
    """The graph to time and its weights.

    Returns
    -------
    network : str
    data_shape : int
    symbol : mx.sym.Symbol
        The deploy graph (``--deploy``) or the body.
    params : tuple of dict or None
        ``(arg_params, aux_params)`` of the checkpoint, None for random weights.
    weights : str
    """
    from evaluate.deploy_net import body_symbol, model_body_symbol
    from evaluate.model import check_params_fit
    from symbol import symbol_factory
    if args.prefix is None:
        network = args.network or DEFAULTS.model.network
        data_shape = args.data_shape or DEFAULTS.model.data_shape
        num_class = args.num_class or NUM_CLASS
        build = symbol_factory.get_symbol if args.deploy else body_symbol
        return network, data_shape, build(network, data_shape, num_class), None, 'random'
    from core.run_dir import RunDir
    from evaluate.model import load_model
    model = load_model(args.prefix, args.epoch, network=args.network, data_shape=args.data_shape,
                       num_class=args.num_class)
    symbol = model.deploy_symbol() if args.deploy else model_body_symbol(model)
    check_params_fit(model, symbol)
    return model.network, model.data_shape, symbol, model.deploy_params(symbol), RunDir(args.prefix).params_path(
        args.epoch)


def bind(symbol, ctx, batch_size, data_shape, params):
    """An inference Module for ``(batch_size, 3, S, S)`` input, with ``params`` or random Xavier weights."""
    import mxnet as mx
    module = mx.mod.Module(symbol, data_names=('data',), label_names=None, context=ctx)
    module.bind(data_shapes=[('data', (batch_size, 3, data_shape, data_shape))], for_training=False)
    if params is None:
        module.init_params(initializer=mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2))
    else:
        module.set_params(params[0], params[1], allow_missing=False, allow_extra=False)
    return module


def time_batches(module, num_batches, warmup, seed=0):
    """Seconds of each timed forward pass on one random batch, after ``warmup`` untimed ones.

    Returns
    -------
    list of float
        ``num_batches`` durations, each from ``forward`` to all outputs computed.
    """
    import mxnet as mx
    import numpy as np
    from tqdm import tqdm
    shape = module.data_shapes[0].shape
    batch = mx.io.DataBatch([mx.nd.array(np.random.RandomState(seed).uniform(-2, 2, shape))])
    for _ in range(warmup):
        module.forward(batch, is_train=False)
        mx.nd.waitall()
    durations = []
    for _ in tqdm(range(num_batches), desc='batch %d' % shape[0], unit='batch', leave=False, disable=None):
        start = time.perf_counter()
        module.forward(batch, is_train=False)
        mx.nd.waitall()
        durations.append(time.perf_counter() - start)
    return durations


def count_anchors(module):
    """Anchors of a bound SSD graph, from its output shapes (detection (B, A, 6) or cls_prob (B, 1 + K, A))."""
    from symbol import multibox
    positions = multibox.output_positions(module.symbol)
    shapes = [shape for _, shape in module.output_shapes]
    if multibox.DETECTION in positions:
        return shapes[positions[multibox.DETECTION]][1]
    return shapes[positions[multibox.CLS_PROB]][2]


def benchmark(args):
    """Time the graph of ``args`` at every batch size; returns a list of :class:`BenchmarkResult`."""
    from core.run_dir import resolve_prefix
    from tools.cli import contexts_from_args
    args = argparse.Namespace(**dict(vars(args), batch_size=batch_sizes(args.batch_size),
                                     prefix=resolve_prefix(args.prefix, args.network, args.data_shape)))
    check_args(args)
    ctx = contexts_from_args(args)
    network, data_shape, symbol, params, weights = graph_and_weights(args)
    results = []
    for batch_size in args.batch_size:
        module = bind(symbol, ctx, batch_size, data_shape, params)
        median = statistics.median(time_batches(module, args.num_batches, args.warmup))
        results.append(BenchmarkResult(
            network=network, data_shape=tuple(module.data_shapes[0].shape), num_anchors=count_anchors(module),
            batch_size=batch_size, graph='deploy' if args.deploy else 'body', weights=weights,
            context=','.join(str(c) for c in ctx), num_batches=args.num_batches, ms_per_batch=median * 1000,
            images_per_second=batch_size / median))
    return results


def write_json(path, results):
    """``{'threads': OMP_NUM_THREADS, 'results': [BenchmarkResult as dict, ...]}``, written atomically."""
    atomic.write_json(path, dict(threads=os.environ.get('OMP_NUM_THREADS'),
                                 results=[dataclasses.asdict(result) for result in results]), indent=2)


def main(args):
    """Print one line per batch size (and write ``--out``); returns the results."""
    configure_threads()
    results = benchmark(args)
    for result in results:
        print(result.line())
    if args.out:
        write_json(args.out, results)
        print('wrote %s' % args.out)
    return results


if __name__ == '__main__':
    run_cli(main, parse_args())
