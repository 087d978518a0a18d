"""The one configuration schema of a training run: sections ``data``, ``model``, ``solver``, ``run``, ``eval``.

Built on OmegaConf structured configs (typed dataclasses): a merge checks every key and type, YAML reads and
writes it, ``--opts solver.lr 0.01`` is a dotted override, and the result is frozen read-only. The order is
:func:`build_config`'s::

    schema defaults -> recipe (config/recipes/<name>.yaml) -> --config-file run.yaml -> the flat flags
    (--lr, --batch-size, ...: aliases of schema keys, FLAG_KEYS) -> --opts KEY VALUE ... -> frozen -> checked

Each key's help text (the ``help`` metadata) is its one-line comment here, in ``train.py --help`` and in the
``<prefix>-config.yaml`` a run writes. Values that mean "the default of another module" (None for NMS and
anchor matching) are resolved by ``train/train_net.py`` before that file is written, so it holds every value
explicitly and ``python train.py --config-file <prefix>-config.yaml`` repeats the run from the file alone.
"""
import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from config.errors import UserError

SECTIONS = ('data', 'model', 'solver', 'run', 'eval')
AMP_MODES = ('none', 'bf16', 'fp16')          # --amp: float32, bfloat16 (CPU), float16 (GPU)
OPTIMIZERS = ('sgd', 'adam')


def key(default, help, factory=None):
    """A schema field with its one-line comment as ``help`` metadata (``factory`` for list defaults)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={'help': help})
    return dataclasses.field(default=default, metadata={'help': help})


@dataclasses.dataclass
class DataConfig:
    train_path: str = key('data/train.rec', 'training .rec, or a set read as one: parts manifest .json, '
                          'glob, a,b.rec')
    train_list: str = key('', 'optional .lst whose labels replace those in the train .rec')
    val_path: str = key('data/val.rec', "validation .rec or set (as --train-path); '' skips validation")
    val_list: str = key('', 'optional .lst whose labels replace those in the val .rec')
    num_example: Optional[int] = key(None, "MXNet example's image count: ignored, the .rec's count is used")
    batch_size: int = key(32, 'images per batch, summed over devices')
    mean_pixels: Tuple[float, float, float] = key((123.68, 116.779, 103.939), 'RGB means subtracted (ImageNet)')
    std_pixels: Tuple[float, float, float] = key((1.0, 1.0, 1.0), 'RGB divisors after the mean (1: 0..255 input)')
    label_width: Optional[int] = key(None, 'object rows per image in the labels; None: the most in one image')
    train_preset: str = key('ssd_train', 'augmentation preset of the training iterator (config/augmentation.py)')
    class_names: Optional[List[str]] = key(None, "class names; None: the train .rec's .classes file")
    num_class: Optional[int] = key(None, 'object classes; None: the number of class names')
    balance: str = key('none', "'repeat-factor': repeat images of rare classes (LVIS); 'none'")
    balance_threshold: float = key(0.1, 'repeat-factor t: classes in fewer than this image fraction repeat')


@dataclasses.dataclass
class ModelConfig:
    network: str = key('vgg16_reduced', 'a name of symbol.symbol_factory.list_networks()')
    data_shape: int = key(300, 'network input side in pixels (square)')
    nms_thresh: Optional[float] = key(None, 'NMS IoU threshold; None: symbol/multibox.py NMS (0.45)')
    force_suppress: Optional[bool] = key(None, 'suppress across classes; None: symbol/multibox.py NMS (False)')
    anchor_overlap: Optional[float] = key(None, 'IoU from which an anchor is a positive; None: multibox.py (0.5)')
    background_prior: float = key(0.75, 'initial background probability of the class heads (3:1 mining)')
    head_init_std: Optional[float] = key(0.01, 'sd of new prediction-head weights; 0 or None: Xavier')
    network_overrides: Optional[Dict[str, Any]] = key(None, "settings replacing symbol_factory's (a layout)")


@dataclasses.dataclass
class SolverConfig:
    optimizer: str = key('sgd', "'sgd' or 'adam'")
    lr: float = key(0.002, 'base learning rate')
    momentum: float = key(0.9, 'SGD momentum (Adam: beta1)')
    wd: float = key(0.0005, 'weight decay')
    lr_steps: List[int] = key(None, 'epochs at which the LR is multiplied by lr_factor', lambda: [80, 160])
    lr_factor: float = key(0.1, 'LR multiplier at each step')
    warmup_epochs: float = key(0.0, 'linear LR warm-up from 0, in epochs (may be fractional)')
    lr_scheduler: str = key('step', "'step' (lr_steps, lr_factor), 'cosine' or 'poly' (to final_lr at end_epoch)")
    warmup_start_factor: float = key(0.0, 'the warm-up starts at this fraction of lr (0 to 1)')
    final_lr: float = key(0.0, 'cosine / poly: the LR reached at the end of end_epoch')
    poly_power: float = key(0.9, 'poly: exponent of (1 - progress)')
    bias_lr_mult: float = key(1.0, 'LR multiplier of the biases (the SSD Caffe recipe: 2)')
    backbone_lr_mult: float = key(1.0, 'LR multiplier of the backbone (not extra layers, L2 scales, heads)')
    norm_decay: bool = key(True, 'weight decay on BatchNorm gamma and L2 scales (x0.1); False: none on either')
    begin_epoch: int = key(0, 'first epoch when not resuming (LR steps already passed apply)')
    end_epoch: int = key(240, 'train until this epoch')
    freeze: str = key('^(conv1_|conv2_).*', 'regex of loaded parameters kept fixed')
    kv_store: str = key('local', "MXNet kvstore: 'local'/'device' (devices), 'dist_sync' etc. (tools/launch.py)")
    amp: str = key('none', "mixed precision: 'none', 'bf16' (CPUs with AVX-512), 'fp16' (GPUs)")
    loss_scale: Optional[float] = key(None, 'static loss scale; None: 128 under fp16, else 1')
    clip_gradient: float = key(0.0, 'clip every rescaled gradient element to [-c, c] (MXNet clip_gradient); 0: off')
    ema: float = key(0.0, 'decay of a moving average of the weights, saved as <prefix>-ema (e.g. 0.999); 0: off')
    time_budget: float = key(0.0, 'minutes of training; end_epoch and schedule fitted to them (budget.py); 0: off')


@dataclasses.dataclass
class RunConfig:
    prefix: Optional[str] = key(None, 'checkpoint prefix; None: model/ssd_<network>_<data_shape>')
    gpus: Optional[str] = key(None, "GPU ids '0,1'; '': CPU; None: every visible GPU, else the CPU")
    cpus: int = key(1, 'CPU contexts of data-parallel training on the CPU (more than 1: implies the CPU)')
    resume: str = key('', "epoch of prefix to resume from; 'last'/'auto': newest checkpoint, mid-epoch too; '': none")
    resume_batch: int = key(0, 'batches of the next epoch the resumed (mid-epoch) checkpoint had done')
    finetune: int = key(-1, 'epoch of prefix to fine-tune from (heads reset on new classes); -1: none')
    pretrained: str = key('model/vgg16_reduced', "MXNet checkpoint prefix or .params file; '': from scratch")
    pretrained_epoch: int = key(1, 'epoch of the pretrained MXNet checkpoint')
    overwrite: bool = key(False, 'let this run replace checkpoints an earlier run left under prefix')
    trust_pickled_states: bool = key(False, "read MXNet's pickled .states on resume (unpickling can run code)")
    log: str = key('train.log', "log file ('' for none)")
    frequent: int = key(20, 'a plain log line every this many batches')
    monitor: int = key(0, 'print mx.mon.Monitor statistics every N batches; 0: off')
    monitor_pattern: str = key('.*', 'names of the arrays the monitor prints (regex)')
    seed: Optional[int] = key(None, 'seed of MXNet, NumPy and the shuffle; None: unseeded')
    recipe: str = key('', 'name of the config/recipes/<name>.yaml the run started from')
    tensorboard: bool = key(True, 'TensorBoard event files in <prefix>-tb/ (tensorboardX; rank 0)')


@dataclasses.dataclass
class EvalConfig:
    overlap: float = key(0.5, 'IoU for a detection to count as correct')
    use_difficult: bool = key(False, 'score difficult objects as ordinary ones')
    voc07: bool = key(True, '11-point VOC07 AP (False: area under the precision-recall curve)')
    val_interval: int = key(1, 'validate every this many epochs (and after the last)')
    validate_on_train: int = key(0, 'score this many training batches unaugmented after epoch 1; 0: off')


@dataclasses.dataclass
class TrainConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    solver: SolverConfig = dataclasses.field(default_factory=SolverConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


DEFAULTS = TrainConfig()        # plain dataclass: DEFAULTS.data.batch_size, for scripts' own defaults

# The flat flags users know (argparse ``dest`` names of train.py and MXNet's example) -> schema keys. The
# ``mean_r``... flags set one channel: ``data.mean_pixels.0``.
FLAG_KEYS = {
    'train_path': 'data.train_path', 'train_list': 'data.train_list', 'val_path': 'data.val_path',
    'val_list': 'data.val_list', 'num_example': 'data.num_example', 'batch_size': 'data.batch_size',
    'label_width': 'data.label_width', 'train_preset': 'data.train_preset', 'class_names': 'data.class_names',
    'num_class': 'data.num_class',
    'mean_r': 'data.mean_pixels.0', 'mean_g': 'data.mean_pixels.1', 'mean_b': 'data.mean_pixels.2',
    'std_r': 'data.std_pixels.0', 'std_g': 'data.std_pixels.1', 'std_b': 'data.std_pixels.2',
    'mean_pixels': 'data.mean_pixels', 'std_pixels': 'data.std_pixels',
    'network': 'model.network', 'data_shape': 'model.data_shape', 'nms_thresh': 'model.nms_thresh',
    'force_nms': 'model.force_suppress', 'anchor_overlap': 'model.anchor_overlap',
    'background_prior': 'model.background_prior', 'head_init_std': 'model.head_init_std',
    'network_overrides': 'model.network_overrides',
    'optimizer': 'solver.optimizer', 'lr': 'solver.lr', 'momentum': 'solver.momentum', 'wd': 'solver.wd',
    'lr_steps': 'solver.lr_steps', 'lr_factor': 'solver.lr_factor', 'warmup_epochs': 'solver.warmup_epochs',
    'lr_scheduler': 'solver.lr_scheduler', 'warmup_start_factor': 'solver.warmup_start_factor',
    'final_lr': 'solver.final_lr', 'poly_power': 'solver.poly_power', 'bias_lr_mult': 'solver.bias_lr_mult',
    'backbone_lr_mult': 'solver.backbone_lr_mult', 'norm_decay': 'solver.norm_decay',
    'begin_epoch': 'solver.begin_epoch', 'end_epoch': 'solver.end_epoch', 'freeze': 'solver.freeze',
    'kv_store': 'solver.kv_store', 'amp': 'solver.amp', 'loss_scale': 'solver.loss_scale',
    'clip_gradient': 'solver.clip_gradient', 'ema': 'solver.ema', 'time_budget': 'solver.time_budget',
    'prefix': 'run.prefix', 'gpus': 'run.gpus', 'cpus': 'run.cpus', 'resume': 'run.resume', 'finetune': 'run.finetune',
    'pretrained': 'run.pretrained', 'epoch': 'run.pretrained_epoch', 'overwrite': 'run.overwrite',
    'trust_pickled_states': 'run.trust_pickled_states',
    'log': 'run.log', 'frequent': 'run.frequent', 'monitor': 'run.monitor', 'pattern': 'run.monitor_pattern',
    'seed': 'run.seed', 'recipe': 'run.recipe', 'tensorboard': 'run.tensorboard',
    'overlap': 'eval.overlap', 'use_difficult': 'eval.use_difficult', 'voc07': 'eval.voc07',
    'val_interval': 'eval.val_interval', 'validate_on_train': 'eval.validate_on_train',
    'balance': 'data.balance', 'balance_threshold': 'data.balance_threshold',
}

NOT_FLAGS = ('mean_pixels', 'std_pixels', 'network_overrides')   # names of -config.json files, not flags


def schema():
    """The schema with its defaults, as an OmegaConf config (typed: a merge checks keys and types)."""
    return OmegaConf.structured(TrainConfig)


def help_of(dotted):
    """The one-line comment of schema key ``dotted`` (e.g. ``'solver.lr'``)."""
    section, name = dotted.split('.')[:2]
    fields = {item.name: item for item in dataclasses.fields(type(getattr(DEFAULTS, section)))}
    return fields[name].metadata['help']


def default_of(dotted):
    """The schema default of ``dotted`` (``'data.mean_pixels.0'`` gives one channel)."""
    value = DEFAULTS
    for part in dotted.split('.'):
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    return value


def flat_overrides(flags, source='flag'):
    """``{schema key: value}`` for flat flag values (``{'lr': 0.01}`` -> ``{'solver.lr': 0.01}``).

    ``cpu=True`` (the ``--cpu`` flag) means ``run.gpus = ''``. Unknown names are a UserError naming them.
    """
    flags = dict(flags)
    overrides = {}
    if flags.pop('cpu', False):
        overrides['run.gpus'] = ''
    unknown = sorted(name for name in flags if name not in FLAG_KEYS)
    if unknown:
        raise UserError('%s %s: no such setting; known: %s'
                        % (source, ', '.join(unknown), ', '.join(sorted(FLAG_KEYS))))
    for name, value in flags.items():
        overrides.setdefault(FLAG_KEYS[name], list(value) if isinstance(value, tuple) else value)
    return overrides


def apply(config, overrides, source):
    """``config`` with ``{dotted key: value}`` set; a wrong key or value is a UserError naming ``source``."""
    config = config.copy()
    for dotted, value in overrides.items():
        problem = unknown_key_words(dotted)
        if problem:
            raise UserError('%s %s: %s' % (source, dotted, problem))
        try:
            OmegaConf.update(config, dotted, value, merge=False)
        except OmegaConfBaseException as err:
            raise UserError('%s %s: %s' % (source, dotted, explain(err, dotted))) from None
    return config


def unknown_key_words(dotted):
    """Why ``dotted`` is no schema key (``''`` when it is one): the keys or sections that exist."""
    parts = dotted.split('.')
    if parts[0] not in SECTIONS or len(parts) < 2:
        return 'no such key; the sections are %s (keys are section.name)' % ', '.join(SECTIONS)
    names = [item.name for item in dataclasses.fields(type(getattr(DEFAULTS, parts[0])))]
    if parts[1] not in names:
        return 'no such key; the keys of %s are %s' % (parts[0], ', '.join(names))
    return ''


def explain(err, dotted):
    """One line for an OmegaConf error about the value of ``dotted``: what the key takes."""
    first = str(err).splitlines()[0]
    return '%s (the key takes %s)' % (first, type_words(dotted))


def type_words(dotted):
    """``'float'``, ``'list of int'``, ``'int or null'``... for the schema key ``dotted``."""
    section, name = dotted.split('.')[:2]
    fields = {item.name: item for item in dataclasses.fields(type(getattr(DEFAULTS, section)))}
    if name not in fields:
        return 'a value'
    text = str(fields[name].type).replace('typing.', '')
    for python, words in (('NoneType', 'null'), ("<class '", ''), ("'>", '')):
        text = text.replace(python, words)
    return text


def parse_opts(pairs):
    """``['solver.lr', '0.01', 'run.seed', '3']`` -> ``{'solver.lr': 0.01, 'run.seed': 3}`` (values as YAML)."""
    if len(pairs) % 2:
        raise UserError('--opts takes KEY VALUE pairs; %r has no value' % pairs[-1])
    try:
        parsed = OmegaConf.to_container(OmegaConf.from_dotlist(
            ['%s=%s' % (pairs[index], pairs[index + 1]) for index in range(0, len(pairs), 2)]))
    except OmegaConfBaseException as err:
        raise UserError('--opts: %s' % str(err).splitlines()[0]) from None
    return dict(flatten(parsed))


def flatten(tree, parent=''):
    """``{'solver': {'lr': 1}}`` -> ``[('solver.lr', 1)]`` (dicts under ``network_overrides`` stay whole)."""
    for name, value in tree.items():
        dotted = parent + name
        if isinstance(value, dict) and dotted.count('.') < 1:
            yield from flatten(value, dotted + '.')
        else:
            yield dotted, value


def read_yaml(path, what, shape=None):
    """A YAML file as an OmegaConf config, or a UserError. OmegaConf's loader is a ``yaml.SafeLoader``: tags that
    would build Python objects (``!!python/...``) are refused, so a file cannot run code.

    ``shape`` says what the file must hold when it is not a mapping (default: the configuration's sections)."""
    if not os.path.isfile(path):
        raise UserError('%s %s does not exist' % (what, path))
    try:
        loaded = OmegaConf.load(path)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, OSError) as err:
        raise UserError('%s %s is not valid YAML (%s)' % (what, path, str(err).splitlines()[0])) from None
    if not isinstance(loaded, DictConfig):
        raise UserError('%s %s must %s' % (what, path, shape or 'hold the sections %s' % ', '.join(SECTIONS)))
    return loaded


def merge_file(config, path, what):
    """``config`` with the YAML file ``path`` merged on top; a wrong key or type names the file and the key."""
    loaded = read_yaml(path, what)
    return apply(config, dict(flatten(OmegaConf.to_container(loaded))), '%s %s:' % (what, path))


def build_config(recipe_path=None, config_file=None, flags=None, opts=()):
    """The frozen, checked configuration of a run.

    Parameters
    ----------
    recipe_path : str, optional
        A recipe YAML file (config/recipes/<name>.yaml).
    config_file : str, optional
        The user's YAML (``--config-file``), e.g. an earlier run's ``<prefix>-config.yaml``.
    flags : dict, optional
        Flat flags the user gave (argparse ``dest`` -> value), see :data:`FLAG_KEYS`.
    opts : sequence of str
        ``--opts`` KEY VALUE pairs.

    Returns
    -------
    omegaconf.DictConfig
        Read-only; ``config.solver.lr`` etc.
    """
    config = schema()
    if recipe_path:
        config = merge_file(config, recipe_path, 'recipe')
    if config_file:
        config = merge_file(config, config_file, '--config-file')
    config = apply(config, flat_overrides(flags or {}), '--')
    config = apply(config, parse_opts(list(opts)), '--opts')
    check_config(config)
    OmegaConf.set_readonly(config, True)
    return config


def from_flat(**flags):
    """A frozen configuration from flat names (``from_flat(lr=0.01, batch_size=8)``): library callers, tests."""
    return build_config(flags=flags)


BALANCE_MODES = ('none', 'repeat-factor')


def check_config(config):
    """UserError naming the key (and its flag) for values that cannot work."""
    data, solver, run, model, evaluation = config.data, config.solver, config.run, config.model, config.eval
    rules = [('data.batch_size', data.batch_size >= 1), ('solver.end_epoch', solver.end_epoch >= 1),
             ('solver.lr', solver.lr > 0), ('solver.lr_factor', 0 < solver.lr_factor <= 1),
             ('solver.wd', solver.wd >= 0), ('solver.warmup_epochs', solver.warmup_epochs >= 0),
             ('eval.val_interval', evaluation.val_interval >= 1), ('run.frequent', run.frequent >= 1),
             ('run.monitor', run.monitor >= 0), ('eval.overlap', 0 < evaluation.overlap <= 1),
             ('solver.begin_epoch', solver.begin_epoch >= 0),
             ('model.background_prior', model.background_prior is None or 0 <= model.background_prior < 1),
             ('model.head_init_std', model.head_init_std is None or model.head_init_std >= 0),
             ('model.anchor_overlap', model.anchor_overlap is None or 0 < model.anchor_overlap <= 1),
             ('solver.loss_scale', solver.loss_scale is None or solver.loss_scale > 0),
             ('solver.clip_gradient', solver.clip_gradient >= 0),
             ('data.mean_pixels', len(data.mean_pixels) == 3), ('data.std_pixels', len(data.std_pixels) == 3),
             ('data.std_pixels', all(value > 0 for value in data.std_pixels)),
             ('data.balance_threshold', 0 < data.balance_threshold <= 1),
             ('eval.validate_on_train', evaluation.validate_on_train >= 0)]
    for dotted, ok in rules:
        if not ok:
            raise UserError('%s %s is out of range' % (flag_words(dotted), OmegaConf.select(config, dotted)))
    choices = [('solver.optimizer', OPTIMIZERS), ('solver.amp', AMP_MODES), ('data.balance', BALANCE_MODES)]
    for dotted, allowed in choices:
        if OmegaConf.select(config, dotted) not in allowed:
            raise UserError('%s %r: choose one of %s' % (flag_words(dotted), OmegaConf.select(config, dotted),
                                                           ', '.join(allowed)))
    if resume_request(run.resume) == 'bad':
        raise UserError("--resume %r: give an epoch number, 'last' or 'auto' (newest complete checkpoint; 'auto' "
                        'starts from scratch when there is none)' % run.resume)
    if resume_request(run.resume) is not None and run.finetune > 0:
        raise UserError('--resume %s and --finetune %d: give one of them' % (run.resume, run.finetune))
    if list(solver.lr_steps) != sorted(set(solver.lr_steps)):
        raise UserError('--lr-steps %s must be increasing epochs' % ','.join(map(str, solver.lr_steps)))


RESUME_NEWEST = ('last', 'auto')


def resume_request(value):
    """What ``run.resume`` asks for: None (no resume: '' or an epoch <= 0, as MXNet's example's -1), an epoch
    number, 'last' / 'auto', or 'bad'."""
    text = str(value).strip().lower()
    if text in RESUME_NEWEST:
        return text
    try:
        epoch = int(text) if text else 0
    except ValueError:
        return 'bad'
    return epoch if epoch > 0 else None


def flag_words(dotted):
    """``'--lr (solver.lr)'``: how the user can set ``dotted``, flag first when there is one."""
    flags = [name for name, target in FLAG_KEYS.items() if target == dotted and name not in NOT_FLAGS]
    return '--%s (%s)' % (flags[0].replace('_', '-'), dotted) if flags else dotted


def to_dict(config):
    """A plain nested dict (lists for tuples) of ``config``."""
    return OmegaConf.to_container(config, resolve=True)


def to_yaml(config):
    """``config`` as YAML with every key's one-line comment above it, sections in schema order."""
    lines = []
    for section in SECTIONS:
        lines.append('%s:' % section)
        body = OmegaConf.to_yaml(OmegaConf.create({'x': to_dict(config[section])})).splitlines()[1:]
        comments = {item.name: item.metadata['help']
                    for item in dataclasses.fields(type(getattr(DEFAULTS, section)))}
        for line in body:
            name = line.strip().split(':')[0]
            if line.startswith('  ') and not line.startswith('   ') and name in comments:
                lines.append('  # %s' % comments[name])
            lines.append(line)
    return '\n'.join(lines) + '\n'


def resolved(config, values):
    """A frozen copy of ``config`` with ``{dotted key: value}`` set (values derived from the data/defaults)."""
    config = OmegaConf.create(to_dict(config))
    merged = apply(OmegaConf.merge(schema(), config), values, 'resolved')
    OmegaConf.set_readonly(merged, True)
    return merged
