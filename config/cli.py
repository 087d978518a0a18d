"""Command-line arguments shared by every entry script (train.py, evaluate.py, demo.py, deploy.py, ...).

Each ``add_*_args`` helper adds one group of flags with its defaults from :mod:`config.defaults`; the
``*_from_args`` helpers turn parsed flags into the plain values library code takes. MXNet is imported only
inside the helpers that need it, so scripts can call ``configure_threads()`` first.
"""
import argparse
import glob
import os

from config.defaults import DATA, TRAIN
from config.errors import UserError

CUDA_PACKAGE = 'mxnet-cu112'   # the pip package with GPU support for MXNet 1.9


def comma_ints(text):
    """argparse type: ``'80,160'`` -> ``(80, 160)``; ``''`` -> ``()``."""
    try:
        return tuple(int(item) for item in text.split(',') if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a comma-separated list of whole numbers' % text) from None


def comma_floats(text):
    """argparse type: ``'0.1,0.6'`` -> ``(0.1, 0.6)``; ``''`` -> ``()``."""
    try:
        return tuple(float(item) for item in text.split(',') if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a comma-separated list of numbers' % text) from None


def add_model_args(parser):
    """``--network``, ``--data-shape``, ``--num-class``, ``--class-names``, ``--nms``, ``--force``, ``--prefix``."""
    group = parser.add_argument_group('network')
    group.add_argument('--network', default=TRAIN['network'], help='network name (symbol/symbol_factory.py)')
    group.add_argument('--data-shape', type=int, default=DATA['data_shape'], help='square input side in pixels')
    group.add_argument('--num-class', type=int, default=TRAIN['num_class'],
                       help='object classes (default: the count in the .classes file next to the .rec)')
    group.add_argument('--class-names', default=TRAIN['class_names'],
                       help='class names: a file with one per line or a comma-separated list '
                            '(default: the .classes file next to the .rec)')
    group.add_argument('--nms', type=float, default=TRAIN['nms'], dest='nms_thresh',
                       help='non-maximum suppression IoU threshold (default: symbol/multibox.py, 0.45)')
    group.add_argument('--force', action=argparse.BooleanOptionalAction, default=TRAIN['force_nms'],
                       dest='force_nms', help='suppress overlapping detections across classes too')
    group.add_argument('--prefix', default=TRAIN['prefix'],
                       help='checkpoint prefix, used exactly as given (default: model/ssd_<network>_<data-shape>)')
    return group


def add_checkpoint_args(parser, required=True, epoch_help='checkpoint epoch'):
    """The flags of scripts that load a trained model (evaluate.py, demo.py, deploy.py).

    ``--prefix`` / ``--epoch`` (required unless ``required`` is False), and ``--network``, ``--data-shape``,
    ``--num-class``, ``--class-names``, ``--nms``, ``--force`` defaulting to None: the checkpoint's
    ``<prefix>-config.json`` and ``<prefix>.classes`` give them (see evaluate/model.py), so they are needed
    only for checkpoints without those files, and contradicting values are errors there.
    """
    group = parser.add_argument_group('trained model (default: as in <prefix>-config.json and <prefix>.classes)')
    group.add_argument('--prefix', required=required, default=None,
                       help='checkpoint prefix exactly as train.py saved under (nothing is appended)')
    group.add_argument('--epoch', type=int, required=required, default=None, help=epoch_help)
    group.add_argument('--network', default=None, help='network name; needed without a -config.json')
    group.add_argument('--data-shape', type=int, default=None, help='square input side (default: the training one)')
    group.add_argument('--num-class', type=int, default=None, help="object classes; must match the checkpoint's")
    group.add_argument('--class-names', default=None,
                       help='class names: a file with one per line or a comma-separated list')
    group.add_argument('--nms', type=float, default=None, dest='nms_thresh',
                       help='non-maximum suppression IoU threshold (default: the training one)')
    group.add_argument('--force', '--force-nms', action=argparse.BooleanOptionalAction, default=None,
                       dest='force_nms', help='suppress overlapping detections across classes too')
    return group


def add_device_args(parser):
    """``--gpus`` (alias ``--gpu``, the name MXNet's example demo.py used) and ``--cpu``."""
    group = parser.add_argument_group('devices')
    group.add_argument('--gpus', '--gpu', default=TRAIN['gpus'],
                       help="GPU ids, e.g. 0,1; '' for the CPU (default: every visible GPU when this MXNet build "
                            'has CUDA and sees one, else the CPU)')
    group.add_argument('--cpu', action='store_true', help='run on the CPU whatever --gpus says')
    return group


def add_data_args(parser):
    """``--batch-size``, ``--mean-r/g/b``, ``--std-r/g/b`` and ``--label-width``."""
    group = parser.add_argument_group('data')
    group.add_argument('--batch-size', type=int, default=DATA['batch_size'], help='images per batch, all devices')
    for channel, mean in zip('rgb', DATA['mean_pixels']):
        group.add_argument('--mean-%s' % channel, type=float, default=mean, help='%s mean subtracted' % channel)
    for channel, std in zip('rgb', DATA['std_pixels']):
        group.add_argument('--std-%s' % channel, type=float, default=std,
                           help='%s divisor after the mean (GluonCV ImageNet weights: 58.395 / 57.12 / 57.375)'
                                % channel)
    group.add_argument('--label-width', type=int, default=DATA['label_width'],
                       help='object rows per image in the labels (default: the most in one image of the files)')
    return group


def add_input_scaling_args(group):
    """``--mean-r/g/b`` and ``--std-r/g/b`` defaulting to None: the value the checkpoint was trained with."""
    for kind, what in (('mean', 'mean subtracted'), ('std', 'divisor after the mean')):
        for channel in 'rgb':
            group.add_argument('--%s-%s' % (kind, channel), type=float, default=None,
                               help='%s %s (default: the value the checkpoint was trained with)' % (channel, what))
    return group


def input_scaling_from_args(args):
    """``(mean_pixels, std_pixels)``, each ``(r, g, b)`` with None for a channel not given."""
    return tuple(tuple(getattr(args, '%s_%s' % (kind, channel)) for channel in 'rgb') for kind in ('mean', 'std'))


def add_eval_args(parser):
    """``--overlap``, ``--use-difficult`` and ``--voc07/--no-voc07``."""
    group = parser.add_argument_group('evaluation')
    group.add_argument('--overlap', type=float, default=TRAIN['overlap'],
                       help='IoU at which a detection matches a ground-truth box')
    group.add_argument('--use-difficult', action='store_true', default=TRAIN['use_difficult'],
                       help='score difficult objects as ordinary ones')
    group.add_argument('--voc07', action=argparse.BooleanOptionalAction, default=TRAIN['voc07'],
                       help='11-point VOC07 AP (--no-voc07: area under the precision-recall curve)')
    return group


def add_common_args(parser):
    """The network, device, data and evaluation flags every script shares."""
    add_model_args(parser)
    add_device_args(parser)
    add_data_args(parser)
    add_eval_args(parser)
    return parser


def mean_pixels_from_args(args):
    """``(mean_r, mean_g, mean_b)``."""
    return (args.mean_r, args.mean_g, args.mean_b)


def std_pixels_from_args(args):
    """``(std_r, std_g, std_b)``."""
    return (args.std_r, args.std_g, args.std_b)


def default_prefix(network, data_shape):
    """``model/ssd_<network>_<data_shape>``: where checkpoints go when ``--prefix`` is not given."""
    return os.path.join('model', 'ssd_%s_%d' % (network, data_shape))


def prefix_from_args(args):
    """``--prefix`` as given, else :func:`default_prefix`."""
    return args.prefix if args.prefix else default_prefix(args.network, args.data_shape)


def has_checkpoint(prefix):
    """Whether ``<prefix>-symbol.json`` or a ``<prefix>-NNNN.params`` exists."""
    params = glob.glob(glob.escape(prefix) + '-[0-9][0-9][0-9][0-9].params')
    return os.path.isfile(prefix + '-symbol.json') or bool(params)


def example_prefix_candidates(prefix, network, data_shape):
    """Where MXNet's example would have saved for ``--prefix`` ending in ``_``: ``<prefix><network>_<data_shape>``
    (its train.py), then ``<prefix><network>`` (its evaluate.py); without ``data_shape``, every saved
    ``<prefix><network>_<side>``."""
    if not network:
        return []
    base = prefix + network
    if data_shape:
        return ['%s_%d' % (base, data_shape), base]
    sides = {path[len(base) + 1:].split('-')[0] for path in glob.glob(glob.escape(base) + '_*-*.params')}
    return ['%s_%s' % (base, side) for side in sorted(sides, key=int) if side.isdigit()] + [base]


def resolve_prefix(prefix, network=None, data_shape=None):
    """``prefix`` as given, unless it ends in ``_`` (MXNet's example habit, e.g. ``model/ssd_``), has no
    checkpoint, and ``<prefix><network>_<data_shape>`` (or ``<prefix><network>``) has one: then that, with a
    one-line note. ``network`` / ``data_shape`` are the flags' values (None when not given)."""
    if not prefix or not prefix.endswith('_') or has_checkpoint(prefix):
        return prefix
    found = [candidate for candidate in example_prefix_candidates(prefix, network, data_shape)
             if has_checkpoint(candidate)]
    if not found:
        return prefix
    if not data_shape and len(found) > 1:
        raise UserError('--prefix %s: checkpoints %s all fit; give --data-shape to choose'
                        % (prefix, ', '.join(found)))
    print('note: --prefix %s has no checkpoint; using %s (MXNet\'s example appended <network>_<data-shape>)'
          % (prefix, found[0]))
    return found[0]


def parse_gpu_ids(gpus):
    """``'0,1'`` -> ``[0, 1]``; ``''`` -> ``[]``."""
    try:
        ids = [int(item) for item in gpus.split(',') if item.strip()]
    except ValueError:
        raise UserError('--gpus %r must be comma-separated GPU ids such as 0,1 (or empty for the CPU)' % gpus) \
            from None
    if any(gpu < 0 for gpu in ids) or len(set(ids)) != len(ids):
        raise UserError('--gpus %r must be distinct non-negative ids' % gpus)
    return ids


def visible_gpu_count():
    """GPUs this MXNet build can use: 0 without CUDA support or when the CUDA runtime finds none."""
    import mxnet as mx
    try:
        if not mx.runtime.Features().is_enabled('CUDA'):
            return 0
        return int(mx.context.num_gpus())
    except mx.base.MXNetError:       # a CUDA build on a machine without a driver
        return 0


def cuda_available():
    """Whether this MXNet build has CUDA and sees a GPU."""
    return visible_gpu_count() > 0


def default_contexts():
    """``[mx.gpu(0), ..., mx.gpu(N - 1)]`` for the visible GPUs, else ``[mx.cpu()]``; prints which, in one line."""
    import mxnet as mx
    count = visible_gpu_count()
    if count:
        print('device: GPUs %s, every visible one (--gpus IDS chooses, --cpu runs on the CPU)'
              % ','.join(map(str, range(count))))
        return [mx.gpu(gpu) for gpu in range(count)]
    print('device: CPU (this MXNet build has no CUDA or sees no GPU; %s and --gpus IDS for GPUs)' % CUDA_PACKAGE)
    return [mx.cpu()]


def contexts_from_args(args):
    """``[mx.gpu(i), ...]`` for ``--gpus``, ``[mx.cpu()]`` with ``--cpu`` or an empty ``--gpus``, and
    :func:`default_contexts` when neither was given (``--gpus`` None).

    Raises
    ------
    UserError
        When GPUs are asked for but this MXNet build has no CUDA (or sees no GPU).
    """
    import mxnet as mx
    if not args.cpu and args.gpus is None:
        return default_contexts()
    ids = [] if args.cpu else parse_gpu_ids(args.gpus)
    if not ids:
        return [mx.cpu()]
    if not cuda_available():
        raise UserError('--gpus %s: this MXNet build has no CUDA or sees no GPU; install %s for GPU training, or '
                        'use --cpu' % (args.gpus, CUDA_PACKAGE))
    return [mx.gpu(gpu) for gpu in ids]
