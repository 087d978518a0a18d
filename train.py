"""Train an SSD detector from RecordIO files.

Example (the synthetic demo set: a small MobileNet from scratch on the CPU, with the measured recipe of
config/recipes/demo.yaml; any flag given after it overrides the recipe's value)::

    python train.py --recipe demo --train-path data/train.rec --val-path data/val.rec

Settings: schema defaults (config/schema.py) <- ``--recipe`` <- ``--config-file run.yaml`` <- the flags given
<- ``--opts KEY VALUE ...`` (e.g. ``--opts solver.lr 0.01``). Classes come from the ``.classes`` file next to
the train ``.rec`` (written by tools/prepare_dataset.py). Checkpoints, ``<prefix>-config.yaml`` (every value
explicit: ``--config-file`` it to repeat the run), ``<prefix>.classes`` and ``<prefix>-best.json`` go under
``--prefix`` (default ``model/ssd_<network>_<data-shape>``).
"""
import argparse

from config.augmentation import PRESETS
from config.defaults import FP16_LOSS_SCALE
from config.errors import run_cli
from config.recipes import RECIPES, recipe_path
from config.runtime import configure_threads
from config.schema import AMP_MODES, BALANCE_MODES, DEFAULTS, build_config, read_yaml
from dataset.imdb import read_class_names
from tools.cli import add_common_args, comma_ints, given_flags


def parse_args(argv=None):
    """Parse the flags; ``args.given`` holds the flags actually given (they override recipe and file)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = given_flags(parser, argv)
    return args


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--recipe', default=DEFAULTS.run.recipe, choices=[''] + sorted(RECIPES),
                        help='start from a measured configuration, config/recipes/<name>.yaml (what follows wins)')
    parser.add_argument('--config-file', default=None,
                        help='a YAML configuration (sections data, model, solver, run, eval), e.g. an earlier '
                             "run's <prefix>-config.yaml to repeat it; flags and --opts given override it")
    parser.add_argument('--opts', nargs='+', default=[], metavar='KEY VALUE',
                        help='schema keys and values applied last, e.g. --opts solver.lr 0.01 run.seed 3')
    data = parser.add_argument_group('training data')
    data.add_argument('--train-path', default=DEFAULTS.data.train_path, help='training .rec')
    data.add_argument('--train-list', default=DEFAULTS.data.train_list,
                      help='optional detection .lst whose labels replace those in the train .rec')
    data.add_argument('--val-path', default=DEFAULTS.data.val_path, help="validation .rec ('' skips validation)")
    data.add_argument('--val-list', default=DEFAULTS.data.val_list,
                      help='optional detection .lst whose labels replace those in the val .rec')
    data.add_argument('--num-example', type=int, default=DEFAULTS.data.num_example,
                      help="accepted for MXNet's example scripts and ignored: the image count is read from the "
                           'train .rec (a note says so)')
    data.add_argument('--train-preset', default=DEFAULTS.data.train_preset, choices=sorted(PRESETS),
                      help='augmentation preset of the training iterator (config/augmentation.py)')
    data.add_argument('--balance', default=DEFAULTS.data.balance, choices=BALANCE_MODES,
                      help='repeat-factor: repeat the images of rare classes, sqrt(t / image fraction) times (LVIS); '
                           'the records are copied once to <prefix>-balanced.rec')
    data.add_argument('--balance-threshold', type=float, default=DEFAULTS.data.balance_threshold, metavar='T',
                      help='classes in fewer than this fraction of the images are repeated (--balance)')
    add_common_args(parser)
    start = parser.add_argument_group('starting weights')
    start.add_argument('--pretrained', default=DEFAULTS.run.pretrained,
                       help="MXNet checkpoint prefix (with --epoch) or GluonCV .params file; '' from scratch")
    start.add_argument('--epoch', type=int, default=DEFAULTS.run.pretrained_epoch,
                       help='epoch of the pretrained checkpoint')
    start.add_argument('--resume', default=DEFAULTS.run.resume,
                       help="resume from this epoch of --prefix (weights, optimizer state, LR position, hooks), or "
                            "'last' / 'auto': the newest complete checkpoint, mid-epoch ones included ('auto' starts "
                            'from scratch when there is none)')
    start.add_argument('--finetune', type=int, default=DEFAULTS.run.finetune,
                       help='fine-tune from this epoch of --prefix (class heads reset when the classes change)')
    start.add_argument('--overwrite', action='store_true', default=DEFAULTS.run.overwrite,
                       help='let this run replace checkpoints an earlier run saved under --prefix')
    start.add_argument('--trust-pickled-states', action='store_true', default=DEFAULTS.run.trust_pickled_states,
                       help="--resume may read an optimizer state in MXNet's pickle format (older checkpoints, "
                            "MXNet's example): unpickling runs any code the file carries")
    start.add_argument('--freeze', default=DEFAULTS.solver.freeze,
                       help="regular expression of loaded parameters kept fixed ('' for none)")
    add_optimization_args(parser)
    logs = parser.add_argument_group('logging')
    logs.add_argument('--frequent', type=int, default=DEFAULTS.run.frequent, help='log line every N batches')
    logs.add_argument('--log', default=DEFAULTS.run.log, help="log file ('' for none)")
    logs.add_argument('--tensorboard', action=argparse.BooleanOptionalAction, default=DEFAULTS.run.tensorboard,
                      help='TensorBoard event files in <prefix>-tb/: losses, LR, speed, mAP, AP per class, training '
                           'batches, validation detections, PR curves (tensorboardX; default: on)')
    logs.add_argument('--monitor', type=int, default=DEFAULTS.run.monitor,
                      help='print weight/gradient statistics every N batches (0: off)')
    logs.add_argument('--pattern', default=DEFAULTS.run.monitor_pattern, help='names the monitor prints (regex)')
    logs.add_argument('--val-interval', type=int, default=DEFAULTS.eval.val_interval, help='validate every N epochs')
    logs.add_argument('--validate-on-train', type=int, default=DEFAULTS.eval.validate_on_train, metavar='N',
                      help='after epoch 1, score N training batches without augmentation and warn when that mAP '
                           'is near zero while the loss falls (a data bug); 0: off')
    return parser


def add_optimization_args(parser):
    group = parser.add_argument_group('optimization')
    group.add_argument('--optimizer', default=DEFAULTS.solver.optimizer, choices=('sgd', 'adam'), help='optimizer')
    group.add_argument('--lr', type=float, default=DEFAULTS.solver.lr, help='base learning rate')
    group.add_argument('--momentum', type=float, default=DEFAULTS.solver.momentum, help='SGD momentum / Adam beta1')
    group.add_argument('--wd', type=float, default=DEFAULTS.solver.wd, help='weight decay')
    group.add_argument('--lr-steps', type=comma_ints, default=DEFAULTS.solver.lr_steps,
                       help='epochs at which the LR is multiplied by --lr-factor, e.g. 80,160')
    group.add_argument('--lr-factor', type=float, default=DEFAULTS.solver.lr_factor, help='LR multiplier per step')
    group.add_argument('--warmup-epochs', type=float, default=DEFAULTS.solver.warmup_epochs,
                       help='linear LR warm-up from 0 over this many epochs (may be fractional)')
    group.add_argument('--lr-scheduler', default=DEFAULTS.solver.lr_scheduler, choices=('step', 'cosine', 'poly'),
                       help='step: x --lr-factor at each of --lr-steps; cosine / poly: from --lr after the warm-up '
                            'to --final-lr at the end of --end-epoch')
    group.add_argument('--warmup-start-factor', type=float, default=DEFAULTS.solver.warmup_start_factor,
                       help='the warm-up starts at this fraction of --lr (0 to 1)')
    group.add_argument('--time-budget', type=float, default=DEFAULTS.solver.time_budget, metavar='MINUTES',
                       help='train for about this many minutes, validation included: one epoch is timed here first, '
                            '--end-epoch becomes the epochs that fit, --lr-steps keep their place as fractions of the '
                            'run and cosine / poly decay to the new end (the log says what was fitted); 0: off')
    group.add_argument('--final-lr', type=float, default=DEFAULTS.solver.final_lr,
                       help='cosine / poly: the LR of the last update (0 to --lr)')
    group.add_argument('--poly-power', type=float, default=DEFAULTS.solver.poly_power,
                       help='poly: LR = final + (lr - final) * (1 - progress) ** power')
    group.add_argument('--bias-lr-mult', type=float, default=DEFAULTS.solver.bias_lr_mult,
                       help="LR multiplier of every bias (the SSD Caffe recipe's 2); biases never get weight decay")
    group.add_argument('--backbone-lr-mult', type=float, default=DEFAULTS.solver.backbone_lr_mult,
                       help='LR multiplier of the backbone, i.e. all but the extra layers, L2 scales and heads '
                            '(e.g. 0.1 for a pretrained backbone)')
    group.add_argument('--norm-decay', action=argparse.BooleanOptionalAction, default=DEFAULTS.solver.norm_decay,
                       help='weight decay on BatchNorm gamma and the L2-normalization scales (x0.1); '
                            '--no-norm-decay: none on either, as the SSD Caffe recipe for BatchNorm (beta never '
                            'decays)')
    group.add_argument('--begin-epoch', type=int, default=DEFAULTS.solver.begin_epoch,
                       help='first epoch (without --resume/--finetune); earlier LR steps apply')
    group.add_argument('--end-epoch', type=int, default=DEFAULTS.solver.end_epoch, help='last epoch')
    group.add_argument('--kv-store', default=DEFAULTS.solver.kv_store,
                       help="MXNet kvstore: local or device for several devices; dist_sync, dist_device_sync or "
                            "dist_async for several workers, started by tools/launch.py (README 'Scaling out')")
    group.add_argument('--cpus', type=int, default=DEFAULTS.run.cpus,
                       help='data-parallel CPU contexts (implies the CPU): the multi-device path without GPUs')
    group.add_argument('--seed', type=int, default=DEFAULTS.run.seed, help='random seed (default: unseeded)')
    group.add_argument('--background-prior', type=float, default=DEFAULTS.model.background_prior,
                       help='initial background probability of the class heads (0: biases start at 0)')
    group.add_argument('--head-init-std', type=float, default=DEFAULTS.model.head_init_std,
                       help='sd of the normal initial weights of new prediction heads (0: Xavier like the rest)')
    group.add_argument('--amp', default=DEFAULTS.solver.amp, choices=AMP_MODES,
                       help='mixed precision: bf16 convolutions on CPUs with AVX-512 (AVX512_BF16 for speed), fp16 '
                            'on GPUs; master weights, losses and MultiBox operators stay float32')
    group.add_argument('--loss-scale', type=float, default=DEFAULTS.solver.loss_scale,
                       help='static loss scale (default: %g with --amp fp16, else 1)' % FP16_LOSS_SCALE)
    group.add_argument('--clip-gradient', type=float, default=DEFAULTS.solver.clip_gradient, metavar='C',
                       help='clip every gradient element to [-C, C] before the update (the loss is averaged per '
                            'image, so C is in those units); 0: off')
    group.add_argument('--ema', type=float, default=DEFAULTS.solver.ema, metavar='DECAY',
                       help='also keep an exponential moving average of the weights and BatchNorm statistics, '
                            'updated after every batch (ema = DECAY*ema + (1-DECAY)*w, no ramp, starting from the '
                            'initial weights), validated beside them and saved every epoch as '
                            '<prefix>-ema-NNNN.params (evaluate.py --prefix <prefix>-ema); e.g. 0.999; 0: off')
    group.add_argument('--anchor-overlap', type=float, default=DEFAULTS.model.anchor_overlap,
                       help='IoU from which an anchor is trained as a positive (default: symbol/multibox.py, 0.5)')


NOT_SETTINGS = ('given', 'recipe', 'config_file', 'opts')   # parsed flags that are no schema key


def config_from_args(args):
    """The run's configuration: schema <- recipe <- --config-file <- flags given <- --opts, frozen, checked.

    The recipe is ``--recipe``, else the ``run.recipe`` the config file names.
    """
    flags = {name: value for name, value in args.given.items() if name not in NOT_SETTINGS}
    if flags.get('class_names'):
        flags['class_names'] = list(read_class_names(flags['class_names']))
    recipe = args.recipe or recipe_named_by(args.config_file)
    if args.recipe:
        flags['recipe'] = args.recipe
    return build_config(recipe_path(recipe) if recipe else None, args.config_file, flags, args.opts)


def recipe_named_by(config_file):
    """``run.recipe`` of the YAML file ``config_file`` ('' when it names none or there is no file)."""
    if not config_file:
        return ''
    return str((read_yaml(config_file, '--config-file').get('run') or {}).get('recipe') or '')


def main(args):
    configure_threads()
    from train.train_net import train_net  # MXNet is imported only after the thread count is set
    return train_net(config_from_args(args))


if __name__ == '__main__':
    run_cli(main, parse_args())
