"""tools/prepare_dataset.py --jobs: a jobs file of several conversions, run in parallel processes; a failed job
leaves the others to finish, their outputs equal single runs byte for byte, a rerun keeps finished parts, and a
bad jobs file is one line before anything runs."""
import os
import signal
import subprocess
import sys
import time

import pytest

from config.errors import UserError
from tests.test_train import make_dataset
from tools import prepare_dataset
from tools.jobs import load_jobs, summary_table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_IMAGES, TEST_IMAGES = 24, 20


@pytest.fixture(scope='module')
def voc(tmp_path_factory):
    """Two small synthetic VOC trees: ``a`` (trainval used) and ``b`` (test used)."""
    roots = {}
    for name, trainval, test in (('a', TRAIN_IMAGES, 4), ('b', 4, TEST_IMAGES)):
        folder = tmp_path_factory.mktemp('voc_' + name)
        make_dataset(folder, trainval, test)
        roots[name] = str(folder / 'VOC')
    return roots


def good_jobs(voc, folder):
    """The two good jobs: ``a``'s trainval in 2 parts (root relative to the jobs file), ``b``'s test whole."""
    return ('  - name: train\n'
            '    set: trainval\n'
            '    root: %s\n'
            '    target: out/train.lst\n'
            '    num-parts: 2\n'
            '  - set: test\n'
            '    root: %s\n'
            '    target: out/val.lst\n'
            '    shuffle: false\n' % (os.path.relpath(voc['a'], folder), voc['b']))


def write_jobs(folder, text, name='jobs.yaml'):
    path = os.path.join(str(folder), name)
    with open(path, 'w') as handle:
        handle.write(text)
    return path


def run_jobs(path, *extra):
    """``prepare_dataset.py --jobs path`` from the repository (not the jobs file's folder)."""
    return subprocess.run([sys.executable, 'tools/prepare_dataset.py', '--jobs', str(path)] + list(extra),
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def outputs(folder, *stems):
    """``{file name: bytes}`` of the files that the jobs ``stems`` wrote into ``folder`` (not the logs)."""
    return {name: open(os.path.join(folder, name), 'rb').read() for name in sorted(os.listdir(folder))
            if name.startswith(stems) and not name.endswith('.log')}


def table_row(stdout, name):
    return next(line for line in stdout.splitlines() if line.split()[:1] == [name] and len(line.split()) >= 7)


@pytest.fixture(scope='module')
def first_run(voc, tmp_path_factory):
    """Two good jobs and one whose root is missing, two at a time."""
    folder = tmp_path_factory.mktemp('jobs')
    text = ('defaults:\n  dataset: pascal\n  year: 2007\njobs:\n' + good_jobs(voc, str(folder))
            + '  - name: broken\n    set: test\n    root: no_such_dir\n    target: out/broken.lst\n')
    path = write_jobs(folder, text)
    return str(folder), path, run_jobs(path, '--max-procs', '2')


@pytest.fixture(scope='module')
def direct(voc, tmp_path_factory):
    """The same two conversions, each a plain single run."""
    folder = str(tmp_path_factory.mktemp('direct'))
    for argv in (['--set', 'trainval', '--root', voc['a'], '--target', os.path.join(folder, 'train.lst'),
                  '--num-parts', '2'],
                 ['--set', 'test', '--root', voc['b'], '--target', os.path.join(folder, 'val.lst'), '--no-shuffle']):
        prepare_dataset.main(prepare_dataset.parse_args(['--dataset', 'pascal', '--year', '2007', '--num-thread', '1']
                                                        + argv))
    return folder


def test_a_failed_job_leaves_the_others_identical_to_single_runs(first_run, direct):
    folder, _, result = first_run
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and '1 of 3 jobs failed (broken)' in errors[0]
    out = os.path.join(folder, 'out')
    assert outputs(out, 'train', 'val') == outputs(direct, 'train', 'val')
    assert 'train-00001-of-00002.rec' in outputs(out, 'train') and 'val.rec' in outputs(out, 'val')
    assert not os.path.exists(os.path.join(out, 'broken.lst'))
    broken = table_row(result.stdout, 'broken')
    assert 'failed' in broken and '--root %s does not exist' % os.path.join(folder, 'no_such_dir') in broken
    assert table_row(result.stdout, 'train').split()[1:4] == ['ok', str(TRAIN_IMAGES), '2']
    assert table_row(result.stdout, 'out/val').split()[1:4] == ['ok', str(TEST_IMAGES), '1']


def test_each_job_writes_its_own_log(first_run):
    folder, _, result = first_run
    out = os.path.join(folder, 'out')
    logs = {name: open(os.path.join(out, name + '.log')).read() for name in ('train', 'val', 'broken')}
    assert 'packed %d images into 2 parts' % TRAIN_IMAGES in logs['train']
    assert 'packed %d images (0 skipped)' % TEST_IMAGES in logs['val']
    assert 'error: --root' in logs['broken']
    assert 'packed' not in result.stdout and 'voc_2007' not in result.stdout + result.stderr  # not on the terminal


def test_rerun_of_the_good_jobs_keeps_the_finished_parts(first_run, voc, direct):
    folder, _, _ = first_run
    path = write_jobs(folder, 'defaults: {dataset: pascal, year: 2007}\njobs:\n' + good_jobs(voc, folder),
                      name='good.yaml')
    result = run_jobs(path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'failed' not in result.stdout and 'error' not in result.stderr
    with open(os.path.join(folder, 'out', 'train.log')) as handle:
        assert handle.read().count('is complete, kept') == 2
    out = os.path.join(folder, 'out')
    assert outputs(out, 'train', 'val') == outputs(direct, 'train', 'val')


def test_python_tag_runs_nothing_and_is_one_line(tmp_path):
    marker = tmp_path / 'X'
    path = write_jobs(tmp_path, 'jobs:\n  - !!python/object/apply:os.system ["touch %s"]\n' % marker)
    result = run_jobs(path)
    assert result.returncode == 2 and not marker.exists()
    assert len(result.stderr.strip().splitlines()) == 1 and 'not valid YAML' in result.stderr


def test_unknown_key_is_one_line_and_nothing_runs(voc, tmp_path):
    text = 'defaults: {dataset: pascal, year: 2007}\njobs:\n' + good_jobs(voc, str(tmp_path)).replace(
        'num-parts', 'num_part')
    result = run_jobs(write_jobs(tmp_path, text))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: jobs file %s, job 1 (train): unknown key 'num_part'; did you mean 'num_parts'? (keys are "
        "prepare_dataset.py's flags without the dashes)" % os.path.join(str(tmp_path), 'jobs.yaml')]
    assert not os.path.exists(tmp_path / 'out')


GOOD = '{dataset: pascal, year: 2007, set: test, root: r, target: %s}'


@pytest.mark.parametrize('text, message', [
    ('jobs:\n  - ' + GOOD % 'a.lst' + '\n  - ' + GOOD % './a.lst', r'jobs 1 and 2 both write .*a\.lst'),
    ('jobs:\n  - {name: x, dataset: pascal, year: 2007, set: test, target: a.lst}',
     r'job 1 \(x\): missing root'),
    ('jobs:\n  - {dataset: pascal, year: 2007, set: test, root: r, target: a.lst, num_parts: two}',
     r"job 1: num_parts must be a whole number, not 'two'"),
    ('jobs:\n  - {dataset: voc, year: 2007, set: test, root: r, target: a.lst}',
     r"dataset must be one of pascal, coco, yolo, not 'voc'"),
    ('jobs:\n  - {dataset: coco, year: 2007, set: test, root: r, target: a.lst}',
     r'job 1: --year applies only to --dataset pascal'),
    ('jobs:\n  - {dataset: pascal, year: 2007, set: test, root: r, target: a.txt}', r'must end in \.lst'),
    ('jobs:\n  - {dataset: pascal, year: 2007, set: test, root: r, target: a.lst, skip_bad: 1}',
     r'skip_bad must be true or false'),
    ('jobs:\n  - {dataset: pascal, year: 2007, set: test, root: r, target: a.lst, chunks: 2, num_parts: 2}',
     r"'chunks' and 'num_parts' set the same flag --num-parts"),
    ('job:\n  - ' + GOOD % 'a.lst', r"unknown top-level key 'job'; did you mean 'jobs'\?"),
    ('jobs: {dataset: pascal}', r'needs a non-empty "jobs:" list'),
    ('- ' + GOOD % 'a.lst', r'must be a mapping with a "jobs:" list'),
    ('defaults: {jobs: 2}\njobs:\n  - ' + GOOD % 'a.lst', r"defaults:: unknown key 'jobs'"),
    ('jobs:\n  - {name: a, ' + GOOD[1:] % 'a.lst' + '\n  - {name: a, ' + GOOD[1:] % 'b.lst',
     r"jobs 1 and 2 are both named 'a'"),
])
def test_a_bad_jobs_file_names_the_file_and_the_job(tmp_path, text, message):
    path = write_jobs(tmp_path, text)
    with pytest.raises(UserError, match=message) as caught:
        load_jobs(path)
    assert str(caught.value).startswith('jobs file %s' % path) and '\n' not in str(caught.value)


def test_job_argv_merges_defaults_resolves_paths_and_splits_threads(tmp_path, monkeypatch):
    monkeypatch.setattr('tools.jobs.available_cores', lambda: 8)
    (tmp_path / 'names.txt').write_text('cat\ndog\n')
    path = write_jobs(tmp_path, 'defaults: {dataset: pascal, year: [2007, 2012], skip_bad: true}\njobs:\n'
                                '  - {set: [train, val], root: VOC, target: out/a.lst, class-names: names.txt}\n'
                                '  - {dataset: coco, year: null, set: val2017, root: /data/coco, target: b.lst,\n'
                                '     class_names: [cat, dog], shuffle: false, skip_bad: false, num_thread: 3}\n'
                                '  - {set: test, root: VOC, target: c.lst, pack: false}\n')
    jobs, max_procs = load_jobs(path, max_procs=2)
    assert max_procs == 2 and [job.name for job in jobs] == ['out/a', 'b', 'c']
    folder = str(tmp_path)
    assert jobs[0].argv == ['--dataset=pascal', '--year=2007,2012', '--skip-bad', '--set=train,val',
                            '--root=%s/VOC' % folder, '--target=%s/out/a.lst' % folder,
                            '--class-names=%s/names.txt' % folder, '--num-thread=4']
    assert jobs[0].log == '%s/out/a.log' % folder
    assert jobs[1].argv == ['--dataset=coco', '--set=val2017', '--root=/data/coco', '--target=%s/b.lst' % folder,
                            '--class-names=cat,dog', '--no-shuffle', '--num-thread=3']
    assert '--no-pack' in jobs[2].argv and not any(arg.startswith('--num-thread') for arg in jobs[2].argv)
    assert load_jobs(path)[1] == 3          # default: min(4, cores, jobs)


@pytest.mark.parametrize('argv, message', [
    (['--jobs', 'j.yaml', '--dataset', 'pascal', '--no-shuffle'], r'give --dataset, --shuffle in the jobs file'),
    (['--dataset', 'pascal', '--year', '2007', '--set', 's', '--root', 'r', '--target', 't.lst', '--max-procs', '2'],
     r'--max-procs applies to --jobs'),
    (['--jobs', 'j.yaml', '--max-procs', '0'], r'--max-procs 0 must be at least 1'),
])
def test_command_line_flags_that_do_not_go_with_jobs(argv, message):
    with pytest.raises(UserError, match=message):
        prepare_dataset.main(prepare_dataset.parse_args(argv))


def test_single_runs_still_require_their_flags(capsys):
    with pytest.raises(SystemExit):
        prepare_dataset.parse_args(['--dataset', 'pascal', '--root', 'r'])
    assert 'the following arguments are required: --set, --target' in capsys.readouterr().err


def test_summary_table_aligns_numbers_and_puts_the_error_last():
    from tools.jobs import Job
    jobs = [Job(1, 'train', [], 't.lst', 't.log'), Job(2, 'coco-val', [], 'c.lst', 'c.log')]
    outcomes = {1: dict(status='ok', error=None, images=1000, parts=8, bytes=123456789, seconds=10.0),
                2: dict(status='failed', error='--root x does not exist', images=None, parts=None, bytes=None,
                        seconds=0.5)}
    assert summary_table(jobs, outcomes).splitlines() == [
        'job       status  images  parts     MB  seconds  img/s  error',
        'train     ok        1000      8  123.5     10.0    100',
        'coco-val  failed       -      -      -      0.5      -  --root x does not exist']


HANG_REPEATS = 1000    # the slow job lists b's test images this many times: 20,000 records, ~5 s to pack (the
# parent passes Ctrl-C on after a 1 s grace: the parts after the first must take longer than that)


@pytest.fixture(scope='module')
def slow_set(voc):
    """An image set ``slow`` of ``b`` that lists its test images over and over (long enough to be interrupted)."""
    main = os.path.join(voc['b'], 'VOC2007', 'ImageSets', 'Main')
    with open(os.path.join(main, 'test.txt')) as handle:
        ids = handle.read()
    with open(os.path.join(main, 'slow.txt'), 'w') as handle:
        handle.write(ids * HANG_REPEATS)
    return voc['b']


def interrupted_run(path, folder, whom):
    """Run ``path`` two at a time; once the slow job's first part is committed (its manifest exists), send
    SIGINT to the whole process group as a terminal's Ctrl-C does (``whom='group'``) or to the parent alone."""
    process = subprocess.Popen([sys.executable, 'tools/prepare_dataset.py', '--jobs', path, '--max-procs', '2'],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    manifest = os.path.join(folder, 'out', 'slow.json')
    deadline = time.monotonic() + 60
    while not os.path.exists(manifest) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    (os.killpg if whom == 'group' else os.kill)(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return process, stdout, stderr


def group_is_gone(pgid, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize('whom', ['group', 'parent'])
def test_ctrl_c_stops_every_job_cleanly_and_a_rerun_finishes_the_rest(slow_set, voc, tmp_path, whom):
    text = ('defaults: {dataset: pascal, year: 2007, shuffle: false}\njobs:\n'
            '  - {set: slow, root: %s, target: out/slow.lst, num_parts: 4}\n'
            '  - {set: trainval, root: %s, target: out/other.lst}\n'
            '  - {set: test, root: %s, target: out/later.lst}\n' % (slow_set, voc['a'], voc['a']))
    path = write_jobs(tmp_path, text)
    process, stdout, stderr = interrupted_run(path, str(tmp_path), whom)
    assert process.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].endswith('interrupted') and 'Traceback' not in stderr
    assert table_row(stdout, 'out/slow').split()[1] == 'interrupted'
    assert group_is_gone(process.pid)
    out = str(tmp_path / 'out')
    assert not [name for name in os.listdir(out) if '.tmp-' in name]            # nothing half-written
    records = sorted(name[:-4] for name in os.listdir(out) if name.startswith('slow-') and name.endswith('.rec'))
    assert records and records == sorted(name[:-4] for name in os.listdir(out) if name.endswith('.idx')
                                         and name.startswith('slow-'))
    assert len(records) < 4
    if whom == 'group':
        again = run_jobs(path)
        assert again.returncode == 0, again.stderr[-2000:]
        with open(os.path.join(out, 'slow.log')) as handle:
            assert handle.read().count('is complete, kept') == len(records)
        assert table_row(again.stdout, 'out/slow').split()[1:4] == ['ok', str(TEST_IMAGES * HANG_REPEATS), '4']


def test_the_docstring_example_is_a_valid_jobs_file(tmp_path):
    doc = prepare_dataset.__doc__
    block = doc[doc.index('    defaults:\n'):doc.index('    python tools/prepare_dataset.py --jobs')]
    path = write_jobs(tmp_path, '\n'.join(line[4:] for line in block.splitlines()))
    jobs, _ = load_jobs(path, max_procs=3)
    assert [job.name for job in jobs] == ['voc0712-trainval', 'voc07-test', 'coco-train2017', 'data/yolo-train']
    assert '--num-parts=16' in jobs[2].argv and '--root=%s' % (tmp_path / 'DATA' / 'coco') in jobs[2].argv


def test_an_unexpected_error_is_its_last_line_with_the_log(monkeypatch, tmp_path):
    from tools.jobs import ChildReporter, Job, run_job

    def broken_main(args, progress=True, listed=None):
        raise RuntimeError('something\nunexpected')      # a message of two lines becomes one

    monkeypatch.setattr(prepare_dataset, 'main', broken_main)
    job = Job(1, 'x', ['--dataset=coco', '--set=s', '--root=r', '--target=t.lst'], 't.lst', str(tmp_path / 't.log'))
    outcome = run_job(job, ChildReporter(connection=None))
    assert outcome['status'] == 'failed'
    assert outcome['error'] == 'RuntimeError: something unexpected (traceback in %s)' % job.log


def test_the_readme_jobs_file_reads_as_the_commands_it_describes(tmp_path):
    with open(os.path.join(REPO, 'README.md'), encoding='utf-8') as handle:
        readme = handle.read()
    start = readme.index('```yaml\n', readme.index('Many conversions at once')) + len('```yaml\n')
    (tmp_path / 'jobs.yaml').write_text(readme[start:readme.index('```', start)])
    jobs, _ = load_jobs(str(tmp_path / 'jobs.yaml'), 2)
    root = str(tmp_path)
    assert [job.name for job in jobs] == ['voc0712-trainval', 'voc07-test', 'data/coco_train', 'data/yolo_train']
    first, second, coco, yolo = ([arg for arg in job.argv if not arg.startswith('--num-thread')] for job in jobs)
    assert first == ['--root=%s/DATA/VOCdevkit' % root, '--dataset=pascal', '--year=2007,2012', '--set=trainval',
                     '--target=%s/data/train.lst' % root, '--num-parts=8']
    assert second[-1] == '--no-shuffle' and '--year=2007' in second and '--target=%s/data/val.lst' % root in second
    assert {'--dataset=coco', '--root=%s/DATA/coco' % root, '--num-parts=16', '--skip-bad'} <= set(coco)
    assert {'--dataset=yolo', '--pass-through', '--set=train'} <= set(yolo)
    assert [job.log for job in jobs][:2] == ['%s/data/train.log' % root, '%s/data/val.log' % root]
