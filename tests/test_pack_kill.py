"""A packing job (tools/im2rec.py) killed with SIGKILL at a seeded random moment leaves no ``.rec``/``.idx`` pair
that looks finished, and packing again gives the same bytes as a clean run.

"Looks finished" means: a reader (``dataset.iterator.scan_records``) accepts the pair. After a kill the pair must
be the complete new one, the complete earlier one (when there was one), or one the reader rejects with a
UserError (a missing ``.idx``, an index that does not match its ``.rec``).
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from config.errors import UserError
from dataset.iterator import scan_records
from dataset.lst import format_lst_line

pytestmark = pytest.mark.slow    # subprocesses end to end (make test-fast leaves them out)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_IMAGES = 400                 # enough for the job to spend most of its time packing, not starting up
EARLIER_IMAGES = 40              # the pair an earlier run left, in half of the placements
PLACEMENTS = 6                   # kills per test run
SEED = 14
JOB_TIMEOUT = 120                # seconds any one packing job may take before the test fails


def smooth_image(seed, height=240, width=320):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    phases = rng.uniform(0, 6, 3)
    return np.stack([(127 + 120 * np.sin(x / 11.0 + phase) * np.cos(y / 13.0 + phase)).astype(np.uint8)
                     for phase in phases], axis=-1)


def write_list(path, count):
    """A detection ``.lst`` of images ``0..count-1`` (one box each)."""
    with open(path, 'w', encoding='utf-8') as handle:
        for index in range(count):
            objects = [[index % 5, 0.1, 0.2, 0.6, 0.7 + 0.001 * (index % 100), index % 2]]
            handle.write(format_lst_line(index, objects, 'images/%03d.jpg' % index) + '\n')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """The image root, the clean run's ``(rec bytes, idx bytes)`` and its duration in seconds (caches warm)."""
    root = tmp_path_factory.mktemp('pack_kill')
    os.makedirs(root / 'images')
    for index in range(NUM_IMAGES):
        cv2.imwrite(str(root / 'images' / ('%03d.jpg' % index)), smooth_image(index))
    clean = root / 'clean'
    os.makedirs(clean)
    write_list(clean / 'train.lst', NUM_IMAGES)
    assert pack(clean / 'train', root).wait(JOB_TIMEOUT) == 0        # warms the caches
    start = time.monotonic()
    assert pack(clean / 'train', root).wait(JOB_TIMEOUT) == 0
    seconds = time.monotonic() - start
    return root, read_pair(clean / 'train'), seconds


def pack(prefix, root):
    """Start ``tools/im2rec.py`` on ``<prefix>.lst`` (2 threads, no progress bar); returns the Popen."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, 'tools/im2rec.py', str(prefix), str(root), '--pack-label',
                             '--num-thread', '2', '--no-progress'], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_pair(prefix):
    """``(rec bytes, idx bytes)``, None for a file that does not exist."""
    return tuple(open(path, 'rb').read() if os.path.exists(path) else None
                 for path in (str(prefix) + '.rec', str(prefix) + '.idx'))


def killed_after(prefix, root, delay):
    """Start packing, SIGKILL it after ``delay`` seconds (if still running); returns its exit status."""
    job = pack(prefix, root)
    try:
        job.wait(delay)
    except subprocess.TimeoutExpired:
        job.send_signal(signal.SIGKILL)
    return job.wait(JOB_TIMEOUT)


def reader_accepts(prefix):
    """Whether the project's reader takes ``<prefix>.rec`` + ``.idx`` as a finished pair."""
    try:
        scan_records(str(prefix) + '.rec')
    except UserError:
        return False
    return True


def placements(seconds):
    """Seeded kill delays spread over a clean run's duration, the last one close to its end."""
    rng = random.Random(SEED)
    delays = sorted(rng.uniform(0.05, 0.9) * seconds for _ in range(PLACEMENTS - 1))
    return delays + [rng.uniform(0.85, 1.0) * seconds]


def test_a_killed_pack_leaves_no_finished_looking_pair_and_a_rerun_matches_a_clean_run(images, tmp_path):
    root, clean, seconds = images
    outcomes = []
    for number, delay in enumerate(placements(seconds)):
        work = tmp_path / ('run%d' % number)
        os.makedirs(work)
        earlier = None
        if number % 2:                                     # an earlier, different pair under the same names
            write_list(work / 'train.lst', EARLIER_IMAGES)
            assert pack(work / 'train', root).wait(JOB_TIMEOUT) == 0
            earlier = read_pair(work / 'train')
        write_list(work / 'train.lst', NUM_IMAGES)
        status = killed_after(work / 'train', root, delay)
        left = read_pair(work / 'train')
        finished = left in (clean, earlier)
        assert finished or not reader_accepts(work / 'train'), (
            'kill after %.2f s left a pair the reader accepts that is neither the new nor the earlier one' % delay)
        outcomes.append((round(delay, 2), status, 'new' if left == clean else 'earlier' if left == earlier and
                         earlier else 'none' if left == (None, None) else 'rejected' if not finished else 'other'))
        assert pack(work / 'train', root).wait(JOB_TIMEOUT) == 0
        assert read_pair(work / 'train') == clean          # the rerun: the clean run's bytes
        shutil.rmtree(work)
    print('kill placements (delay s, exit status, pair left):', outcomes)
    assert any(status == -signal.SIGKILL for _, status, _ in outcomes), outcomes  # some kills landed mid-job


def test_the_moment_between_the_two_renames_is_rejected_by_the_reader(images, tmp_path):
    """A new ``.rec`` paired with an earlier ``.idx`` (what a kill between the two renames would leave if the old
    index stayed until replaced; core.atomic removes it first, and a careless copy can still make the pair) is
    not taken for a finished pair: the reader checks the index against the records."""
    root, clean, _ = images
    write_list(tmp_path / 'train.lst', EARLIER_IMAGES)
    assert pack(tmp_path / 'train', root).wait(JOB_TIMEOUT) == 0
    (tmp_path / 'train.rec').write_bytes(clean[0])
    with pytest.raises(UserError, match=r'train\.idx does not match .*train\.rec .*stale.*; pack both again'):
        scan_records(str(tmp_path / 'train.rec'))
