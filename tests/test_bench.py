"""bench/: the quick metric and inference parts run through bench/run.py and write valid results; the report
renders hand-made rows into exact lines; the metric benchmark's data and equality check by hand.

No timing is asserted: figures only have to be positive and the ratios consistent with them.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import bench_metric, report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW_KEYS = {'name', 'part', 'ours', 'peer', 'peer_name', 'unit', 'ratio', 'target', 'met'}


def run_script(*args):
    return subprocess.run([sys.executable] + list(args), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


COMMITTED = ('bench/results.json', 'bench/RESULTS.md', 'bench/data_results.json')   # the full run's figures


def file_bytes(paths):
    """``{path: bytes or None}`` for repository-relative paths."""
    def read(path):
        full = os.path.join(REPO, path)
        if not os.path.isfile(full):
            return None
        with open(full, 'rb') as handle:
            return handle.read()
    return {path: read(path) for path in paths}


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    """``make bench-quick`` (``bench/run.py --quick``, every part, its default output paths; scratch data in a
    temporary folder; about 45 s on 2 cores with the 300 test images to generate). Returns (parts folder, the
    merged results, stdout, the committed files' bytes before and after the run)."""
    work = tmp_path_factory.mktemp('bench_work')
    before = file_bytes(COMMITTED)
    result = run_script('bench/run.py', '--quick', '--work-dir', str(work))
    assert result.returncode == 0, result.stdout[-3000:]
    with open(os.path.join(REPO, 'bench', 'results-quick.json')) as handle:
        results = json.load(handle)
    return os.path.join(REPO, 'bench', 'quick'), results, result.stdout, (before, file_bytes(COMMITTED))


def test_quick_run_leaves_the_full_runs_committed_files_unchanged(quick_run):
    before, after = quick_run[3]
    assert before['bench/results.json'] is not None and after == before
    assert 'wrote %s and %s' % (os.path.join(REPO, 'bench', 'results-quick.json'),
                                os.path.join(REPO, 'bench', 'RESULTS-quick.md')) in quick_run[2]


def test_quick_and_full_runs_write_different_files():
    from bench import run
    quick, full = run.parse_args(['--quick']), run.parse_args([])
    assert (full.results, full.markdown, full.parts_dir) == (os.path.join(REPO, 'bench', 'results.json'),
                                                             os.path.join(REPO, 'bench', 'RESULTS.md'),
                                                             os.path.join(REPO, 'bench'))
    assert (quick.results, quick.markdown, quick.parts_dir) == (os.path.join(REPO, 'bench', 'results-quick.json'),
                                                                os.path.join(REPO, 'bench', 'RESULTS-quick.md'),
                                                                os.path.join(REPO, 'bench', 'quick'))
    assert run.parse_args(['--quick', '--results', 'r.json']).results == 'r.json'      # given paths win


def test_quick_run_writes_valid_rows(quick_run):
    folder, results, _, _ = quick_run
    parts = ['data', 'shards', 'metric', 'inference', 'train_step', 'distributed', 'time_to_accuracy',
             'soak']   # running order
    assert results['quick'] is True and results['parts'] == parts
    assert results['failures'] == [] and results['skipped'] == []
    assert sorted(os.listdir(folder)) == sorted(part + '_results.json' for part in parts)   # no temporary left
    assert not [name for name in os.listdir(os.path.dirname(folder)) if '.tmp' in name]
    rows = list(results['rows'])
    # time to accuracy writes no rows in a quick run: a scaled-down training would not measure it
    assert [row['part'] for row in rows] == (['data'] * 3 + ['shards'] * 2 + ['metric'] * 2 + ['inference'] * 2
                                             + ['train_step'] * 2 + ['distributed'] * 2 + ['soak'])
    soak = rows.pop()
    packing, memory = rows.pop(3), rows.pop(3)  # shards: 1200 images into 8 parts; peak RSS at 300 vs 1200
    assert packing['ratio'] == pytest.approx(packing['ours'] / packing['peer'], rel=2e-3, abs=1e-3)
    assert packing['met'] == (packing['ratio'] >= 1.5) and packing['peer'] > 0
    small, large = memory['peak_rss_mib']['300'], memory['peak_rss_mib']['1200']
    assert memory['ours'] == pytest.approx(100 * (large - small) / small, abs=0.2) and 20 < small < 1000
    assert memory['met'] == (memory['ours'] < 10.0) and memory['peer'] is None
    scaling, communication = rows.pop(9), rows.pop(9)   # distributed: 2 workers vs 1; push/pull share of a step
    assert ROW_KEYS <= set(scaling) and ROW_KEYS <= set(communication)
    assert scaling['unit'] == 'img/s' and scaling['peer_name'] == '1 worker, dist_sync under tools/launch.py -n 1'
    assert scaling['ratio'] == pytest.approx(scaling['ours'] / scaling['peer'], rel=2e-3, abs=1e-3)
    assert scaling['met'] == (scaling['ratio'] >= 1.6) and scaling['target'] == 1.6 and scaling['peer'] > 0
    assert scaling['runs_ours_img_s'] == [scaling['ours']] and scaling['runs_peer_img_s'] == [scaling['peer']]
    # the share: 1 - the 2 workers' img/s over 2 processes training alone (one repeat), and the push/pull alone
    alone = communication['alone_img_s']
    assert communication['shares_percent'] == [communication['ours']] and alone > 0
    assert communication['ours'] == pytest.approx(100 * (1 - scaling['ours'] / alone), abs=0.05)
    assert scaling['ceiling_ratio'] == pytest.approx(alone / scaling['peer'], rel=2e-3, abs=1e-3)
    assert communication['unit'] == '%' and communication['peer'] is None and communication['ours'] < 100
    assert communication['met'] == (communication['ours'] < 25.0) and communication['higher_is_better'] is False
    isolated = communication['isolated_shares_percent']            # one per worker
    assert len(isolated) == 2 and all(0 < value < 100 for value in isolated)
    assert communication['push_pull_s'] > 0 and communication['gradient_mb'] > 1
    rss = soak['rss_mib']                        # one per epoch of the quick run: growth from epoch 5 to the last
    assert len(rss) == 12 and soak['ours'] == pytest.approx(100 * (rss[-1] - rss[4]) / rss[4], abs=0.05)
    assert soak['max_growth_percent'] == pytest.approx(100 * (max(rss[4:]) - rss[4]) / rss[4], abs=0.05)
    assert soak['met'] == (soak['ours'] < 2.0) and all(300 < value < 3000 for value in rss)
    for row in rows:
        assert ROW_KEYS <= set(row), row
        assert row['peer'] > 0 and (row.get('applicable') is False or row['ours'] > 0), row
    data_rows, metric_rows, inference_rows, step_rows = rows[:3], rows[3:5], rows[5:7], rows[7:]
    assert [row['target'] for row in data_rows] == [1.2, 0.5, 2.0]
    for row in data_rows + inference_rows:      # rates: ours over the peer's (ratio rounded to 3 decimals)
        assert row['ratio'] == pytest.approx(row['ours'] / row['peer'], rel=2e-3, abs=1e-3)
    for row in metric_rows:                     # seconds: the ratio is the peer's time over ours
        assert row['unit'] == 's' and row['target'] == 5.0
        assert row['ratio'] == pytest.approx(row['peer'] / row['ours'], rel=2e-3)
        assert row['values_equal'] is True and row['max_difference'] <= 1e-6
        assert abs(row['ours_value'] - row['peer_value']) <= 1e-6 and 0 < row['ours_value'] < 1
        assert row['met'] == (row['ratio'] >= 5.0)
    assert [row['batch_size'] for row in inference_rows] == [1, 8]
    for row in inference_rows:                  # images/s: INT8 over FP32
        assert row['unit'] == 'img/s' and row['peer_name'] == 'FP32 deploy graph'
        assert 0 <= row['detections_per_image'] <= 400 and row['weights'] == 'random (seed 0)'
    float32, bf16 = step_rows
    assert float32['target'] == 1.0 and float32['ratio'] == pytest.approx(float32['ours'] / float32['peer'], rel=0.02)
    assert bf16['target'] == 1.5 and bf16['peer'] == float32['peer']                   # both against gluoncv float32
    assert (bf16['applicable'] is False) == (report.verdict(bf16) == 'n/a') == (bf16['ratio'] is None)
    machine = results['machine']
    assert machine['cores'] >= 1 and machine['mxnet'] == '1.9.1' and 'MKLDNN' in machine['mxnet_features']
    assert set(machine['cpu_flags']) == set(report.CPU_FLAGS) and machine['threads']['OMP_NUM_THREADS']


def test_quick_run_renders_markdown_and_table(quick_run):
    _, results, stdout, _ = quick_run
    with open(os.path.join(REPO, 'bench', 'RESULTS-quick.md')) as handle:
        markdown = handle.read().splitlines()
    assert markdown == report.markdown_lines(results['rows'], results['machine'], True)
    for row in results['rows']:
        assert sum(line.startswith('| %s | %s | ' % (row['part'], row['name'])) for line in markdown) == 1
        assert row['name'] in stdout
    assert 'VOC07 11-point mAP 300x100 (s)' in stdout            # the quick size, 300 images


def test_run_rejects_unknown_part(tmp_path):
    result = run_script('bench/run.py', '--only', 'metric,speed', '--results', str(tmp_path / 'r.json'))
    assert result.returncode == 2
    assert result.stdout.strip() == ("error: --only 'metric,speed': choose among data, shards, metric, inference, "
                                     "train_step, distributed, time_to_accuracy, soak (comma-separated)")
    assert os.listdir(tmp_path) == []


def test_markdown_from_hand_made_rows():
    rows = [
        dict(part='metric', name='VOC07 mAP 4x2 (s)', unit='s', ours=0.25, peer=2.0, peer_name='gluoncv VOC07',
             ratio=8.0, target=5.0, met=True, ours_value=0.5, peer_value=0.5, max_difference=0.0),
        dict(part='inference', name='deploy batch 1 (img/s)', unit='img/s', ours=1234.5, peer=617.25,
             peer_name='FP32', ratio=2.0, target=None, met=None, weights='random', detections_per_image=12.5),
        dict(part='train_step', name='train step x', unit='img/s', ours=None, peer=3.0, ratio=None, target=1.0,
             error='side ours: out of memory'),
        dict(part='data', name='loading (img/s)', ours=10.0, peer=20.0, peer_name='gluoncv', ratio=0.5,
             target=2.0),                                        # no 'met': computed from ratio and target
    ]
    machine = dict(cpu='Test CPU', cores=2, cpu_flags={'avx512_bf16': False, 'avx512_vnni': True},
                   load_average=[1.5, 1.0, 0.5], load_average_start=[0.25, 0.1, 0.1],
                   threads={'OMP_NUM_THREADS': '2'}, mxnet='1.9.1', mxnet_features=['MKLDNN', 'OPENMP'],
                   python='3.11.7', numpy='1.23.5', date='2026-11-24 03:00')
    assert report.markdown_lines(rows, machine, quick=False, failures=[('data', 'failed: status 1')]) == [
        '# Benchmark results',
        '',
        '`make bench`, 2026-11-24 03:00. Each ratio compares two sides measured in the same run, alternating, as '
        'the median of several repetitions after a warm-up; higher is better (for times in seconds, the ratio '
        'is peer / project).',
        '',
        '## Machine',
        '',
        '- CPU: Test CPU, 2 cores available; AVX512_BF16 no, AVX512_VNNI yes',
        '- load average (1 min) at start 0.25, at end 1.5: other work may share the machine; the ratios compare '
        'sides measured alternately under the same load',
        '- thread settings: OMP_NUM_THREADS=2',
        '- MXNet 1.9.1; build features enabled: MKLDNN, OPENMP',
        '- Python 3.11.7, NumPy 1.23.5',
        '',
        '## Results',
        '',
        '| part | measure | project | peer | ratio | target | |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        '| metric | VOC07 mAP 4x2 (s) | 0.25 | 2 (gluoncv VOC07) | 8.00 | >= 5 | met |',
        '| inference | deploy batch 1 (img/s) | 1234 | 617.2 (FP32) | 2.00 | - |  |',
        '| train_step | train step x | - | 3 | - | >= 1 | failed |',
        '| data | loading (img/s) | 10 | 20 (gluoncv) | 0.50 | >= 2 | MISSED |',
        '',
        '## Notes',
        '',
        '- VOC07 mAP 4x2 (s): mAP project 0.500000, peer 0.500000 (largest difference over the per-class APs '
        'and the mean: 0.0e+00)',
        '- deploy batch 1 (img/s): random weights; 12.5 boxes per image reach NMS',
        '- train step x: error: side ours: out of memory',
        '',
        '## Parts that failed',
        '',
        '- data: failed: status 1',
    ]


def test_console_table_from_hand_made_rows():
    rows = [dict(part='metric', name='m', ours=0.5, peer=1.5, peer_name='p', ratio=3.0, target=5.0)]
    lines = report.table_lines(rows)
    assert lines[0] == 'part       measure    project       peer   ratio   target'     # measure: 7 wide
    assert lines[1] == '-' * len(lines[0])
    assert lines[2] == 'metric     m              0.5        1.5    3.00     >= 5  MISSED'
    assert lines[3:] == ['  m: peer: p']


def test_metric_data_by_hand():
    labels, detections = bench_metric.make_detections(50, 30)
    assert labels.shape == (50, bench_metric.MAX_OBJECTS, 6) and detections.shape == (50, 30, 6)
    objects = (labels[..., 0] >= 0).sum(axis=1)
    assert objects.min() >= 1 and objects.max() <= bench_metric.MAX_OBJECTS
    assert (labels[..., 0] >= 0).all(axis=0)[0]                       # objects fill the rows from the start
    assert len(np.unique(detections[..., 1])) == detections[..., 1].size      # no tied scores
    assert (detections[..., 0] >= 0).all() and detections[..., 0].max() < bench_metric.NUM_CLASSES
    # rows 0..19 copy objects 0..9, 0..9 with a jitter of sd 0.03 (mean absolute 0.024) where the object exists
    source = np.arange(20) % bench_metric.MAX_OBJECTS
    copied = labels[:, source, 0] >= 0                                            # (50, 20)
    jitter = np.abs(detections[:, :20, 2:] - labels[:, source, 1:5])[copied]
    assert 0.018 < jitter.mean() < 0.03
    assert (detections[:, :20, 0] == labels[:, source, 0])[copied].mean() > 0.85  # 90 % keep their class
    assert (detections[:, :20, 1][copied] >= 0.3).all() and (detections[:, 20:, 1] < 0.8).all()


def test_metric_inputs_to_gluoncv_shift_xmax_ymax_by_one_pixel():
    labels = np.array([[[2, .1, .2, .5, .6, 1]]])
    detections = np.array([[[3, .9, 0, .2, .4, 1]]])
    (boxes, classes, scores, gt_boxes, gt_classes, difficult), = bench_metric.gluoncv_inputs(labels, detections)
    np.testing.assert_allclose(boxes, [[[0, 100, 199, 499]]])
    np.testing.assert_allclose(gt_boxes, [[[50, 100, 249, 299]]])
    assert classes.tolist() == [[3]] and scores.tolist() == [[.9]] and gt_classes.tolist() == [[2]]
    assert difficult.tolist() == [[1]]


def test_compare_values():
    ours = (['a', 'b', 'mAP'], [0.5, float('nan'), 0.5])
    assert bench_metric.compare_values(ours, (['a', 'b', 'mAP'], [0.5 + 1e-9, float('nan'), 0.5])) == \
        pytest.approx(1e-9)
    assert math.isinf(bench_metric.compare_values(ours, (['a', 'b', 'mAP'], [0.5, 0.1, 0.5])))   # NaN on one side
    assert math.isinf(bench_metric.compare_values(ours, (['a', 'c', 'mAP'], [0.5, float('nan'), 0.5])))


def test_time_to_accuracy_rows_by_hand():
    from bench.bench_time_to_accuracy import goal_rows, mark_rows, time_row
    peer = [{'minutes': 3, 'mAP': 0.1}, {'minutes': 6, 'mAP': 0.3}, {'minutes': 9, 'mAP': 0.5},
            {'minutes': 12, 'mAP': 0.6}]
    runs = {6.0: [{'epoch': 1, 'seconds': 100.0, 'mAP': 0.2}, {'epoch': 2, 'seconds': 350.0, 'mAP': 0.62}],
            12.0: [{'epoch': 1, 'seconds': 100.0, 'mAP': 0.15}, {'epoch': 2, 'seconds': 200.0, 'mAP': None},
                   {'epoch': 3, 'seconds': 500.0, 'mAP': 0.55}, {'epoch': 4, 'seconds': 700.0, 'mAP': 0.72}]}
    marks = mark_rows('demo', peer, runs)
    # 3 min: the 12-min run's last validation by 180 s (epoch 1); 6 and 12: the fitted runs; 9: epoch 3 (500 s)
    assert [row['ours'] for row in marks] == [0.15, 0.62, 0.55, 0.72]
    assert [row['ratio'] for row in marks] == [1.5, round(0.62 / 0.3, 3), 1.1, 1.2]
    assert [row['ours_seconds'] for row in marks] == [180.0, 350.0, 540.0, 700.0]
    goals = goal_rows('demo', peer, runs)
    assert [(row['ours'], row['peer'], row['ratio'], row['target']) for row in goals] == [
        (0.62, 0.6, round(0.62 / 0.6, 3), 1.0), (0.72, 0.6, 1.2, 1.1)]
    assert [report.verdict(row) for row in goals] == ['met', 'met']
    reach = time_row('demo', peer, runs)    # 0.6 first reached at 350 s (the 6-min run), the peer at 720 s
    assert (reach['ours'], reach['peer'], reach['ratio']) == (350.0, 720.0, round(720 / 350, 3))
    slow = time_row('demo', peer, {12.0: runs[12.0][:3]})
    assert slow['ours'] is None and slow['error'] == 'not reached by any of our runs (best mAP 0.550)'
    assert report.verdict(slow) == 'failed'


def test_time_to_accuracy_keeps_the_rows_of_sets_it_did_not_measure():
    from bench.bench_time_to_accuracy import in_set_order, kept_from_earlier, row_set
    earlier = dict(quick=False, rows=[
        dict(name='VOC07 mAP after 3 min, demo set', ours=0.19),              # written before rows had ``set``
        dict(name="time to SSDlite's 12-min mAP (0.006), clutter set (s)", ours=None),
        dict(name='VOC07 mAP after 3 min, clutter-moderate set', ours=0.01, set='clutter-moderate'),
        dict(name='demo recipe final VOC07 mAP, --amp bf16 vs float32', ours=0.7)],
        curves={'demo': {'peer': [1]}, 'clutter-moderate': {'peer': [2]}})
    assert [row_set(row) for row in earlier['rows']] == ['demo', 'clutter', 'clutter-moderate', None]
    rows, curves = kept_from_earlier(earlier, {'clutter-moderate'}, bf16_measured=False)
    assert [row['ours'] for row in rows] == [0.19, None, 0.7] and curves == {'demo': {'peer': [1]}}
    rows, _ = kept_from_earlier(earlier, {'demo', 'clutter'}, bf16_measured=True)    # its bf16 row is new too
    assert [row['ours'] for row in rows] == [0.01]
    assert kept_from_earlier(dict(earlier, quick=True), set(), False) == ([], {})
    assert kept_from_earlier(None, set(), False) == ([], {})
    new = dict(name='VOC07 mAP after 3 min, clutter-moderate set', set='clutter-moderate', ours=0.02)
    ordered = in_set_order([new] + kept_from_earlier(earlier, {'clutter-moderate'}, False)[0])
    assert [row['ours'] for row in ordered] == [0.19, None, 0.02, 0.7]   # demo, clutter, clutter-moderate, bf16
    stamped = dict(new, measured='2026-12-03 20:30, Intel(R) Xeon(R) Processor', peer_name='SSDlite')
    assert report.note_lines([stamped]) == [
        'VOC07 mAP after 3 min, clutter-moderate set: peer: SSDlite; measured 2026-12-03 20:30, Intel(R) Xeon(R) '
        'Processor']


def test_bf16_accuracy_row_by_hand():
    from bench.bench_time_to_accuracy import bf16_row
    float32 = [{'epoch': 1, 'mAP': 0.5}, {'epoch': 2, 'mAP': None}, {'epoch': 3, 'mAP': 0.74}]
    close = bf16_row(float32, [{'epoch': 1, 'mAP': 0.4}, {'epoch': 3, 'mAP': 0.732}])
    assert (close['ours'], close['peer'], close['ratio']) == (0.732, 0.74, round(0.732 / 0.74, 3))
    assert close['met'] is True and report.verdict(close) == 'met' and report.target_text(close) == 'within 0.01'
    far = bf16_row(float32, [{'epoch': 3, 'mAP': 0.729}])          # 0.011 below: more than one point
    assert far['met'] is False and report.verdict(far) == 'MISSED'
    absent = bf16_row(float32, not_applicable='this CPU cannot run bfloat16 convolutions: no primitive')
    assert absent['ours'] is None and absent['applicable'] is False and absent['met'] is None
    assert report.verdict(absent) == 'n/a'
    assert report.note_lines([absent], with_peer=False) == [
        'demo recipe final VOC07 mAP, --amp bf16 vs float32: not applicable: this CPU cannot run bfloat16 '
        'convolutions: no primitive']


def test_a_partial_run_keeps_the_other_parts_rows_and_names_their_machine():
    from bench import run
    old_machine = dict(cpu='AMD EPYC', cores=2, cpu_flags={}, date='2026-11-24 04:47')
    earlier = dict(machine=old_machine, quick=False, parts=['data', 'metric'],
                   rows=[dict(part='data', name='pack', ours=2.0), dict(part='metric', name='VOC07', ours=0.1),
                         dict(part='shards', name='old shards', ours=1.0)])
    this = dict(machine=dict(cpu='Xeon', date='2026-12-02 15:00'), quick=False, parts=['shards'],
                rows=[dict(part='shards', name='pack 8 parts', ours=3.0)])
    merged = run.merged_with_earlier(this, earlier)
    assert [row['name'] for row in merged['rows']] == ['pack', 'pack 8 parts', 'VOC07']   # old shards row replaced
    assert merged['earlier_parts'] == {'data': old_machine, 'metric': old_machine} and merged['parts'] == ['shards']
    assert run.merged_with_earlier(this, dict(earlier, quick=True))['rows'] == this['rows']  # quick never mixes in
    lines = report.markdown_lines(merged['rows'], this['machine'], False, earlier_parts=merged['earlier_parts'])
    assert '- rows of part `data` kept from an earlier run (`run.py --only`): 2026-11-24 04:47, AMD EPYC, 2 cores ' \
           'available; ' in lines


def test_reuse_outputs_reads_a_parts_rows_without_running_it(tmp_path, capsys):
    from bench import run
    (tmp_path / 'metric_results.json').write_text(json.dumps(dict(rows=[dict(name='VOC07 mAP', ours=0.5)])))
    assert run.reused_part('metric', str(tmp_path)) == ([dict(name='VOC07 mAP', ours=0.5, part='metric')], None)
    assert 'rows read from' in capsys.readouterr().out
    rows, problem = run.reused_part('soak', str(tmp_path))
    assert rows is None and 'soak_results.json does not exist (run bench/bench_soak.py first)' in problem
    assert run.part_flags('time_to_accuracy', '/w') == ['--work-dir', '/w']   # the sets go under /w/<set>
