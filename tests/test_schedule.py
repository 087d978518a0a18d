"""train/schedule.py and train/param_groups.py: the LR of every update under step, cosine and poly schedules with
a warm-up from a start factor (the formulas written out here), the per-group LR / WD multipliers as the
optimizer applies them in a real update (one device, two devices on a kvstore, two devices updating locally
through ``idx2name``), the per-group log lines, resume continuing the schedule, and one-line errors for bad flags.
"""
import math

import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from config.schema import from_flat
from core.run_dir import RunDir
from symbol import symbol_factory
from tests.test_train import make_dataset, tiny_run
from train import param_groups, schedule, train_net
from train.callbacks import Hook


def rates(scheduler, first, last):
    """The scheduler's LR at updates ``first..last`` (MXNet counts updates from 1), in order."""
    return [scheduler(update) for update in range(first, last + 1)]


# ------------------------------------------------------------------------------------- the schedules alone
def test_step_schedule_warms_up_from_the_start_factor_then_steps():
    # lr 0.1, 4 updates per epoch, 1 warm-up epoch (4 updates) from 0.25 x lr, x0.1 after epoch 2 (update 8)
    scheduler = schedule.make_lr_scheduler(0.1, [2], 0.1, 4, warmup_epochs=1, warmup_start_factor=0.25)
    expected = [0.04375, 0.0625, 0.08125] + [0.1] * 5 + [0.01] * 4      # 0.1 * (0.25 + 0.75 * k / 4), k = 1..3
    np.testing.assert_allclose(rates(scheduler, 1, 12), expected, rtol=1e-12)


def test_step_schedule_without_steps_is_constant_after_the_warm_up():
    scheduler = schedule.make_lr_scheduler(0.1, [], 0.1, 4, warmup_epochs=0.5, warmup_start_factor=0.5)
    np.testing.assert_allclose(rates(scheduler, 1, 6), [0.075] + [0.1] * 5, rtol=1e-12)
    assert isinstance(scheduler, mx.lr_scheduler.FactorScheduler)     # MXNet's class: dist_async servers load it


def test_cosine_decays_to_final_lr_at_end_epoch():
    # lr 0.1 -> 0.01, 4 updates per epoch, end_epoch 3: M = 12; warm-up 4 updates from 0.5 x lr
    scheduler = schedule.make_lr_scheduler(0.1, [], 0.1, 4, warmup_epochs=1, kind='cosine', warmup_start_factor=0.5,
                                           final_lr=0.01, end_epoch=3)
    warmup = [0.1 * (0.5 + 0.5 * k / 4) for k in (1, 2, 3)]
    decay = [0.01 + 0.09 * (1 + math.cos(math.pi * (k - 4) / 8)) / 2 for k in range(4, 13)]
    np.testing.assert_allclose(rates(scheduler, 1, 13), warmup + decay + [0.01], rtol=1e-12)
    np.testing.assert_allclose([warmup[0], decay[0], decay[4], decay[8]], [0.0625, 0.1, 0.055, 0.01], rtol=1e-12)
    assert isinstance(scheduler, mx.lr_scheduler.CosineScheduler)


def test_poly_decays_with_its_power():
    # power 2, lr 0.1 -> 0, M = 12, warm-up round(0.5 * 4) = 2 updates from 0: 0.1 * (1 - (k - 2) / 10) ** 2
    scheduler = schedule.make_lr_scheduler(0.1, [], 0.1, 4, warmup_epochs=0.5, kind='poly', end_epoch=3,
                                           poly_power=2)
    values = rates(scheduler, 1, 12)
    np.testing.assert_allclose(values, [0.05] + [0.1 * (1 - (k - 2) / 10) ** 2 for k in range(2, 13)], rtol=1e-12)
    np.testing.assert_allclose([values[1], values[6], values[11]], [0.1, 0.025, 0.0], atol=1e-15)
    default_power = schedule.make_lr_scheduler(0.1, [], 0.1, 4, kind='poly', final_lr=0.02, end_epoch=3)
    np.testing.assert_allclose(rates(default_power, 1, 12), [0.02 + 0.08 * (1 - k / 12) ** 0.9 for k in range(1, 13)],
                               rtol=1e-12)


@pytest.mark.parametrize('kind', schedule.SCHEDULERS)
def test_a_scheduler_made_for_a_resumed_run_continues_the_schedule(kind):
    settings = dict(lr=0.1, lr_steps=[1, 2], lr_factor=0.5, iterations_per_epoch=4, warmup_epochs=1.5, kind=kind,
                    warmup_start_factor=0.1, final_lr=0.001, end_epoch=3)
    straight = rates(schedule.make_lr_scheduler(**settings), 1, 12)
    resumed = rates(schedule.make_lr_scheduler(**settings), 9, 12)        # resumed at epoch 2: update 9 first
    assert resumed == straight[8:]


def test_the_defaults_are_the_earlier_schedule_and_no_multipliers():
    solver = from_flat().solver
    assert (solver.lr_scheduler, solver.warmup_start_factor, solver.final_lr, solver.poly_power) == ('step', 0, 0, 0.9)
    assert (solver.bias_lr_mult, solver.backbone_lr_mult, solver.norm_decay) == (1.0, 1.0, True)
    scheduler = schedule.solver_scheduler(solver, 10)
    assert isinstance(scheduler, mx.lr_scheduler.MultiFactorScheduler) and scheduler.warmup_begin_lr == 0.0
    names = ['conv0_weight', 'bn0_gamma', 'bn0_beta', 'relu4_3_scale', 'relu4_3_cls_pred_conv_bias']
    assert param_groups.solver_multipliers(solver, names) == ({}, {})     # nothing annotated: today's optimizer


@pytest.mark.parametrize('flags, words', [
    (dict(lr_scheduler='linear'), "--lr-scheduler (solver.lr_scheduler) 'linear': choose one of step, cosine, poly"),
    (dict(warmup_start_factor=1.5), '--warmup-start-factor (solver.warmup_start_factor) 1.5 is out of range'),
    (dict(lr_scheduler='cosine', final_lr=0.5), '--final-lr (solver.final_lr) 0.5 is out of range: from 0 to --lr'),
    (dict(lr_scheduler='poly', poly_power=0), '--poly-power (solver.poly_power) 0 is out of range: above 0'),
    (dict(lr_scheduler='cosine', warmup_epochs=5, end_epoch=5), '--warmup-epochs (solver.warmup_epochs) 5 is out'),
])
def test_bad_schedule_settings_are_one_line_errors_naming_the_flag(flags, words):
    with pytest.raises(UserError) as error:
        schedule.solver_scheduler(from_flat(**flags).solver, 10)
    assert words in str(error.value) and '\n' not in str(error.value)


def test_a_warm_up_rounded_up_to_the_end_is_an_error():
    with pytest.raises(UserError, match=r'--warmup-epochs \(solver.warmup_epochs\) 2.9: the warm-up \(12 updates\) '
                                        r'must end before --end-epoch \(solver.end_epoch\) 3 \(12 updates\)'):
        schedule.make_lr_scheduler(0.1, [], 0.1, 4, warmup_epochs=2.9, kind='poly', end_epoch=3)


def test_a_negative_lr_multiplier_is_an_error():
    with pytest.raises(UserError, match=r'^--backbone-lr-mult \(solver.backbone_lr_mult\) -1 is out of range'):
        param_groups.solver_multipliers(from_flat(backbone_lr_mult=-1).solver, [])


# ------------------------------------------------------------------------------------------ parameter groups
def test_groups_by_name():
    assert param_groups.group_of('conv1_1_weight') == ('backbone', 'weights')
    assert param_groups.group_of('conv1_1_bias') == ('backbone', 'biases')
    assert param_groups.group_of('bn3_gamma') == ('backbone', 'BatchNorm gamma')
    assert param_groups.group_of('stage2_unit1_bn1_beta') == ('backbone', 'BatchNorm beta')
    assert param_groups.group_of('relu4_3_scale') == ('ssd', 'L2 scales')
    assert param_groups.group_of('multi_feat_2_conv_1x1_conv_bias') == ('ssd', 'biases')
    assert param_groups.group_of('relu4_3_cls_pred_conv_weight') == ('ssd', 'weights')
    assert param_groups.group_of('relu10_loc_pred_conv_bias') == ('ssd', 'biases')      # heads on backbone layers
    assert param_groups.multipliers(['conv1_1_bias', 'fc7_weight', 'relu7_cls_pred_conv_bias', 'bn0_gamma',
                                     'bn0_beta', 'relu4_3_scale'], 2.0, 0.1, False) == (
        {'conv1_1_bias': 0.2, 'fc7_weight': 0.1, 'relu7_cls_pred_conv_bias': 2.0, 'bn0_gamma': 0.1, 'bn0_beta': 0.1},
        {'bn0_gamma': 0.0, 'relu4_3_scale': 0.0})


class Batches:
    """The shapes a module binds to: 4 images of 64 px, 2 label rows."""
    provide_data = [mx.io.DataDesc('data', (4, 3, 64, 64))]
    provide_label = [mx.io.DataDesc('label', (4, 2, 6))]


RECIPE = dict(bias_lr_mult=2.0, backbone_lr_mult=0.5, norm_decay=False)


def expected_mults(name, recipe):
    """(LR, WD) multipliers of ``name``, written out: MXNet's defaults, or those of RECIPE."""
    backbone = not (name.startswith('multi_feat_') or '_pred_conv_' in name or name.endswith('_scale'))
    if name.endswith('_bias'):
        return (2.0 if recipe else 1.0), 0.0
    if name.endswith('_beta'):
        return (0.5 if recipe else 1.0), 0.0
    if name.endswith('_gamma'):
        return (0.5, 0.0) if recipe else (1.0, 1.0)
    if name.endswith('_scale'):                       # the L2 scale's own __wd_mult__ 0.1 (symbol/common.py)
        return (1.0, 0.0) if recipe else (1.0, 0.1)
    return (0.5 if recipe and backbone else 1.0), 1.0


def one_update(contexts, flags):
    """A module of mobilenet0.25 (an L2 scale on its first feature layer) after one SGD update with every gradient
    1 on every device: ``(weights before, weights after, optimizer)``."""
    symbol = symbol_factory.get_symbol_train('mobilenet0.25', 64, 3, normalizations=[20, -1, -1, -1, -1, -1])
    module = train_net.build_module(symbol, contexts, Batches, [])
    module.init_params(mx.init.Uniform(0.5))
    before = {name: value.asnumpy() for name, value in module.get_params()[0].items()}
    config = from_flat(pretrained='', lr=0.1, wd=0.01, momentum=0.9, lr_steps=[], loss_scale=1.0, **flags)
    train_net.init_optimizer(module, config, RunDir('unused'), 10, len(contexts))
    for arrays in module._exec_group.grad_arrays:
        for array in arrays:
            array[:] = 1.0
    module.update()
    after = {name: value.asnumpy() for name, value in module.get_params()[0].items()}
    return before, after, module


@pytest.mark.parametrize('recipe', [False, True], ids=['defaults', 'recipe'])
@pytest.mark.parametrize('devices, update_on_kvstore', [(1, '1'), (2, '1'), (2, '0')],
                         ids=['1 device', '2 devices, kvstore updates', '2 devices, local updates'])
def test_every_parameter_is_updated_with_its_groups_multipliers(devices, update_on_kvstore, recipe, monkeypatch):
    monkeypatch.setenv('MXNET_UPDATE_ON_KVSTORE', update_on_kvstore)
    contexts = [mx.cpu(index) for index in range(devices)]
    before, after, module = one_update(contexts, RECIPE if recipe else {})
    if devices == 2:      # the optimizer's indices: names' positions, or position * 2 + device
        assert module._update_on_kvstore == (update_on_kvstore == '1')
        assert len(module._optimizer.idx2name) == (1 if update_on_kvstore == '1' else 2) * len(before)
    # the gradient summed over devices and rescaled by 1 / devices is 1; the first SGD step with momentum is
    # w - lr * lr_mult * (g + wd * wd_mult * w)
    for name, weight in before.items():
        lr_mult, wd_mult = expected_mults(name, recipe)
        np.testing.assert_allclose(after[name], weight - 0.1 * lr_mult * (1 + 0.01 * wd_mult * weight), rtol=1e-6,
                                   atol=1e-6, err_msg=name)
    assert module.symbol.attr_dict()['conv0_weight'].get('__lr_mult__') is None     # the module's graph untouched


def test_one_log_line_per_group_with_its_count_and_multipliers():
    _, _, module = one_update([mx.cpu()], RECIPE)
    names = param_groups.trained_names(module)
    assert param_groups.group_lines(module._optimizer, names) == [   # 27 backbone layers; 4 extra + 6 x 2 heads
        'parameter group backbone weights: 27 parameters, LR x0.5, WD x1',
        'parameter group backbone BatchNorm gamma: 27 parameters, LR x0.5, WD x0',
        'parameter group backbone BatchNorm beta: 27 parameters, LR x0.5, WD x0',
        'parameter group ssd weights: 20 parameters, LR x1, WD x1',
        'parameter group ssd biases: 20 parameters, LR x2, WD x0',
        'parameter group ssd L2 scales: 1 parameters, LR x1, WD x0']


# --------------------------------------------------------------------------------- training and resuming
@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """40 training images: 5 updates per epoch at batch 8."""
    return make_dataset(tmp_path_factory.mktemp('schedule_data'), 40, 4)


class GroupRates(Hook):
    """After every update: the LR the optimizer gives each of ``names``, asked by the index it updates it under."""

    def __init__(self, names):
        self.names, self.rows = names, []

    def after_batch(self, state):
        optimizer = state.module._optimizer
        index = {name: position for position, name in sorted(optimizer.idx2name.items(), reverse=True)}
        self.rows.append([optimizer._get_lr(index[name]) for name in self.names])


NAMES = ('conv0_weight', 'bn0_gamma', 'relu22_loc_pred_conv_weight', 'relu22_cls_pred_conv_bias')
MULTS = (0.5, 0.5, 1.0, 2.0)          # backbone x0.5, heads x1, biases x2


def test_every_update_of_every_group_follows_the_schedule_and_a_resume_continues_it(data, tmp_path):
    settings = dict(lr=0.01, lr_scheduler='cosine', warmup_epochs=1, warmup_start_factor=0.2, final_lr=0.001,
                    end_epoch=3, bias_lr_mult=2.0, backbone_lr_mult=0.5)
    straight_rates = GroupRates(NAMES)
    straight = tiny_run(data[0], tmp_path / 'run', hooks=[straight_rates], **settings)
    # 5 updates per epoch, M = 15, warm-up W = 5 from 0.2 x 0.01
    base = ([0.01 * (0.2 + 0.8 * k / 5) for k in range(1, 5)] +
            [0.001 + 0.009 * (1 + math.cos(math.pi * (k - 5) / 10)) / 2 for k in range(5, 16)])
    np.testing.assert_allclose(straight['lr_history'], base, rtol=1e-12)
    np.testing.assert_allclose(straight_rates.rows, [[rate * mult for mult in MULTS] for rate in base], rtol=1e-12)
    resumed_rates = GroupRates(NAMES)
    resumed = tiny_run(data[0], tmp_path / 'run', hooks=[resumed_rates], resume=2, overwrite=True, **settings)
    assert resumed['lr_history'] == straight['lr_history'][10:]
    assert resumed_rates.rows == straight_rates.rows[10:]


# ------------------------------------------------------------------------------------------ gradient clipping
def test_clip_gradient_bounds_every_element_of_the_step():
    """SGD at lr 0.5 without momentum or decay: an element whose rescaled gradient is beyond +-0.01 moves by
    exactly 0.5 * 0.01, the others by 0.5 * gradient; without clipping every element moves by 0.5 * gradient."""
    gradient = np.array([[-3.0, -0.004, 0.0, 0.006, 40.0]], dtype=np.float32)
    steps = {}
    for clip in (0.0, 0.01):
        params = schedule.optimizer_params('sgd', 0.5, 0.0, 0.0, None, 2, 0, clip_gradient=clip)
        updater = mx.optimizer.get_updater(mx.optimizer.create('sgd', **params))
        weight = mx.nd.ones(gradient.shape)
        updater(0, mx.nd.array(gradient), weight)
        steps[clip] = 1.0 - weight.asnumpy()
    np.testing.assert_allclose(steps[0.0], 0.5 * gradient / 2, rtol=1e-6, atol=1e-6)   # rescale 1/2: 2 devices
    np.testing.assert_allclose(steps[0.01], [[-0.005, -0.001, 0.0, 0.0015, 0.005]], rtol=1e-6, atol=1e-6)
    assert 'clip_gradient' not in schedule.optimizer_params('sgd', 0.5, 0.0, 0.0, None, 1, 0)


def test_clip_gradient_reaches_the_training_optimizer(data, tmp_path, monkeypatch):
    """--clip-gradient is handed to the optimizer the module creates; a negative value is a one-line error."""
    seen = {}

    class SettingsSeen(Exception):
        """Stops the run before training: only the optimizer's settings are under test."""

    def record(module, group, optimizer, optimizer_params):
        seen.update(optimizer_params)
        raise SettingsSeen
    monkeypatch.setattr(train_net.distributed, 'init_optimizer', record)
    with pytest.raises(SettingsSeen):
        tiny_run(data[0], tmp_path / 'clip', lr=0.01, clip_gradient=2.5)
    assert seen['clip_gradient'] == 2.5 and seen['learning_rate'] == 0.01
    with pytest.raises(UserError, match=r'--clip-gradient \(solver.clip_gradient\) -1'):
        tiny_run(data[0], tmp_path / 'bad', clip_gradient=-1.0)
