"""evaluate.py and evaluate/evaluate_net.py: the whole validation set scored from a checkpoint gives the training
run's validation mAP; --num-batch, bad input as one line, the output files, COCO numbers (a hand-made case with
known answers), and the deploy graph."""
import contextlib
import inspect
import io
import json
import os
import shutil
import types

import cv2
import mxnet as mx
import numpy as np
import pytest

from config.defaults import PACK
from config.errors import run_cli
from dataset.iterator import DetRecordIter, record_objects
from evaluate import evaluate_net as evaluation
from evaluate.eval_metric import MApMetric, VOC07MApMetric, area_average_precision
from evaluate.evaluate_net import DETECTOR, load_detector
from evaluate.model import load_model
from evaluate.runner import Timing, run_detectors
from tests.test_train import make_dataset, tiny_run
from tools.scripts import load_script
from tools.shards import pack_parts

CLASSES = ('circle', 'square', 'triangle')
NUM_VAL = 16


SCRIPT = load_script('evaluate.py')


def run_script(*argv):
    """evaluate.py's main on ``argv`` (CPU, no bar); returns (summary, printed lines)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = SCRIPT.main(SCRIPT.parse_args(list(argv) + ['--cpu', '--no-progress']))
    return summary, printed.getvalue().splitlines()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two validated epochs of a tiny model: 40 train and 16 val images of 96..128 px with one or two large
    objects of three classes (large enough not to be difficult, so that the mAP after two epochs is not 0)."""
    root = tmp_path_factory.mktemp('evaluate')
    train_rec, val_rec = make_dataset(root, 40, NUM_VAL, classes=','.join(CLASSES), side=(96, 128), max_objects=2,
                                      extra=['--object-size', '0.4,0.8', '--small-share', '0'])
    prefix = str(root / 'm' / 'ssd')
    result = tiny_run(train_rec, prefix, val_path=val_rec, end_epoch=2, lr=0.05)
    return types.SimpleNamespace(prefix=prefix, val_rec=val_rec, root=root, history=result['history'],
                                 best=result['best'])


@pytest.fixture(scope='module')
def full(trained):
    """Epoch 2 scored on the whole val set with COCO numbers, in batches of 12 (the second one holds 4 images
    and 8 fillers)."""
    out = str(trained.root / 'eval2')
    summary, lines = run_script('--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '2',
                                '--batch-size', '12', '--coco-metric', '--out', out)
    return types.SimpleNamespace(summary=summary, lines=lines, out=out)


def same_ap(ours, theirs):
    """Equal to 1e-6, NaN (a class without ground truth) equal to NaN / None."""
    if ours is None or theirs is None or np.isnan(ours) or np.isnan(theirs):
        return (ours is None or np.isnan(ours)) and (theirs is None or np.isnan(theirs))
    return abs(ours - theirs) <= 1e-6


# ------------------------------------------------------------------------------------------ the test
def test_whole_set_voc07_map_equals_the_training_validation_of_that_epoch(trained, full):
    history = {record['epoch']: record['mAP'] for record in trained.history}
    summary = full.summary
    assert summary['num_images'] == NUM_VAL                        # every image, the 8 fillers dropped
    assert history[2] > 0                                          # a real comparison, not 0 == 0
    assert abs(summary['ap']['VOC07']['mAP'] - history[2]) <= 1e-6
    epoch1, _ = run_script('--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '1',
                           '--out', str(trained.root / 'eval1'))   # one batch of 32: 16 images, 16 fillers
    assert epoch1['num_images'] == NUM_VAL and epoch1['batch_size'] == 32
    assert abs(epoch1['ap']['VOC07']['mAP'] - history[1]) <= 1e-6
    best = {1: epoch1, 2: summary}[trained.best['epoch']]['ap']['VOC07']
    assert all(same_ap(best[name], trained.best['ap_per_class'][name]) for name in CLASSES + ('mAP',))
    # the printed table has both columns and ends with the mAPs
    assert full.lines[1].split() == ['class', 'VOC07', 'all-point']
    assert full.lines[2 + len(CLASSES)].split() == ['mAP', '%.4f' % summary['ap']['VOC07']['mAP'],
                                                   '%.4f' % summary['ap']['all-point']['mAP']]
    assert any('images/s' in line for line in full.lines)


def detections_by_image(model, module, spec):
    """``{image's ground-truth rows as a tuple: its (K, 6) detections}`` over one pass of ``spec``."""
    found = {}

    def keep(labels, detections):
        for rows, boxes in zip(labels, detections[DETECTOR]):
            found[tuple(np.round(rows[rows[:, 0] >= 0], 4).ravel())] = boxes[boxes[:, 0] >= 0]
    batches = DetRecordIter(spec, 5, model.data_shape, model.mean_pixels, std_pixels=model.std_pixels, preset='val')
    run_detectors({DETECTOR: module}, batches, [keep], progress=False)
    return found


def test_a_parts_manifest_scores_the_same_images_as_the_whole_rec(trained, full):
    """The validation list packed in 3 parts and scored through its manifest: every image once, each with the
    detections it gets from the whole .rec (the tiny model's scores tie across images, so the mAP itself depends
    on the order of the images and is not compared)."""
    target = str(trained.root / 'val_parts' / 'val.lst')
    os.makedirs(os.path.dirname(target))
    shutil.copy(str(trained.root / 'val.lst'), target)
    shutil.copy(str(trained.root / 'val.classes'), str(trained.root / 'val_parts' / 'val.classes'))
    options = dict(quality=PACK['quality'], encoding=PACK['encoding'], resize=PACK['resize'], pass_through=False)
    pack_parts(target, str(trained.root / 'VOC'), 3, options, progress=False, num_thread=1)  # as prepare_dataset.py
    manifest = str(trained.root / 'val_parts' / 'val.json')
    summary, _ = run_script('--rec-path', manifest, '--prefix', trained.prefix, '--epoch', '2', '--batch-size', '5',
                            '--out', str(trained.root / 'eval_parts'))
    assert summary['num_images'] == full.summary['num_images'] == NUM_VAL
    assert summary['num_ground_truth'] == full.summary['num_ground_truth']
    model, module = load_detector(trained.prefix, 2, [mx.cpu()], 5)
    whole, parts = (detections_by_image(model, module, spec) for spec in (trained.val_rec, manifest))
    assert len(whole) == NUM_VAL and sorted(parts) == sorted(whole)
    assert all(np.allclose(parts[key], whole[key], atol=1e-5) for key in whole)


def test_num_batch_one_scores_exactly_one_batch(trained, tmp_path):
    summary, _ = run_script('--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '2',
                            '--batch-size', '8', '--num-batch', '1', '--out', str(tmp_path))
    first_eight = list(record_objects(trained.val_rec).values())[:8]     # records in file order
    assert summary['num_images'] == 8
    assert summary['num_ground_truth'] == sum(len(objects) for objects in first_eight)
    with open(tmp_path / 'detections.json') as handle:
        assert {result['image_id'] for result in json.load(handle)} <= set(range(8))


# ------------------------------------------------------------------------------------------ flags
def test_flags_reach_evaluate_net_and_the_checkpoint_decides_by_default(monkeypatch):
    captured = []
    monkeypatch.setattr(evaluation, 'evaluate_net', lambda **kwargs: captured.append(kwargs))
    SCRIPT.main(SCRIPT.parse_args(['--prefix', 'm/p', '--epoch', '3', '--cpu']))
    defaults = captured.pop()
    inspect.signature(evaluation.evaluate_net).bind(**defaults)          # every key is a parameter
    assert (defaults['prefix'], defaults['epoch'], defaults['rec_path'], defaults['ctx']) == (
        'm/p', 3, 'data/val.rec', [mx.cpu()])
    assert all(defaults[key] is None for key in ('network', 'data_shape', 'num_class', 'class_names', 'nms_thresh',
                                                 'force_suppress', 'num_batch', 'out_dir', 'label_width'))
    assert defaults['mean_pixels'] == defaults['std_pixels'] == (None, None, None)
    assert defaults['batch_size'] == 32 and defaults['overlap'] == 0.5 and defaults['progress']
    assert not (defaults['deploy'] or defaults['coco_metric'] or defaults['use_difficult'])
    SCRIPT.main(SCRIPT.parse_args([
        '--prefix', 'm/p', '--epoch', '3', '--cpu', '--rec-path', 'v.rec', '--network', 'resnet50',
        '--data-shape', '128', '--num-class', '4', '--class-names', 'a,b,c,d', '--nms', '0.3', '--no-force',
        '--mean-g', '7', '--std-r', '58', '--batch-size', '5', '--num-batch', '2', '--label-width', '9',
        '--overlap', '0.7', '--use-difficult', '--coco-metric', '--deploy', '--deploy-dir', 'd', '--out', 'o',
        '--no-progress']))
    given = captured.pop()
    assert given == dict(
        defaults, rec_path='v.rec', network='resnet50', data_shape=128, num_class=4, class_names='a,b,c,d',
        nms_thresh=0.3, force_suppress=False, mean_pixels=(None, 7.0, None), std_pixels=(58.0, None, None),
        batch_size=5, num_batch=2, label_width=9, overlap=0.7, use_difficult=True, coco_metric=True, deploy=True,
        deploy_dir='d', out_dir='o', progress=False)


# ------------------------------------------------------------------------------------------ bad input
def run_failing(capsys, *argv):
    """evaluate.py through run_cli on ``argv``: exits with status 2 and one ``error:`` line, returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(SCRIPT.main, SCRIPT.parse_args(list(argv) + ['--cpu', '--no-progress']))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err and 'Traceback' not in err
    return err


def test_missing_epoch_lists_the_saved_epochs(trained, capsys):
    err = run_failing(capsys, '--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '7')
    assert 'ssd-0007.params does not exist; epochs saved under this prefix: 1, 2' in err


def test_wrong_class_count_names_both_numbers(trained, capsys):
    err = run_failing(capsys, '--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '2',
                      '--num-class', '5')
    assert '--num-class 5' in err and 'has 3 classes' in err
    err = run_failing(capsys, '--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '2',
                      '--class-names', 'a,b')                # two names for three trained class heads
    assert '2 classes asked for (a, b)' in err and 'trained with 3' in err


def test_data_with_other_classes_is_refused_naming_both_lists(trained, tmp_path, capsys):
    for suffix in ('.rec', '.idx'):
        shutil.copy(trained.val_rec[:-4] + suffix, str(tmp_path / ('val' + suffix)))
    for names, words in (('circle\nsquare\n', 'lists 2 classes (circle, square), the checkpoint has 3'),
                         ('square\ncircle\ntriangle\n', 'lists 3 classes (square, circle, triangle)')):
        (tmp_path / 'val.classes').write_text(names)
        err = run_failing(capsys, '--rec-path', str(tmp_path / 'val.rec'), '--prefix', trained.prefix, '--epoch',
                          '2')
        assert words in err and "data packed with the checkpoint's classes" in err


def test_missing_rec_and_bad_num_batch_name_the_flag(trained, capsys):
    err = run_failing(capsys, '--rec-path', str(trained.root / 'nope.rec'), '--prefix', trained.prefix,
                      '--epoch', '2')
    assert '--rec-path' in err and 'nope.rec does not exist' in err
    err = run_failing(capsys, '--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '2',
                      '--num-batch', '0')
    assert '--num-batch 0' in err


# ------------------------------------------------------------------------------------------ output files
def test_detections_json_is_coco_results_inside_the_canvas(full):
    with open(os.path.join(full.out, 'detections.json')) as handle:
        results = json.load(handle)
    assert 0 < len(results) <= full.summary['num_detections']
    canvas = evaluation.COCO_CANVAS
    for result in results:
        assert set(result) == {'image_id', 'category_id', 'bbox', 'score'}
        assert 0 <= result['image_id'] < NUM_VAL and 0 <= result['category_id'] < len(CLASSES)
        x, y, width, height = result['bbox']
        assert 0 <= x and 0 <= y and width >= 0 and height >= 0
        assert x + width <= canvas + 1e-6 and y + height <= canvas + 1e-6
        assert 0 < result['score'] <= 1
    per_image_class = np.bincount([r['image_id'] * len(CLASSES) + r['category_id'] for r in results])
    assert per_image_class.max() <= evaluation.COCO_MAX_DETECTIONS


def test_one_precision_recall_png_per_class_and_a_summary(full):
    pictures = sorted(name for name in os.listdir(full.out) if name.startswith('pr_'))
    assert pictures == sorted('pr_%s.png' % name for name in CLASSES)
    for name in pictures:
        image = cv2.imread(os.path.join(full.out, name))
        assert image is not None and image.shape[0] > 100 and image.shape[2] == 3
    with open(os.path.join(full.out, 'summary.json')) as handle:
        saved = json.load(handle)
    assert saved['epoch'] == 2 and saved['prefix'] == full.summary['prefix'] and saved['num_images'] == NUM_VAL
    assert saved['ap']['VOC07']['mAP'] == pytest.approx(full.summary['ap']['VOC07']['mAP'], abs=1e-12)
    assert saved['images_per_second'] > 0 and set(saved['coco']) == {'AP', 'AP50', 'AP75'}
    assert not [name for name in os.listdir(full.out) if '.tmp-' in name]   # nothing half-written left


def test_coco_numbers_are_fractions_and_ap50_at_least_ap75(full):
    coco = full.summary['coco']
    assert 0 < coco['AP50'] <= 1 and 0 <= coco['AP75'] <= coco['AP50'] and 0 <= coco['AP'] <= coco['AP50']
    assert any(line.startswith('COCO AP@[.5:.95] %.4f  AP50 %.4f' % (coco['AP'], coco['AP50']))
               for line in full.lines)


# ------------------------------------------------------------------------------------------ hand-made case
A, B, FAR = (0.2, 0.2, 0.6, 0.7), (0.1, 0.2, 0.3, 0.5), (0.6, 0.6, 0.9, 0.9)
C, C_068 = (0.1, 0.1, 0.5, 0.5), (0.1, 0.1, 0.5, 0.372)       # IoU 0.4 * 0.272 / 0.16 = 0.68


def hand_made_batch():
    """Two images. Class 0: ground truth A (image 0), B (image 1); detections A 0.9 (hit), FAR 0.8 (miss),
    B 0.7 (hit). Class 1: ground truth C (image 0), one detection of IoU 0.68 with it, score 0.6."""
    labels = np.full((2, 2, 6), -1.0, np.float32)
    labels[0, 0], labels[0, 1], labels[1, 0] = (0,) + A + (0,), (1,) + C + (0,), (0,) + B + (0,)
    detections = np.full((2, 3, 6), -1.0, np.float32)
    detections[0, 0], detections[0, 1] = (0, 0.9) + A, (1, 0.6) + C_068
    detections[1, 0], detections[1, 1] = (0, 0.8) + FAR, (0, 0.7) + B
    return labels, detections


def test_hand_made_case_voc_coco_and_curves_give_the_worked_out_numbers():
    labels, detections = hand_made_batch()
    names = ['zero', 'one']
    area, voc07 = MApMetric(class_names=names), VOC07MApMetric(class_names=names)
    curves, images = evaluation.PrecisionRecallCurves(2), evaluation.ScoredImages()
    for consumer in (area.update_arrays, voc07.update_arrays, curves.update, images.update):
        consumer(labels, detections)
    # class 0: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; class 1: one hit
    precision, recall = curves.curve(0)
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1])
    assert area.get()[1] == pytest.approx([0.5 + 0.5 * 2 / 3, 1, (5 / 6 + 1) / 2])
    assert area_average_precision(*curves.curve(0)) == area.get()[1][0]    # the drawn curve is the scored one
    assert voc07.get()[1][0] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)     # recall 0..0.5: 1, 0.6..1: 2/3
    dataset = evaluation.coco_ground_truth(images.ground_truth, names)
    results = evaluation.coco_results(images.detections)
    assert [(r['image_id'], r['category_id'], r['bbox']) for r in results if r['score'] == 0.6] == [
        (0, 1, [100.0, 100.0, 400.0, 272.0])]
    coco = evaluation.coco_average_precision(dataset, results)
    # COCO samples precision at 101 recalls 0, 0.01, ..., 1: class 0 gives 1 up to recall 0.5, then 2/3, at
    # every IoU threshold (its hits are exact); class 1 hits at IoU thresholds 0.5..0.65 (4 of 10), not 0.75
    class0 = np.mean(np.where(np.linspace(0, 1, 101) <= 0.5, 1, 2 / 3))      # (51 + 50 * 2/3) / 101 = 0.835
    assert coco['AP50'] == pytest.approx((class0 + 1) / 2, abs=1e-9)
    assert coco['AP75'] == pytest.approx(class0 / 2, abs=1e-9)
    assert coco['AP'] == pytest.approx((class0 + 0.4) / 2, abs=1e-9)


def test_coco_ap50_equals_the_all_point_map_when_precision_is_flat():
    """One object per class found after one miss: precision 1/2 from recall 0 to 1, so the 101-point
    sample and the area are both exactly 0.5 (and 1 for a class found first)."""
    labels = np.full((1, 2, 6), -1.0, np.float32)
    labels[0, 0], labels[0, 1] = (0,) + A + (0,), (1,) + C + (0,)
    detections = np.full((1, 3, 6), -1.0, np.float32)
    detections[0, 0], detections[0, 1], detections[0, 2] = (0, 0.9) + FAR, (0, 0.8) + A, (1, 0.7) + C
    area, images = MApMetric(class_names=['a', 'b']), evaluation.ScoredImages()
    area.update_arrays(labels, detections)
    images.update(labels, detections)
    coco = evaluation.coco_average_precision(evaluation.coco_ground_truth(images.ground_truth, ['a', 'b']),
                                             evaluation.coco_results(images.detections))
    assert area.get()[1][-1] == pytest.approx(0.75) and coco['AP50'] == pytest.approx(0.75, abs=1e-9)


def test_a_class_with_ground_truth_but_no_detection_gets_ap_0_a_curve_and_a_summary(tmp_path):
    """An early checkpoint: class 'one' has ground truth C and no detection at all (it crashed
    plot_precision_recall: x and y of shapes (1,) and (0,)); class 'two' has neither."""
    labels, detections = hand_made_batch()
    detections[0, 1] = -1                                          # the only class-1 detection is gone
    names = ['zero', 'one', 'two']
    scores = evaluation.Scores.start(names, 0.5, False)
    for consumer in scores.consumers():
        consumer(labels, detections)
    summary = dict(prefix='p', epoch=1, rec_path='val.rec', graph='checkpoint', batch_size=2,
                   **scores.summary(2, Timing(1.0, 0.5), (0.45, False)))
    paths = evaluation.write_outputs(str(tmp_path), summary, [], scores.curves, names)
    for column in ('VOC07', 'all-point'):
        assert summary['ap'][column]['one'] == 0 and np.isnan(summary['ap'][column]['two'])
    assert summary['ap']['all-point']['mAP'] == pytest.approx((0.5 + 0.5 * 2 / 3 + 0) / 2)
    with open(paths['summary']) as handle:
        assert json.load(handle)['ap']['VOC07']['one'] == 0
    for path in paths['pr_curves']:
        assert cv2.imread(path) is not None
    assert [line.split()[:2] for line in evaluation.report_lines(summary)[3:5]] == [['one', '0.0000'],
                                                                                   ['two', 'nan']]


def test_cli_run_where_a_class_gets_no_detection_prints_the_table_and_writes_the_summary(trained, tmp_path,
                                                                                         monkeypatch):
    """evaluate.py on the tiny model with every 'square' detection removed before scoring (as an early
    checkpoint that never predicts a class): square gets AP 0, its curve picture and the summary are written."""
    real_run = evaluation.run_detectors

    def without_squares(consumer):
        def fed(labels, found):
            found = {title: detections.copy() for title, detections in found.items()}
            for detections in found.values():
                detections[detections[:, :, 0] == CLASSES.index('square')] = -1
            consumer(labels, found)
        return fed

    monkeypatch.setattr(evaluation, 'run_detectors', lambda detectors, data_iter, consumers, *rest, **options:
                        real_run(detectors, data_iter, [without_squares(c) for c in consumers], *rest, **options))
    out = str(tmp_path / 'no_squares')
    summary, lines = run_script('--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '1',
                                '--out', out)
    assert summary['ap']['VOC07']['square'] == 0 and summary['ap']['all-point']['square'] == 0
    assert [line.split()[:2] for line in lines if line.startswith('square')] == [['square', '0.0000']]
    with open(os.path.join(out, 'summary.json')) as handle:
        assert json.load(handle)['ap']['VOC07']['square'] == 0
    assert cv2.imread(os.path.join(out, 'pr_square.png')) is not None


# ------------------------------------------------------------------------------------------ deploy graph
def test_deploy_graph_scores_like_the_checkpoint(trained, full, tmp_path, capsys):
    model = load_model(trained.prefix, 2)
    deploy_dir = tmp_path / 'deployed'
    base = str(deploy_dir / ('deploy_' + os.path.basename(trained.prefix)))     # the files deploy.py writes
    os.makedirs(deploy_dir)
    model.deploy_symbol().save(base + '-symbol.json')
    arg_params, aux_params = model.deploy_params()
    arrays = {'arg:' + name: value for name, value in arg_params.items()}
    arrays.update({'aux:' + name: value for name, value in aux_params.items()})
    mx.nd.save(base + '-0002.params', arrays)
    summary, _ = run_script('--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '2',
                            '--deploy', '--deploy-dir', str(deploy_dir), '--out', str(tmp_path / 'out'))
    assert summary['graph'] == 'deploy' and summary['num_images'] == NUM_VAL
    for column in ('VOC07', 'all-point'):
        assert abs(summary['ap'][column]['mAP'] - full.summary['ap'][column]['mAP']) <= 1e-9
    assert summary['num_detections'] == full.summary['num_detections']
    err = run_failing(capsys, '--rec-path', trained.val_rec, '--prefix', trained.prefix, '--epoch', '1',
                      '--deploy', '--deploy-dir', str(deploy_dir))
    assert 'deploy_ssd-0001.params does not exist (deploy epochs saved: 2)' in err and 'deploy.py' in err
