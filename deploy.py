"""Turn a training checkpoint into a deploy checkpoint: detection head with NMS, no loss layers.

Example::

    python deploy.py --prefix model/demo/ssd_demo --epoch 20
    python deploy.py --prefix model/demo/ssd_demo --epoch 20 --onnx

writes, beside the training checkpoint, ``deploy_ssd_demo-symbol.json`` and ``deploy_ssd_demo-0020.params``
(only the arrays the deploy graph uses), ``deploy_ssd_demo.classes`` (one class name per line) and
``deploy_ssd_demo-config.yaml`` (the configuration schema's: input side, mean/std, NMS settings, with where it
was deployed from, the MXNet version and ``nms_topk`` as its header comment; ``evaluate.model.load_model``
reads it). Network, data shape and classes come from the checkpoint's ``-config.yaml`` (or an older
``-config.json``); ``--network``, ``--data-shape``, ``--num-class`` are needed only for checkpoints without
one (``--data-shape`` may also choose another input side: the networks are fully convolutional). A
``--prefix`` ending in ``_`` without a checkpoint (MXNet's example habit, ``--prefix model/ssd_``) falls back
to ``<prefix><network>_<data-shape>``.

The graph: input ``data`` (B, 3, S, S) float32, RGB, ``(pixel - mean) / std`` per channel (values in the
config); output ``detection`` (B, A, 6) rows ``[class, score, xmin, ymin, xmax, ymax]``, corners normalized
to [0, 1], sorted by score, ``class`` -1 for suppressed rows and padding. Load it with::

    sym, args, auxs = mx.model.load_checkpoint('model/demo/deploy_ssd_demo', 20)   # then mx.mod.Module
    net = mx.gluon.nn.SymbolBlock.imports('model/demo/deploy_ssd_demo-symbol.json', ['data'],
                                          'model/demo/deploy_ssd_demo-0020.params')

``--onnx`` also writes ``deploy_ssd_demo-0020.onnx`` and ``deploy_ssd_demo-anchors.npy``. MXNet 1.9.1's
exporter has no converter for the anchor and detection operators (``_contrib_MultiBoxPrior``,
``_contrib_MultiBoxDetection``), so the ONNX graph is the network body for input (1, 3, S, S) with two
outputs, and the anchors, which depend only on the input side, are a constant array:

- ``cls_prob`` (1, 1 + K, A): softmax class probabilities, background at index 0;
- ``loc_preds`` (1, A * 4): per anchor ``(px, py, pw, ph)``;
- anchors (1, A, 4) ``[xmin, ymin, xmax, ymax]`` normalized, from the ``.npy``.

The consumer decodes each anchor (centre ``ax, ay``, size ``aw, ah``) with the variances
``(v0, v1, v2, v3) = (0.1, 0.1, 0.2, 0.2)`` (symbol/multibox.py ``VARIANCES``): centre
``(px * v0 * aw + ax, py * v1 * ah + ay)``, width ``exp(pw * v2) * aw``, height ``exp(ph * v3) * ah``, corners
clipped to [0, 1]; takes the most probable non-background class and its probability as score, drops scores
below 0.01, sorts by score, keeps the best ``nms_topk`` (config header, default 400) and runs greedy NMS: a box whose
IoU with a higher-scored kept box of the same class (any class when ``force_nms`` is true) is >= ``nms_thresh``
(config) is dropped. ``evaluate/deploy_net.py`` ``decode_detections`` is this recipe in NumPy; it equals
MXNet's ``detection`` output.
"""
import argparse

from config.errors import run_cli
from config.runtime import configure_threads
from tools.cli import add_checkpoint_args


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = add_checkpoint_args(parser, epoch_help='epoch of the checkpoint to deploy')
    model.add_argument('--nms-topk', '--topk', type=int, default=None,
                       help='detections kept per image before NMS, -1 for all (default 400; --topk is MXNet\'s '
                            'example name)')
    parser.add_argument('--onnx', action='store_true',
                        help='also export the body (cls_prob, loc_preds) to ONNX and the anchors to .npy')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def describe(model, paths, num_arrays):
    """The lines printed after writing: files, input, output and how to load them."""
    side = model.data_shape
    return [
        'deploy checkpoint of %s epoch %d (%s at %d px, %d classes; detection head with NMS, no loss layers):'
        % (model.prefix, model.epoch, model.network, side, model.num_classes),
        '  %s' % paths.symbol,
        '  %s (%d arrays)' % (paths.params, num_arrays),
        '  %s (%s)' % (paths.classes, ', '.join(model.class_names)),
        '  %s' % paths.config,
        "input 'data' (B, 3, %d, %d): RGB, (pixel - %s) / %s; output 'detection' (B, A, 6) [class, score, "
        'xmin, ymin, xmax, ymax], normalized, class -1 = none' % (side, side, list(model.mean_pixels),
                                                                 list(model.std_pixels)),
        "load: mx.model.load_checkpoint('%s', %d) or mx.gluon.nn.SymbolBlock.imports('%s', ['data'], '%s')"
        % (paths.prefix, model.epoch, paths.symbol, paths.params),
    ]


def describe_onnx(model, paths):
    """The lines printed after the ONNX export: the two outputs, the anchors and the decoding to apply."""
    return [
        'ONNX body for input (1, 3, %d, %d): %s' % (model.data_shape, model.data_shape, paths.onnx),
        "  outputs 'cls_prob' (1, %d, A) softmax, background first; 'loc_preds' (1, A*4) box offsets"
        % (model.num_classes + 1),
        '  anchors (1, A, 4) [xmin, ymin, xmax, ymax]: %s (MultiBoxPrior has no ONNX converter)' % paths.anchors,
        '  decode and NMS as deploy.py --help says (variances 0.1, 0.1, 0.2, 0.2; score >= 0.01; NMS IoU %s, '
        'across classes: %s); reference: evaluate/deploy_net.py decode_detections' % (
            model.nms_thresh, model.force_suppress),
    ]


def main(args):
    """Write the deploy checkpoint (and the ONNX body with ``--onnx``); returns the paths written."""
    configure_threads()
    from core.run_dir import resolve_prefix
    from evaluate.deploy_net import export_onnx, require_onnx, write_deploy
    from evaluate.model import load_model
    from symbol.multibox import NMS
    if args.onnx:
        require_onnx()   # before anything is written
    prefix = resolve_prefix(args.prefix, args.network, args.data_shape)
    model = load_model(prefix, args.epoch, network=args.network, data_shape=args.data_shape,
                       num_class=args.num_class, class_names=args.class_names, nms_thresh=args.nms_thresh,
                       force_suppress=args.force_nms)
    nms_topk = NMS['nms_topk'] if args.nms_topk is None else args.nms_topk
    paths = write_deploy(model, nms_topk)
    arg_params, aux_params = model.deploy_params()
    for line in describe(model, paths, len(arg_params) + len(aux_params)):
        print(line)
    if args.onnx:
        export_onnx(model, paths)
        for line in describe_onnx(model, paths):
            print(line)
    return paths


if __name__ == '__main__':
    run_cli(main, parse_args())
