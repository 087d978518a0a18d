"""Command-line arguments shared by every entry script (train.py, evaluate.py, demo.py, deploy.py, ...).

Each ``add_*_args`` helper adds one group of flags with its defaults from ``config.schema.DEFAULTS``; the
``*_from_args`` helpers turn parsed flags into the plain values library code takes. MXNet is imported only
inside the helpers that need it, so scripts can call ``configure_threads()`` first.
"""
import argparse

from config.schema import DEFAULTS
from core.devices import contexts_for


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


def is_range(values, low, high=float('inf'), whole=False):
    """Whether ``values`` (from :func:`comma_floats`) is ``(LOW, HIGH)`` with ``low <= LOW <= HIGH <= high``,
    and whole numbers too if ``whole``."""
    return (len(values) == 2 and low <= values[0] <= values[1] <= high
            and (not whole or all(float(value).is_integer() for value in values)))


def add_model_args(parser):
    """``--network``, ``--data-shape``, ``--num-class``, ``--class-names``, ``--nms``, ``--force``, ``--prefix``."""
    group = parser.add_argument_group('network')
    group.add_argument('--network', default=DEFAULTS.model.network, help='network name (symbol/symbol_factory.py)')
    group.add_argument('--data-shape', type=int, default=DEFAULTS.model.data_shape, help='square input side in pixels')
    group.add_argument('--num-class', type=int, default=DEFAULTS.data.num_class,
                       help='object classes (default: the count in the .classes file next to the .rec)')
    group.add_argument('--class-names', default=DEFAULTS.data.class_names,
                       help='class names: a file with one per line or a comma-separated list '
                            '(default: the .classes file next to the .rec)')
    group.add_argument('--nms', type=float, default=DEFAULTS.model.nms_thresh, dest='nms_thresh',
                       help='non-maximum suppression IoU threshold (default: symbol/multibox.py, 0.45)')
    group.add_argument('--force', action=argparse.BooleanOptionalAction, default=DEFAULTS.model.force_suppress,
                       dest='force_nms', help='suppress overlapping detections across classes too')
    group.add_argument('--prefix', default=DEFAULTS.run.prefix,
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
    group.add_argument('--network', default=None, help='network name; needed without a -config.yaml')
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
    group.add_argument('--gpus', '--gpu', default=DEFAULTS.run.gpus,
                       help="GPU ids, e.g. 0,1; '' for the CPU (default: every visible GPU when this MXNet build "
                            'has CUDA and sees one, else the CPU)')
    group.add_argument('--cpu', action='store_true', help='run on the CPU whatever --gpus says')
    return group


def add_data_args(parser):
    """``--batch-size``, ``--mean-r/g/b``, ``--std-r/g/b`` and ``--label-width``."""
    group = parser.add_argument_group('data')
    group.add_argument('--batch-size', type=int, default=DEFAULTS.data.batch_size, help='images per batch, all devices')
    for channel, mean in zip('rgb', DEFAULTS.data.mean_pixels):
        group.add_argument('--mean-%s' % channel, type=float, default=mean, help='%s mean subtracted' % channel)
    for channel, std in zip('rgb', DEFAULTS.data.std_pixels):
        group.add_argument('--std-%s' % channel, type=float, default=std,
                           help='%s divisor after the mean (GluonCV ImageNet weights: 58.395 / 57.12 / 57.375)'
                                % channel)
    group.add_argument('--label-width', type=int, default=DEFAULTS.data.label_width,
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


def add_eval_args(parser, title='evaluation',
                  voc07_help='11-point VOC07 AP (--no-voc07: area under the precision-recall curve)'):
    """``--overlap``, ``--use-difficult`` and ``--voc07/--no-voc07`` in a group named ``title``."""
    group = parser.add_argument_group(title)
    group.add_argument('--overlap', type=float, default=DEFAULTS.eval.overlap,
                       help='IoU at which a detection matches a ground-truth box')
    group.add_argument('--use-difficult', action='store_true', default=DEFAULTS.eval.use_difficult,
                       help='score difficult objects as ordinary ones')
    group.add_argument('--voc07', action=argparse.BooleanOptionalAction, default=DEFAULTS.eval.voc07,
                       help=voc07_help)
    return group


def add_common_args(parser):
    """The network, device, data and evaluation flags every script shares."""
    add_model_args(parser)
    add_device_args(parser)
    add_data_args(parser)
    add_eval_args(parser)
    return parser


def contexts_from_args(args):
    """The devices of ``--gpus`` / ``--cpu`` (see :func:`core.devices.contexts_for`)."""
    return contexts_for('' if args.cpu else args.gpus)


def given_flags(parser, argv=None):
    """``{dest: value}`` of the flags actually given in ``argv`` (defaults left out), by parsing once more
    with every default suppressed."""
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        given, _ = parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return vars(given)
