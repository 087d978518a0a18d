"""Scaling out: several CPU contexts in one process (``--cpus``), and several workers of MXNet's parameter
server started by tools/launch.py (``--kv-store dist_sync``), on loopback. Each comparison gives every device
(or worker) of the split run the same B images that the single device trains on alone: a record file of B
images for the single device, the same B images twice for the split run, unshuffled. The summed gradient
of the split run is then devices (workers) times the single one, and the steps are equal exactly when it is
rescaled by devices x workers once; twice, or not at all, would halve or double the step."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from config.errors import UserError
from core.checkpoint import load_checkpoint_params
from core.devices import contexts_for
from tests.test_train import NETWORK, SHAPE, make_dataset, tiny_run
from tools.im2rec import pack_records
from train import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HALF = 4                    # B: images per device (or per worker) in the comparisons


def repeated_records(folder, source_lst, root, count, copies):
    """``folder/<name>.rec``: the first ``count`` images of ``source_lst``, ``copies`` times over (new indices),
    packed unshuffled with the ``.classes`` beside it."""
    with open(source_lst) as handle:
        lines = [line.rstrip('\n').split('\t') for line in handle if line.strip()][:count]
    os.makedirs(folder, exist_ok=True)
    lst = os.path.join(folder, os.path.basename(folder) + '.lst')
    with open(lst, 'w') as handle:
        for index, fields in enumerate(lines * copies):
            handle.write('\t'.join([str(index)] + fields[1:]) + '\n')
    shutil.copyfile(source_lst[:-len('.lst')] + '.classes', lst[:-len('.lst')] + '.classes')
    pack_records(lst, root, progress=False, num_thread=1)
    return lst[:-len('.lst')] + '.rec'


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    """``(single, doubled)``: a record file of HALF images, and one of the same images twice."""
    root = tmp_path_factory.mktemp('distributed_data')
    make_dataset(root, 12, 2)
    return tuple(repeated_records(str(root / name), str(root / 'train.lst'), str(root / 'VOC'), HALF, copies)
                 for name, copies in (('single', 1), ('doubled', 2)))


def one_step(train_path, prefix, batch_size, **overrides):
    """One SGD update (a single batch) from the seeded initial weights: ``arg_params`` as NumPy arrays, read
    from the checkpoint of epoch 1."""
    options = dict(batch_size=batch_size, lr=0.05, momentum=0.0, wd=0.0, gpus='')
    options.update(overrides)
    tiny_run(train_path, prefix, **options)
    arg_params, _ = load_checkpoint_params(str(prefix), 1, 'test')
    return {name: value.asnumpy() for name, value in arg_params.items()}


def largest_difference(first, second):
    """The largest absolute difference over every parameter of two ``{name: array}`` sets with the same names."""
    assert sorted(first) == sorted(second)
    return max(float(np.abs(first[name] - second[name]).max()) for name in first)


def test_cpu_contexts_are_data_parallel_devices():
    contexts = contexts_for('', 3)
    assert [(ctx.device_type, ctx.device_id) for ctx in contexts] == [('cpu', 0), ('cpu', 1), ('cpu', 2)]
    assert [ctx.device_id for ctx in contexts_for(None, 2)] == [0, 1]           # --cpus alone means the CPU
    with pytest.raises(UserError, match=r'^--cpus 0 must be at least 1$'):
        contexts_for('', 0)


def test_two_cpu_contexts_take_the_step_one_context_takes(records, tmp_path):
    single, doubled = records
    one = one_step(single, tmp_path / 'one' / 'ssd', HALF)
    two = one_step(doubled, tmp_path / 'two' / 'ssd', 2 * HALF, cpus=2)           # HALF images per device
    start = one_step(single, tmp_path / 'still' / 'ssd', HALF, lr=1e-12)         # ~ the seeded initial weights
    moved = largest_difference(one, start)
    assert moved > 1e-2                                    # the step is large enough to see a wrong rescale
    assert largest_difference(one, two) < 1e-3 * moved     # a double or missing rescale would differ by ~moved


# ------------------------------------------------------------------------------------- workers on loopback
GROUP_SECONDS = 240         # a bounded wait for a whole launched group (start-up, training, shutdown)


def free_port():
    import socket
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def launch_workers(tmp_path, settings, num_workers, wait=True):
    """``tools/launch.py -n num_workers -s 1 -- python -m tests.dist_worker settings.json out``: a Popen (or,
    with ``wait``, the finished process and its output); the workers' files go to ``tmp_path / 'out'``."""
    out = tmp_path / 'out'
    out.mkdir(exist_ok=True)
    settings_path = tmp_path / 'settings.json'
    settings_path.write_text(json.dumps(settings))
    command = [sys.executable, 'tools/launch.py', '-n', str(num_workers), '-s', '1', '--port', str(free_port()),
               '--stop-grace', '5', '--', sys.executable, '-m', 'tests.dist_worker', str(settings_path), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    if not wait:
        return process
    try:
        output, _ = process.communicate(timeout=GROUP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        raise
    return process, output


def worker_params(out, rank):
    """``{name: array}`` (``arg:``/``aux:`` names) a worker held at the end."""
    import mxnet as mx
    return {name: value.asnumpy() for name, value in mx.nd.load(str(out / ('params-%d.params' % rank))).items()}


def group_settings(train_path, prefix, **overrides):
    """train_net settings of the tiny network for a worker of a group (as tests/test_train.py's tiny_run)."""
    settings = dict(train_path=train_path, val_path='', network=NETWORK, data_shape=SHAPE, batch_size=HALF,
                    pretrained='', end_epoch=1, lr_steps=[], log='', seed=0, train_preset='val', frequent=100,
                    prefix=str(prefix), gpus='', kv_store='dist_sync')
    settings.update(overrides)
    return settings


@pytest.fixture(scope='module')
def group_data(tmp_path_factory):
    """Training records of 48 images for a group of two workers."""
    root = tmp_path_factory.mktemp('group_data')
    return make_dataset(root, 48, 2)[0]


def test_two_workers_train_to_identical_parameters_and_the_loss_falls(group_data, tmp_path):
    prefix = tmp_path / 'run' / 'ssd'
    process, output = launch_workers(tmp_path, group_settings(group_data, prefix, end_epoch=3, lr=0.05), 2)
    assert process.returncode == 0, output[-4000:]
    out = tmp_path / 'out'
    first, second = worker_params(out, 0), worker_params(out, 1)
    assert sorted(first) == sorted(second) and any(name.startswith('aux:') for name in first)
    assert largest_difference(first, second) == 0.0           # weights and BatchNorm statistics alike
    for rank in (0, 1):
        history = json.loads((out / ('history-%d.json' % rank)).read_text())
        cross_entropy, box = ([epoch[name] for epoch in history] for name in ('CrossEntropy', 'SmoothL1/positive'))
        assert len(box) == 3 and box[-1] < 0.9 * box[0] and cross_entropy[-1] < cross_entropy[0], history
    saved, _ = load_checkpoint_params(str(prefix), 3, 'test')       # rank 0 wrote it: its weights
    assert max(float(np.abs(value.asnumpy() - first['arg:' + name]).max()) for name, value in saved.items()) == 0
    assert 'images per worker [24, 24]; 6 iterations per epoch on every worker' in output
    assert '[worker 1] ' in output and 'rank 1/2 Epoch[3] Train' in output
    assert 'rank 1/2 Epoch[3] saved' not in output and 'rank 0/2 Epoch[3] saved' in output


def group_weights(tmp_path, train_path, num_workers):
    """One update by a group of ``num_workers`` workers of batch HALF: rank 0's ``{name: weights}``."""
    folder = tmp_path / ('%d_workers' % num_workers)
    folder.mkdir()
    process, output = launch_workers(folder, group_settings(train_path, folder / 'ssd', lr=0.05, momentum=0.0,
                                                            wd=0.0), num_workers)
    assert process.returncode == 0, output[-4000:]
    shares = ', '.join([str(HALF)] * num_workers)
    assert 'images per worker [%s]; 1 iterations per epoch' % shares in output      # each the same B images
    return {name[len('arg:'):]: value for name, value in worker_params(folder / 'out', 0).items()
            if name.startswith('arg:')}


def test_two_workers_of_batch_b_take_the_step_of_one_worker(records, tmp_path):
    single, doubled = records
    alone, pair = group_weights(tmp_path, single, 1), group_weights(tmp_path, doubled, 2)
    start = one_step(single, tmp_path / 'still' / 'ssd', HALF, lr=1e-12)
    moved = largest_difference(alone, start)
    # both sides run with one OpenMP thread (oneDNN's sums depend on the thread count: with two, this tiny
    # network's batch-4 BatchNorm already moves the step by ~2 %)
    assert moved > 1e-2 and largest_difference(alone, pair) < 1e-3 * moved


def test_a_group_resumed_at_epoch_2_ends_as_the_group_that_never_stopped(group_data, tmp_path):
    def run(folder, **overrides):
        folder.mkdir()
        settings = group_settings(group_data, tmp_path / 'runs' / folder.name / 'ssd', end_epoch=3, lr=0.05,
                                  **overrides)
        process, output = launch_workers(folder, settings, 2)
        assert process.returncode == 0, output[-4000:]
        return output

    run(tmp_path / 'straight')
    shutil.copytree(tmp_path / 'runs' / 'straight', tmp_path / 'runs' / 'resumed')
    for name in os.listdir(tmp_path / 'runs' / 'resumed'):       # keep epoch 2, as if killed during epoch 3
        if '-0003.' in name:
            os.remove(tmp_path / 'runs' / 'resumed' / name)
    output = run(tmp_path / 'resumed', resume='last')
    assert output.count('optimizer state restored from') == 2                  # on both workers
    straight, _ = load_checkpoint_params(str(tmp_path / 'runs' / 'straight' / 'ssd'), 3, 'test')
    resumed, _ = load_checkpoint_params(str(tmp_path / 'runs' / 'resumed' / 'ssd'), 3, 'test')
    assert max(float(np.abs(straight[name].asnumpy() - resumed[name].asnumpy()).max()) for name in straight) == 0


def test_dist_async_trains_with_the_optimizer_on_the_server(group_data, tmp_path):
    prefix = tmp_path / 'run' / 'ssd'
    process, output = launch_workers(tmp_path, group_settings(group_data, prefix, kv_store='dist_async',
                                                              end_epoch=2, lr=0.05, lr_steps=[1]), 2)
    assert process.returncode == 0, output[-4000:]
    saved = sorted(os.listdir(prefix.parent))
    assert 'ssd-0002.params' in saved and not [name for name in saved if name.endswith('.states')]
    history = json.loads((tmp_path / 'out' / 'history-1.json').read_text())
    assert [epoch['epoch'] for epoch in history] == [1, 2] and all(np.isfinite(epoch['CrossEntropy'])
                                                                   for epoch in history)


def test_optimizer_states_keyed_by_parameter_name_survive_a_checkpoint(tmp_path):
    import mxnet as mx

    from core.checkpoint import state_arrays, states_from_arrays
    states = {'conv0_weight': mx.nd.ones((2, 3)), 'bn0_gamma': None, 3: (mx.nd.zeros(2), mx.nd.ones(2) * 5)}
    mx.nd.save(str(tmp_path / 'states'), state_arrays(states))   # a kvstore updater's keys, SGD without momentum
    loaded = states_from_arrays(mx.nd.load(str(tmp_path / 'states')))
    assert sorted(loaded, key=str) == [3, 'bn0_gamma', 'conv0_weight'] and loaded['bn0_gamma'] is None
    assert loaded['conv0_weight'].asnumpy().tolist() == [[1, 1, 1], [1, 1, 1]]
    assert [part.asnumpy().tolist() for part in loaded[3]] == [[0, 0], [5, 5]]


def test_a_killed_worker_stops_the_group_with_its_name_within_a_minute(group_data, tmp_path):
    process = launch_workers(tmp_path, group_settings(group_data, tmp_path / 'run' / 'ssd', end_epoch=1000), 2,
                             wait=False)
    pid_file = tmp_path / 'out' / 'pid-1'
    deadline = time.monotonic() + GROUP_SECONDS
    while not pid_file.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(8)                                  # well into training: the group has formed
    assert process.poll() is None, process.stdout.read()[-3000:]
    os.kill(int(pid_file.read_text()), 9)
    killed = time.monotonic()
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        raise
    assert time.monotonic() - killed < 60
    assert process.returncode == 11, output[-3000:]            # 10 + the worker's index
    assert 'worker 1 exited with status -9 (killed by SIGKILL)' in output


def test_a_distributed_kvstore_without_a_launcher_is_one_line(records, monkeypatch):
    monkeypatch.delenv('DMLC_ROLE', raising=False)
    with pytest.raises(UserError, match=r'^--kv-store dist_sync needs a parameter-server group: start train.py '
                                        r'under tools/launch.py'):
        distributed.join('dist_sync')
    with pytest.raises(UserError, match=r"^--kv-store 'dist-sync': choose among local, device, nccl, dist_sync"):
        distributed.join('dist-sync')
