"""train.py and train/train_net.py: flag wiring, resume exactness, finetune, freeze, pretrained loading (MXNet
checkpoint and GluonCV file), NaN stop, and a short training whose loss falls and whose mAP rises."""
import argparse
import json
import os
import shutil

import cv2
import mxnet as mx
import numpy as np
import pytest
from omegaconf import OmegaConf

from config import schema
from config.errors import UserError, run_cli
from config.recipes import RECIPES, load_recipe
from core import devices
from core.checkpoint import load_checkpoint_params
from core.run_dir import RunDir
from symbol import symbol_factory
from tools import cli, prepare_dataset, synthetic_voc
from tools.scripts import load_script
from train import callbacks
from train.callbacks import Hook, TrainingDiverged
from train.train_net import train_net

NETWORK, SHAPE, BATCH = 'mobilenet0.25', 64, 8


def make_dataset(root, num_trainval, num_test, classes='circle,square,triangle,star,cross,ring', side=(64, 96),
                 max_objects=4, extra=()):
    """Synthetic VOC images packed into ``root/train.rec`` and ``root/val.rec`` (with .classes); ``extra``:
    more tools/synthetic_voc.py flags."""
    voc = str(root / 'VOC')
    synthetic_voc.main(synthetic_voc.parse_args([
        '--root', voc, '--num-trainval', str(num_trainval), '--num-test', str(num_test), '--classes', classes,
        '--min-side', str(side[0]), '--max-side', str(side[1]), '--max-objects', str(max_objects),
        '--num-thread', '1'] + list(extra)))
    for image_set, name, shuffle in (('trainval', 'train', '--shuffle'), ('test', 'val', '--no-shuffle')):
        prepare_dataset.main(prepare_dataset.parse_args([
            '--dataset', 'pascal', '--year', '2007', '--set', image_set, '--root', voc,
            '--target', str(root / (name + '.lst')), shuffle, '--num-thread', '1']))
    return str(root / 'train.rec'), str(root / 'val.rec')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """40 training and 16 validation images with six classes."""
    return make_dataset(tmp_path_factory.mktemp('train_data'), 40, 16)


def tiny_run(train_path, prefix, **overrides):
    """train_net on the tiny network, deterministic data (no augmentation, no shuffle), no validation."""
    options = dict(train_path=train_path, val_path='', network=NETWORK, data_shape=SHAPE, batch_size=BATCH,
                   pretrained='', end_epoch=1, lr_steps=(), log='', seed=0, train_preset='val', frequent=100)
    options.update(overrides)
    return train_net(prefix=str(prefix), **options)


@pytest.fixture(scope='module')
def base_checkpoint(data, tmp_path_factory):
    """One epoch from scratch: prefix of its checkpoint (epoch 1)."""
    prefix = tmp_path_factory.mktemp('base') / 'base'
    tiny_run(data[0], prefix, lr=0.01)
    return str(prefix)


# ------------------------------------------------------------------------------------------ flag wiring
def changed_value(action, default):
    """Command-line tokens giving ``action`` a value other than ``default`` (its schema default)."""
    flag = action.option_strings[0]
    if isinstance(action, argparse.BooleanOptionalAction):   # --x / --no-x: the one that is not the default
        return [flag if not default else action.option_strings[1]]
    if isinstance(action, argparse._StoreTrueAction):
        return [flag]
    if action.choices:
        return [flag, [choice for choice in action.choices if choice not in (default, '')][0]]
    if action.type is int:
        return [flag, str((default or 0) + 3)]
    if action.type is float:
        return [flag, str(round((default or 0) + 0.125, 6))]
    if action.type is cli.comma_ints:
        return [flag, '3,5']
    if action.dest == 'class_names':
        return [flag, 'a,b']
    if action.dest == 'resume':
        return [flag, '3']
    return [flag, 'value_of_' + action.dest]


def test_every_flag_sets_its_schema_key_and_only_given_flags_override():
    script = load_script('train.py')
    baseline = script.config_from_args(script.parse_args([]))
    assert schema.to_dict(baseline) == schema.to_dict(schema.schema())     # nothing given: the schema defaults
    actions = [action for action in script.build_parser()._actions
               if action.dest not in ('help', 'recipe', 'config_file', 'opts')]
    assert len(actions) >= 40
    for action in actions:
        key = 'run.gpus' if action.dest == 'cpu' else schema.FLAG_KEYS[action.dest]
        tokens = changed_value(action, schema.default_of(key) if action.dest != 'cpu' else False)
        config = script.config_from_args(script.parse_args(tokens))
        changed = [dotted for dotted, value in flat_items(config) if value != dict(flat_items(baseline))[dotted]]
        assert changed == [key.rsplit('.', 1)[0] if key.split('.')[-1].isdigit() else key], action.option_strings
    config = script.config_from_args(script.parse_args(['--lr-steps', '3,5', '--mean-g', '7', '--nms', '0.3',
                                                        '--train-list', 'a.lst', '--force', '--prefix', 'out/x']))
    assert list(config.solver.lr_steps) == [3, 5] and config.data.mean_pixels[1] == 7
    assert config.model.nms_thresh == 0.3 and config.data.train_list == 'a.lst'
    assert config.model.force_suppress is True and config.run.prefix == 'out/x'


def flat_items(config):
    """``[(dotted key, value)]`` of every schema key (lists compared whole)."""
    return [('%s.%s' % (section, name), value) for section, keys in schema.to_dict(config).items()
            for name, value in keys.items()]


def test_devices_of_the_flags(monkeypatch):
    script = load_script('train.py')
    monkeypatch.setattr(devices, 'cuda_available', lambda: True)
    for tokens, expected in ((['--gpus', '1'], [mx.gpu(1)]), (['--gpus', '0,1'], [mx.gpu(0), mx.gpu(1)]),
                             (['--gpus', '1', '--cpu'], [mx.cpu()]), (['--gpus', ''], [mx.cpu()])):
        assert devices.contexts_for(script.config_from_args(script.parse_args(tokens)).run.gpus) == expected


def test_precedence_schema_recipe_file_flags_opts(tmp_path):
    script = load_script('train.py')
    run_yaml = tmp_path / 'run.yaml'
    run_yaml.write_text('solver:\n  lr: 0.03\n  end_epoch: 7\nrun:\n  recipe: demo\n  seed: 5\n')
    config = script.config_from_args(script.parse_args(['--config-file', str(run_yaml), '--end-epoch', '9',
                                                        '--opts', 'run.seed', '6', 'model.data_shape', '160']))
    demo = load_recipe('demo')
    assert config.model.network == demo['model']['network']            # recipe named by the file
    assert config.data.batch_size == demo['data']['batch_size']
    assert config.solver.lr == 0.03                                     # file over recipe
    assert config.solver.end_epoch == 9                                  # flag over file
    assert config.run.seed == 6 and config.model.data_shape == 160       # --opts over everything
    assert config.solver.momentum == schema.DEFAULTS.solver.momentum     # nobody set it: the schema's
    with pytest.raises(Exception) as frozen:
        config.solver.lr = 1.0
    assert 'read-only' in str(frozen.value).lower()


@pytest.mark.parametrize('tokens, words', [
    (['--opts', 'solver.lrr', '1'], '--opts solver.lrr: no such key; the keys of solver are optimizer, lr,'),
    (['--opts', 'solverr.lr', '1'], 'the sections are data, model, solver, run, eval'),
    (['--opts', 'solver.lr', 'fast'], "--opts solver.lr: Value 'fast' of type 'str' could not be converted to Float"),
    (['--opts', 'solver.lr'], "--opts takes KEY VALUE pairs; 'solver.lr' has no value"),
    (['--lr', '-1'], '--lr (solver.lr) -1.0 is out of range'),
    (['--opts', 'solver.optimizer', 'rmsprop'], "--optimizer (solver.optimizer) 'rmsprop': choose one of sgd, adam"),
    (['--opts', 'data.mean_pixels', '[1,2]'], 'data.mean_pixels [1.0, 2.0] is out of range'),
])
def test_a_bad_key_or_value_is_one_line_naming_it(tokens, words, capsys):
    script = load_script('train.py')
    with pytest.raises(SystemExit) as stop:
        run_cli(lambda args: script.config_from_args(args), script.parse_args(tokens))
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and '\n' not in err and words in err, err


def test_a_bad_config_file_is_one_line_naming_the_file_and_key(tmp_path, capsys):
    script = load_script('train.py')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('solver:\n  lr: 0.1\n  warmup: 2\n')
    with pytest.raises(SystemExit):
        run_cli(lambda args: script.config_from_args(args), script.parse_args(['--config-file', str(bad)]))
    err = capsys.readouterr().err.strip()
    assert '--config-file %s: solver.warmup: no such key' % bad in err and 'warmup_epochs' in err


def test_recipes_hold_schema_keys_and_flags_given_still_win():
    script = load_script('train.py')
    for name in RECIPES:
        recipe = load_recipe(name)
        assert set(recipe) <= set(schema.SECTIONS), name
        config = script.config_from_args(script.parse_args(['--recipe', name]))     # keys and types checked
        symbol_factory.get_symbol_train(config.model.network, config.model.data_shape, 6,
                                        **schema.to_dict(config.model.network_overrides))   # the layout builds
    demo = load_recipe('demo')
    config = script.config_from_args(script.parse_args(['--recipe', 'demo', '--lr', '0.05', '--prefix', 'm/x']))
    assert config.solver.lr == 0.05 and config.run.prefix == 'm/x'                        # given: the flag's value
    assert (config.model.network, config.model.data_shape, config.model.anchor_overlap) == (
        demo['model']['network'], demo['model']['data_shape'], demo['model']['anchor_overlap'])   # the recipe's
    assert list(config.data.std_pixels) == demo['data']['std_pixels'] and config.run.gpus == ''
    assert schema.to_dict(config.model.network_overrides) == demo['model']['network_overrides']
    assert config.run.recipe == 'demo'
    assert script.config_from_args(script.parse_args(['--cpu'])).model.network_overrides is None


def test_the_saved_config_repeats_the_run_alone(data, tmp_path):
    script = load_script('train.py')
    first = str(tmp_path / 'first')
    common = ['--cpu', '--train-path', data[0], '--val-path', '', '--network', NETWORK, '--data-shape', str(SHAPE),
              '--batch-size', str(BATCH), '--pretrained', '', '--end-epoch', '1', '--lr-steps', '', '--log', '',
              '--seed', '0', '--train-preset', 'val', '--frequent', '100', '--opts', 'solver.lr', '0.01']
    one = script.main(script.parse_args(common + ['run.prefix', first]))
    saved = open(first + '-config.yaml').read()
    assert 'nms_thresh: 0.45' in saved and 'anchor_overlap: 0.5' in saved and 'label_width: ' in saved
    assert '  # base learning rate\n  lr: 0.01' in saved                  # every key with its comment
    config = RunDir(first).read_config()
    resolved_keys = ('data.class_names', 'data.num_class', 'data.label_width', 'model.nms_thresh',
                     'model.force_suppress', 'model.anchor_overlap', 'run.prefix', 'run.gpus', 'solver.loss_scale')
    assert [key for key in resolved_keys if OmegaConf.select(config, key) is None] == []   # no "default elsewhere"
    assert list(config.data.class_names) == ['circle', 'square', 'triangle', 'star', 'cross', 'ring']
    two = script.main(script.parse_args(['--config-file', first + '-config.yaml', '--prefix', str(tmp_path / 'two')]))
    differs = [key for key, value in flat_items(two['config']) if value != dict(flat_items(one['config']))[key]]
    assert differs == ['run.prefix']
    assert two['history'][0]['CrossEntropy'] == pytest.approx(one['history'][0]['CrossEntropy'], rel=1e-5)
    assert two['history'][0]['SmoothL1/positive'] == pytest.approx(one['history'][0]['SmoothL1/positive'], rel=1e-5)


def test_mxnet_callbacks_run_beside_the_hooks(data, tmp_path):
    seen = []
    prefix = str(tmp_path / 'cb')
    speed = mx.callback.Speedometer(BATCH, frequent=2)
    result = train_net(schema.from_flat(
        train_path=data[0], val_path=data[1], network=NETWORK, data_shape=SHAPE, batch_size=BATCH, pretrained='',
        end_epoch=2, lr_steps=(), log='', seed=0, train_preset='val', frequent=100, prefix=prefix, cpu=True),
        batch_end_callbacks=[speed, lambda param: seen.append(('batch', param.epoch, param.nbatch))],
        epoch_end_callbacks=[mx.callback.do_checkpoint(str(tmp_path / 'mxnet'))],
        eval_end_callbacks=[lambda param: seen.append(('eval', param.epoch, dict(param.eval_metric.get_name_value())))])
    batches = [item for item in seen if item[0] == 'batch']
    assert batches == [('batch', epoch, index) for epoch in (0, 1) for index in range(5)]
    evaluations = [item for item in seen if item[0] == 'eval']
    assert [item[1] for item in evaluations] == [0, 1]
    assert evaluations[1][2]['mAP'] == result['history'][1]['mAP']     # the metric validation computed
    for epoch in (1, 2):                                               # MXNet's own checkpoint callback wrote too
        ours, _ = load_checkpoint_params(prefix, epoch, 'test')
        theirs = mx.nd.load(str(tmp_path / 'mxnet') + '-%04d.params' % epoch)
        assert np.array_equal(theirs['arg:conv0_weight'].asnumpy(), ours['conv0_weight'].asnumpy())


def test_network_overrides_std_and_anchor_overlap_reach_the_graph_and_the_config(data, tmp_path):
    overrides = dict(from_layers=('relu22', 'relu26'), extra_filters=(), extra_strides=(), extra_pads=(),
                     sizes=((0.2, 0.3), (0.5, 0.7)), ratios=((1, 2, 0.5),) * 2, normalizations=(None, None))
    prefix = str(tmp_path / 'layout')
    tiny_run(data[0], prefix, network_overrides=overrides, std_pixels=(58.0, 57.0, 56.0), anchor_overlap=0.4)
    symbol = mx.sym.load(prefix + '-symbol.json')
    names = symbol.list_arguments()
    assert 'relu22_cls_pred_conv_weight' in names and not any(name.startswith('multi_feat') for name in names)
    assert float(symbol.attr_dict()['multibox_target']['overlap_threshold']) == 0.4
    config = RunDir(prefix).read_config()
    assert list(config.model.network_overrides.from_layers) == ['relu22', 'relu26']
    assert list(config.data.std_pixels) == [58.0, 57.0, 56.0] and config.model.anchor_overlap == 0.4


def test_gpus_on_a_cpu_build_is_one_line_naming_the_cuda_package(monkeypatch, capsys):
    script = load_script('train.py')
    monkeypatch.setattr(devices, 'cuda_available', lambda: False)
    with pytest.raises(SystemExit) as stop:
        run_cli(script.main, script.parse_args(['--gpus', '0']))
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and '\n' not in err and 'mxnet-cu112' in err and '--cpu' in err


def test_class_count_mismatch_names_both_numbers(data, tmp_path):
    with pytest.raises(UserError, match=r'--num-class 20, data 6 classes'):
        tiny_run(data[0], tmp_path / 'x', num_class=20)


def test_missing_pretrained_is_an_error_not_a_silent_start(data, tmp_path):
    with pytest.raises(UserError, match="--pretrained ''"):
        tiny_run(data[0], tmp_path / 'x', pretrained=str(tmp_path / 'nothing'))


# --------------------------------------------------------------------------------- resume and schedule
def test_resume_reproduces_the_uninterrupted_run(data, tmp_path):
    settings = dict(lr=0.01, momentum=0.9, lr_steps=(1,), lr_factor=0.5, warmup_epochs=0.5)
    straight = tiny_run(data[0], tmp_path / 'straight', end_epoch=2, **settings)
    first = tiny_run(data[0], tmp_path / 'split', end_epoch=1, **settings)
    second = tiny_run(data[0], tmp_path / 'split', end_epoch=2, resume=1, **settings)
    iters = straight['iterations_per_epoch']
    assert iters == 40 // BATCH
    # warm-up over round(0.5 * 5) = 2 updates: update 1 at 0.01 * 1/2, update 2 at the full 0.01 (MXNet counts
    # updates from 1); halved once the update count passes 5 (the end of epoch 1)
    expected = [0.01 * 1 / 2] + [0.01] * 4 + [0.005] * 5
    np.testing.assert_allclose(straight['lr_history'], expected, rtol=1e-12)
    assert first['lr_history'] + second['lr_history'] == straight['lr_history']
    args_straight, aux_straight = load_checkpoint_params(str(tmp_path / 'straight'), 2, 'test')
    args_split, aux_split = load_checkpoint_params(str(tmp_path / 'split'), 2, 'test')
    for name in args_straight:
        np.testing.assert_allclose(args_split[name].asnumpy(), args_straight[name].asnumpy(), atol=1e-5,
                                   err_msg=name)
    assert set(aux_split) == set(aux_straight)
    for name in aux_straight:   # BatchNorm running statistics too (checkpoints wait for pending updates)
        np.testing.assert_allclose(aux_split[name].asnumpy(), aux_straight[name].asnumpy(), atol=1e-5,
                                   err_msg=name)
    for suffix in ('-0001.states', '-0002.states', '-symbol.json', '-config.yaml', '.classes', '-0002.trainer.json'):
        assert os.path.isfile(str(tmp_path / 'split') + suffix), suffix


class EventLog(Hook):
    """Records every event with its epoch and batch; its state is a counter that must survive a resume."""

    def __init__(self):
        self.events, self.epochs_seen = [], 0

    def before_train(self, state):
        self.events.append(('before_train', state.epoch))

    def before_epoch(self, state):
        self.events.append(('before_epoch', state.epoch))

    def after_batch(self, state):
        self.events.append(('after_batch', state.epoch, state.batch))

    def after_epoch(self, state):
        self.epochs_seen += 1
        self.events.append(('after_epoch', state.epoch))

    def after_train(self, state):
        self.events.append(('after_train', state.error is None))

    def state_dict(self):
        return {'epochs_seen': self.epochs_seen}

    def load_state_dict(self, saved):
        self.epochs_seen = saved['epochs_seen']


def test_hooks_see_every_event_and_their_state_survives_a_resume(data, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(callbacks, 'plot_training_curves', lambda history, path, name: drawn.append(
        [record['epoch'] for record in history]))
    prefix = tmp_path / 'hooks'
    first = EventLog()
    tiny_run(data[0], prefix, val_path=data[1], end_epoch=2, hooks=[first])
    assert first.events == ([('before_train', 0), ('before_epoch', 0)] + batches_of(0) + [('after_epoch', 0)] +
                            [('before_epoch', 1)] + batches_of(1) + [('after_epoch', 1), ('after_train', True)])
    second = EventLog()
    result = tiny_run(data[0], prefix, val_path=data[1], end_epoch=3, resume=2, hooks=[second])
    assert second.epochs_seen == 3                                   # 2 restored from the checkpoint + 1
    assert [record['epoch'] for record in result['history']] == [1, 2, 3]
    assert drawn[-1] == [1, 2, 3]                                      # the curves after a resume show every epoch
    assert result['history'][:2] == RunDir(str(prefix)).read_trainer_state(2)['hooks']['History']['records']
    assert result['history'][2]['seconds'] > result['history'][1]['seconds']
    assert result['best']['epoch'] in (1, 2, 3) and 'mAP' in result['best']


def batches_of(epoch):
    return [('after_batch', epoch, index) for index in range(40 // BATCH)]


# ------------------------------------------------------------------------------ finetune, freeze, pretrained
def test_finetune_with_fewer_classes_resets_the_heads_and_keeps_frozen_body(base_checkpoint, tmp_path):
    three = make_dataset(tmp_path / 'three', 16, 8, classes='circle,square,triangle')
    prefix = str(tmp_path / 'ft')
    shutil.copy(base_checkpoint + '-0001.params', prefix + '-0001.params')
    tiny_run(three[0], prefix, finetune=1, end_epoch=2, freeze='^conv')
    before, _ = load_checkpoint_params(base_checkpoint, 1, 'test')
    after, _ = load_checkpoint_params(prefix, 2, 'test')
    heads = [name for name in after if '_cls_pred_conv_weight' in name]
    assert heads
    for name in heads:   # anchors * (1 + classes) filters: 7 -> 4 per anchor
        assert before[name].shape[0] // 7 == after[name].shape[0] // 4
    for name in ('conv0_weight', 'conv13_weight', 'conv26_weight'):
        assert np.array_equal(before[name].asnumpy(), after[name].asnumpy()), name
    extra = 'multi_feat_2_conv_1x1_conv_weight'   # the first extra layer, after the two backbone layers
    assert not np.array_equal(before[extra].asnumpy(), after[extra].asnumpy())
    with open(prefix + '.classes') as handle:
        assert handle.read().split() == ['circle', 'square', 'triangle']


def test_pretrained_checkpoint_loads_everything_and_freeze_keeps_weights_bit_identical(data, base_checkpoint,
                                                                                        tmp_path):
    prefix = str(tmp_path / 'pre')
    tiny_run(data[0], prefix, pretrained=base_checkpoint, epoch=1, freeze='^conv[0-2]_', lr=0.01,
             log=prefix + '.log')
    log = open(prefix + '.log').read()
    assert '0 newly initialised, 0 shape mismatches' in log
    assert 'frozen by --freeze' in log and 'conv0_weight, conv1_weight, conv2_weight' in log
    before, _ = load_checkpoint_params(base_checkpoint, 1, 'test')
    after, _ = load_checkpoint_params(prefix, 1, 'test')
    for name in ('conv0_weight', 'conv1_weight', 'conv2_weight'):
        assert np.array_equal(before[name].asnumpy(), after[name].asnumpy()), name
    assert not np.array_equal(before['conv3_weight'].asnumpy(), after['conv3_weight'].asnumpy())


def test_pretrained_gluoncv_params_land_on_the_backbone_by_name(data, tmp_path):
    from gluoncv.model_zoo import get_model
    net = get_model('mobilenet0.25', pretrained=False)
    net.initialize(mx.init.Normal(0.5))
    net(mx.nd.zeros((1, 3, 64, 64)))
    path = str(tmp_path / 'mobilenet0.25.params')
    net.save_parameters(path)
    features = {name[len(net.prefix):]: param.data().asnumpy() for name, param in net.collect_params().items()}
    prefix = str(tmp_path / 'gcv')
    tiny_run(data[0], prefix, pretrained=path, freeze=r'^(conv|bn)\d+_', log=prefix + '.log')
    assert '135 loaded, 40 newly initialised' in open(prefix + '.log').read()
    assert 'unused from the file: dense0_bias, dense0_weight' in open(prefix + '.log').read()
    after, _ = load_checkpoint_params(prefix, 1, 'test')
    for unit in (0, 5, 26):   # frozen, so still exactly gluoncv's
        assert np.array_equal(after['conv%d_weight' % unit].asnumpy(), features['conv%d_weight' % unit])
        assert np.array_equal(after['bn%d_gamma' % unit].asnumpy(), features['batchnorm%d_gamma' % unit])


# ------------------------------------------------------------------------------------------- NaN stop
def test_non_finite_loss_stops_with_the_last_good_checkpoint(data, base_checkpoint, tmp_path, capsys):
    prefix = str(tmp_path / 'nan')
    for suffix in ('-0001.params', '-0001.states', '-symbol.json'):
        shutil.copy(base_checkpoint + suffix, prefix + suffix)
    untouched = open(prefix + '-0001.params', 'rb').read()
    script = load_script('train.py')
    args = script.parse_args(['--cpu', '--train-path', data[0], '--val-path', '', '--network', NETWORK,
                              '--data-shape', str(SHAPE), '--batch-size', str(BATCH), '--prefix', prefix,
                              '--resume', '1', '--end-epoch', '3', '--lr', '1e30', '--log', '',
                              '--train-preset', 'val'])
    with pytest.raises(SystemExit) as stop:
        run_cli(script.main, args)
    err = capsys.readouterr().err
    err = err[err.index('error: '):].rstrip('\n')   # after the progress bar's last refresh
    assert stop.value.code == 2 and '\n' not in err and err.startswith('error: loss is not finite at epoch 2')
    assert prefix + '-0001.params' in err
    assert open(prefix + '-0001.params', 'rb').read() == untouched
    assert not os.path.exists(prefix + '-0002.params')
    assert issubclass(TrainingDiverged, UserError)


def test_training_curves_picture_draws_losses_and_map(tmp_path):
    from train.curves import plot_training_curves
    history = [{'epoch': 1, 'seconds': 3.0, 'CrossEntropy': 2.0, 'SmoothL1': 1.0, 'mAP': 0.1},
               {'epoch': 2, 'seconds': 6.0, 'CrossEntropy': 1.0, 'SmoothL1': 0.5},
               {'epoch': 3, 'seconds': 9.0, 'CrossEntropy': 0.5, 'SmoothL1': 0.4, 'mAP': 0.6}]
    path = str(tmp_path / 'curves.png')
    plot_training_curves(history, path, 'VOC07 mAP')
    image = cv2.imread(path)
    assert image.shape == (320, 800, 3)                    # 10 x 4 inches at 80 dpi
    blue, green, red = (image[..., channel].astype(int) for channel in range(3))
    mpl_green = (green > 100) & (red < 80) & (blue < 80)   # matplotlib's tab:green (44, 160, 44)
    assert mpl_green[:, 400:].sum() > 100 and mpl_green[:, :400].sum() == 0   # mAP on the right only
    assert os.listdir(str(tmp_path)) == ['curves.png']      # no temporary file left


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_demo_recipe_from_scratch_loss_falls_and_map_rises(tmp_path):
    """train.py --recipe demo, scaled down (400 images of 3 classes at 128 px, 16 short epochs, ~1 minute):
    measured 0.95 -> 0.76 cross entropy, 3.3 -> 1.9 smooth L1 and VOC07 mAP 0.0001 -> 0.146."""
    train_path, val_path = make_dataset(tmp_path, 400, 100, classes='circle,square,triangle', side=(96, 128),
                                        extra=('--object-size', '0.25,0.6', '--small-share', '0'))
    prefix = str(tmp_path / 'model' / 'demo')
    script = load_script('train.py')
    result = script.main(script.parse_args([
        '--recipe', 'demo', '--train-path', train_path, '--val-path', val_path, '--prefix', prefix,
        '--data-shape', '128', '--end-epoch', '16', '--lr-steps', '12', '--frequent', '1000']))
    history = result['history']
    assert len(history) == 16 and all('mAP' in record for record in history)
    assert history[-1]['CrossEntropy'] < 0.9 * history[0]['CrossEntropy']
    assert history[-1]['SmoothL1/positive'] < 0.75 * history[0]['SmoothL1/positive']
    best = result['best']
    assert best['mAP'] >= 0.05 and best['mAP'] > history[0]['mAP'] + 0.04
    with open(prefix + '-best.json') as handle:
        assert json.load(handle)['epoch'] == best['epoch']
    assert os.path.isfile(prefix + '-curves.png') and os.path.isfile('%s-%04d.params' % (prefix, 16))


def test_a_new_run_never_replaces_an_earlier_runs_checkpoints(data, base_checkpoint, tmp_path):
    prefix = str(tmp_path / 'taken')
    for suffix in ('-0001.params', '-0001.states', '-symbol.json'):
        shutil.copy(base_checkpoint + suffix, prefix + suffix)
    before = open(prefix + '-0001.params', 'rb').read()
    with pytest.raises(UserError, match=r'already holds epochs 1 of an earlier run; continue it with --resume 1'):
        tiny_run(data[0], prefix)
    assert open(prefix + '-0001.params', 'rb').read() == before
    tiny_run(data[0], prefix, resume=1, end_epoch=2)             # epochs after the resumed one are free
    with pytest.raises(UserError, match='already holds epochs 2'):
        tiny_run(data[0], prefix, resume=1, end_epoch=2)        # ... until a run has written them
    tiny_run(data[0], prefix, overwrite=True)
    assert open(prefix + '-0001.params', 'rb').read() != before


class DetectorCheck(Hook):
    """After each epoch: the training module's own ``detection`` output and the shared deploy module's on one
    validation batch (validation runs the latter; the detections do not depend on the label input)."""

    def __init__(self, batch):
        self.batch, self.pairs = batch, []

    def after_epoch(self, state):
        no_boxes = mx.nd.full(state.module.label_shapes[0].shape, -1)   # the train graph's label input, bound width
        state.module.forward(mx.io.DataBatch(data=self.batch.data, label=[no_boxes]), is_train=False)
        position = state.module.output_names.index('detection_output')
        trained = state.module.get_outputs()[position].asnumpy()
        detector = state.detector()
        detector.forward(mx.io.DataBatch(data=self.batch.data), is_train=False)
        self.pairs.append((trained, detector.get_outputs()[0].asnumpy(), detector))


def test_validation_runs_the_deploy_graph_on_the_training_weights(data, tmp_path):
    from dataset.iterator import DetRecordIter
    val_iter = DetRecordIter(data[1], BATCH, (3, SHAPE, SHAPE), preset='val')
    check = DetectorCheck(next(iter(val_iter)))
    tiny_run(data[0], tmp_path / 'run', lr=0.05, end_epoch=2, val_path=data[1], hooks=[check])
    (first, first_deployed, detector), (second, second_deployed, _) = check.pairs
    assert detector.symbol.list_outputs() == ['detection_output']
    assert 'label' not in detector.symbol.list_arguments()          # no anchor matching, no losses
    np.testing.assert_allclose(first_deployed, first, atol=1e-5)     # the same boxes and scores after epoch 1
    np.testing.assert_allclose(second_deployed, second, atol=1e-5)   # and after epoch 2: it follows the updates
    assert np.abs(second[..., 1] - first[..., 1]).max() > 1e-3       # which did move the scores
