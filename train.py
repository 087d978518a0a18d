"""Train an SSD detector from RecordIO files.

Example (the synthetic demo set: a small MobileNet from scratch on the CPU, with the measured recipe of
config/recipes.py; any flag given after it overrides the recipe's value)::

    python train.py --recipe demo --train-path data/train.rec --val-path data/val.rec

Classes come from the ``.classes`` file next to the train ``.rec`` (written by tools/prepare_dataset.py).
Checkpoints, ``<prefix>-config.json``, ``<prefix>.classes`` and ``<prefix>-best.json`` go under ``--prefix``
(default ``model/ssd_<network>_<data-shape>``).
"""
import argparse

from config.augmentation import PRESETS
from config.cli import add_common_args, comma_ints, mean_pixels_from_args, prefix_from_args, std_pixels_from_args
from config.defaults import AMP_MODES, TRAIN
from config.recipes import RECIPES
from config.errors import run_cli
from config.runtime import configure_threads


def parse_args(argv=None):
    """Parse the flags; ``--recipe NAME`` first replaces the defaults by that recipe's values."""
    parser = build_parser()
    recipe = parser.parse_known_args(argv)[0].recipe
    if recipe:
        parser.set_defaults(**RECIPES[recipe])
    return parser.parse_args(argv)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--recipe', default=TRAIN['recipe'], choices=[''] + sorted(RECIPES),
                        help='start from a measured configuration of config/recipes.py (flags given override it)')
    parser.set_defaults(network_overrides=TRAIN['network_overrides'])   # set by recipes only
    data = parser.add_argument_group('training data')
    data.add_argument('--train-path', default=TRAIN['train_path'], help='training .rec')
    data.add_argument('--train-list', default=TRAIN['train_list'],
                      help='optional detection .lst whose labels replace those in the train .rec')
    data.add_argument('--val-path', default=TRAIN['val_path'], help="validation .rec ('' skips validation)")
    data.add_argument('--val-list', default=TRAIN['val_list'],
                      help='optional detection .lst whose labels replace those in the val .rec')
    data.add_argument('--num-example', type=int, default=TRAIN['num_example'],
                      help="accepted for MXNet's example scripts and ignored: the image count is read from the "
                           'train .rec (a note says so)')
    data.add_argument('--train-preset', default=TRAIN['train_preset'], choices=sorted(PRESETS),
                      help='augmentation preset of the training iterator (config/augmentation.py)')
    add_common_args(parser)
    start = parser.add_argument_group('starting weights')
    start.add_argument('--pretrained', default=TRAIN['pretrained'],
                       help="MXNet checkpoint prefix (with --epoch) or GluonCV .params file; '' from scratch")
    start.add_argument('--epoch', type=int, default=TRAIN['epoch'], help='epoch of the pretrained checkpoint')
    start.add_argument('--resume', type=int, default=TRAIN['resume'],
                       help='resume from this epoch of --prefix: weights, optimizer state, LR position')
    start.add_argument('--finetune', type=int, default=TRAIN['finetune'],
                       help='fine-tune from this epoch of --prefix (class heads reset when the classes change)')
    start.add_argument('--overwrite', action='store_true', default=TRAIN['overwrite'],
                       help='let this run replace checkpoints an earlier run saved under --prefix')
    start.add_argument('--freeze', default=TRAIN['freeze'],
                       help="regular expression of loaded parameters kept fixed ('' for none)")
    add_optimization_args(parser)
    logs = parser.add_argument_group('logging')
    logs.add_argument('--frequent', type=int, default=TRAIN['frequent'], help='log line every N batches')
    logs.add_argument('--log', default=TRAIN['log'], help="log file ('' for none)")
    logs.add_argument('--monitor', type=int, default=TRAIN['monitor'],
                      help='print weight/gradient statistics every N batches (0: off)')
    logs.add_argument('--pattern', default=TRAIN['pattern'], help='names the monitor prints (regex)')
    logs.add_argument('--val-interval', type=int, default=TRAIN['val_interval'], help='validate every N epochs')
    return parser


def add_optimization_args(parser):
    group = parser.add_argument_group('optimization')
    group.add_argument('--optimizer', default=TRAIN['optimizer'], choices=('sgd', 'adam'), help='optimizer')
    group.add_argument('--lr', type=float, default=TRAIN['lr'], help='base learning rate')
    group.add_argument('--momentum', type=float, default=TRAIN['momentum'], help='SGD momentum / Adam beta1')
    group.add_argument('--wd', type=float, default=TRAIN['wd'], help='weight decay')
    group.add_argument('--lr-steps', type=comma_ints, default=TRAIN['lr_steps'],
                       help='epochs at which the LR is multiplied by --lr-factor, e.g. 80,160')
    group.add_argument('--lr-factor', type=float, default=TRAIN['lr_factor'], help='LR multiplier per step')
    group.add_argument('--warmup-epochs', type=float, default=TRAIN['warmup_epochs'],
                       help='linear LR warm-up from 0 over this many epochs (may be fractional)')
    group.add_argument('--begin-epoch', type=int, default=TRAIN['begin_epoch'],
                       help='first epoch (without --resume/--finetune); earlier LR steps apply')
    group.add_argument('--end-epoch', type=int, default=TRAIN['end_epoch'], help='last epoch')
    group.add_argument('--kv-store', default=TRAIN['kv_store'], help='MXNet kvstore (multi-device training)')
    group.add_argument('--seed', type=int, default=TRAIN['seed'], help='random seed (default: unseeded)')
    group.add_argument('--background-prior', type=float, default=TRAIN['background_prior'],
                       help='initial background probability of the class heads (0: biases start at 0)')
    group.add_argument('--head-init-std', type=float, default=TRAIN['head_init_std'],
                       help='sd of the normal initial weights of new prediction heads (0: Xavier like the rest)')
    group.add_argument('--amp', default=TRAIN['amp'], choices=AMP_MODES,
                       help='mixed precision: bf16 convolutions on CPUs with AVX-512 (AVX512_BF16 for speed), fp16 '
                            'on GPUs; master weights, losses and MultiBox operators stay float32')
    group.add_argument('--loss-scale', type=float, default=TRAIN['loss_scale'],
                       help='static loss scale (default: %g with --amp fp16, else 1)' % TRAIN['fp16_loss_scale'])
    group.add_argument('--anchor-overlap', type=float, default=TRAIN['anchor_overlap'],
                       help='IoU from which an anchor is trained as a positive (default: symbol/multibox.py, 0.5)')


def train_net_kwargs(args):
    """The parsed flags as :func:`train.train_net.train_net` keyword arguments."""
    from config.cli import contexts_from_args
    kwargs = dict(vars(args))
    for flag_only in ('gpus', 'cpu', 'mean_r', 'mean_g', 'mean_b', 'std_r', 'std_g', 'std_b'):
        del kwargs[flag_only]
    kwargs.update(ctx=contexts_from_args(args), mean_pixels=mean_pixels_from_args(args),
                  std_pixels=std_pixels_from_args(args), prefix=prefix_from_args(args))
    return kwargs


def main(args):
    configure_threads()
    from train.train_net import train_net  # MXNet is imported only after the thread count is set
    return train_net(**train_net_kwargs(args))


if __name__ == '__main__':
    run_cli(main, parse_args())
