"""train/visuals.py and train/tensorboard.py: the run directory's pictures (first training batches, best-epoch PR
curves and detections) and the TensorBoard event file (scalars, images, PR curves), on the tiny network."""
import os
import struct
import sys

import cv2
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from config.schema import DEFAULTS
from dataset.iterator import DetRecordIter
from evaluate.eval_metric import FALSE_POSITIVE, TRUE_POSITIVE
from evaluate.runner import map_metric
from evaluate.visualize import class_color
from tests.test_train import BATCH, SHAPE, make_dataset, tiny_run
from tools.scripts import load_script
from train import tensorboard, visuals
from train.callbacks import Hook

STD = (58.4, 57.1, 57.4)            # not 1, so that a picture without the std undone would be far off
EPOCHS, BATCHES, FREQUENT = 2, 5, 2   # 40 training images in batches of 8


class Recorder(Hook):
    """What the trainer showed a user hook: the first fetched batches (copied), every batch's losses, the
    validations."""

    def __init__(self):
        self.fetched, self.losses, self.validation = [], {}, {}

    def batch_fetched(self, state):
        if len(self.fetched) < 3:
            batch = state.data_batch
            self.fetched.append((state.epoch, state.data_batch_index, batch.data[0].asnumpy(),
                                 batch.label[0].asnumpy()))

    def after_batch(self, state):
        self.losses[tensorboard.updates_done(state)] = state.losses()

    def after_epoch(self, state):
        if state.validation is not None:
            self.validation[state.epoch + 1] = dict(state.validation)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """40 training and 16 validation images with six classes."""
    return make_dataset(tmp_path_factory.mktemp('visuals_data'), 40, 16)


@pytest.fixture(scope='module')
def validated_run(data, tmp_path_factory):
    """Two validated epochs with TensorBoard, warm-up (a changing LR) and a std to undo."""
    prefix = str(tmp_path_factory.mktemp('visuals') / 'run')
    recorder = Recorder()
    result = tiny_run(data[0], prefix, val_path=data[1], end_epoch=EPOCHS, frequent=FREQUENT, lr=0.01,
                      warmup_epochs=1, std_pixels=STD, hooks=[recorder])
    return result, recorder


def read_events(logdir):
    """Every ``Event`` of the one event file in ``logdir`` (TFRecord: length, its CRC, the bytes, their CRC)."""
    (name,) = os.listdir(logdir)
    events = []
    with open(os.path.join(logdir, name), 'rb') as handle:
        while True:
            header = handle.read(12)
            if len(header) < 12:
                return events
            payload = handle.read(struct.unpack('<Q', header[:8])[0])
            handle.read(4)
            events.append(event_pb2.Event.FromString(payload))


def summaries(events):
    """``{tag: [(step, Summary.Value)]}``."""
    found = {}
    for event in events:
        for value in event.summary.value:
            found.setdefault(value.tag, []).append((event.step, value))
    return found


def first_batches(train_path, label_width, count=3):
    """The first ``count`` training batches read independently of the run (preset 'val': no shuffle)."""
    batches = DetRecordIter(train_path, BATCH, SHAPE, DEFAULTS.data.mean_pixels, label_pad_width=label_width,
                            preset='val', std_pixels=STD)
    return [(batch.data[0].asnumpy(), batch.label[0].asnumpy()) for batch, _ in zip(batches, range(count))]


# ------------------------------------------------------------------------------------------ hand numbers
def test_denormalise_undoes_mean_and_std_and_grid_is_near_square():
    pixels = np.array([[[[0, 255], [128, 7]]] * 3], np.float32)              # (1, 3, 2, 2)
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 0.5)
    data = (pixels - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    assert visuals.denormalise(data, mean, std).tolist() == [[[[0] * 3, [255] * 3], [[128] * 3, [7] * 3]]]
    labels = np.full((8, 2, 6), -1, np.float32)
    assert visuals.batch_grid(np.zeros((8, 3, 64, 64), np.float32), labels, mean, std, ()).shape == (196, 196, 3)
    assert visuals.batch_grid(np.zeros((3, 3, 64, 64), np.float32), labels[:3], mean, std, ()).shape == (130, 130, 3)


def test_threshold_counts_are_tensorboards_bins():
    scores, outcomes = [0.9, 0.6, 0.3], [TRUE_POSITIVE, FALSE_POSITIVE, TRUE_POSITIVE]
    counts = visuals.threshold_counts(scores, outcomes, positives=4, num_thresholds=11)
    assert counts['tp'].tolist() == [2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0]     # score 0.3 counts at 0.3
    assert counts['fp'].tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert counts['fn'].tolist() == [2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4]
    assert counts['tn'].tolist() == [0] * 11
    np.testing.assert_allclose(counts['precision'][[0, 5, 7, 10]], [2 / 3, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(counts['recall'][[0, 5, 10]], [0.5, 0.25, 0.0])


def test_ranked_detections_read_what_the_metric_matched():
    metric = map_metric(('a', 'b', 'c'))
    labels = np.array([[[0, 0.1, 0.1, 0.5, 0.5, 0], [-1] * 6]], np.float32)
    detections = np.array([[[0, 0.8, 0.1, 0.1, 0.5, 0.5], [0, 0.9, 0.6, 0.6, 0.9, 0.9], [1, 0.5, 0, 0, 1, 1],
                            [-1, 0, 0, 0, 0, 0]]], np.float32)
    metric.reset()
    metric.update_arrays(labels, detections)
    (scores_a, outcomes_a, positives_a), (scores_b, outcomes_b, positives_b), (scores_c, _, positives_c) = \
        visuals.ranked_detections(metric)
    np.testing.assert_allclose(scores_a, [0.9, 0.8], rtol=1e-6)
    assert outcomes_a.tolist() == [FALSE_POSITIVE, TRUE_POSITIVE] and positives_a == 1
    assert outcomes_b.tolist() == [FALSE_POSITIVE] and positives_b == 0
    assert len(scores_c) == 0 and positives_c == 0


def test_detections_grid_draws_truth_white_and_detections_above_the_threshold():
    image = np.full((1, 64, 64, 3), 100, np.uint8)
    labels = np.array([[[0, 0.25, 0.25, 0.75, 0.75, 0]]], np.float32)
    detections = np.array([[[1, 0.9, 0.125, 0.125, 0.875, 0.875], [2, 0.2, 0.0625, 0.0625, 0.9375, 0.9375]]],
                          np.float32)
    grid = visuals.detections_grid(image, labels, detections, ('a', 'b', 'c'), thresh=0.5)
    assert grid.shape == (64, 64, 3)
    assert grid[48, 32].tolist() == [255, 255, 255]                 # ground truth's bottom edge: white
    assert tuple(grid[56, 32]) == class_color(1)                    # the 0.9 detection's bottom edge
    assert grid[60, 32].tolist() == [100, 100, 100]                 # the 0.2 one is below the threshold


def test_missing_tensorboardx_is_one_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, 'tensorboardX', None)          # import tensorboardX raises ImportError
    monkeypatch.setattr(tensorboard.LOG, 'propagate', True)         # train_net's set-up turns it off
    with caplog.at_level('WARNING', logger='train'):
        assert tensorboard.tensorboard_hooks('out/x', DEFAULTS.data, 20) == []
    assert [record.getMessage().split(':')[0] for record in caplog.records] == ['TensorBoard off']


def test_no_tensorboard_flag():
    script = load_script('train.py')
    assert script.config_from_args(script.parse_args([])).run.tensorboard is True
    assert script.config_from_args(script.parse_args(['--no-tensorboard'])).run.tensorboard is False


# ------------------------------------------------------------------------------------------ a real run
def test_trainer_hands_hooks_the_batches_fit_trains(data, validated_run):
    result, recorder = validated_run
    expected = first_batches(data[0], result['label_width'])
    assert [(epoch, index) for epoch, index, _, _ in recorder.fetched] == [(0, 0), (0, 1), (0, 2)]
    for (_, _, fetched, labels), (data_array, label_array) in zip(recorder.fetched, expected):
        np.testing.assert_allclose(fetched, data_array, atol=1e-4)
        np.testing.assert_array_equal(labels, label_array)


def test_first_training_batches_as_pictures(data, validated_run):
    result, _ = validated_run
    batches = first_batches(data[0], result['label_width'])
    for number, (data_array, labels) in enumerate(batches):
        picture = cv2.imread(result['prefix'] + '-train_batch%d.jpg' % number)[:, :, ::-1].astype(int)
        assert picture.shape == (3 * 64 + 2 * 2, 3 * 64 + 2 * 2, 3)          # 8 images: 3 x 3 cells, 2 px gaps
        images = np.clip(np.round(data_array * np.reshape(STD, (1, 3, 1, 1)) + np.reshape(
            DEFAULTS.data.mean_pixels, (1, 3, 1, 1))), 0, 255).transpose(0, 2, 3, 1)          # the pixels, by hand
        drawn = visuals.batch_grid(data_array, labels, DEFAULTS.data.mean_pixels, STD, ()).astype(int)
        cell = picture[:64, 66:130]                                          # image 1: row 0, column 1
        untouched = (drawn[:64, 66:130] == images[1]).all(axis=2)            # pixels no box or caption covers
        assert untouched.mean() > 0.5
        assert np.abs(cell - images[1])[untouched].mean() < 3                # the real pixels, to JPEG error
        assert np.abs(cell - images[2])[untouched].mean() > 10               # (another image is far off)
    number, (cls, x0, _, x1, y1) = box_on_top(batches[0][1])
    row, col = int(round(y1 * 64)) + (number // 3) * 66, int(round((x0 + x1) * 32)) + (number % 3) * 66
    edge = cv2.imread(result['prefix'] + '-train_batch0.jpg')[row, col, ::-1].astype(int)
    assert np.abs(edge - class_color(int(cls))).max() < 40                   # its bottom edge in its class colour


def box_on_top(labels):
    """``(image number, [cls, xmin, ymin, xmax, ymax])`` of the first image whose last box (drawn last, on top)
    is at least 16 pixels high and ends above the image's last row: its bottom edge shows nothing else."""
    for number, rows in enumerate(labels):
        box = rows[rows[:, 0] >= 0][-1][:5]
        if (box[4] - box[2]) * 64 >= 16 and round(box[4] * 64) <= 62:
            return number, box
    raise AssertionError('no box to check in the batch')


def test_best_epoch_pictures(validated_run):
    result, _ = validated_run
    prefix, best = result['prefix'], result['best']['epoch']
    before = os.path.getmtime(prefix + '-%04d.params' % (best - 1)) if best > 1 else 0
    for name in ('-pr_curves.png', '-val_detections.jpg'):          # drawn at the best epoch, before its checkpoint
        assert before < os.path.getmtime(prefix + name) < os.path.getmtime(prefix + '-%04d.params' % best)
    assert cv2.imread(prefix + '-pr_curves.png').shape == (400, 480, 3)               # 6 x 5 inches at 80 dpi
    assert cv2.imread(prefix + '-val_detections.jpg').shape == (196, 196, 3)          # the first 8 val images


def test_tensorboard_scalars_images_and_pr_curves(data, validated_run):
    result, recorder = validated_run
    found = summaries(read_events(result['prefix'] + '-tb'))
    batch_steps = [2, 4, 7, 9]                                         # every 2nd batch of 5, two epochs
    epoch_steps = [BATCHES, 2 * BATCHES]
    losses = [name for name in result['history'][0] if name not in ('epoch', 'seconds', 'mAP')]
    assert losses == ['CrossEntropy', 'SmoothL1/positive']
    for tag in ['train/%s' % name for name in losses] + ['train/lr', 'train/images_per_second']:
        assert [step for step, _ in found[tag]] == batch_steps, tag
    lr = [value.simple_value for _, value in found['train/lr']]
    np.testing.assert_allclose(lr, [result['lr_history'][step - 1] for step in batch_steps], rtol=1e-6)
    assert lr == sorted(lr) and lr[0] < lr[-1]                         # the warm-up's rise
    for name in losses:
        np.testing.assert_allclose([value.simple_value for _, value in found['train/' + name]],
                                   [recorder.losses[step][name] for step in batch_steps], rtol=1e-6)
        np.testing.assert_allclose([value.simple_value for _, value in found['epoch/' + name]],
                                   [record[name] for record in result['history']], rtol=1e-6)
    assert [step for step, _ in found['epoch/lr']] == epoch_steps
    assert all(value.simple_value > 0 for _, value in found['epoch/images_per_second'])
    np.testing.assert_allclose([value.simple_value for _, value in found['val/mAP']],
                               [record['mAP'] for record in result['history']], atol=1e-7)
    names = result['config'].data.class_names
    with_truth = [name for name in names if not np.isnan(recorder.validation[1][name])]
    assert sorted(tag for tag in found if tag.startswith('val_ap/')) == sorted('val_ap/' + n for n in with_truth)
    for step, tag in ((1, 'train/batch_0'), (2, 'train/batch_1'), (3, 'train/batch_2')):
        ((logged, image),) = found[tag]
        assert logged == step and (image.image.height, image.image.width) == (196, 196)
    assert [step for step, _ in found['val/detections']] == epoch_steps
    check_pr_curves(found, with_truth, data[1], result['label_width'], names)


def check_pr_curves(found, with_truth, val_path, label_width, names):
    """A PR curve per class with ground truth, at each validation: 6 rows (tp, fp, tn, fn, precision, recall)
    of 101 thresholds, tp + fn = the class's objects in the validation set (counted here from the records)."""
    labels = np.concatenate([batch.label[0].asnumpy()[:BATCH - batch.pad] for batch in DetRecordIter(
        val_path, BATCH, SHAPE, label_pad_width=label_width, preset='val')])
    assert sorted(tag for tag in found if tag.startswith('pr_curve/')) == sorted('pr_curve/' + n for n in with_truth)
    for name in with_truth:
        assert [step for step, _ in found['pr_curve/' + name]] == [BATCHES, 2 * BATCHES]
        tensor = found['pr_curve/' + name][-1][1].tensor
        assert [dim.size for dim in tensor.tensor_shape.dim] == [6, 101]
        tp, _, _, fn, _, recall = np.reshape(tensor.float_val, (6, 101))
        objects = int(np.sum((labels[:, :, 0] == names.index(name)) & (labels[:, :, 5] <= 0)))   # not difficult
        assert (tp + fn == objects).all() and np.allclose(recall, tp / objects)


def test_no_tensorboard_and_no_validation(data, tmp_path):
    result = tiny_run(data[0], tmp_path / 'quiet', tensorboard=False)
    assert not os.path.exists(result['prefix'] + '-tb')
    for number in range(3):
        assert cv2.imread(result['prefix'] + '-train_batch%d.jpg' % number).shape == (196, 196, 3)
    assert not os.path.exists(result['prefix'] + '-pr_curves.png')
    assert not os.path.exists(result['prefix'] + '-val_detections.jpg')
