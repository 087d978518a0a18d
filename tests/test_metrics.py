"""MApMetric / VOC07MApMetric against GluonCV and by hand; MultiBoxMetric by hand and through a Module."""
import math

import mxnet as mx
import numpy as np
import pytest
from gluoncv.utils.metrics.voc_detection import VOC07MApMetric as GluonVOC07MApMetric
from gluoncv.utils.metrics.voc_detection import VOCMApMetric as GluonVOCMApMetric

from config.errors import UserError
from evaluate.eval_metric import MApMetric, VOC07MApMetric, box_iou
from symbol import multibox, symbol_factory
from train.metric import MultiBoxMetric

NUM_CLASSES = 7           # class 5 only ever appears in detections, class 6 nowhere
CLASS_NAMES = ['c%d' % c for c in range(NUM_CLASSES)]
PIXEL_SCALE = 500.0


def random_batch(rng, num_images, label_width=8, max_detections=24):
    """Seeded labels (B, label_width, 6) and detections (B, max_detections, 6), -1 padded.

    About 1 image in 6 has no object, 15 % of objects are difficult, classes are 0..4; detections are jittered
    copies of objects (higher scores, sometimes of another class, duplicates included) plus random boxes
    of classes 0..5, with a suppressed (-1) row inserted in the middle, as MultiBoxDetection leaves them.
    """
    labels = -np.ones((num_images, label_width, 6))
    detections = -np.ones((num_images, max_detections, 6))
    for image in range(num_images):
        count = rng.integers(0, 6)
        corner = rng.uniform(0, 0.7, (count, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(0.05, 0.3, (count, 2))], axis=1)
        classes = rng.integers(0, 5, count)
        labels[image, :count] = np.column_stack([classes, boxes, rng.random(count) < 0.15])
        rows = []
        for obj in range(count):
            for _ in range(rng.integers(0, 3)):
                cls = classes[obj] if rng.random() < 0.9 else rng.integers(0, 6)
                rows.append([cls, rng.uniform(0.3, 1.0), *(boxes[obj] + rng.normal(0, 0.03, 4))])
        for _ in range(rng.integers(0, 6)):
            corner = rng.uniform(0, 0.7, 2)
            rows.append([rng.integers(0, 6), rng.uniform(0, 0.8), *corner, *(corner + rng.uniform(0.05, 0.3, 2))])
        rows.insert(len(rows) // 2, [-1, 0.5, 0.1, 0.1, 0.2, 0.2])
        rows = np.array(rows[:max_detections])
        detections[image, :len(rows)] = rows
    return labels, detections


def feed_gluoncv(metric, labels, detections, batch_size, difficult=True):
    """Update a GluonCV metric with the same boxes in pixels: GluonCV adds 1 to xmax/ymax before its IoU,
    so it is given ``(S*xmin, S*ymin, S*xmax - 1, S*ymax - 1)`` and computes the IoU of the S-scaled boxes,
    which equals the IoU of the normalized ones."""
    for start in range(0, len(labels), batch_size):
        label, detection = labels[start:start + batch_size], detections[start:start + batch_size]
        det_boxes, gt_boxes = detection[..., 2:6] * PIXEL_SCALE, label[..., 1:5] * PIXEL_SCALE
        det_boxes[..., 2:] -= 1
        gt_boxes[..., 2:] -= 1
        metric.update(det_boxes, detection[..., 0], detection[..., 1], gt_boxes, label[..., 0],
                      label[..., 5] if difficult else None)


def feed(metric, labels, detections, batch_size):
    for start in range(0, len(labels), batch_size):
        metric.update_arrays(labels[start:start + batch_size], detections[start:start + batch_size])
    return metric.get()


@pytest.fixture(scope='module')
def random_set():
    return random_batch(np.random.default_rng(4), 400)


@pytest.mark.parametrize('ours, theirs', [(MApMetric, GluonVOCMApMetric), (VOC07MApMetric, GluonVOC07MApMetric)])
@pytest.mark.parametrize('use_difficult', [False, True])
def test_equals_gluoncv(random_set, ours, theirs, use_difficult):
    labels, detections = random_set
    assert (labels[:, 0, 0] < 0).sum() > 30, 'the set must hold images without objects'
    assert (labels[..., 5] > 0).sum() > 50, 'the set must hold difficult objects'
    gluon = theirs(iou_thresh=0.5, class_names=CLASS_NAMES)
    feed_gluoncv(gluon, labels, detections, batch_size=16, difficult=not use_difficult)
    names, values = feed(ours(0.5, use_difficult=use_difficult, class_names=CLASS_NAMES), labels, detections, 16)
    gluon_names, gluon_values = gluon.get()
    assert names == gluon_names == CLASS_NAMES + ['mAP']
    np.testing.assert_allclose(values, gluon_values, rtol=0, atol=1e-6)       # NaN where GluonCV has NaN
    assert np.isnan(values[5]) and np.isnan(values[6])                         # no ground truth: NaN
    assert 0.2 < values[-1] < 0.9 and np.isfinite(values[:5]).all()


def test_equals_gluoncv_at_other_threshold_without_class_names(random_set):
    labels, detections = random_set
    gluon = GluonVOCMApMetric(iou_thresh=0.7)
    feed_gluoncv(gluon, labels, detections, batch_size=50)
    names, values = feed(MApMetric(ovp_thresh=0.7), labels, detections, 50)
    assert names == ['class_%d' % c for c in range(6)] + ['mAP']              # largest class seen: 5
    assert abs(values[-1] - gluon.get()[1]) < 1e-6


def test_result_does_not_depend_on_batching(random_set):
    labels, detections = random_set
    whole = feed(MApMetric(class_names=CLASS_NAMES), labels, detections, len(labels))[1]
    batched = feed(MApMetric(class_names=CLASS_NAMES), labels, detections, 7)[1]
    np.testing.assert_array_equal(whole, batched)


def one_image(objects, detections, label_width=4, detection_rows=6):
    """(1, label_width, 6) labels and (1, detection_rows, 6) detections from lists of rows, -1 padded."""
    labels = -np.ones((1, label_width, 6))
    labels[0, :len(objects)] = np.reshape(objects, (-1, 6))
    dets = -np.ones((1, detection_rows, 6))
    dets[0, :len(detections)] = np.reshape(detections, (-1, 6))
    return labels, dets


def test_two_objects_three_detections_by_hand():
    # ranked: TP (0.9), FP (0.8, on nothing), TP (0.7): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    labels, dets = one_image([[0, 0, 0, .5, .5, 0], [0, .5, .5, 1, 1, 0]],
                             [[0, .8, .6, 0, .9, .3], [0, .7, .5, .5, 1, 1], [0, .9, 0, 0, .5, .5]])
    area = MApMetric(class_names=['a'])
    area.update_arrays(labels, dets)
    assert area.get() == (['a', 'mAP'], [pytest.approx(.5 * 1 + .5 * 2 / 3)] * 2)
    eleven = VOC07MApMetric(class_names=['a'])
    eleven.update_arrays(labels, dets)
    # recall thresholds 0 .. 0.5 (6 of them) reach precision 1, 0.6 .. 1.0 (5) reach 2/3
    assert eleven.get()[1] == [pytest.approx((6 * 1 + 5 * 2 / 3) / 11)] * 2


def test_duplicates_difficult_and_images_without_objects_by_hand():
    # class 1: a plain object and a difficult one; detections: 0.9 on the plain one (TP), 0.85 on it again
    # (FP, already taken), 0.8 on the difficult one (ignored); 0.7 of class 0 over the plain one (class 0
    # has no ground truth: NaN, left out of the mean)
    objects = [[1, 0, 0, .5, .5, 0], [1, .5, .5, 1, 1, 1]]
    detections = [[1, .9, 0, 0, .5, .5], [1, .85, 0, 0, .5, .5], [1, .8, .5, .5, 1, 1], [0, .7, 0, 0, .5, .5]]
    labels, dets = one_image(objects, detections)
    metric = MApMetric(class_names=['x', 'y'])
    metric.update_arrays(labels, dets)
    names, values = metric.get()
    assert np.isnan(values[0]) and values[1:] == [1.0, 1.0]       # TP then FP: recall 1 at precision 1
    counted = MApMetric(use_difficult=True, class_names=['x', 'y'])
    counted.update_arrays(labels, dets)                             # TP, FP, TP: as in the case above
    assert counted.get()[1][1] == pytest.approx(5 / 6)
    # an image without objects whose detection outscores the others: FP first; precision 1/2 at recall 1
    empty_labels, empty_dets = one_image([], [[1, .95, .2, .2, .4, .4]])
    for metric_class in (MApMetric, VOC07MApMetric):
        metric = metric_class(class_names=['x', 'y'])
        metric.update_arrays(labels, dets)
        metric.update_arrays(empty_labels, empty_dets)
        assert metric.get()[1][1:] == [pytest.approx(.5)] * 2


def test_overlap_threshold_is_inclusive():
    # a detection covering the top half of the object has IoU 0.125 / 0.25 = 0.5 exactly; 0.24 high: 0.48
    for height, expected in ((.25, 1.0), (.24, 0.0)):
        labels, dets = one_image([[0, 0, 0, .5, .5, 0]], [[0, .9, 0, 0, .5, height]])
        metric = MApMetric(ovp_thresh=0.5)
        metric.update_arrays(labels, dets)
        assert metric.get()[1][0] == expected


def test_box_iou_by_hand():
    a = np.array([[0, 0, .5, .5], [0, 0, 1, 1]])
    b = np.array([[.25, .25, .75, .75], [.6, .6, .8, .8]])
    np.testing.assert_allclose(box_iou(a[:, None], b), [[.0625 / .4375, 0], [.25, .04]])
    assert box_iou(np.array([.3, .3, .3, .3]), np.array([.3, .3, .3, .3])) == 0      # empty union: 0


def test_no_data_gives_nan_and_reset_forgets():
    metric = VOC07MApMetric(class_names=['a', 'b'])
    assert np.isnan(metric.get()[1]).all()
    metric.update_arrays(*one_image([[1, 0, 0, .5, .5, 0]], [[1, .9, 0, 0, .5, .5]]))
    assert metric.get()[1][1:] == [1.0, 1.0]
    metric.reset()
    assert np.isnan(metric.get()[1]).all()


def test_class_id_beyond_class_names_is_a_user_error():
    with pytest.raises(UserError, match='class id 3 .* only 2 class names'):
        MApMetric(class_names=['a', 'b']).update_arrays(*one_image([[3, 0, 0, .5, .5, 0]], []))


def test_update_reads_detection_output_by_name():
    labels, dets = one_image([[0, 0, 0, .5, .5, 0]], [[0, .9, 0, 0, .5, .5], [0, .8, .6, .6, .9, .9]])
    outputs = ['cls_prob_output', 'detection_output', 'cls_label_output']
    metric = MApMetric(output_names=outputs)
    metric.update([mx.nd.array(labels)], [mx.nd.zeros((1, 3, 4)), mx.nd.array(dets), mx.nd.zeros((1, 4))])
    by_dict = MApMetric()
    by_dict.update_dict({'label': mx.nd.array(labels)}, {'detection_output': mx.nd.array(dets)})
    assert metric.get() == by_dict.get() == (['class_0', 'mAP'], [1.0, 1.0])
    with pytest.raises(ValueError, match='pass output_names'):
        MApMetric().update([mx.nd.array(labels)], [mx.nd.array(dets), mx.nd.array(dets)])


def multibox_outputs():
    """One image, 3 classes with background, 4 anchors: targets 0, 1, ignored, 2 with p[target] 1/2, 1/4,
    -, 1 -> cross entropy (ln 2 + 2 ln 2 + 0) / 3 = ln 2; two positives, localization loss 3 -> 1.5."""
    cls_prob = np.array([[[.5, .5, .2, 0], [.25, .25, .3, 0], [.25, .25, .5, 1]]])     # (1, 3, 4)
    cls_label = np.array([[0, 1, -1, 2]], dtype=np.float32)
    loc_loss = np.zeros((1, 16), dtype=np.float32)
    loc_loss[0, 4:8] = [.5, .5, 0, 0]
    loc_loss[0, 12:16] = [1, 0, .5, .5]
    return {'cls_prob_output': cls_prob, 'loc_loss_output': loc_loss, 'cls_label_output': cls_label}


def test_multibox_metric_by_hand():
    outputs = ['detection_output', 'cls_label_output', 'loc_loss_output', 'cls_prob_output']   # any order
    metric = MultiBoxMetric(outputs)
    arrays = multibox_outputs()
    metric.update([], [mx.nd.zeros((1, 4, 6))] + [mx.nd.array(arrays[name]) for name in outputs[1:]])
    names, values = metric.get()
    assert names == ['CrossEntropy', 'SmoothL1/positive']
    assert values == [pytest.approx(math.log(2)), pytest.approx(1.5)]
    # a second batch whose anchors are all ignored adds nothing to the counts; one with a certain background
    # anchor adds -log 1 = 0 over one more anchor: (3 ln 2) / 4
    metric.update_dict({}, {'cls_prob_output': np.ones((1, 3, 2)) / 3, 'loc_loss_output': np.zeros((1, 8)),
                            'cls_label_output': -np.ones((1, 2))})
    metric.update_dict({}, {'cls_prob_output': np.array([[[1.], [0], [0]]]), 'loc_loss_output': np.zeros((1, 4)),
                            'cls_label_output': np.zeros((1, 1))})
    assert metric.get()[1] == [pytest.approx(3 * math.log(2) / 4), pytest.approx(1.5)]
    metric.reset_local()
    assert metric.get()[1] == [0.0, 0.0]                                       # nothing since: 0, not NaN
    assert metric.get_global()[1] == [pytest.approx(3 * math.log(2) / 4), pytest.approx(1.5)]
    metric.reset()
    assert metric.get_global()[1] == [0.0, 0.0]


def test_smooth_l1_is_named_and_divided_by_the_positive_anchors():
    """Two positive anchors with known offset errors and six mined negatives (3:1): smooth L1 (sigma 1) of
    (0.5, 0, 0, 0) is 0.5 * 0.5^2 = 0.125, of (0, -2, 0, 1) is (2 - 0.5) + 0.5 = 2; the sum 2.125 over the
    2 positives is 1.0625 (MXNet's example divided by all 8 anchors with a target: 0.265625)."""
    errors = np.zeros((1, 8, 4), np.float32)
    errors[0, 0], errors[0, 5] = (0.5, 0, 0, 0), (0, -2, 0, 1)
    loc_loss = mx.nd.smooth_l1(mx.nd.array(errors.reshape(1, 32)), scalar=1.0).asnumpy()
    cls_label = np.array([[1, 0, 0, 0, 0, 2, 0, 0]], np.float32)          # anchors 0 and 5 positive
    metric = MultiBoxMetric(['cls_prob_output', 'loc_loss_output', 'cls_label_output'])
    metric.update_dict({}, {'cls_prob_output': np.full((1, 3, 8), 1 / 3), 'loc_loss_output': loc_loss,
                            'cls_label_output': cls_label})
    names, values = metric.get()
    assert names[1] == 'SmoothL1/positive'
    assert values[1] == pytest.approx(2.125 / 2)


def test_multibox_metric_reports_nan_and_bounds_zero_probability():
    metric = MultiBoxMetric(['cls_prob_output', 'loc_loss_output', 'cls_label_output'])
    arrays = multibox_outputs()
    arrays['cls_prob_output'][0, 2, 3] = 0                 # target 2 of anchor 3 now has probability 0
    metric.update_dict({}, arrays)
    assert metric.get()[1][0] == pytest.approx((3 * math.log(2) - math.log(1e-12)) / 3)
    arrays['loc_loss_output'][0, 5] = np.nan
    metric.update_dict({}, arrays)
    assert np.isnan(metric.get()[1][1])
    with pytest.raises(ValueError, match='missing'):
        MultiBoxMetric(['detection_output'])


def test_metrics_through_module_update_metric():
    """Both metrics fed by ``Module.update_metric`` from the real train graph, reading outputs by name."""
    symbol = symbol_factory.get_symbol_train('mobilenet0.25', 128, 3)
    labels = mx.nd.array([[[0, .1, .1, .6, .6, 0], [-1] * 6], [[2, .3, .2, .9, .7, 0], [1, 0, 0, .3, .4, 1]]])
    module = mx.mod.Module(symbol, data_names=['data'], label_names=['label'], context=mx.cpu())
    module.bind(data_shapes=[('data', (2, 3, 128, 128))], label_shapes=[('label', labels.shape)])
    module.init_params(mx.init.Xavier())
    module.forward(mx.io.DataBatch([mx.nd.random.uniform(shape=(2, 3, 128, 128))], [labels]), is_train=True)
    losses, average_precision = MultiBoxMetric(symbol.list_outputs()), MApMetric(class_names=['a', 'b', 'c'])
    module.update_metric(losses, [labels])
    module.update_metric(average_precision, [labels])
    outputs = dict(zip(symbol.list_outputs(), (o.asnumpy() for o in module.get_outputs())))
    cls_label = outputs[multibox.output_key(multibox.CLS_LABEL)]
    prob = np.take_along_axis(outputs[multibox.output_key(multibox.CLS_PROB)],
                              np.maximum(cls_label, 0).astype(int)[:, None, :], axis=1)[:, 0, :]
    expected_ce = -np.log(prob[cls_label >= 0]).mean()
    expected_l1 = outputs[multibox.output_key(multibox.LOC_LOSS)].sum() / (cls_label > 0).sum()
    assert losses.get()[1] == [pytest.approx(expected_ce, rel=1e-5), pytest.approx(expected_l1, rel=1e-5)]
    by_arrays = MApMetric(class_names=['a', 'b', 'c'])
    by_arrays.update_arrays(labels.asnumpy(), outputs[multibox.output_key(multibox.DETECTION)])
    np.testing.assert_array_equal(average_precision.get()[1], by_arrays.get()[1])
