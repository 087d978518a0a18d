"""Inference speed of the deploy graph: INT8 (evaluate/quantize_net.py) vs FP32, in one run.

The model is the demo's graph (``config/recipes/demo.yaml``: mobilenet0.25 at 192 with its network overrides,
the 6 classes of the synthetic set) with seeded random weights, initialized as ``train.py`` starts a model from
scratch (Xavier body, small heads, class biases at the background prior), or a trained checkpoint
(``--prefix``/``--epoch``). Speed does not depend on what the weights learnt except through the number of
boxes reaching NMS, recorded in each row (``detections_per_image``): the random model's every anchor scores
about the same, so NMS keeps its full top-k (400 boxes), the heaviest case; a trained model leaves fewer. The
head (softmax, anchors, box decoding, NMS) stays FP32 in the INT8 graph, so it costs both sides the same.
The INT8 graph is calibrated (``naive``) on random images, then both graphs are bound for inference as
``evaluate/model.py`` and ``evaluate/quantize_net.py`` bind them.

Rows, one per batch size (``--batch-sizes``, default 1 and 8): images/s of INT8 and FP32 and their ratio
INT8 / FP32. A timed sample is ``--forwards`` forwards of one batch (so that a sample lasts tens of
milliseconds); after a warm-up the two graphs alternate sample by sample, ``--repeats`` samples each, and
each side's images/s is the batch size over its median seconds per forward.

Usage: ``python bench/bench_inference.py [--quick]``. Prints one table and writes
``bench/inference_results.json``.
"""
import argparse
import os
import statistics
import time

from config.errors import UserError, run_cli
from config.runtime import configure_threads
from core.atomic import write_json
from tools.cli import comma_ints

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK = 'mobilenet0.25'       # the demo recipe's network (config/recipes/demo.yaml)
SEED = 0                        # weights and images
RANDOM_PREFIX = 'random-'       # the prefix of the random model's TrainedModel (no files behind it)
CALIB_IMAGES = 16               # random images whose layer outputs set the int8 ranges
CALIB_BATCH = 8                 # images per calibration forward
WARMUP_SAMPLES = 2              # untimed samples per side (oneDNN picks and caches its kernels)
FORWARDS_PER_IMAGE = 24         # forwards per sample = max(1, FORWARDS_PER_IMAGE // batch size)
FULL = dict(repeats=15)
QUICK = dict(repeats=5)


def demo_config():
    """The demo recipe (config/recipes/demo.yaml) on the schema."""
    from config.recipes import recipe_path
    from config.schema import build_config
    return build_config(recipe_path('demo'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='%d samples per side' % QUICK['repeats'])
    parser.add_argument('--batch-sizes', type=comma_ints, default=(1, 8), help='comma-separated (default 1,8)')
    parser.add_argument('--data-shape', type=int, default=None,
                        help='input side (default: %d, the demo\'s, or the checkpoint\'s)'
                             % demo_config().model.data_shape)
    parser.add_argument('--repeats', type=int, default=None, help='timed samples per side (default %d, %d with '
                        '--quick)' % (FULL['repeats'], QUICK['repeats']))
    parser.add_argument('--forwards', type=int, default=None,
                        help='forwards per sample (default %d // batch size, at least 1)' % FORWARDS_PER_IMAGE)
    parser.add_argument('--prefix', default=None, help='time this trained checkpoint instead of random weights')
    parser.add_argument('--epoch', type=int, default=None, help='its epoch (with --prefix)')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'inference_results.json'),
                        help='results JSON')
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = (QUICK if args.quick else FULL)['repeats']
    return args


def check_args(args):
    """A :class:`UserError` naming the flag for values that cannot be run."""
    from symbol.symbol_factory import MIN_SIDE, SHAPE_STEP

    for flag, value in (('--repeats', args.repeats), ('--forwards', args.forwards)):
        if value is not None and value < 1:
            raise UserError('%s %d must be at least 1' % (flag, value))
    if (args.prefix is None) != (args.epoch is None):
        raise UserError('--prefix and --epoch go together: give both to time a checkpoint, neither for random '
                        'weights')
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        raise UserError('--batch-sizes %s: give positive batch sizes, e.g. 1,8' % (args.batch_sizes,))
    if args.data_shape is not None and (args.data_shape < MIN_SIDE or args.data_shape % SHAPE_STEP):
        raise UserError('--data-shape %d: use a multiple of %d from %d' % (args.data_shape, SHAPE_STEP, MIN_SIDE))


def random_params(symbol, data_shape, num_classes, seed=SEED):
    """Seeded weights for every parameter and auxiliary state of ``symbol``, as train.py starts from scratch.

    Xavier weights, prediction heads normal with sd ``DEFAULTS.model.head_init_std``, class-head biases at
    ``DEFAULTS.model.background_prior``, other biases and BatchNorm betas / means 0, gammas / variances 1.

    Returns
    -------
    arg_params, aux_params : dict of str to mx.nd.NDArray
    """
    import mxnet as mx

    from config.defaults import INITIALIZER
    from config.schema import DEFAULTS
    from train.initializer import SSDInitializer

    mx.random.seed(seed)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, data_shape, data_shape))
    initializer = SSDInitializer(num_classes, DEFAULTS.model.background_prior, DEFAULTS.model.head_init_std,
                                 **INITIALIZER)
    attributes = symbol.attr_dict()         # BatchNorm's moving statistics carry their own __init__

    def initialized(names, shapes):
        params = {}
        for name, shape in zip(names, shapes):
            if name != 'data':
                params[name] = mx.nd.zeros(shape)
                initializer(mx.init.InitDesc(name, attributes.get(name, {})), params[name])
        return params
    return (initialized(symbol.list_arguments(), arg_shapes),
            initialized(symbol.list_auxiliary_states(), aux_shapes))


def demo_model(data_shape):
    """A :class:`evaluate.model.TrainedModel` of the demo's graph with random weights."""
    from config.defaults import SYNTHETIC
    from config.schema import to_dict
    from evaluate.model import TrainedModel
    from symbol import multibox

    demo = demo_config()
    model = TrainedModel(
        prefix='%s%s-%d' % (RANDOM_PREFIX, NETWORK, data_shape), epoch=0, network=NETWORK, data_shape=data_shape,
        class_names=tuple(SYNTHETIC['classes']), mean_pixels=tuple(demo.data.mean_pixels),
        std_pixels=tuple(demo.data.std_pixels), network_overrides=to_dict(demo.model.network_overrides),
        nms_thresh=multibox.NMS['nms_thresh'], force_suppress=multibox.NMS['force_suppress'],
        arg_params={}, aux_params={})
    model.arg_params, model.aux_params = random_params(model.deploy_symbol(), data_shape, model.num_classes)
    return model


def bench_model(data_shape, prefix=None, epoch=None):
    """The model timed: checkpoint ``epoch`` of ``prefix``, or the random demo model (``data_shape`` None: the
    checkpoint's or the demo's side)."""
    if prefix is None:
        return demo_model(data_shape or demo_config().model.data_shape)
    from evaluate.model import load_model
    return load_model(prefix, epoch, data_shape=data_shape)


def random_images(model, count, seed=SEED):
    """``(count, 3, S, S)`` float32 images of uniform random pixels, normalized as the iterator does."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pixels = rng.uniform(0, 255, (count, 3, model.data_shape, model.data_shape)).astype(np.float32)
    mean = np.asarray(model.mean_pixels, np.float32)[:, None, None]
    std = np.asarray(model.std_pixels, np.float32)[:, None, None]
    return (pixels - mean) / std


def time_forwards(module, batch, forwards):
    """Seconds per forward, averaged over ``forwards`` forwards of ``batch``."""
    import mxnet as mx

    start = time.perf_counter()
    for _ in range(forwards):
        module.forward(batch, is_train=False)
        mx.nd.waitall()
    return (time.perf_counter() - start) / forwards


def alternate(modules, batch, forwards, repeats, warmup=WARMUP_SAMPLES):
    """Median seconds per forward of each module, the modules taking turns sample by sample.

    Parameters
    ----------
    modules : dict
        ``{name: mx.mod.Module}``, each bound for ``batch``.
    batch : mx.io.DataBatch
    forwards, repeats, warmup : int

    Returns
    -------
    dict
        ``{name: median seconds per forward}``.
    """
    for module in modules.values():
        for _ in range(warmup):
            time_forwards(module, batch, forwards)
    seconds = {name: [] for name in modules}
    for _ in range(repeats):
        for name, module in modules.items():
            seconds[name].append(time_forwards(module, batch, forwards))
    return {name: statistics.median(values) for name, values in seconds.items()}


def bench_batch_size(model, quantized, images, batch_size, forwards, repeats):
    """One row: INT8 vs FP32 images/s at ``batch_size``."""
    import mxnet as mx

    from evaluate.model import bind_detector
    from evaluate.quantize_net import bind_quantized, detections_of, timing_batch

    modules = {'INT8': bind_quantized(quantized, model, batch_size),
               'FP32': bind_detector(model, [mx.cpu()], batch_size)}
    batch = mx.io.DataBatch([mx.nd.array(timing_batch(images, batch_size))])
    forwards = forwards or max(1, FORWARDS_PER_IMAGE // batch_size)
    seconds = alternate(modules, batch, forwards, repeats)
    int8, fp32 = batch_size / seconds['INT8'], batch_size / seconds['FP32']
    kept = detections_of(modules['FP32'], batch.data[0].asnumpy())[..., 0] >= 0          # (B, A)
    name = 'deploy %s %d batch %d, INT8 vs FP32 (img/s)' % (model.network, model.data_shape, batch_size)
    return dict(name=name, unit='img/s', ours=round(int8, 2), peer=round(fp32, 2), peer_name='FP32 deploy graph',
                ratio=round(int8 / fp32, 3), target=None, met=None, batch_size=batch_size,
                data_shape=model.data_shape, forwards_per_sample=forwards, weights=weights_text(model),
                detections_per_image=round(float(kept.sum(axis=1).mean()), 1))


def weights_text(model):
    """'random (seed 0)' for :func:`demo_model`'s weights, else the checkpoint's prefix and epoch."""
    return 'random (seed %d)' % SEED if model.prefix.startswith(RANDOM_PREFIX) else '%s epoch %d' % (
        model.prefix, model.epoch)


def run(batch_sizes=(1, 8), data_shape=None, repeats=FULL['repeats'], forwards=None, prefix=None, epoch=None):
    """Quantize the model, then one row per batch size (see the module notes)."""
    from evaluate.quantize_net import quantize

    model = bench_model(data_shape, prefix, epoch)
    images = random_images(model, CALIB_IMAGES)
    quantized = quantize(model, images, CALIB_BATCH, calib_mode='naive')
    return [bench_batch_size(model, quantized, images, size, forwards, repeats) for size in batch_sizes]


def print_table(rows):
    header = '%-50s %10s %10s %7s' % ('measure', 'INT8', 'FP32', 'ratio')
    print(header)
    print('-' * len(header))
    for r in rows:
        print('%-50s %10.1f %10.1f %6.2fx' % (r['name'], r['ours'], r['peer'], r['ratio']))


def main(args):
    check_args(args)
    load_before = os.getloadavg()
    rows = run(args.batch_sizes, args.data_shape, args.repeats, args.forwards, args.prefix, args.epoch)
    print_table(rows)
    result = dict(date=time.strftime('%Y-%m-%d %H:%M'), load_average=[load_before, os.getloadavg()],
                  omp_num_threads=os.environ.get('OMP_NUM_THREADS'), quick=args.quick,
                  repeats=args.repeats, calib_images=CALIB_IMAGES, rows=rows)
    print('wrote %s' % write_json(args.out, result, indent=2))
    return result


if __name__ == '__main__':
    configure_threads()
    run_cli(main, parse_args())
