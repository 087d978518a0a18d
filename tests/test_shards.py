"""tools/prepare_dataset.py --num-parts (--chunks): parts balanced by images and bytes, a manifest, and a job
killed inside a part's commit that, run again, keeps the finished parts and ends byte-identical to a clean run."""
import json
import os
import random
import subprocess
import sys

import pytest

from dataset.lst import read_lst
from tests.test_train import make_dataset
from tools.shards import assign_parts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = 4


@pytest.fixture(scope='module')
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp('shards')
    make_dataset(root, 60, 4)
    return str(root / 'VOC')


def prepare(workdir, voc, *extra):
    """prepare_dataset.py run in ``workdir`` with the same relative paths every time (so two runs compare)."""
    return subprocess.run([sys.executable] + prepare_argv() + list(extra), cwd=prepare_dir(workdir, voc),
                          capture_output=True, text=True, timeout=120)


def prepare_dir(workdir, voc):
    os.makedirs(workdir, exist_ok=True)
    if not os.path.exists(os.path.join(workdir, 'VOC')):
        os.symlink(voc, os.path.join(workdir, 'VOC'))
    return workdir


def prepare_argv():
    return [os.path.join(REPO, 'tools', 'prepare_dataset.py'), '--dataset', 'pascal', '--year', '2007', '--set',
            'trainval', '--root', 'VOC', '--target', 'out/train.lst', '--num-thread', '1', '--num-parts', str(PARTS)]


def files_of(folder):
    return {name: open(os.path.join(folder, name), 'rb').read() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope='module')
def clean(voc, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('clean'))
    done = prepare(workdir, voc)
    assert done.returncode == 0, done.stderr[-2000:]
    return os.path.join(workdir, 'out')


def test_parts_are_balanced_and_cover_the_list_once(clean):
    manifest = json.load(open(os.path.join(clean, 'train.json')))
    assert manifest['num_parts'] == PARTS and manifest['records'] == 60
    counts = [part['records'] for part in manifest['parts']]
    assert sorted(counts) == [15, 15, 15, 15]
    sizes = [part['bytes'] for part in manifest['parts']]
    assert max(sizes) <= 1.05 * (sum(sizes) / PARTS) and min(sizes) >= 0.95 * (sum(sizes) / PARTS)
    assert [part['rec'] for part in manifest['parts']] == ['train-%05d-of-%05d.rec' % (i, PARTS) for i in range(4)]
    whole = {index: (objects.tolist(), path) for index, objects, path in read_lst(os.path.join(clean, 'train.lst'))}
    seen = {}
    for part in manifest['parts']:
        for index, objects, path in read_lst(os.path.join(clean, part['lst'])):
            assert index not in seen
            seen[index] = (objects.tolist(), path)
        assert os.path.getsize(os.path.join(clean, part['rec'])) == part['bytes']
    assert seen == whole
    per_class = {}
    for objects, _ in whole.values():
        for row in objects:
            name = manifest['classes'][int(row[0])]
            per_class[name] = per_class.get(name, 0) + 1
    assert manifest['objects_per_class'] == per_class


def test_snake_assignment_by_hand():
    sizes = [10, 50, 20, 40, 30, 60]          # by size: 60 50 40 | 30 20 10 -> parts 0 1 2 | 2 1 0
    assert assign_parts(list(range(6)), sizes, 3) == [[0, 5], [1, 2], [3, 4]]


KILL_IN_PART = """
import os, runpy, signal, sys
victim = sys.argv.pop(1)
real_replace = os.replace
def replace(source, target):
    if target.endswith(victim):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(source, target)
os.replace = replace
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


@pytest.mark.parametrize('seed', [0, 1])
def test_a_job_killed_in_a_random_part_resumes_to_the_same_bytes(voc, clean, tmp_path, seed):
    victim = random.Random(seed).randrange(PARTS)
    marker = '-%05d-of-%05d.idx' % (victim, PARTS)
    workdir = str(tmp_path / 'killed')
    killed = subprocess.run([sys.executable, '-c', KILL_IN_PART, marker] + prepare_argv(), cwd=prepare_dir(
        workdir, voc), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9
    manifest = json.load(open(os.path.join(workdir, 'out', 'train.json')))
    assert [part['index'] for part in manifest['parts']] == list(range(victim))     # the parts finished before
    again = prepare(workdir, voc)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count('is complete, kept') == victim
    assert files_of(os.path.join(workdir, 'out')) == files_of(clean)                # byte-identical, manifest too
    forced = prepare(workdir, voc, '--force')
    assert forced.returncode == 0 and 'is complete, kept' not in forced.stdout
    assert files_of(os.path.join(workdir, 'out')) == files_of(clean)


def test_chunks_is_the_same_flag(tmp_path):
    from tools import prepare_dataset
    args = prepare_dataset.parse_args(['--dataset', 'coco', '--set', 's', '--root', 'r', '--target', 't.lst',
                                       '--chunks', '8'])
    assert args.num_parts == 8


def test_a_list_streamed_in_small_blocks_packs_the_same_parts_and_progress_hears_every_image(clean, tmp_path,
                                                                                               monkeypatch):
    from tools import im2rec
    from tools.shards import pack_parts
    monkeypatch.setattr(im2rec, 'LIST_BLOCK_LINES', 7)             # blocks end inside every part
    out = tmp_path / 'out'
    out.mkdir()
    for name in ('train.lst', 'train.classes'):
        (out / name).write_bytes(open(os.path.join(clean, name), 'rb').read())
    options = json.load(open(os.path.join(clean, 'train.json')))['options']
    root = os.path.join(os.path.dirname(clean), 'VOC')
    counts = []
    pack_parts(str(out / 'train.lst'), root, PARTS, options, progress=counts.append, num_thread=2)
    assert sum(counts) == 60 and all(0 < count <= im2rec.PROGRESS_BATCH for count in counts)
    packed, expected = files_of(str(out)), files_of(clean)
    manifest, expected_manifest = (json.loads(files.pop('train.json')) for files in (packed, expected))
    assert packed == expected
    assert manifest['parts'] == expected_manifest['parts']
    kept = []
    pack_parts(str(out / 'train.lst'), root, PARTS, options, progress=kept.append, num_thread=2)
    assert kept == [part['records'] for part in manifest['parts']]   # every part kept, reported at once
