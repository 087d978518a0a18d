"""``train_net``: an SSD trained from RecordIO files, assembled from small builders.

Order: configuration (frozen, on the schema of config/schema.py) -> classes and defaults resolved ->
iterators -> graph and module -> starting weights (pretrained, finetune or resume, with their report) ->
optimizer and LR schedule -> hooks (state restored on resume) -> :class:`train.trainer.Trainer` running
``Module.fit``. Each builder takes a section of the configuration or plain values, so later additions
(signal-safe saves, distributed kvstores, EMA weights, TensorBoard) replace or add one builder or one hook.

Every file of the run is named and written by :class:`core.run_dir.RunDir` (see there):
``-symbol.json``, ``-%04d.params`` / ``.states`` / ``.trainer.json`` every epoch, ``-config.yaml`` (every
value explicit), ``.classes``, ``-best.json``, ``-curves.png``.
"""
import json
import logging
import math
import os
import random
import time

import mxnet as mx
import numpy as np

from config.defaults import FP16_LOSS_SCALE, INITIALIZER
from config.errors import UserError
from config.schema import RESUME_NEWEST, from_flat, resolved, resume_request, to_dict
from core.checkpoint import checkpoint_num_classes, load_optimizer_states
from core.checkpoint import read_checkpoint_file as checkpoint_file
from core.devices import contexts_for
from core.run_dir import RunDir, default_prefix
from dataset.balance import balanced_records
from dataset.imdb import check_same_class_lists, classes_path_for
from dataset.iterator import DetRecordIter, shared_label_width
from dataset.record_set import class_names_for, resolve_inputs
from evaluate.report import format_ap_table
from evaluate.runner import map_metric
from symbol import common, multibox, symbol_factory
from train import amp, budget, callbacks, distributed, ema, param_groups, params, schedule
from train.data_check import TrainDataCheck
from train.initializer import SSDInitializer
from train.metric import MultiBoxMetric
from train.trainer import Trainer
from train.visuals import visual_hooks

LOG = logging.getLogger('train')


def check_paths(data):
    """UserError for data files that do not exist, naming the flag; the record paths may be sets (a manifest, a
    glob, a comma-separated list: dataset/record_set.py)."""
    if data.balance != 'none' and data.train_list:
        raise UserError('--balance %s copies the records with their own labels; it cannot be used with --train-list '
                        '(pack the list into a .rec first: tools/im2rec.py)' % data.balance)
    for flag, path in (('--train-list', data.train_list), ('--val-list', data.val_list)):
        if path and not os.path.isfile(path):
            raise UserError('%s %s does not exist' % (flag, path))
    names = []
    for flag, path in (('--train-path', data.train_path), ('--val-path', data.val_path)):
        if path:
            try:
                names.append(class_names_for(resolve_inputs(path)))
            except UserError as err:
                raise UserError('%s: %s' % (flag, err)) from None
    check_same_class_lists(names)   # label ids must mean the same classes in both


def resolve_classes(train_path, num_class, class_names):
    """The class names: ``class_names`` (a list), else the ``.classes`` file next to the train .rec.

    Returns
    -------
    tuple of str
        One name per class; ``class_<i>`` when only ``num_class`` is known.

    Raises
    ------
    UserError
        When nothing gives the class count, or ``num_class`` disagrees with the names (both numbers named).
    """
    data_names, data_file = class_names_for(resolve_inputs(train_path))
    if class_names:
        names, source = tuple(class_names), '--class-names'
    elif data_names:
        names, source = tuple(data_names), data_file
    elif num_class:
        return tuple('class_%d' % index for index in range(num_class))
    else:
        raise UserError('no class list: %s does not exist; give --num-class or --class-names'
                        % classes_path_for(resolve_inputs(train_path)[0].rec))
    if num_class and num_class != len(names):
        raise UserError('class count mismatch: network --num-class %d, data %d classes (%s), checkpoint not '
                        'loaded yet; make --num-class match the data or drop it' % (num_class, len(names), source))
    return names


def needed_label_width(data):
    """Object rows per image both iterators use: ``data.label_width``, else the most in one image of the
    train and validation labels (one width, so the validation batches fit the training module)."""
    if data.label_width is not None:
        return data.label_width
    files = [data.train_list or data.train_path] + ([data.val_list or data.val_path] if data.val_path else [])
    return shared_label_width(*files)


def iterator_args(config):
    """The :class:`DetRecordIter` arguments every iterator of a run shares: batch, input side and scaling, label
    width."""
    data = config.data
    return dict(batch_size=data.batch_size, data_shape=config.model.data_shape, mean_pixels=tuple(data.mean_pixels),
                std_pixels=tuple(data.std_pixels), label_pad_width=data.label_width)


def build_iterators(config, group=distributed.Group('local')):
    """Train and validation :class:`DetRecordIter` (validation None without ``data.val_path``, and on every
    worker of a group but rank 0, the one that validates).

    A worker of a group reads its own share of the training records (``num_parts`` = workers, ``part_index`` =
    rank), shuffled with the seed plus its rank.
    """
    data = config.data
    common_args = iterator_args(config)
    seed = {} if config.run.seed is None else {'seed': config.run.seed + group.rank}
    train_iter = DetRecordIter(training_records(config), path_imglist=data.train_list, preset=data.train_preset,
                               round_batch=False, num_parts=group.num_workers, part_index=group.rank,
                               **common_args, **seed)
    val_iter = (DetRecordIter(data.val_path, path_imglist=data.val_list, preset='val', **common_args)
                if data.val_path and group.writes else None)
    return train_iter, val_iter


def training_records(config):
    """What the training iterator reads: ``data.train_path``, or with ``--balance repeat-factor`` its balanced
    copy ``<prefix>-balanced.rec`` (dataset/balance.py; made once, reused while its inputs are unchanged)."""
    data = config.data
    if data.balance == 'none':
        return data.train_path
    return balanced_records(data.train_path, RunDir(config.run.prefix).balanced_prefix, data.balance_threshold,
                            config.run.seed, log=LOG.info)


def train_data_check(config):
    """The ``--validate-on-train`` hook: a fresh unaugmented iterator over the (unbalanced) training records."""
    data = config.data

    def make_iter():
        return DetRecordIter(data.train_path, preset='val', path_imglist=data.train_list, **iterator_args(config))
    return TrainDataCheck(make_iter, validation_metric(config), config.eval.validate_on_train)


def iterations_per_epoch(num_records, batch_size, train_path):
    """Full batches per epoch (the partial last batch is dropped, so every epoch has the same count).

    Parameters
    ----------
    num_records : sequence of int
        Every worker's share of the training images (one for a single process): all workers run the same
        number of updates (a synchronous update waits for every worker's gradient), the smallest share's batches.
    """
    shares = [int(count) for count in num_records]
    if min(shares) < batch_size:
        holds = ('%d images' % shares[0] if len(shares) == 1 else
                 'as little as %d images for one of its %d workers' % (min(shares), len(shares)))
        raise UserError('%s holds %s, fewer than --batch-size %d' % (train_path, holds, batch_size))
    return min(shares) // batch_size


def num_example_note(num_example, train_path, num_records):
    """The note logged for MXNet's example ``--num-example`` (None when it was not given): it is ignored."""
    if num_example is None:
        return None
    return ('--num-example %d is ignored: %s holds %d images, the count the LR steps and epochs use'
            % (num_example, train_path, num_records))


def graph_settings(model):
    """Keyword arguments of ``symbol_factory.get_symbol_train`` beyond network, shape and classes (the
    ``model`` section is resolved: NMS and anchor matching are explicit)."""
    return dict(nms_thresh=model.nms_thresh, force_suppress=model.force_suppress,
                overlap_threshold=model.anchor_overlap, **network_overrides(model))


def network_overrides(model):
    """``model.network_overrides`` as a plain dict (``{}`` for none)."""
    return to_dict(model.network_overrides) if model.network_overrides else {}


def starting_point(run):
    """Which weights to start from: ``(kind, epoch)``, kind in resume/finetune/pretrained/scratch (``run.resume``
    resolved: an epoch, with ``run.resume_batch`` batches of the next one for a mid-epoch checkpoint)."""
    requested = resume_request(run.resume)
    if isinstance(requested, int) or run.resume_batch > 0:
        return 'resume', int(run.resume or 0)
    if run.finetune > 0:
        return 'finetune', run.finetune
    if run.pretrained:
        return 'pretrained', run.pretrained_epoch
    return 'scratch', None


def begin_epoch_of(config):
    """The first epoch this run trains (0-based): the resumed or fine-tuned epoch, else ``solver.begin_epoch``."""
    kind, epoch = starting_point(config.run)
    return epoch if kind in ('resume', 'finetune') else config.solver.begin_epoch


def load_pretrained(run, settings, aux_names):
    """``(arg_params, aux_params, unused, source)`` from ``--pretrained``: a checkpoint's prefix (with
    ``--epoch``) or its ``.params`` file, or a GluonCV ``save_parameters`` file."""
    path = run.pretrained
    if path.endswith('.params') and os.path.isfile(path):
        checkpoint = checkpoint_file(path)   # e.g. the model zoo's resnet-50-0000.params
        if checkpoint is not None:
            return checkpoint[0], checkpoint[1], [], path
        arg_params, aux_params, unused = params.load_gluoncv_params(path, settings, aux_names)
        return arg_params, aux_params, unused, path
    source = RunDir(path)
    checkpoint = source.params_path(run.pretrained_epoch)
    if not os.path.isfile(checkpoint):
        saved = source.epochs()
        raise UserError("--pretrained %s: neither %s (an MXNet checkpoint at --epoch %d%s) nor a GluonCV .params "
                        "file exists; use --pretrained '' to train from scratch"
                        % (path, checkpoint, run.pretrained_epoch,
                           '; its epochs: %s' % ', '.join(map(str, saved)) if saved else ''))
    arg_params, aux_params = source.read_params(run.pretrained_epoch, '--pretrained')
    return arg_params, aux_params, [], checkpoint


def check_checkpoint_classes(kind, checkpoint_classes, num_class, data_classes):
    """A resumed checkpoint must have the network's class count; the message names all three numbers."""
    if kind == 'resume' and checkpoint_classes is not None and checkpoint_classes != num_class:
        raise UserError('class count mismatch: data %d, network --num-class %d, checkpoint %d; --resume needs '
                        'the same classes (use --finetune to train new class heads)'
                        % (data_classes, num_class, checkpoint_classes))


def initial_params(config, run_dir, shapes, settings, aux_names):
    """The weights to start from and their report (or None from scratch).

    Returns
    -------
    arg_params, aux_params : dict
    report : params.LoadReport or None
    """
    kind, epoch = starting_point(config.run)
    num_class = len(config.data.class_names)
    if kind == 'scratch':
        return {}, {}, None
    if kind == 'pretrained':
        arg_params, aux_params, unused, source = load_pretrained(config.run, settings, aux_names)
    else:
        batch = config.run.resume_batch if kind == 'resume' else 0
        arg_params, aux_params = run_dir.read_params(epoch, '--%s' % kind, batch)
        unused, source = [], run_dir.params_path(epoch, batch)
    loaded_shapes = {name: tuple(value.shape) for name, value in dict(arg_params, **aux_params).items()}
    found = checkpoint_num_classes(arg_params, shapes, num_class)
    check_checkpoint_classes(kind, found, num_class, num_class)
    changed = found is not None and found != num_class
    reinit = common.is_class_head_param if changed else None
    arg_params, aux_params, report = params.match_params(source, arg_params, aux_params, shapes, reinit)
    report.unused += unused
    if changed:
        LOG.info('class count changed from %d (checkpoint) to %d: class heads initialised anew', found, num_class)
    if kind == 'resume' and (report.initialised or report.mismatched):
        raise UserError(resume_mismatch_message(config, run_dir, epoch, report, loaded_shapes))
    if kind == 'pretrained':
        check_pretrained_fits(config.model.network, report, loaded_shapes)
    return arg_params, aux_params, report


def check_pretrained_fits(network, report, loaded_shapes):
    """UserError when fewer than half of a pretrained file's arrays match the network by name and shape: a file
    of another backbone, which would otherwise train as if from scratch after one log line.

    A backbone checkpoint of the right network matches nearly all (only its classifier is left unused).
    """
    total = len(loaded_shapes)
    if total and len(report.loaded) * 2 < total:
        raise UserError('--pretrained %s: only %d of its %d arrays match --network %s by name and shape (%s)%s'
                        % (report.source, len(report.loaded), total, network, report.mismatch_words() or
                           'the names differ', symbol_factory.fitting_networks_hint(loaded_shapes)))


def json_form(value):
    """``value`` as it reads back from a JSON or YAML file (tuples become lists), to compare with a saved one."""
    return json.loads(json.dumps(value, default=list))


def resume_mismatch_message(config, run_dir, epoch, report, loaded_shapes):
    """Why ``--resume`` cannot continue from checkpoint ``epoch``: the names and shapes that do not fit, and
    what the checkpoint was trained as (its saved configuration) or which networks its backbone fits."""
    trained = run_dir.read_config()
    model = config.model
    settings = [('--network', lambda c: c.model.network, model.network),
                ('--data-shape', lambda c: c.model.data_shape, model.data_shape),
                ('network overrides', lambda c: json_form(network_overrides(c.model) or None),
                 json_form(network_overrides(model) or None))]
    differs = ['%s %s (checkpoint) vs %s (now)' % (flag, read(trained), now) for flag, read, now in settings
               if trained is not None and read(trained) != now]
    cause = ('it was trained with ' + ', '.join(differs)) if differs else (
        'same --network %s and --data-shape %d%s' % (model.network, model.data_shape,
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


def freeze_names(config, run_dir, symbol, loaded):
    """Parameters fixed by ``--freeze``: only loaded ones (random weights are not worth keeping).

    A resumed run keeps the list its checkpoint was trained with (saved in its trainer state, or the
    ``frozen_params`` of an older run's ``-config.json``), so that it continues exactly as the first run would.
    """
    kind, epoch = starting_point(config.run)
    pattern = config.solver.freeze
    batch = config.run.resume_batch
    earlier = run_dir.frozen_params(epoch, batch) if kind == 'resume' else None
    if earlier is not None:
        LOG.info('frozen as in the resumed run (%s): %d parameters', run_dir.trainer_state_path(epoch, batch),
                 len(earlier))
        return list(earlier)
    if kind == 'scratch':
        if pattern:
            LOG.info('--freeze %r not applied: training from scratch', pattern)
        return []
    names = [name for name in params.frozen_param_names(symbol.list_arguments(), pattern) if name in loaded]
    LOG.info('frozen by --freeze %r: %d parameters%s', pattern, len(names), (': ' + ', '.join(names)) if names else '')
    return names


def init_optimizer(module, config, run_dir, iters, num_devices, group=distributed.Group('local')):
    """Optimizer with the LR schedule positioned at the first epoch; optimizer states restored on resume.

    Gradients are summed over ``num_devices`` and, in a synchronous group, over its workers: the rescale
    divides by both (train/distributed.py).
    """
    solver = config.solver
    begin_update = begin_epoch_of(config) * iters + config.run.resume_batch
    scheduler = schedule.solver_scheduler(solver, iters)
    settings = schedule.optimizer_params(solver.optimizer, solver.lr, solver.momentum, solver.wd, scheduler,
                                         num_devices * group.gradient_sum_workers, begin_update, solver.loss_scale,
                                         solver.clip_gradient)
    names = param_groups.trained_names(module)
    with param_groups.optimizer_graph(module, *param_groups.solver_multipliers(solver, names)):
        distributed.init_optimizer(module, group, solver.optimizer, settings)
    kind, epoch = starting_point(config.run)
    if kind == 'resume' and not group.saves_optimizer_states:
        LOG.info('--resume %d under --kv-store %s: the optimizer state lives on the servers and was not saved; it '
                 'starts afresh', epoch, solver.kv_store)
    elif kind == 'resume':
        states = run_dir.states_path(epoch, config.run.resume_batch)
        if not os.path.isfile(states):
            raise UserError('--resume %d: %s is missing, so the optimizer state cannot be restored; use --finetune '
                            '%d to start from the weights with a fresh optimizer' % (epoch, states, epoch))
        kind = load_optimizer_states(module, states, '--resume %d' % epoch, config.run.trust_pickled_states)
        LOG.info('optimizer state restored from %s%s', states, ' (a trusted pickle)' if kind == 'pickle' else '')
    LOG.info('%s', schedule.describe(solver, iters, begin_update))
    for line in param_groups.group_lines(module._optimizer, names):   # Module keeps its optimizer private
        LOG.info('%s', line)


def build_hooks(config, symbol, run_dir, val_iter, eval_end_callbacks=(), group=distributed.Group('local')):
    """The hooks in the order the module docstring of :mod:`train.callbacks` explains (the checkpointer is
    added by :func:`run`, last, after the user's hooks, so that every hook's state goes into the checkpoint).

    In a group, the group's own hooks come first (BatchNorm statistics averaged before anything reads them),
    and only rank 0 validates, keeps the best epoch and draws the curves. A worker of a group has no progress
    bar (its output reaches the launcher through a pipe, where a bar's redraws are noise): its log lines say
    the speed.
    """
    hooks = distributed.sync_hooks(group) + [callbacks.StopOnNonFinite(), callbacks.LearningRateLog()]
    if not group.distributed:
        hooks.append(callbacks.ProgressBar())
    hooks.append(callbacks.BatchLogger(config.run.frequent))
    if config.eval.validate_on_train > 0 and group.writes:
        hooks.append(train_data_check(config))
    metric = validation_metric(config)
    if val_iter is not None:
        hooks.append(callbacks.Validator(val_iter, metric, config.eval.val_interval, config.solver.end_epoch,
                                         eval_end_callbacks))
        hooks.append(callbacks.KeepBest(run_dir, metric.name))
    hooks.append(callbacks.History())
    hooks += ema.build_hooks(config, symbol, run_dir, val_iter, validation_metric(config), starting_point(config.run),
                             group.writes)
    if group.writes:
        hooks.append(callbacks.CurvePlotter(run_dir.curves_path, metric.name))
        hooks += visual_hooks(config, run_dir, hooks)   # pictures, TensorBoard: after Validator and KeepBest
    return hooks


def validation_metric(config):
    """The validation metric of the ``eval`` section, named by the class names."""
    evaluation = config.eval
    return map_metric(tuple(config.data.class_names), evaluation.voc07, evaluation.overlap, evaluation.use_difficult)


def log_ap_table(state, best):
    """The per-class AP of the last epoch and of the best one, as a table in the log."""
    if not state.validation:
        return
    columns = {'epoch %d' % (state.epoch + 1): state.validation}
    if best and best['epoch'] != state.epoch + 1:
        columns['best (epoch %d)' % best['epoch']] = best['ap_per_class']
    for line in format_ap_table(columns):
        LOG.info(line)


def setup_logging(log_path, tag=''):
    """Log lines to the console (through tqdm) and to ``log_path``, each after the time and ``tag`` (a worker's
    ``'rank 1/2 '``); returns the handlers to remove later."""
    formatter = logging.Formatter('%(asctime)s ' + tag.replace('%', '%%') + '%(message)s', '%H:%M:%S')
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


def check_prefix_is_free(config, run_dir):
    """UserError when this run would overwrite checkpoints of an earlier run under its prefix.

    A run writes epochs ``begin_epoch + 1 .. end_epoch``; saved epochs in that range belong to another run
    unless ``--overwrite`` says they may go.
    """
    begin_epoch = begin_epoch_of(config)
    taken = [epoch for epoch in run_dir.epochs() if begin_epoch < epoch <= config.solver.end_epoch]
    if taken and not config.run.overwrite:
        raise UserError('--prefix %s already holds epochs %s of an earlier run; continue it with --resume %d, '
                        'choose another --prefix, or pass --overwrite' % (run_dir.prefix, ', '.join(map(str, taken)),
                                                                          max(run_dir.epochs())))


def resolve_config(config, contexts):
    """``config`` with every value that means "a default from elsewhere" made explicit: classes, label width,
    prefix, devices, loss scale, NMS and anchor matching. This is what ``<prefix>-config.yaml`` holds."""
    check_paths(config.data)
    names = resolve_classes(config.data.train_path, config.data.num_class, config.data.class_names)
    model = config.model
    gpus = ','.join(str(ctx.device_id) for ctx in contexts if ctx.device_type == 'gpu')
    cpus = sum(ctx.device_type == 'cpu' for ctx in contexts)
    prefix = config.run.prefix or default_prefix(model.network, model.data_shape)
    values = {
        'data.class_names': list(names), 'data.num_class': len(names),
        'data.label_width': needed_label_width(config.data),
        'model.nms_thresh': multibox.NMS['nms_thresh'] if model.nms_thresh is None else model.nms_thresh,
        'model.force_suppress': (multibox.NMS['force_suppress'] if model.force_suppress is None
                                 else model.force_suppress),
        'model.anchor_overlap': multibox.OVERLAP_THRESHOLD if model.anchor_overlap is None else model.anchor_overlap,
        'run.prefix': prefix,
        'run.gpus': gpus,
        'run.cpus': max(cpus, 1),
        'solver.loss_scale': amp.effective_loss_scale(config.solver.amp, config.solver.loss_scale, FP16_LOSS_SCALE),
    }
    values.update(resume_position(config.run, RunDir(prefix)))
    return resolved(config, values)


def resume_position(run, run_dir):
    """``run.resume`` / ``run.resume_batch`` resolved: 'last' and 'auto' become the newest complete checkpoint
    (mid-epoch ones included), '' when there is none and 'auto' was asked.

    Raises
    ------
    UserError
        ``--resume last`` without any complete checkpoint under the prefix.
    """
    requested = resume_request(run.resume)
    if requested not in RESUME_NEWEST:
        return {'run.resume': str(requested) if requested else '', 'run.resume_batch': 0}
    newest = run_dir.newest_position()
    if newest is None:
        if requested == 'last':
            raise UserError('--resume last: no complete checkpoint under --prefix %s; start without --resume, or use '
                            '--resume auto (from scratch when there is none)' % run_dir.prefix)
        return {'run.resume': '', 'run.resume_batch': 0}
    return {'run.resume': str(newest[0]), 'run.resume_batch': newest[1]}


def check_solver(solver):
    """The solver settings each builder checks again when it uses them, checked before anything is read or
    written: kvstore, schedule, group multipliers, EMA decay (each a one-line UserError naming the flag)."""
    distributed.check_kv_store(solver.kv_store)
    budget.check_budget(solver, solver.kv_store in distributed.DIST_KV_STORES)
    schedule.check_schedule(solver)
    param_groups.check_multipliers(solver)
    ema.check_decay(solver.ema)


def prepare(config):
    """The resolved configuration, its devices and its run directory, checked before anything is written."""
    check_solver(config.solver)
    contexts = contexts_for(config.run.gpus, config.run.cpus)
    config = resolve_config(config, contexts)
    amp.check_supported(config.solver.amp, contexts)
    run_dir = RunDir(config.run.prefix)
    check_prefix_is_free(config, run_dir)
    return config, contexts, run_dir


def start_module(config, run_dir, symbol, train_iter, contexts):
    """Load the starting weights, bind the module with --freeze applied, initialise the rest.

    Returns
    -------
    module : mx.mod.Module
    frozen : list of str
        The fixed parameters.
    """
    model = config.model
    settings = symbol_factory.get_config(model.network, model.data_shape, **network_overrides(model))
    shapes = param_shapes(symbol, train_iter)
    arg_params, aux_params, report = initial_params(config, run_dir, shapes, settings,
                                                    set(symbol.list_auxiliary_states()))
    for line in report.lines() if report else ['weights: training from scratch (all initialised anew)']:
        LOG.info(line)
    fixed = freeze_names(config, run_dir, symbol, set(arg_params))
    module = build_module(symbol, contexts, train_iter, fixed)
    initializer = SSDInitializer(len(config.data.class_names), model.background_prior, model.head_init_std,
                                 **INITIALIZER)
    module.init_params(initializer, arg_params=arg_params, aux_params=aux_params, allow_missing=True)
    return module, fixed


def fit_time_budget(config, run_dir, module, train_iter, val_iter, iters, detector_symbol):
    """``config`` with its schedule fitted to ``--time-budget`` (train/budget.py), and the
    :class:`train.budget.BudgetKeeper` that holds the run to it (None without a budget, or on a resume, which keeps
    the fit its ``<prefix>-config.yaml`` holds; any other run times one epoch here first, validation's passes
    with ``detector_symbol``).
    """
    solver = config.solver
    if solver.time_budget <= 0:
        return config, None
    if starting_point(config.run)[0] == 'resume':
        fit = budget.saved_fit(run_dir.read_config(), solver)
        if fit is not None:
            LOG.info('time budget %g min: the resumed run keeps its fitted schedule (end epoch %d, %s, '
                     'warm-up %g epochs)', solver.time_budget, fit['solver.end_epoch'],
                     budget.decay_words(solver.lr_scheduler, fit['solver.lr_steps']), fit['solver.warmup_epochs'])
            return resolved(config, fit), None
    tic = time.time()
    num_val_batches = 0 if val_iter is None else int(math.ceil(val_iter.num_records / float(config.data.batch_size)))
    detector = callbacks.bound_detector(module, detector_symbol) if num_val_batches else None
    cost = budget.measure_epoch(module, train_iter, iters, num_val_batches, config.eval.val_interval, detector)
    measured = time.time() - tic
    left = solver.time_budget * 60.0 - measured
    epochs = budget.epochs_within(left, cost)
    fit = budget.fitted_solver(solver, begin_epoch_of(config), epochs)
    LOG.info(budget.describe_fit(solver.time_budget, cost, epochs, fit, measured, solver.lr_scheduler))
    fitted = resolved(config, fit)
    schedule.check_schedule(fitted.solver)
    keeper = budget.BudgetKeeper(solver, fitted, begin_epoch_of(config), left, iters, on_refit=run_dir.write_config)
    check_prefix_is_free(resolved(fitted, {'solver.end_epoch': keeper.max_end}), run_dir)  # the run may grow
    return fitted, keeper


def detector_graph(config):
    """The deploy graph of the run's network (at its ``--amp`` precision): validation binds it on the training
    module's arrays (:meth:`train.callbacks.TrainState.detector`)."""
    model = config.model
    symbol = symbol_factory.get_symbol(model.network, model.data_shape, config.data.num_class,
                                       nms_thresh=model.nms_thresh, force_suppress=model.force_suppress,
                                       **network_overrides(model))
    return amp.convert_symbol(symbol, config.solver.amp)


def precision_graph(solver, symbol):
    """The graph the module trains: ``symbol`` itself, or its ``--amp`` version with the loss scale applied.
    Checkpoints keep ``symbol`` (float32 parameters either way), so evaluation and deployment see no difference."""
    if solver.amp == 'none' and solver.loss_scale == 1:
        return symbol
    LOG.info('mixed precision --amp %s: %s convolutions, float32 master weights, losses and MultiBox operators; '
             'loss scale %g', solver.amp, amp.TARGET_DTYPES.get(solver.amp, 'float32'), solver.loss_scale)
    return amp.scale_losses(amp.convert_symbol(symbol, solver.amp), solver.loss_scale)


def train_net(config=None, hooks=(), batch_end_callbacks=(), epoch_end_callbacks=(), eval_end_callbacks=(), **flags):
    """Train an SSD.

    Parameters
    ----------
    config : omegaconf.DictConfig, optional
        A configuration from :func:`config.schema.build_config`; without it, ``flags`` (flat names such as
        ``lr``, ``batch_size``, see :data:`config.schema.FLAG_KEYS`) build one over the schema defaults.
    hooks : sequence of train.callbacks.Hook
        More hooks, run after the project's (before the state saver, so their ``state_dict`` is saved).
    batch_end_callbacks, epoch_end_callbacks, eval_end_callbacks : sequence of callable
        MXNet callbacks called after the project's hooks (``mx.callback.Speedometer``,
        ``mx.callback.do_checkpoint``...), as ``Module.fit`` calls them.

    Returns
    -------
    dict
        ``prefix``, ``config`` (resolved), ``history`` (per epoch: losses and mAP, earlier epochs of a resumed
        run included), ``best`` (the best-epoch record or None), ``lr_history`` (learning rate of every update
        of this run), ``iterations_per_epoch``, ``label_width``.

    Raises
    ------
    UserError
        Bad options or data, and :class:`train.callbacks.TrainingDiverged` when a loss is not finite.
    """
    if config is None:
        config = from_flat(**flags)
    elif flags:
        raise UserError('train_net takes a configuration or flat settings, not both (%s)' % ', '.join(flags))
    config, contexts, run_dir = prepare(config)
    group = distributed.join(config.solver.kv_store)
    handlers = setup_logging(config.run.log if group.writes else '', group.tag)
    try:
        return run(config, contexts, run_dir, list(hooks), dict(batch_end_callbacks=batch_end_callbacks,
                                                                epoch_end_callbacks=epoch_end_callbacks),
                   eval_end_callbacks, group)
    finally:
        for handler in handlers:
            LOG.removeHandler(handler)
            handler.close()


def restore_trainer_state(trainer, config, run_dir):
    """On ``--resume``, the hooks' state saved with the resumed checkpoint (history, best epoch, LR position)."""
    kind, epoch = starting_point(config.run)
    if kind != 'resume':
        return
    saved = run_dir.read_trainer_state(epoch, config.run.resume_batch)
    if saved is None:
        best = run_dir.read_best()     # checkpoints of runs before the trainer state kept only the best epoch
        saved = {'hooks': {'KeepBest': best}} if best else {}
        LOG.info('%s does not exist: history restarts at epoch %d',
                 run_dir.trainer_state_path(epoch, config.run.resume_batch), epoch + 1)
    trainer.load_state_dict(saved)


def replay_shuffles(train_iter, epochs):
    """Reset the training iterator once per epoch already trained, so that a resumed run reads the next epoch in
    the order the uninterrupted run would (the iterator's shuffle draws from its seed at every reset)."""
    for _ in range(epochs):
        train_iter.reset()


def run(config, contexts, run_dir, user_hooks, user_callbacks, eval_end_callbacks, group=distributed.Group('local')):
    """:func:`train_net` after the configuration is resolved, the worker group joined and logging set up.

    Every worker of a group runs this; only rank 0 (``group.writes``) writes the run's files.
    """
    LOG.info('checkpoint prefix: %s%s', run_dir.prefix, '' if group.writes else ' (written by rank 0)')
    for name in run_dir.remove_stale_temporaries() if group.writes else ():
        LOG.info('removed %s, left by a killed run', name)
    seed_everything(config.run.seed)
    data, model = config.data, config.model
    train_iter, val_iter = build_iterators(config, group)
    iters = iterations_per_epoch(train_iter.worker_records, data.batch_size, data.train_path)
    if group.distributed:
        LOG.info('worker %d of %d (--kv-store %s): images per worker %s; %d iterations per epoch on every worker',
                 group.rank, group.num_workers, group.kv_store, train_iter.worker_records.tolist(), iters)
    note = num_example_note(data.num_example, data.train_path, train_iter.num_records)
    if note:
        LOG.info('note: %s', note)
    symbol = symbol_factory.get_symbol_train(model.network, model.data_shape, data.num_class, **graph_settings(model))
    module, frozen = start_module(config, run_dir, precision_graph(config.solver, symbol), train_iter, contexts)
    started = time.time()
    detector_symbol = detector_graph(config)
    config, keeper = fit_time_budget(config, run_dir, module, train_iter, val_iter, iters, detector_symbol)
    init_optimizer(module, config, run_dir, iters, len(contexts), group)
    if group.writes:
        run_dir.write_class_names(data.class_names)
        run_dir.write_config(config)
    begin_epoch, end_epoch = begin_epoch_of(config), config.solver.end_epoch
    LOG.info('training %s on %s: %d classes, %d images, %d iterations per epoch, epochs %d..%d',
             model.network, ', '.join(map(str, contexts)), data.num_class, train_iter.num_records, iters,
             begin_epoch + 1, end_epoch)
    kind = starting_point(config.run)[0]
    skip = config.run.resume_batch if kind == 'resume' else 0
    last = run_dir.params_path(begin_epoch, skip) if kind in ('resume', 'finetune') else None
    state = callbacks.TrainState(module, MultiBoxMetric(symbol.list_outputs()), iters, data.batch_size, last,
                                 started=started if config.solver.time_budget > 0 else None,
                                 detector_symbol=detector_symbol)
    hooks = ([keeper] if keeper else []) + build_hooks(config, symbol, run_dir, val_iter, eval_end_callbacks,
                                                       group) + user_hooks
    trainer = Trainer(state, hooks, extra_state=dict(frozen_params=frozen, iterations_per_epoch=iters,
                                                     num_train_records=train_iter.num_records, start=kind,
                                                     num_workers=group.num_workers))
    checkpointer = callbacks.Checkpointer(symbol, run_dir, trainer.state_dict, group.saves_optimizer_states)
    if group.writes:
        trainer.hooks.append(checkpointer)
    restore_trainer_state(trainer, config, run_dir)
    monitor = (callbacks.LoggedMonitor(config.run.monitor, pattern=config.run.monitor_pattern)
               if config.run.monitor > 0 else None)
    if kind == 'resume':
        replay_shuffles(train_iter, begin_epoch)
    trainer.fit(train_iter, begin_epoch, keeper.max_end if keeper else end_epoch, planned_end=end_epoch,
                monitor=monitor, skip_batches=skip,
                on_interrupt=ema.saving_average_first(hooks, checkpointer.save_interrupted) if group.writes else None,
                **user_callbacks)
    best = next((hook.best for hook in hooks if isinstance(hook, callbacks.KeepBest)), None)
    log_ap_table(state, best)
    return dict(prefix=run_dir.prefix, config=config, history=state.history, best=best or None,
                lr_history=state.lr_history, iterations_per_epoch=iters, label_width=data.label_width)
