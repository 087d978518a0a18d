"""Kills, signals and full disks lose nothing: train.py as a user runs it (a subprocess), stopped by SIGTERM,
SIGINT twice, SIGKILL at seeded random moments (one inside a checkpoint write) or a file size limit, then
continued with ``--resume last`` / ``auto``; the weights end equal to the uninterrupted run's.

Tiny network on the CPU, seed 0, no augmentation and no shuffle (``--train-preset val``): the iterator order is
the same in every process, so the runs can be compared to floating-point noise.
"""
import os
import pickle
import random
import resource
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from core.run_dir import RunDir
from tests.test_train import BATCH, NETWORK, SHAPE, make_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3
ITERS = 40 // BATCH               # 5 updates per epoch
TIMEOUT = 120                     # seconds any one training process may take


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp('resume_data'), 40, 8)


def train_args(train_path, prefix, *extra):
    return [sys.executable, os.path.join(REPO, 'train.py'), '--cpu', '--train-path', train_path, '--val-path', '',
            '--network', NETWORK, '--data-shape', str(SHAPE), '--batch-size', str(BATCH), '--pretrained', '',
            '--end-epoch', str(EPOCHS), '--lr', '0.01', '--lr-steps', '2', '--lr-factor', '0.5', '--log',
            prefix + '.log', '--seed', '0', '--train-preset', 'val', '--frequent', '1', '--prefix', prefix,
            *extra]


def run_train(train_path, prefix, *extra, **popen):
    """``train.py`` to the end: ``(exit status, stderr)``."""
    done = subprocess.run(train_args(train_path, prefix, *extra), cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT, **popen)
    return done.returncode, done.stderr


def final_weights(prefix):
    args, aux = RunDir(prefix).read_params(EPOCHS)
    return {name: value.asnumpy() for name, value in dict(args, **aux).items()}


@pytest.fixture(scope='module')
def straight(data, tmp_path_factory):
    """The uninterrupted run's final weights."""
    prefix = str(tmp_path_factory.mktemp('straight') / 'run')
    status, err = run_train(data[0], prefix)
    assert status == 0, err[-2000:]
    return final_weights(prefix)


def assert_same_weights(prefix, straight):
    weights = final_weights(prefix)
    assert set(weights) == set(straight)
    for name, value in straight.items():
        np.testing.assert_allclose(weights[name], value, atol=1e-5, err_msg=name)


def wait_for_batches(log_path, count, process):
    """Block until ``count`` 'Batch[' lines are in the log (the process is training), bounded."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and process.poll() is None:
        if os.path.isfile(log_path) and open(log_path).read().count('Batch[') >= count:
            return
        time.sleep(0.05)
    raise AssertionError('training did not reach %d batches (exit %s)' % (count, process.poll()))


def no_temporaries(folder):
    return [name for name in os.listdir(folder) if '.tmp-' in name]


def test_sigterm_saves_mid_epoch_and_resume_last_reaches_the_same_weights(data, straight, tmp_path):
    prefix = str(tmp_path / 'term')
    process = subprocess.Popen(train_args(data[0], prefix), cwd=REPO, stderr=subprocess.PIPE, text=True)
    wait_for_batches(prefix + '.log', ITERS + 2, process)          # inside epoch 2
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=TIMEOUT)[1]
    assert process.returncode == 128 + signal.SIGTERM
    last = err.strip().splitlines()[-1]
    assert last.startswith('error: SIGTERM: stopped at epoch 2 batch') and '--resume last' in last, last
    epoch, batch = RunDir(prefix).newest_position()
    assert epoch == 1 and 1 <= batch < ITERS and RunDir(prefix).params_path(1, batch) in last
    assert 'Traceback' not in err and no_temporaries(str(tmp_path)) == []
    status, err = run_train(data[0], prefix, '--resume', 'last')
    assert status == 0, err[-2000:]
    assert_same_weights(prefix, straight)
    history = RunDir(prefix).read_trainer_state(EPOCHS)['hooks']['History']['records']
    assert [record['epoch'] for record in history] == [1, 2, 3]
    assert RunDir(prefix).mid_epoch_positions() == []              # superseded by the full epochs after it


def test_a_second_signal_exits_at_once_and_the_last_complete_checkpoint_stays(data, tmp_path):
    prefix = str(tmp_path / 'twice')
    process = subprocess.Popen(train_args(data[0], prefix), cwd=REPO, stderr=subprocess.PIPE, text=True)
    wait_for_batches(prefix + '.log', ITERS + 1, process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == 128 + signal.SIGINT
    newest = RunDir(prefix).newest_position()
    assert newest is not None and newest >= (1, 0)
    RunDir(prefix).read_params(*newest[:1], batch=newest[1])         # loadable
    assert no_temporaries(str(tmp_path)) == []


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_kill_9_at_a_random_moment_then_resume_auto(data, straight, tmp_path, seed):
    prefix = str(tmp_path / 'kill')
    process = subprocess.Popen(train_args(data[0], prefix), cwd=REPO, stderr=subprocess.DEVNULL)
    wait_for_batches(prefix + '.log', 1, process)                  # mxnet imported, training started
    time.sleep(random.Random(seed).uniform(0.0, 1.5))             # about the length of the 3 epochs
    process.kill()
    process.wait(timeout=TIMEOUT)
    status, err = run_train(data[0], prefix, '--resume', 'auto')
    assert status == 0, err[-2000:]
    assert_same_weights(prefix, straight)


KILL_IN_WRITE = """
import os, runpy, signal, sys
real_replace, calls = os.replace, []
def replace(source, target):
    if target.endswith('-0002.params'):                 # the commit marker of epoch 2's checkpoint set
        os.kill(os.getpid(), signal.SIGKILL)            # dies after the symbol, states and trainer state moved
    return real_replace(source, target)
os.replace = replace
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_kill_during_a_checkpoint_write_keeps_the_previous_epoch_loadable(data, straight, tmp_path):
    prefix = str(tmp_path / 'inwrite')
    done = subprocess.run([sys.executable, '-c', KILL_IN_WRITE] + train_args(data[0], prefix)[1:], cwd=REPO,
                          capture_output=True, timeout=TIMEOUT)
    assert done.returncode == -signal.SIGKILL
    run = RunDir(prefix)
    assert run.newest_position() == (1, 0)                       # epoch 2's set has no marker: not complete
    run.read_params(1)
    mx.sym.load(run.symbol_path)                                   # the shared graph file was never absent
    assert no_temporaries(str(tmp_path))                          # the killed write's, until the next run starts
    status, err = run_train(data[0], prefix, '--resume', 'last')
    assert status == 0, err[-2000:]
    assert_same_weights(prefix, straight)
    assert no_temporaries(str(tmp_path)) == [] and 'left by a killed run' in open(prefix + '.log').read()


def limit_file_size(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(data, tmp_path):
    prefix = str(tmp_path / 'full')
    status, err = run_train(data[0], prefix, '--end-epoch', '1')
    assert status == 0, err[-2000:]
    run = RunDir(prefix)
    before = {path: open(path, 'rb').read() for path in (run.params_path(1), run.states_path(1), run.symbol_path)}
    limit = os.path.getsize(run.params_path(1)) // 2             # the next .params cannot be written whole
    status, err = run_train(data[0], prefix, '--resume', '1', '--end-epoch', '2',
                            preexec_fn=limit_file_size(limit))
    line = err.strip().splitlines()[-1]
    assert status == 2 and 'Traceback' not in err
    assert line.startswith('error: could not write %s: ' % run.params_path(2)) or \
        line.startswith('error: could not write %s: ' % run.params_path(1, 1)), line
    assert 'the newest complete checkpoint is %s, unchanged' % run.params_path(1) in line
    assert '--resume last' in line
    assert {path: open(path, 'rb').read() for path in before} == before
    assert run.newest_position() == (1, 0) and no_temporaries(str(tmp_path)) == []


def pickled_states(prefix, epoch):
    """Replace a checkpoint's optimizer state by MXNet's own pickled format, with the same arrays."""
    from core.checkpoint import states_from_arrays
    path = RunDir(prefix).states_path(epoch)
    states = states_from_arrays(mx.nd.load(path))
    with open(path, 'wb') as handle:
        handle.write(pickle.dumps(states))


class Planted:
    """Unpickling this runs ``open(marker, 'w')``: what a hostile .states file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickled_states_need_an_explicit_flag(data, straight, tmp_path):
    prefix = str(tmp_path / 'pickled')
    status, err = run_train(data[0], prefix, '--end-epoch', '2')
    assert status == 0, err[-2000:]
    pickled_states(prefix, 2)
    status, err = run_train(data[0], prefix, '--resume', '2')
    line = err.strip().splitlines()[-1]
    assert status == 2 and 'is a pickled optimizer state' in line and '--trust-pickled-states' in line, line
    status, err = run_train(data[0], prefix, '--resume', '2', '--trust-pickled-states')
    assert status == 0, err[-2000:]
    assert_same_weights(prefix, straight)                         # the same state, so the same end
    marker = str(tmp_path / 'ran')
    with open(RunDir(prefix).states_path(2), 'wb') as handle:
        handle.write(pickle.dumps(Planted(marker)))
    status, err = run_train(data[0], prefix, '--resume', '2', '--overwrite')
    assert status == 2 and not os.path.exists(marker)             # refused before anything was unpickled


SILENT_TRUNCATION = """
import resource, sys
import mxnet as mx
from config.errors import UserError
from core.run_dir import RunDir
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
mx.nd.save(sys.argv[1] + '-probe.params', {'a': mx.nd.zeros((1000,))})   # MXNet reports no error here...
try:
    RunDir(sys.argv[1]).save_checkpoint(1, mx.sym.Variable('data'), {'w': mx.nd.zeros((1000,))}, {})
except UserError as err:
    print(err)
"""


def test_a_write_the_disk_did_not_take_whole_is_caught_before_the_rename(tmp_path):
    """MXNet's writer reports success for a file cut at a size limit when the cut falls in its buffer's flush:
    the set is read back before it is renamed in."""
    prefix = str(tmp_path / 'cut')
    done = subprocess.run([sys.executable, '-c', SILENT_TRUNCATION, prefix], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert os.path.getsize(prefix + '-probe.params') == 1000              # ...though it wrote 1000 of ~4000 bytes
    assert done.stdout.startswith('could not write %s-0001.params: the disk is full or a file size limit was hit'
                                  % prefix), done.stdout + done.stderr
    assert not os.path.exists(prefix + '-0001.params') and no_temporaries(str(tmp_path)) == []
