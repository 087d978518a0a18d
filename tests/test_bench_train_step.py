"""bench/bench_train_step.py at tiny sizes: it runs end to end and writes well-formed rows (no timing checks)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from bench import bench_train_step as bench
from bench import report
from train.amp import bf16_problem

SCRIPT = bench.__file__
BF16_PROBLEM = bf16_problem()


def test_random_batch_is_reproducible_and_padded():
    images, boxes = bench.random_batch(3, 64)
    again, same_boxes = bench.random_batch(3, 64)
    assert images.shape == (3, 3, 64, 64) and images.dtype == np.float32
    assert np.array_equal(images, again) and np.array_equal(boxes, same_boxes)
    assert boxes.shape == (3, bench.MAX_OBJECTS, 5)
    for image_boxes in boxes:
        objects = image_boxes[image_boxes[:, 0] >= 0]
        assert 1 <= len(objects) <= bench.MAX_OBJECTS
        assert (image_boxes[len(objects):] == -1).all()                  # padding only after the objects
        assert (objects[:, 0] < bench.NUM_CLASSES).all()
        assert (objects[:, 1:] >= 0).all() and (objects[:, 1:] <= 1).all()
        assert (objects[:, 3:5] > objects[:, 1:3]).all()                 # xmax > xmin, ymax > ymin


def test_our_label_pads_to_label_width_with_difficult_zero():
    boxes = np.array([[[3, .1, .2, .5, .6], [-1, -1, -1, -1, -1], [-1, -1, -1, -1, -1]]], np.float32)
    label = bench.our_label(boxes)
    assert label.shape == (1, bench.LABEL_WIDTH, 6)
    assert label[0, 0].tolist() == pytest.approx([3, .1, .2, .5, .6, 0])
    assert (label[0, 1:] == -1).all()


@pytest.fixture(scope='module')
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'results.json'
    subprocess.run([sys.executable, SCRIPT, '--quick', '--data-shape', '128', '--batch-size', '1', '--steps', '1',
                    '--warmup', '0', '--amp', 'bf16', '--out', str(out)], check=True, stdout=subprocess.PIPE)
    with open(out) as handle:
        return json.load(handle)


def test_tiny_run_writes_one_row_per_dtype(tiny_results):
    rows = tiny_results['rows']
    assert [row['target'] for row in rows] == [1.0, 1.5]                 # float32, then bf16
    float32 = rows[0]
    assert float32['unit'] == 'img/s' and float32['error'] is None
    assert float32['ours'] > 0 and float32['peer'] > 0
    assert float32['ratio'] == pytest.approx(float32['ours'] / float32['peer'], rel=0.02)
    assert float32['met'] == (float32['ratio'] >= 1.0)
    assert 'mobilenet 128' in float32['name'] and 'ssd_512_mobilenet1.0_voc' in float32['name']
    assert float32['ours_peak_mb'] > 100 and float32['peer_peak_mb'] > 100   # MXNet alone takes more


def test_tiny_run_bf16_row_has_a_ratio_or_says_not_applicable(tiny_results):
    bf16 = tiny_results['rows'][1]
    if BF16_PROBLEM is None:
        assert bf16['ratio'] > 0 and bf16['applicable'] is True
    else:   # oneDNN has no bfloat16 convolution without AVX-512: the row says so instead of a number
        assert bf16['ratio'] is None and bf16['met'] is None and bf16['applicable'] is False
        assert BF16_PROBLEM in bf16['error'] and tiny_results['machine']['cpu'] in bf16['error']
        assert report.verdict(bf16) == 'n/a'


def test_tiny_run_table_and_machine(tiny_results):
    sides = [(row['side'], row['dtype']) for row in tiny_results['table']]
    assert sides == [('gluoncv', 'float32'), ('ours', 'float32'), ('ours', 'bf16')]
    machine = tiny_results['machine']
    assert machine['threads']['OMP_NUM_THREADS'] and len(machine['load_average']) == 3
    assert len(machine['load_average_start']) == 3 and machine['mxnet'] == '1.9.1'
    assert tiny_results['batch_size'] == 1 and tiny_results['steps'] == 1
