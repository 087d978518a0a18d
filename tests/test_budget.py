"""train/budget.py: ``--time-budget`` fits the schedule to the epochs that fit; the measurement leaves the
weights as they were; a resumed run keeps the fit without measuring again; bad budgets are one-line errors.

The epoch cost is replaced by a known one where the test checks the arithmetic (a timed test would be flaky).
"""
import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from config.schema import from_flat
from core.run_dir import RunDir
from tests.test_train import make_dataset, tiny_run
from train import budget, callbacks, train_net
from train.budget import EpochCost


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """40 training images: 5 updates per epoch at batch 8."""
    return make_dataset(tmp_path_factory.mktemp('budget_data'), 40, 8)


def test_steps_keep_their_place_as_fractions_of_the_run():
    assert budget.scaled_steps([14, 18], 20, 10) == [7, 9]
    assert budget.scaled_steps([14, 18], 20, 40) == [28, 36]
    assert budget.scaled_steps([14, 18], 20, 3) == [2]          # 2.1 and 2.7 both land on epoch 2 (of 1..2)
    assert budget.scaled_steps([1], 20, 10) == [1]              # never before epoch 1


def test_the_epochs_that_fit_are_whole_and_at_least_one():
    cost = EpochCost(train_seconds=20.0, validation_seconds=3.0, overhead_seconds=1.0)
    assert budget.epochs_within(360.0, cost) == 15              # 360 / 24
    assert budget.epochs_within(359.0, cost) == 14
    assert budget.epochs_within(5.0, cost) == 1


def test_the_fitted_solver_moves_the_end_the_steps_and_caps_the_warm_up():
    solver = from_flat(end_epoch=20, lr_steps=[14, 18], warmup_epochs=1.0).solver
    assert budget.fitted_solver(solver, 0, 10) == {'solver.end_epoch': 10, 'solver.lr_steps': [7, 9],
                                                   'solver.warmup_epochs': 1.0}
    assert budget.fitted_solver(solver, 0, 2)['solver.warmup_epochs'] == 0.5     # a quarter of 2 epochs
    later = from_flat(begin_epoch=10, end_epoch=30, lr_steps=[5, 20, 25], warmup_epochs=0).solver
    assert budget.fitted_solver(later, 10, 40) == {'solver.end_epoch': 50, 'solver.lr_steps': [30, 40],
                                                   'solver.warmup_epochs': 0}     # step 5 was already passed


def fixed_cost(seconds_per_epoch):
    """A stand-in for measure_epoch: every epoch costs ``seconds_per_epoch`` (recorded calls in ``calls``)."""
    calls = []

    def measure(module, train_iter, num_batches, num_val_batches, val_interval, detector=None):
        calls.append((num_batches, num_val_batches, val_interval))
        return EpochCost(seconds_per_epoch - 1.0, 0.0, 1.0)
    return measure, calls


class EpochClock:
    """A clock that says ``seconds`` passed between two reads (BudgetKeeper reads it once before each epoch)."""

    def __init__(self, seconds):
        self.seconds, self.reads = seconds, 0

    def __call__(self):
        self.reads += 1
        return self.reads * self.seconds


def test_a_budget_trains_the_epochs_that_fit_and_decays_to_its_end(data, tmp_path, monkeypatch):
    measure, calls = fixed_cost(10.0)
    monkeypatch.setattr(budget, 'measure_epoch', measure)
    result = tiny_run(data[0], tmp_path / 'run', lr=0.01, end_epoch=20, lr_scheduler='cosine', warmup_epochs=1,
                      time_budget=0.5, log=str(tmp_path / 'run.log'))
    # 30 s at 10 s per epoch: 2 epochs (the measurement took a little)
    assert calls == [(5, 0, 1)]            # 5 batches per epoch, no validation set
    assert result['config'].solver.end_epoch == 2 and [r['epoch'] for r in result['history']] == [1, 2]
    assert result['config'].solver.warmup_epochs == 0.5
    lrs = result['lr_history']             # 10 updates: warm-up over 2 (0.5 epoch), cosine to 0 at update 10
    assert len(lrs) == 10
    np.testing.assert_allclose(lrs[1:], [0.01 * (1 + np.cos(np.pi * (k - 2) / 8)) / 2 for k in range(2, 11)],
                               rtol=1e-12)
    saved = RunDir(str(tmp_path / 'run')).read_config()
    assert saved.solver.end_epoch == 2 and saved.solver.time_budget == 0.5
    fit_lines = [line for line in (tmp_path / 'run.log').read_text().splitlines() if 'time budget 0.5 min' in line]
    assert len(fit_lines) == 1 and '-> 2 epochs: end epoch 2, cosine decay to the end, warm-up 0.5 epochs' in \
        fit_lines[0] and 'LR steps' not in fit_lines[0]     # cosine ignores lr_steps: the log does not name them


def test_a_resumed_budget_run_keeps_its_fit_without_measuring(data, tmp_path, monkeypatch):
    measure, _ = fixed_cost(10.0)
    monkeypatch.setattr(budget, 'measure_epoch', measure)
    monkeypatch.setattr(budget, 'now', EpochClock(10.0))                     # epochs take what was measured
    flags = dict(lr=0.01, end_epoch=20, lr_steps=[10, 15], time_budget=0.7)   # 42 s: 4 epochs, steps 2 and 3
    straight = tiny_run(data[0], tmp_path / 'run', **flags)
    assert straight['config'].solver.lr_steps == [2, 3] and straight['config'].solver.end_epoch == 4

    def must_not_measure(*args):
        raise AssertionError('a resumed run measured again')
    monkeypatch.setattr(budget, 'measure_epoch', must_not_measure)
    resumed = tiny_run(data[0], tmp_path / 'run', resume=2, overwrite=True, **flags)
    assert resumed['config'].solver.end_epoch == 4
    assert resumed['lr_history'] == straight['lr_history'][10:]


def test_measuring_an_epoch_leaves_weights_and_batchnorm_statistics_unchanged(data, tmp_path):
    result = tiny_run(data[0], tmp_path / 'run', lr=0.01)
    symbol, arg_params, aux_params = mx.model.load_checkpoint(str(tmp_path / 'run'), 1)
    train_iter, _ = train_net.build_iterators(result['config'])
    module = mx.mod.Module(symbol, data_names=('data',), label_names=('label',), context=mx.cpu())
    module.bind(train_iter.provide_data, train_iter.provide_label, for_training=True)
    module.set_params(arg_params, aux_params)
    detector = callbacks.bound_detector(module, train_net.detector_graph(result['config']))
    cost = budget.measure_epoch(module, train_iter, num_batches=5, num_val_batches=2, val_interval=2,
                                detector=detector)     # validation's module: the deploy graph on these arrays
    after_args, after_aux = module.get_params()
    for name, value in list(arg_params.items()) + list(aux_params.items()):
        later = after_args.get(name, after_aux.get(name))
        np.testing.assert_array_equal(later.asnumpy(), value.asnumpy(), err_msg=name)
    assert cost.train_seconds > 0 and cost.validation_seconds > 0
    assert cost.overhead_seconds == budget.EPOCH_OVERHEAD_SECONDS


def test_steps_not_yet_passed_move_with_the_end_and_passed_ones_stay():
    # a 10-epoch fit of steps 14, 18 (of 20) runs [7, 9]
    assert budget.replaced_steps([14, 18], 20, 0, [7, 9], 4, 6) == [4, 5]     # 4.2 -> 4, 5.4 -> 5
    assert budget.replaced_steps([14, 18], 20, 0, [7, 9], 8, 9) == [7, 8]     # 7 passed; 8.1 -> 8
    assert budget.replaced_steps([14, 18], 20, 0, [7, 9], 7, 8) == [7]        # 7.2 -> 7 (passed), lands on it
    assert budget.replaced_steps([], 20, 0, [], 3, 5) == []


def test_epochs_slower_than_measured_end_the_run_earlier_with_its_schedule(data, tmp_path, monkeypatch):
    measure, _ = fixed_cost(4.0)
    monkeypatch.setattr(budget, 'measure_epoch', measure)
    monkeypatch.setattr(budget, 'now', EpochClock(10.0))
    val_rec = data[0].replace('train.rec', 'val.rec')
    flags = dict(lr=0.01, end_epoch=20, lr_steps=[10, 15], val_path=val_rec, val_interval=5, time_budget=0.5)
    result = tiny_run(data[0], tmp_path / 'run', **flags)
    # measured 4 s per epoch: 7 epochs of the ~30 s (steps 3.5 -> 4, 5.25 -> 5); before epoch 3 the clock says
    # 10 s per epoch (epoch 2's time; epoch 1's one-time work is left out) and ~10 s are left: epoch 3 is the
    # last, and both steps land at epoch 2 (merged)
    assert [record['epoch'] for record in result['history']] == [1, 2, 3]
    assert result['history'][-1]['mAP'] is not None           # the new last epoch is validated (interval 5)
    lrs = result['lr_history']                                # 5 updates per epoch: 0.01, then 0.001
    np.testing.assert_allclose(lrs, [0.01] * 10 + [0.001] * 5, rtol=1e-12)
    saved = RunDir(str(tmp_path / 'run')).read_config()
    assert saved.solver.end_epoch == 3 and list(saved.solver.lr_steps) == [2]
    assert (tmp_path / 'run-0003.params').exists() and not (tmp_path / 'run-0004.params').exists()


def test_epochs_as_fast_as_measured_keep_the_fit(data, tmp_path, monkeypatch):
    measure, _ = fixed_cost(10.0)
    monkeypatch.setattr(budget, 'measure_epoch', measure)
    monkeypatch.setattr(budget, 'now', EpochClock(9.0))
    result = tiny_run(data[0], tmp_path / 'run', lr=0.01, end_epoch=20, lr_steps=[10, 15], time_budget=0.75)
    # 45 s at 10 s: 4 epochs; before epochs 3 and 4, 9 s per epoch leaves room for them: kept
    assert [record['epoch'] for record in result['history']] == [1, 2, 3, 4]
    assert result['config'].solver.lr_steps == [2, 3]


def test_epochs_faster_than_measured_grow_the_run_up_to_twice_its_fit(data, tmp_path, monkeypatch):
    measure, _ = fixed_cost(10.0)
    monkeypatch.setattr(budget, 'measure_epoch', measure)
    monkeypatch.setattr(budget, 'now', EpochClock(4.0))
    result = tiny_run(data[0], tmp_path / 'run', lr=0.01, end_epoch=20, lr_steps=[10, 15], time_budget=1.0,
                      log=str(tmp_path / 'run.log'))
    # 60 s less the measurement at a measured 10 s: 5 epochs, steps 2 and 4 (2.5 -> 2, 3.75 -> 4). Before epoch 3
    # the clock says 4 s per epoch with 52 s left: 11 more fit even at 1.15 x 4 s, so the end moves to the limit,
    # 2 x 5 = 10; step 2 is passed and stays, 15 of 20 lands at 7.5 -> 8 of 10; later checks find 10 still fitting
    assert [record['epoch'] for record in result['history']] == list(range(1, 11))
    lrs = result['lr_history']                                # 5 updates per epoch
    np.testing.assert_allclose(lrs, [0.01] * 10 + [0.001] * 30 + [0.0001] * 10, rtol=1e-12)
    saved = RunDir(str(tmp_path / 'run')).read_config()
    assert saved.solver.end_epoch == 10 and list(saved.solver.lr_steps) == [2, 8]
    moves = [line for line in (tmp_path / 'run.log').read_text().splitlines() if 'less than measured' in line]
    assert len(moves) == 1 and 'the run ends after epoch 10 instead of 5' in moves[0]


def test_a_budget_run_may_not_grow_into_an_earlier_runs_checkpoints(data, tmp_path, monkeypatch):
    measure, _ = fixed_cost(10.0)
    monkeypatch.setattr(budget, 'measure_epoch', measure)
    (tmp_path / 'run-0008.params').write_bytes(b'')  # past --end-epoch 3 and the 5 fitted epochs, within 10
    with pytest.raises(UserError, match='already holds epochs 8 of an earlier run'):
        tiny_run(data[0], tmp_path / 'run', lr=0.01, end_epoch=3, time_budget=1.0)


@pytest.mark.parametrize('flags, words', [
    (dict(time_budget=-1), r'--time-budget \(solver.time_budget\) -1: give minutes above 0'),
    (dict(time_budget=5, kv_store='dist_sync'), 'with --kv-store dist_sync give --end-epoch'),
])
def test_bad_budgets_are_one_line_errors(data, tmp_path, flags, words):
    with pytest.raises(UserError, match=words):
        tiny_run(data[0], tmp_path / 'run', **flags)
