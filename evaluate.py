"""Score a trained SSD checkpoint on a whole packed validation set: VOC07 and all-point AP, optionally COCO.

Example (the checkpoint of ``train.py --prefix model/demo/ssd_demo`` after epoch 30)::

    python evaluate.py --rec-path data/val.rec --prefix model/demo/ssd_demo --epoch 30 --cpu --coco-metric

``--prefix`` is exactly the prefix train.py printed and saved under. The network, input size, classes and
input scaling come from ``<prefix>-config.yaml`` (or an older run's ``-config.json``) and ``<prefix>.classes``;
flags that contradict them are errors (checkpoints without those files need --network, --data-shape and
--num-class or --class-names).
Every image is scored unless --num-batch is given. Prints the per-class AP table (VOC07 11-point and
all-point area), with --coco-metric COCO AP@[.5:.95], AP50 and AP75 (pycocotools), and the images/s; writes
detections.json (COCO results format), summary.json and pr_<class>.png to --out (default
``<prefix>-eval-<epoch>``). --list-path takes the labels from a .lst instead of the .rec; --no-voc07 makes the
all-point mAP the headline. A --prefix ending in ``_`` without a checkpoint (MXNet's example habit) falls back
to ``<prefix><network>_<data-shape>``. --deploy scores the graph deploy.py wrote
(``<dir>/deploy_<name>-symbol.json`` and ``-<epoch>.params`` next to the prefix, or in --deploy-dir).
"""
import argparse

from config.errors import run_cli
from config.runtime import configure_threads
from config.schema import DEFAULTS
from tools.cli import (
    add_checkpoint_args,
    add_device_args,
    add_eval_args,
    add_input_scaling_args,
    input_scaling_from_args,
)


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group('data')
    data.add_argument('--rec-path', default=DEFAULTS.data.val_path,
                      help='validation .rec (its .idx next to it), or a set: a parts manifest .json, a glob '
                           '"data/val-*.rec" or a comma-separated list')
    data.add_argument('--list-path', default=DEFAULTS.data.val_list,
                      help='optional detection .lst whose labels replace those stored in the .rec (as MXNet\'s '
                           'example; DetRecordIter path_imglist=)')
    data.add_argument('--batch-size', type=int, default=DEFAULTS.data.batch_size, help='images per batch')
    data.add_argument('--num-batch', type=int, default=None,
                      help='score only the first N batches (default: every image of --rec-path)')
    data.add_argument('--label-width', type=int, default=DEFAULTS.data.label_width,
                      help='object rows per image in the labels (default: the most in one image of the .rec)')
    add_input_scaling_args(data)
    model = add_checkpoint_args(parser, epoch_help='checkpoint epoch to score')
    model.add_argument('--deploy', action='store_true',
                       help='score the deploy graph written by deploy.py instead of rebuilding it')
    model.add_argument('--deploy-dir', default=None,
                       help='folder of the deploy_<name> files (default: the folder of --prefix)')
    add_device_args(parser)
    scoring = add_eval_args(parser, 'scoring and outputs', voc07_help='headline mAP: VOC07 11-point (--no-voc07: '
                            'all-point area); the table shows both')
    scoring.add_argument('--coco-metric', action='store_true',
                         help='also COCO AP@[.5:.95], AP50, AP75 through pycocotools')
    scoring.add_argument('--out', default=None, help='output folder (default: <prefix>-eval-<epoch>)')
    scoring.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def evaluate_kwargs(args):
    """The parsed flags as :func:`evaluate.evaluate_net.evaluate_net` keyword arguments."""
    from core.run_dir import resolve_prefix
    from tools.cli import contexts_from_args
    kwargs = dict(vars(args))
    mean_pixels, std_pixels = input_scaling_from_args(args)
    scaling = ['%s_%s' % (kind, channel) for kind in ('mean', 'std') for channel in 'rgb']
    for flag_only in ['gpus', 'cpu', 'out', 'no_progress'] + scaling:
        del kwargs[flag_only]
    kwargs.update(ctx=contexts_from_args(args), out_dir=args.out, progress=not args.no_progress,
                  mean_pixels=mean_pixels, std_pixels=std_pixels, force_suppress=kwargs.pop('force_nms'),
                  prefix=resolve_prefix(args.prefix, args.network, args.data_shape))
    return kwargs


def main(args):
    configure_threads()
    from evaluate.evaluate_net import evaluate_net  # MXNet is imported only after the thread count is set
    return evaluate_net(**evaluate_kwargs(args))


if __name__ == '__main__':
    run_cli(main, parse_args())
