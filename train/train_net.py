"""``train_net``: an SSD trained from RecordIO files, assembled from small builders.

Order: options -> classes -> iterators -> graph and module -> starting weights (pretrained, finetune or
resume, with their report) -> optimizer and LR schedule -> hooks -> :func:`fit`. Each builder takes plain
values, so later additions (signal-safe saves, distributed kvstores, EMA weights, YAML configs, TensorBoard)
replace or add one builder or one hook.

Files written beside the checkpoints (``<prefix>`` exactly as given)::

    <prefix>-symbol.json, <prefix>-%04d.params, <prefix>-%04d.states   every epoch (train graph)
    <prefix>-config.json     the run's effective configuration
    <prefix>.classes         class names, one per line, read by evaluate / demo / deploy
    <prefix>-best.json       the epoch with the best validation mAP
    <prefix>-curves.png      losses and validation mAP per epoch, redrawn every epoch
"""
import dataclasses
import json
import logging
import os
import random

import mxnet as mx
import numpy as np

from config.cli import default_prefix
from config.defaults import CLASSES_SUFFIX, DATA, TRAIN
from config.errors import UserError
from dataset.imdb import classes_path_for, read_class_names
from dataset.iterator import DetRecordIter, shared_label_width
from evaluate.eval_metric import MApMetric, VOC07MApMetric
from evaluate.report import format_ap_table
from symbol import common, multibox, symbol_factory
from core.atomic import atomic_open, write_json
from train import amp, callbacks, params, schedule
from train.initializer import SSDInitializer
from train.metric import MultiBoxMetric

LOG = logging.getLogger('train')


@dataclasses.dataclass
class TrainOptions:
    """Everything ``train_net`` takes; defaults from :data:`config.defaults.TRAIN` and ``DATA``.

    ``lr_steps`` are epochs; ``mean_pixels`` RGB; ``ctx`` a list of ``mx.Context`` (default: the CPU);
    ``prefix`` None means ``model/ssd_<network>_<data_shape>``. See ``python train.py --help`` for the rest.
    """
    train_path: str = TRAIN['train_path']
    train_list: str = TRAIN['train_list']
    val_path: str = TRAIN['val_path']
    val_list: str = TRAIN['val_list']
    network: str = TRAIN['network']
    data_shape: int = DATA['data_shape']
    batch_size: int = DATA['batch_size']
    mean_pixels: tuple = DATA['mean_pixels']
    std_pixels: tuple = DATA['std_pixels']
    label_width: int = DATA['label_width']
    num_class: int = TRAIN['num_class']
    class_names: str = TRAIN['class_names']
    ctx: list = None
    prefix: str = TRAIN['prefix']
    resume: int = TRAIN['resume']
    finetune: int = TRAIN['finetune']
    pretrained: str = TRAIN['pretrained']
    epoch: int = TRAIN['epoch']
    begin_epoch: int = TRAIN['begin_epoch']
    end_epoch: int = TRAIN['end_epoch']
    frequent: int = TRAIN['frequent']
    optimizer: str = TRAIN['optimizer']
    lr: float = TRAIN['lr']
    momentum: float = TRAIN['momentum']
    wd: float = TRAIN['wd']
    lr_steps: tuple = TRAIN['lr_steps']
    lr_factor: float = TRAIN['lr_factor']
    warmup_epochs: float = TRAIN['warmup_epochs']
    freeze: str = TRAIN['freeze']
    log: str = TRAIN['log']
    monitor: int = TRAIN['monitor']
    pattern: str = TRAIN['pattern']
    nms_thresh: float = TRAIN['nms']
    force_nms: bool = TRAIN['force_nms']
    overlap: float = TRAIN['overlap']
    use_difficult: bool = TRAIN['use_difficult']
    voc07: bool = TRAIN['voc07']
    val_interval: int = TRAIN['val_interval']
    kv_store: str = TRAIN['kv_store']
    seed: int = TRAIN['seed']
    train_preset: str = TRAIN['train_preset']
    num_example: int = TRAIN['num_example']
    background_prior: float = TRAIN['background_prior']
    head_init_std: float = TRAIN['head_init_std']
    anchor_overlap: float = TRAIN['anchor_overlap']
    network_overrides: dict = TRAIN['network_overrides']
    overwrite: bool = TRAIN['overwrite']
    recipe: str = TRAIN['recipe']
    amp: str = TRAIN['amp']
    loss_scale: float = TRAIN['loss_scale']


def check_options(opts):
    """UserError for values that cannot work, naming the flag."""
    rules = [('--batch-size', opts.batch_size >= 1), ('--end-epoch', opts.end_epoch >= 1),
             ('--lr', opts.lr > 0), ('--lr-factor', 0 < opts.lr_factor <= 1), ('--wd', opts.wd >= 0),
             ('--warmup-epochs', opts.warmup_epochs >= 0), ('--val-interval', opts.val_interval >= 1),
             ('--frequent', opts.frequent >= 1), ('--monitor', opts.monitor >= 0),
             ('--overlap', 0 < opts.overlap <= 1), ('--begin-epoch', opts.begin_epoch >= 0),
             ('--background-prior', opts.background_prior is None or 0 <= opts.background_prior < 1),
             ('--head-init-std', opts.head_init_std is None or opts.head_init_std >= 0),
             ('--anchor-overlap', opts.anchor_overlap is None or 0 < opts.anchor_overlap <= 1),
             ('--loss-scale', opts.loss_scale is None or opts.loss_scale > 0)]
    for flag, ok in rules:
        if not ok:
            raise UserError('%s %s is out of range' % (flag, getattr(opts, flag[2:].replace('-', '_'))))
    if opts.optimizer not in schedule.OPTIMIZERS:
        raise UserError('--optimizer %r: choose one of %s' % (opts.optimizer, ', '.join(schedule.OPTIMIZERS)))
    if opts.resume > 0 and opts.finetune > 0:
        raise UserError('--resume %d and --finetune %d: give one of them' % (opts.resume, opts.finetune))
    if list(opts.lr_steps) != sorted(set(opts.lr_steps)):
        raise UserError('--lr-steps %s must be increasing epochs' % ','.join(map(str, opts.lr_steps)))
    for flag, path in (('--train-path', opts.train_path), ('--val-path', opts.val_path),
                       ('--train-list', opts.train_list), ('--val-list', opts.val_list)):
        if path and not os.path.isfile(path):
            raise UserError('%s %s does not exist' % (flag, path))


def resolve_classes(train_path, num_class, class_names):
    """The class names: ``class_names`` (file or list), else the ``.classes`` file next to the train .rec.

    Returns
    -------
    tuple of str
        One name per class; ``class_<i>`` when only ``num_class`` is known.

    Raises
    ------
    UserError
        When nothing gives the class count, or ``num_class`` disagrees with the names (both numbers named).
    """
    data_file = classes_path_for(train_path)
    if class_names:
        names, source = read_class_names(class_names), '--class-names'
    elif os.path.isfile(data_file):
        names, source = read_class_names(data_file), data_file
    elif num_class:
        return tuple('class_%d' % index for index in range(num_class))
    else:
        raise UserError('no class list: %s does not exist; give --num-class or --class-names' % data_file)
    if num_class and num_class != len(names):
        raise UserError('class count mismatch: network --num-class %d, data %d classes (%s), checkpoint not '
                        'loaded yet; make --num-class match the data or drop it' % (num_class, len(names), source))
    return names


def build_iterators(opts):
    """Train and validation :class:`DetRecordIter` sharing one label width computed from BOTH files.

    Returns
    -------
    train_iter, val_iter (None without ``val_path``), label_width
    """
    label_files = [opts.train_list or opts.train_path] + ([opts.val_list or opts.val_path] if opts.val_path
                                                           else [])
    needed = shared_label_width(*label_files)
    label_width = needed if opts.label_width is None else opts.label_width
    common_args = dict(batch_size=opts.batch_size, data_shape=opts.data_shape, mean_pixels=opts.mean_pixels,
                       std_pixels=opts.std_pixels, label_pad_width=label_width)
    seed = {} if opts.seed is None else {'seed': opts.seed}
    train_iter = DetRecordIter(opts.train_path, path_imglist=opts.train_list, preset=opts.train_preset,
                               round_batch=False, **common_args, **seed)
    val_iter = (DetRecordIter(opts.val_path, path_imglist=opts.val_list, preset='val', **common_args)
                if opts.val_path else None)
    return train_iter, val_iter, label_width


def iterations_per_epoch(num_records, batch_size, train_path):
    """Full batches per epoch (the partial last batch is dropped, so every epoch has the same count)."""
    if num_records < batch_size:
        raise UserError('%s holds %d images, fewer than --batch-size %d' % (train_path, num_records, batch_size))
    return num_records // batch_size


def num_example_note(num_example, train_path, num_records):
    """The note logged for MXNet's example ``--num-example`` (None when it was not given): it is ignored."""
    if num_example is None:
        return None
    return ('--num-example %d is ignored: %s holds %d images, the count the LR steps and epochs use'
            % (num_example, train_path, num_records))


def graph_settings(opts):
    """Keyword arguments of ``symbol_factory.get_symbol_train`` beyond network, shape and classes: NMS and
    anchor matching (the options, or symbol/multibox.py's defaults) and the recipe's network overrides."""
    return dict(nms_thresh=multibox.NMS['nms_thresh'] if opts.nms_thresh is None else opts.nms_thresh,
                force_suppress=multibox.NMS['force_suppress'] if opts.force_nms is None else opts.force_nms,
                overlap_threshold=(multibox.OVERLAP_THRESHOLD if opts.anchor_overlap is None
                                   else opts.anchor_overlap),
                **(opts.network_overrides or {}))


def starting_point(opts, prefix):
    """Which weights to start from: ``(kind, epoch, begin_epoch)``, kind in resume/finetune/pretrained/scratch."""
    if opts.resume > 0:
        return 'resume', opts.resume, opts.resume
    if opts.finetune > 0:
        return 'finetune', opts.finetune, opts.finetune
    if opts.pretrained:
        return 'pretrained', opts.epoch, opts.begin_epoch
    return 'scratch', None, opts.begin_epoch


def load_pretrained(opts, settings, aux_names):
    """``(arg_params, aux_params, unused, source)`` from ``--pretrained``: a checkpoint's prefix (with
    ``--epoch``) or its ``.params`` file, or a GluonCV ``save_parameters`` file."""
    path = opts.pretrained
    if path.endswith('.params') and os.path.isfile(path):
        checkpoint = params.read_checkpoint_file(path)   # e.g. the model zoo's resnet-50-0000.params
        if checkpoint is not None:
            return checkpoint[0], checkpoint[1], [], path
        arg_params, aux_params, unused = params.load_gluoncv_params(path, settings, aux_names)
        return arg_params, aux_params, unused, path
    checkpoint = params.checkpoint_paths(path, opts.epoch)[1]
    if not os.path.isfile(checkpoint):
        raise UserError("--pretrained %s: neither %s (an MXNet checkpoint at --epoch %d) nor a GluonCV .params "
                        "file exists; use --pretrained '' to train from scratch" % (path, checkpoint, opts.epoch))
    arg_params, aux_params = params.load_checkpoint_params(path, opts.epoch, '--pretrained')
    return arg_params, aux_params, [], checkpoint


def check_checkpoint_classes(kind, checkpoint_classes, num_class, data_classes):
    """A resumed checkpoint must have the network's class count; the message names all three numbers."""
    if kind == 'resume' and checkpoint_classes is not None and checkpoint_classes != num_class:
        raise UserError('class count mismatch: data %d, network --num-class %d, checkpoint %d; --resume needs '
                        'the same classes (use --finetune to train new class heads)'
                        % (data_classes, num_class, checkpoint_classes))


def initial_params(opts, kind, epoch, prefix, shapes, settings, aux_names):
    """The weights to start from and their report (or None from scratch).

    Returns
    -------
    arg_params, aux_params : dict
    report : params.LoadReport or None
    """
    num_class = len(opts.class_names)
    if kind == 'scratch':
        return {}, {}, None
    if kind == 'pretrained':
        arg_params, aux_params, unused, source = load_pretrained(opts, settings, aux_names)
    else:
        arg_params, aux_params = params.load_checkpoint_params(prefix, epoch, '--%s' % kind)
        unused, source = [], params.checkpoint_paths(prefix, epoch)[1]
    loaded_shapes = {name: tuple(value.shape) for name, value in dict(arg_params, **aux_params).items()}
    found = params.checkpoint_num_classes(arg_params, shapes, num_class)
    check_checkpoint_classes(kind, found, num_class, num_class)
    changed = found is not None and found != num_class
    reinit = common.is_class_head_param if changed else None
    arg_params, aux_params, report = params.match_params(source, arg_params, aux_params, shapes, reinit)
    report.unused += unused
    if changed:
        LOG.info('class count changed from %d (checkpoint) to %d: class heads initialised anew', found, num_class)
    if kind == 'resume' and (report.initialised or report.mismatched):
        raise UserError(resume_mismatch_message(opts, prefix, epoch, report, loaded_shapes))
    return arg_params, aux_params, report


def json_form(value):
    """``value`` as it reads back from a JSON file (tuples become lists), to compare with a saved config."""
    return json.loads(json.dumps(value, default=list))


def resume_mismatch_message(opts, prefix, epoch, report, loaded_shapes):
    """Why ``--resume`` cannot continue from checkpoint ``epoch`` of ``prefix``: the names and shapes that do
    not fit, and what the checkpoint was trained as (its ``-config.json``) or which networks its backbone fits."""
    trained_as = read_json(prefix + '-config.json') or {}
    settings = [('--network', trained_as.get('network'), opts.network),
                ('--data-shape', trained_as.get('data_shape'), opts.data_shape),
                ('network overrides', trained_as.get('network_overrides'), json_form(opts.network_overrides))]
    differs = ['%s %s (checkpoint) vs %s (now)' % item for item in settings if trained_as and item[1] != item[2]]
    cause = ('it was trained with ' + ', '.join(differs)) if differs else (
        'same --network %s and --data-shape %d%s' % (opts.network, opts.data_shape,
                                                     symbol_factory.fitting_networks_hint(loaded_shapes)))
    return '--resume %d: %s does not fit the network: %s; %s' % (epoch, report.source, report.mismatch_words(),
                                                                   cause)


def build_module(symbol, ctx, train_iter, fixed_param_names):
    """A Module bound for training on ``train_iter``'s shapes, reading ``data`` and ``label``."""
    module = mx.mod.Module(symbol, data_names=('data',), label_names=('label',), context=ctx, logger=LOG,
                           fixed_param_names=fixed_param_names or None)
    module.bind(data_shapes=train_iter.provide_data, label_shapes=train_iter.provide_label, for_training=True)
    return module


def param_shapes(symbol, train_iter):
    """``{name: shape}`` of every parameter and auxiliary state of ``symbol`` on ``train_iter``'s batches."""
    inputs = {desc.name: desc.shape for desc in train_iter.provide_data + train_iter.provide_label}
    return common.param_shapes(symbol, **inputs)


def freeze_names(pattern, kind, symbol, loaded, prefix):
    """Parameters fixed by ``--freeze``: only loaded ones (random weights are not worth keeping).

    A resumed run keeps the list its checkpoints were trained with (``frozen_params`` in
    ``<prefix>-config.json``), so that it continues exactly as the first run would have.

    Parameters
    ----------
    pattern : str
        The regular expression (``re.match`` on the name).
    kind : str
        The starting point (see :func:`starting_point`).
    symbol : mx.sym.Symbol
    loaded : collection of str
        Names whose weights were loaded.
    prefix : str
        Checkpoint prefix.
    """
    earlier = read_json(prefix + '-config.json') if kind == 'resume' else None
    if earlier and 'frozen_params' in earlier:
        names = earlier['frozen_params']
        LOG.info('frozen as in the resumed run (%s-config.json): %d parameters', prefix, len(names))
        return names
    if kind == 'scratch':
        if pattern:
            LOG.info('--freeze %r not applied: training from scratch', pattern)
        return []
    names = [name for name in params.frozen_param_names(symbol.list_arguments(), pattern) if name in loaded]
    LOG.info('frozen by --freeze %r: %d parameters%s', pattern, len(names), (': ' + ', '.join(names)) if names else '')
    return names


def init_optimizer(module, opts, iters, begin_epoch, kind, prefix):
    """Optimizer with the LR schedule positioned at ``begin_epoch``; optimizer states restored on resume."""
    scheduler = schedule.make_lr_scheduler(opts.lr, opts.lr_steps, opts.lr_factor, iters, opts.warmup_epochs)
    module.init_optimizer(kvstore=opts.kv_store, optimizer=opts.optimizer, optimizer_params=schedule.optimizer_params(
        opts.optimizer, opts.lr, opts.momentum, opts.wd, scheduler, len(opts.ctx), begin_epoch * iters,
        opts.loss_scale))
    if kind == 'resume':
        states = params.checkpoint_paths(prefix, opts.resume)[2]
        if not os.path.isfile(states):
            raise UserError('--resume %d: %s is missing, so the optimizer state cannot be restored; use --finetune '
                            '%d to start from the weights with a fresh optimizer' % (opts.resume, states, opts.resume))
        module.load_optimizer_states(states)
        LOG.info('optimizer state restored from %s', states)
    LOG.info('LR %.6g, steps at updates %s (epochs %s x %d iterations), warm-up %d updates, starting at update %d',
             opts.lr, schedule.step_updates(opts.lr_steps, iters), list(opts.lr_steps), iters,
             int(round(opts.warmup_epochs * iters)), begin_epoch * iters)


def validation_metric(opts):
    """VOC07MApMetric or MApMetric, named by the class names."""
    metric_class = VOC07MApMetric if opts.voc07 else MApMetric
    return metric_class(ovp_thresh=opts.overlap, use_difficult=opts.use_difficult, class_names=opts.class_names,
                        name='VOC07 mAP' if opts.voc07 else 'mAP')


def read_json(path):
    """The JSON file of an earlier run (best epoch, configuration), or None when there is none."""
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def build_hooks(opts, module, symbol, prefix, val_iter, resuming):
    """The hooks in the order the module docstring of :mod:`train.callbacks` explains."""
    hooks = [callbacks.StopOnNonFinite(), callbacks.ProgressBar(), callbacks.BatchLogger(opts.frequent)]
    if opts.monitor > 0:
        hooks.append(callbacks.MonitorHook(module, opts.monitor, opts.pattern))
    hooks.append(callbacks.Checkpointer(symbol, prefix))
    if val_iter is not None:
        metric = validation_metric(opts)
        hooks.append(callbacks.Validator(val_iter, metric, multibox.output_key(multibox.DETECTION),
                                         opts.val_interval, opts.end_epoch))
        best_path = prefix + '-best.json'
        hooks.append(callbacks.KeepBest(best_path, metric.name, read_json(best_path) if resuming else None))
    hooks.append(callbacks.History())
    hooks.append(callbacks.CurvePlotter(prefix + '-curves.png', validation_metric(opts).name))
    return hooks


def call_hooks(hooks, event, state):
    for hook in hooks:
        method = getattr(hook, event, None)
        if method is not None:
            method(state)


def full_batches(data_iter, count):
    """The first ``count`` batches of one pass over ``data_iter``, none with padding."""
    data_iter.reset()
    for index, batch in enumerate(data_iter):
        if index >= count or batch.pad:
            break
        yield batch


def fit(state, train_iter, begin_epoch, end_epoch, hooks):
    """The training loop: forward, backward, update, metric, hooks; ``state`` as in :class:`callbacks.TrainState`."""
    try:
        run_epochs(state, train_iter, begin_epoch, end_epoch, hooks)
    except BaseException:
        call_hooks(hooks, 'stop', state)   # e.g. close the progress bar before the error is printed
        raise
    return state


def run_epochs(state, train_iter, begin_epoch, end_epoch, hooks):
    """Epochs ``begin_epoch`` .. ``end_epoch - 1`` of :func:`fit`."""
    for epoch in range(begin_epoch, end_epoch):
        state.epoch, state.batch = epoch, 0
        state.metric.reset()
        call_hooks(hooks, 'epoch_begin', state)
        for state.batch, batch in enumerate(full_batches(train_iter, state.num_batches)):
            call_hooks(hooks, 'batch_begin', state)
            state.module.forward_backward(batch)
            state.module.update()
            state.module.update_metric(state.metric, batch.label)
            state.lr_history.append(state.learning_rate())
            call_hooks(hooks, 'batch_end', state)
        call_hooks(hooks, 'epoch_end', state)


def log_ap_table(state, best):
    """The per-class AP of the last epoch and of the best one, as a table in the log."""
    if not state.validation:
        return
    columns = {'epoch %d' % (state.epoch + 1): state.validation}
    if best and best['epoch'] != state.epoch + 1:
        columns['best (epoch %d)' % best['epoch']] = best['ap_per_class']
    for line in format_ap_table(columns):
        LOG.info(line)


def setup_logging(log_path):
    """Log lines to the console (through tqdm) and to ``log_path``; returns the handlers to remove later."""
    formatter = logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S')
    handlers = [callbacks.TqdmLogHandler()]
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers.append(logging.FileHandler(log_path))
    for handler in handlers:
        handler.setFormatter(formatter)
        LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    return handlers


def seed_everything(seed):
    """Seed MXNet, NumPy and Python's ``random`` (the iterator's shuffle takes the seed separately)."""
    if seed is not None:
        mx.random.seed(seed)
        np.random.seed(seed)
        random.seed(seed)


def write_run_files(opts, prefix, derived):
    """``<prefix>.classes`` and ``<prefix>-config.json`` (the options plus what was derived from the data)."""
    with atomic_open(prefix + CLASSES_SUFFIX) as handle:
        handle.write(''.join(name + '\n' for name in opts.class_names))
    config = {key: value for key, value in dataclasses.asdict(opts).items() if key != 'ctx'}
    config.update(derived, ctx=[str(ctx) for ctx in opts.ctx], prefix=prefix, mxnet_version=mx.__version__)
    write_json(prefix + '-config.json', config, indent=2, default=list)


def check_prefix_is_free(opts, prefix):
    """UserError when this run would overwrite checkpoints of an earlier run under ``prefix``.

    A run writes epochs ``begin_epoch + 1 .. end_epoch``; saved epochs in that range belong to another run
    unless ``--overwrite`` says they may go.
    """
    begin_epoch = starting_point(opts, prefix)[2]
    taken = [epoch for epoch in params.available_epochs(prefix) if begin_epoch < epoch <= opts.end_epoch]
    if taken and not opts.overwrite:
        raise UserError('--prefix %s already holds epochs %s of an earlier run; continue it with --resume %d, '
                        'choose another --prefix, or pass --overwrite' % (prefix, ', '.join(map(str, taken)),
                                                                          max(params.available_epochs(prefix))))


def prepare(opts):
    """Checked options with classes and contexts resolved, and the checkpoint prefix."""
    check_options(opts)
    names = resolve_classes(opts.train_path, opts.num_class, opts.class_names)
    opts = dataclasses.replace(opts, class_names=names, num_class=len(names), ctx=list(opts.ctx or [mx.cpu()]),
                               loss_scale=amp.effective_loss_scale(opts.amp, opts.loss_scale, TRAIN['fp16_loss_scale']))
    amp.check_supported(opts.amp, opts.ctx)
    prefix = opts.prefix or default_prefix(opts.network, opts.data_shape)
    check_prefix_is_free(opts, prefix)
    return opts, prefix


def start_module(opts, prefix, symbol, train_iter):
    """Load the starting weights, bind the module with --freeze applied, initialise the rest.

    Returns
    -------
    module : mx.mod.Module
    kind : str
        resume, finetune, pretrained or scratch.
    begin_epoch : int
    frozen : list of str
        The fixed parameters.
    """
    kind, epoch, begin_epoch = starting_point(opts, prefix)
    settings = symbol_factory.get_config(opts.network, opts.data_shape, **(opts.network_overrides or {}))
    shapes = param_shapes(symbol, train_iter)
    arg_params, aux_params, report = initial_params(opts, kind, epoch, prefix, shapes, settings,
                                                    set(symbol.list_auxiliary_states()))
    for line in report.lines() if report else ['weights: training from scratch (all initialised anew)']:
        LOG.info(line)
    fixed = freeze_names(opts.freeze, kind, symbol, set(arg_params), prefix)
    module = build_module(symbol, opts.ctx, train_iter, fixed)
    initializer = SSDInitializer(opts.num_class, opts.background_prior, opts.head_init_std, **TRAIN['initializer'])
    module.init_params(initializer, arg_params=arg_params, aux_params=aux_params, allow_missing=True)
    return module, kind, begin_epoch, fixed


def precision_graph(opts, symbol):
    """The graph the module trains: ``symbol`` itself, or its ``--amp`` version with the loss scale applied.
    Checkpoints keep ``symbol`` (float32 parameters either way), so evaluation and deployment see no difference."""
    if opts.amp == 'none' and opts.loss_scale == 1:
        return symbol
    LOG.info('mixed precision --amp %s: %s convolutions, float32 master weights, losses and MultiBox operators; '
             'loss scale %g', opts.amp, amp.TARGET_DTYPES.get(opts.amp, 'float32'), opts.loss_scale)
    return amp.scale_losses(amp.convert_symbol(symbol, opts.amp), opts.loss_scale)


def train_net(**options):
    """Train an SSD; keyword arguments are the fields of :class:`TrainOptions`.

    Returns
    -------
    dict
        ``prefix``, ``history`` (per epoch: losses and mAP), ``best`` (the best-epoch record or None),
        ``lr_history`` (learning rate of every update), ``iterations_per_epoch``, ``label_width``.

    Raises
    ------
    UserError
        Bad options or data, and :class:`train.callbacks.TrainingDiverged` when a loss is not finite.
    """
    opts, prefix = prepare(TrainOptions(**options))
    handlers = setup_logging(opts.log)
    try:
        return run(opts, prefix)
    finally:
        for handler in handlers:
            LOG.removeHandler(handler)
            handler.close()


def run(opts, prefix):
    """:func:`train_net` after the options are resolved and logging is set up."""
    LOG.info('checkpoint prefix: %s', prefix)
    seed_everything(opts.seed)
    train_iter, val_iter, label_width = build_iterators(opts)
    iters = iterations_per_epoch(train_iter.num_records, opts.batch_size, opts.train_path)
    note = num_example_note(opts.num_example, opts.train_path, train_iter.num_records)
    if note:
        LOG.info('note: %s', note)
    symbol = symbol_factory.get_symbol_train(opts.network, opts.data_shape, opts.num_class, **graph_settings(opts))
    module, kind, begin_epoch, frozen = start_module(opts, prefix, precision_graph(opts, symbol), train_iter)
    init_optimizer(module, opts, iters, begin_epoch, kind, prefix)
    write_run_files(opts, prefix, dict(label_width=label_width, num_train_records=train_iter.num_records,
                                       iterations_per_epoch=iters, start=kind, begin_epoch=begin_epoch,
                                       lr_step_updates=schedule.step_updates(opts.lr_steps, iters),
                                       frozen_params=frozen))
    LOG.info('training %s on %s: %d classes, %d images, %d iterations per epoch, epochs %d..%d',
             opts.network, ', '.join(map(str, opts.ctx)), opts.num_class, train_iter.num_records, iters,
             begin_epoch + 1, opts.end_epoch)
    last = params.checkpoint_paths(prefix, begin_epoch)[1] if kind in ('resume', 'finetune') else None
    state = callbacks.TrainState(module, MultiBoxMetric(symbol.list_outputs()), iters, opts.batch_size, last)
    hooks = build_hooks(opts, module, symbol, prefix, val_iter, kind == 'resume')
    fit(state, train_iter, begin_epoch, opts.end_epoch, hooks)
    best = next((hook.best for hook in hooks if isinstance(hook, callbacks.KeepBest)), None)
    log_ap_table(state, best)
    return dict(prefix=prefix, history=state.history, best=best or None, lr_history=state.lr_history,
                iterations_per_epoch=iters, label_width=label_width)
