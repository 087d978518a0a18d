"""The default device of every script: the visible GPUs where this MXNet build has CUDA and sees one, else the
CPU, said in one line; --gpus / --cpu still choose. Both branches with the GPU count monkeypatched, and one
real run of benchmark_score.py without device flags on this CPU build (it used to stop asking for --cpu)."""
import mxnet as mx
import pytest

from core import devices
from tools import cli
from tools.scripts import load_script

SCRIPTS = ('train.py', 'evaluate.py', 'demo.py', 'benchmark_score.py')
REQUIRED = {'evaluate.py': ['--prefix', 'p', '--epoch', '1'], 'demo.py': ['--images', 'a.jpg']}


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_script_defaults_to_the_visible_gpus(script, monkeypatch, capsys):
    monkeypatch.setattr(devices, 'visible_gpu_count', lambda: 2)
    args = load_script(script).parse_args(REQUIRED.get(script, []))
    assert args.gpus is None and not args.cpu
    assert cli.contexts_from_args(args) == [mx.gpu(0), mx.gpu(1)]
    assert capsys.readouterr().out.splitlines() == [
        'device: GPUs 0,1, every visible one (--gpus IDS chooses, --cpu runs on the CPU)']


@pytest.mark.parametrize('script', SCRIPTS)
def test_without_a_visible_gpu_the_default_is_the_cpu(script, monkeypatch, capsys):
    monkeypatch.setattr(devices, 'visible_gpu_count', lambda: 0)
    args = load_script(script).parse_args(REQUIRED.get(script, []))
    assert cli.contexts_from_args(args) == [mx.cpu()]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith('device: CPU (this MXNet build has no CUDA or sees no GPU')


def test_gpus_and_cpu_still_choose_and_print_nothing(monkeypatch, capsys):
    monkeypatch.setattr(devices, 'visible_gpu_count', lambda: 2)
    parse = load_script('evaluate.py').parse_args
    base = REQUIRED['evaluate.py']
    assert cli.contexts_from_args(parse(base + ['--gpus', '1'])) == [mx.gpu(1)]
    assert cli.contexts_from_args(parse(base + ['--gpu', '0,1'])) == [mx.gpu(0), mx.gpu(1)]
    assert cli.contexts_from_args(parse(base + ['--cpu'])) == [mx.cpu()]
    assert cli.contexts_from_args(parse(base + ['--gpus', ''])) == [mx.cpu()]
    assert capsys.readouterr().out == ''


def test_the_gpu_count_is_guarded_on_this_build():
    count = devices.visible_gpu_count()
    assert count == (mx.context.num_gpus() if mx.runtime.Features().is_enabled('CUDA') else 0)


def test_benchmark_without_device_flags_runs_on_the_cpu_build(monkeypatch, capsys):
    if devices.visible_gpu_count():
        pytest.skip('this machine has a GPU: the CPU branch is the monkeypatched test above')
    script = load_script('benchmark_score.py')
    results = script.main(script.parse_args(['--network', 'mobilenet0.25', '--data-shape', '64', '--batch-size',
                                             '1', '--num-batches', '1', '--warmup', '0', '--num-class', '2']))
    assert [result.context for result in results] == ['cpu(0)']
    assert capsys.readouterr().out.startswith('device: CPU')
