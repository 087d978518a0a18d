"""--ema (train/ema.py): the moving average follows its recurrence, leaves the raw weights exact, is saved as a
checkpoint of its own that evaluate.py reads with no new flag, and survives a mid-epoch interruption bit for bit.

Hand numbers: a decay of 0.75 on a weight starting at 4 gives 0.75 * 4 + 0.25 * 0 = 3 after an update to 0,
then 0.75 * 3 + 0.25 * 8 = 4.25 after one to 8. The training runs use a decay of 0.5 (exact in float32) so the
average after 5 updates differs from both the start and the last weights.
"""
import os
import shutil
import signal
import types

import mxnet as mx
import numpy as np
import pytest

from config.errors import run_cli
from config.schema import from_flat
from core.run_dir import RunDir
from tests.test_train import BATCH, NETWORK, SHAPE, make_dataset, tiny_run
from tools.scripts import load_script
from train import ema
from train.callbacks import Hook, TrainingInterrupted

DECAY = 0.5
ITERS = 40 // BATCH          # 5 updates per epoch


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """40 train and 16 val images with one or two large objects of three classes (mAP above 0 after 2 epochs)."""
    return make_dataset(tmp_path_factory.mktemp('ema_data'), 40, 16, classes='circle,square,triangle',
                        side=(96, 128), max_objects=2, extra=['--object-size', '0.4,0.8', '--small-share', '0'])


def live_values(module):
    """``{name: array}`` of the module's weights (device 0) and BatchNorm statistics, as NumPy copies."""
    args, aux = ema.device_arrays(module)
    return {name: arrays[0].asnumpy() for name, arrays in list(args.items()) + list(aux.items())}


class Recorder(Hook):
    """The module's values before training, after every batch and at every epoch's end (after the EMA hook)."""

    def __init__(self):
        self.start, self.batches, self.epoch_ends = None, [], []

    def before_train(self, state):
        self.start = live_values(state.module)

    def after_batch(self, state):
        self.batches.append(live_values(state.module))

    def after_epoch(self, state):
        self.epoch_ends.append(live_values(state.module))


class StopAt(Hook):
    """SIGTERM to this process after batch ``batch`` of epoch ``epoch`` (0-based), as a user's kill would."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def after_batch(self, state):
        if (state.epoch, state.batch) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGTERM)


def recurrence(start, batches, decay=DECAY):
    """``ema = decay * ema + (1 - decay) * w`` over the recorded values, in float32 NumPy."""
    average = {name: value.copy() for name, value in start.items()}
    for values in batches:
        for name in average:
            average[name] = np.float32(decay) * average[name] + np.float32(1 - decay) * values[name]
    return average


def saved_average(prefix, epoch, batch=0):
    args, aux = RunDir(prefix).ema().read_params(epoch, batch=batch)
    return {name: value.asnumpy() for name, value in dict(args, **aux).items()}


def saved_weights(prefix, epoch):
    args, aux = RunDir(prefix).read_params(epoch)
    return {name: value.asnumpy() for name, value in dict(args, **aux).items()}


def ema_run(train_path, prefix, **overrides):
    options = dict(val_path='', ema=DECAY, lr=0.05, end_epoch=2, log=str(prefix) + '.log')
    options.update(overrides)
    return tiny_run(train_path, prefix, **options)


@pytest.fixture(scope='module')
def straight(data, tmp_path_factory):
    """Two validated epochs with --ema 0.5, every value recorded."""
    prefix = str(tmp_path_factory.mktemp('ema_straight') / 'ssd')
    recorder = Recorder()
    result = ema_run(data[0], prefix, val_path=data[1], hooks=[recorder])
    return types.SimpleNamespace(prefix=prefix, recorder=recorder, history=result['history'])


# ------------------------------------------------------------------------------------------ unit, by hand
def small_module(contexts):
    """FullyConnected (3 -> 2, no bias) then BatchNorm, bound for training; ``bn_beta`` fixed."""
    net = mx.sym.BatchNorm(mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=2, no_bias=True, name='fc'),
                           fix_gamma=False, name='bn')
    module = mx.mod.Module(net, data_names=['data'], label_names=None, context=contexts,
                           fixed_param_names=['bn_beta'])
    module.bind([('data', (2 * len(contexts), 3))])
    module.init_params(mx.init.Constant(1.0))
    return module


def set_everywhere(module, name, *per_device):
    """Give ``name`` the value ``per_device[i]`` on device i (one value: on all)."""
    args, aux = ema.device_arrays(module)
    for index, array in enumerate(dict(args, **aux)[name]):
        array[:] = per_device[index if len(per_device) > 1 else 0]


def test_the_average_follows_the_recurrence_skips_fixed_params_and_means_the_devices_statistics(tmp_path):
    module = small_module([mx.cpu(0), mx.cpu(1)])
    for name, value in (('fc_weight', 4.0), ('bn_beta', 1.0), ('bn_moving_mean', 0.0)):
        set_everywhere(module, name, value)
    hook = ema.WeightAverage(0.75, module.symbol, RunDir(str(tmp_path / 'unit')), from_flat(class_names=['a', 'b']))
    state = types.SimpleNamespace(module=module)
    hook.before_train(state)
    assert hook.args['fc_weight'].asnumpy().tolist() == [[4.0] * 3] * 2
    set_everywhere(module, 'fc_weight', 0.0)
    set_everywhere(module, 'bn_beta', 5.0)                        # fixed: never averaged
    set_everywhere(module, 'bn_moving_mean', 2.0, 6.0)            # each device its own: their mean is 4
    hook.after_batch(state)
    assert hook.args['fc_weight'].asnumpy().tolist() == [[3.0] * 3] * 2
    assert hook.aux['bn_moving_mean'].asnumpy().tolist() == [0.25 * 4.0] * 2       # from the initial 0
    set_everywhere(module, 'fc_weight', 8.0)
    hook.after_batch(state)
    assert hook.args['fc_weight'].asnumpy().tolist() == [[4.25] * 3] * 2
    assert hook.args['bn_beta'].asnumpy().tolist() == [1.0, 1.0] and hook.updates == 2
    assert os.path.isfile(str(tmp_path / 'unit-ema.classes')) and os.path.isfile(str(tmp_path / 'unit-ema-config.yaml'))


def test_swapping_the_average_in_and_out_leaves_every_device_bit_identical():
    module = small_module([mx.cpu(0), mx.cpu(1)])
    set_everywhere(module, 'fc_weight', np.arange(6, dtype=np.float32).reshape(2, 3) / 7)
    set_everywhere(module, 'bn_moving_var', 0.3, 0.7)
    before = [[array.asnumpy() for array in arrays] for block in ema.device_arrays(module) for arrays in
              block.values()]
    average = {'fc_weight': mx.nd.full((2, 3), 9.0)}
    with ema.swapped_in(module, average, {'bn_moving_var': mx.nd.full((2,), 2.0)}):
        args, aux = ema.device_arrays(module)
        assert all((array.asnumpy() == 9.0).all() for array in args['fc_weight'])
        assert all((array.asnumpy() == 2.0).all() for array in aux['bn_moving_var'])
    after = [[array.asnumpy() for array in arrays] for block in ema.device_arrays(module) for arrays in
             block.values()]
    assert all(np.array_equal(one, two) for old, new in zip(before, after) for one, two in zip(old, new))


# ---------------------------------------------------------------------------------------------- training
def test_saved_average_equals_the_hand_recurrence_over_the_recorded_weights(straight):
    recorder = straight.recorder
    assert len(recorder.batches) == 2 * ITERS
    for epoch in (1, 2):
        expected = recurrence(recorder.start, recorder.batches[:epoch * ITERS])
        saved = saved_average(straight.prefix, epoch)
        assert set(saved) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(saved[name], value, atol=1e-6, rtol=0, err_msg=name)
    last = recorder.batches[-1]
    assert any(not np.allclose(saved[name], last[name]) for name in saved)          # an average, not a copy
    assert any(not np.allclose(saved[name], recorder.start[name]) for name in saved)


def test_validating_the_average_leaves_the_raw_weights_exact_and_records_both_maps(straight):
    recorder = straight.recorder
    for epoch, values in enumerate(recorder.epoch_ends, 1):       # after the EMA validation: the weights as trained
        assert all(np.array_equal(values[name], recorder.batches[epoch * ITERS - 1][name]) for name in values)
    raw = saved_weights(straight.prefix, 2)
    assert all(np.array_equal(raw[name], recorder.batches[-1][name]) for name in raw)
    assert [sorted(set(record) & {'mAP', 'ema_mAP'}) for record in straight.history] == [['ema_mAP', 'mAP']] * 2
    log = open(straight.prefix + '.log').read()
    assert 'Epoch[2] Validation VOC07 mAP: weights %.4f, EMA %.4f' % (
        straight.history[1]['mAP'], straight.history[1]['ema_mAP']) in log
    best = RunDir(straight.prefix).read_best()
    assert best['mAP'] == max(record['mAP'] for record in straight.history)       # chosen on the raw mAP


def test_evaluate_scores_the_average_from_its_prefix_alone(straight, data, tmp_path):
    script = load_script('evaluate.py')
    summary = script.main(script.parse_args(['--prefix', straight.prefix + '-ema', '--epoch', '2', '--rec-path',
                                             data[1], '--batch-size', str(BATCH), '--out', str(tmp_path / 'eval'),
                                             '--cpu', '--no-progress']))
    assert straight.history[1]['ema_mAP'] > 0                      # a real comparison, not 0 == 0
    assert abs(summary['ap']['VOC07']['mAP'] - straight.history[1]['ema_mAP']) <= 1e-6
    assert os.path.isfile(straight.prefix + '-ema-symbol.json')


# ------------------------------------------------------------------------------------------------ resume
def test_a_mid_epoch_interruption_and_resume_end_with_the_same_average_bit_for_bit(straight, data, tmp_path):
    prefix = str(tmp_path / 'split')
    with pytest.raises(TrainingInterrupted):
        ema_run(data[0], prefix, val_path=data[1], hooks=[StopAt(1, 1)])
    assert RunDir(prefix).newest_position() == (1, 2)
    assert os.path.isfile(RunDir(prefix).ema().params_path(1, 2))
    ema_run(data[0], prefix, val_path=data[1], resume='last')
    resumed, expected = saved_average(prefix, 2), saved_average(straight.prefix, 2)
    assert all(np.array_equal(resumed[name], expected[name]) for name in expected)
    raw, raw_expected = saved_weights(prefix, 2), saved_weights(straight.prefix, 2)
    assert all(np.array_equal(raw[name], raw_expected[name]) for name in raw_expected)
    assert RunDir(prefix).ema().mid_epoch_positions() == []            # superseded by epoch 2
    state = RunDir(prefix).read_trainer_state(2)['hooks']['WeightAverage']
    assert state == {'decay': DECAY, 'updates': 2 * ITERS}


def test_a_missing_average_on_resume_is_one_line_and_restarts_from_the_resumed_weights(straight, data, tmp_path):
    prefix = str(tmp_path / 'copy' / 'ssd')
    shutil.copytree(os.path.dirname(straight.prefix), os.path.dirname(prefix))
    os.remove(RunDir(prefix).ema().params_path(1))
    recorder = Recorder()
    ema_run(data[0], prefix, val_path=data[1], resume=1, overwrite=True, hooks=[recorder],
            log=prefix + '.resumed.log')
    log = open(prefix + '.resumed.log').read()
    assert log.count('does not exist: the EMA restarts from the resumed weights') == 1
    expected = recurrence(recorder.start, recorder.batches)
    saved = saved_average(prefix, 2)
    for name, value in expected.items():
        np.testing.assert_allclose(saved[name], value, atol=1e-6, rtol=0, err_msg=name)


@pytest.mark.parametrize('tokens, value', [(['--ema', '1.5'], '1.5'), (['--ema', '-0.1'], '-0.1'),
                                           (['--opts', 'solver.ema', '1'], '1.0')])
def test_a_decay_outside_0_1_is_one_line_naming_the_flag(data, tmp_path, capsys, tokens, value):
    script = load_script('train.py')
    prefix = str(tmp_path / 'bad')
    argv = ['--cpu', '--train-path', data[0], '--val-path', '', '--network', NETWORK, '--data-shape', str(SHAPE),
            '--pretrained', '', '--log', '', '--prefix', prefix]
    with pytest.raises(SystemExit) as stop:
        run_cli(script.main, script.parse_args(argv + tokens))
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and '\n' not in err, err
    assert err == 'error: --ema (solver.ema) %s is out of range: give a decay in [0, 1), e.g. 0.999 (0: off)' % value
    assert os.listdir(str(tmp_path)) == []                              # nothing written


def test_the_curves_draw_the_ema_map_beside_the_map_and_not_as_a_loss(tmp_path):
    import cv2

    from train.curves import plot_training_curves
    history = [{'epoch': 1, 'seconds': 3.0, 'CrossEntropy': 2.0, 'mAP': 0.1, 'ema_mAP': 0.2},
               {'epoch': 2, 'seconds': 6.0, 'CrossEntropy': 1.0},                 # a resumed run without --ema
               {'epoch': 3, 'seconds': 9.0, 'CrossEntropy': 0.5, 'mAP': 0.6, 'ema_mAP': 0.7}]
    path = str(tmp_path / 'curves.png')
    plot_training_curves(history, path, 'VOC07 mAP')
    blue, green, red = (cv2.imread(path)[..., channel].astype(int) for channel in range(3))
    purple = (abs(red - 148) < 30) & (abs(green - 103) < 30) & (abs(blue - 189) < 30)   # matplotlib's tab:purple
    assert purple[:, 400:].sum() > 100 and purple[:, :400].sum() == 0                  # right panel only
