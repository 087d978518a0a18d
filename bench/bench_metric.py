"""VOC mAP speed: the project's metrics vs GluonCV's on the same detections, in one run.

Rows (each the median of ``--repeats`` alternating runs after one warm-up run per side):

1. ``VOC07MApMetric`` (11-point AP) of ``evaluate/eval_metric.py`` vs GluonCV's ``VOC07MApMetric``;
2. ``MApMetric`` (all-point AP) vs GluonCV's ``VOCMApMetric``.

A run is: a fresh metric, ``update`` with every batch of 32 images, then ``get()``; seconds. The row's ratio
is GluonCV's seconds over the project's (a speed-up, higher is better), and both mAPs are printed side by
side: the row is met only when every per-class AP and the mean agree to :data:`VALUE_TOLERANCE`.

The detections (``--num-images`` images x ``--detections`` rows, 20 classes, 1-10 objects per image of which
10 % are difficult) are seeded: jittered copies of the objects (10 % with another class, scores 0.3-1) then
random boxes (scores 0-0.8). Scores are float64, so that no two tie (the sides break ties differently).
GluonCV adds 1 pixel to ``xmax``/``ymax`` before its IoU, so it is given the same boxes in pixels,
``(S*xmin, S*ymin, S*xmax - 1, S*ymax - 1)`` (as tests/test_metrics.py does); that conversion, and the split
of the arrays into the separate inputs GluonCV takes, are done once before timing.

Usage: ``python bench/bench_metric.py [--quick]``. Prints one table and writes ``bench/metric_results.json``.
"""
import argparse
import os
import statistics
import time

from config.errors import UserError, run_cli
from config.runtime import configure_threads
from core.atomic import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 5.0                 # the target: at least 5x GluonCV's speed with identical values
VALUE_TOLERANCE = 1e-6       # largest |project AP - GluonCV AP| still called equal (tests/test_metrics.py's)
NUM_CLASSES = 20             # as PASCAL VOC
MAX_OBJECTS = 10             # objects per image: 1..MAX_OBJECTS (also the label width)
DIFFICULT_SHARE = 0.1        # share of objects marked difficult
BATCH_SIZE = 32              # images per update() call, a usual evaluation batch
PIXEL_SCALE = 500.0          # image side the normalized boxes are scaled to for GluonCV
SEED = 0
FULL = dict(num_images=2000, detections=100, repeats=5)     # the size
QUICK = dict(num_images=300, detections=100, repeats=3)
PAIRS = (('VOC07 11-point', 'VOC07MApMetric', 'VOC07MApMetric'),     # (title, ours, GluonCV's)
         ('VOC all-point', 'MApMetric', 'VOCMApMetric'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='%d images, %d repeats: a few seconds'
                        % (QUICK['num_images'], QUICK['repeats']))
    parser.add_argument('--num-images', type=int, default=None, help='images (default %d)' % FULL['num_images'])
    parser.add_argument('--detections', type=int, default=None,
                        help='detection rows per image (default %d)' % FULL['detections'])
    parser.add_argument('--repeats', type=int, default=None, help='timed runs per side (default %d)'
                        % FULL['repeats'])
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'metric_results.json'), help='results JSON')
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def check_args(args):
    """A :class:`UserError` naming the flag when a size is below 1."""
    for key in FULL:
        if getattr(args, key) < 1:
            raise UserError('--%s %d must be at least 1' % (key.replace('_', '-'), getattr(args, key)))


def make_detections(num_images, detections_per_image, seed=SEED):
    """Seeded labels and detections of an evaluation set.

    Returns
    -------
    labels : (N, MAX_OBJECTS, 6) float64
        ``[cls, xmin, ymin, xmax, ymax, difficult]`` normalized, -1 padded.
    detections : (N, D, 6) float64
        ``[cls, score, xmin, ymin, xmax, ymax]``; every row valid, scores distinct.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = -np.ones((num_images, MAX_OBJECTS, 6))
    counts = rng.integers(1, MAX_OBJECTS + 1, num_images)
    corners = rng.uniform(0, 0.7, (num_images, MAX_OBJECTS, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0.05, 0.3, (num_images, MAX_OBJECTS, 2))], axis=2)
    present = np.arange(MAX_OBJECTS)[None, :] < counts[:, None]                        # (N, MAX_OBJECTS)
    labels[present] = np.column_stack([rng.integers(0, NUM_CLASSES, present.sum()), boxes[present],
                                       rng.random(present.sum()) < DIFFICULT_SHARE])

    corners = rng.uniform(0, 0.7, (num_images, detections_per_image, 2))
    det_boxes = np.concatenate([corners, corners + rng.uniform(0.05, 0.3, corners.shape)], axis=2)
    det_classes = rng.integers(0, NUM_CLASSES, (num_images, detections_per_image)).astype(np.float64)
    copies = min(2 * MAX_OBJECTS, detections_per_image)        # the first rows copy objects 0..9, 0..9
    source = np.arange(copies) % MAX_OBJECTS
    copied = present[:, source]                                 # (N, copies): that object exists
    jittered = labels[:, source, 1:5] + rng.normal(0, 0.03, (num_images, copies, 4))
    same_class = rng.random((num_images, copies)) < 0.9
    det_boxes[:, :copies] = np.where(copied[..., None], jittered, det_boxes[:, :copies])
    det_classes[:, :copies] = np.where(copied & same_class, labels[:, source, 0], det_classes[:, :copies])
    scores = rng.uniform(0, 0.8, (num_images, detections_per_image))    # float64: ties have odds ~1e-6
    scores[:, :copies] = np.where(copied, rng.uniform(0.3, 1.0, (num_images, copies)), scores[:, :copies])
    detections = np.concatenate([det_classes[..., None], scores[..., None], det_boxes], axis=2)
    return labels, detections


def gluoncv_inputs(labels, detections):
    """The arguments of GluonCV's ``update`` for each batch: pixel boxes with ``xmax``/``ymax`` - 1.

    Returns
    -------
    list of tuple
        ``(pred_bboxes (B, D, 4), pred_labels (B, D), pred_scores (B, D), gt_bboxes (B, M, 4),
        gt_labels (B, M), gt_difficults (B, M))`` per batch of :data:`BATCH_SIZE` images.
    """
    batches = []
    for start in range(0, len(labels), BATCH_SIZE):
        label, detection = labels[start:start + BATCH_SIZE], detections[start:start + BATCH_SIZE]
        det_boxes, gt_boxes = detection[..., 2:6] * PIXEL_SCALE, label[..., 1:5] * PIXEL_SCALE
        det_boxes[..., 2:] -= 1
        gt_boxes[..., 2:] -= 1
        batches.append((det_boxes, detection[..., 0], detection[..., 1], gt_boxes, label[..., 0], label[..., 5]))
    return batches


def project_inputs(labels, detections):
    """``(labels, detections)`` per batch of :data:`BATCH_SIZE` images, for ``update_arrays``."""
    return [(labels[start:start + BATCH_SIZE], detections[start:start + BATCH_SIZE])
            for start in range(0, len(labels), BATCH_SIZE)]


def timed(make_metric, batches, update):
    """Seconds of one fresh metric fed every batch then read, and what ``get()`` returned."""
    start = time.perf_counter()
    metric = make_metric()
    for batch in batches:
        update(metric, batch)
    values = metric.get()
    return time.perf_counter() - start, values


def alternate(sides, repeats):
    """Run each side once untimed, then ``repeats`` times alternating.

    Parameters
    ----------
    sides : dict
        ``{name: callable returning (seconds, values)}``.

    Returns
    -------
    seconds : dict
        ``{name: median seconds}``.
    values : dict
        ``{name: values of the last run}``.
    """
    values = {name: run()[1] for name, run in sides.items()}
    times = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            seconds, values[name] = run()
            times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}, values


def compare_values(ours, theirs):
    """Largest absolute difference of two ``get()`` results (NaN classes must be NaN on both sides).

    Returns
    -------
    float
        ``inf`` when the names differ or a class is NaN on one side only.
    """
    import numpy as np

    (our_names, our_values), (their_names, their_values) = ours, theirs
    if list(our_names) != list(their_names):
        return float('inf')
    ours_arr, theirs_arr = np.asarray(our_values, float), np.asarray(their_values, float)
    if not np.array_equal(np.isnan(ours_arr), np.isnan(theirs_arr)):
        return float('inf')
    known = ~np.isnan(ours_arr)
    return float(np.abs(ours_arr[known] - theirs_arr[known]).max(initial=0.0))


def bench_pair(title, ours_class, theirs_class, labels, detections, repeats):
    """One row: the project's metric vs GluonCV's on the same detections."""
    class_names = ['class_%d' % c for c in range(NUM_CLASSES)]
    ours_batches, their_batches = project_inputs(labels, detections), gluoncv_inputs(labels, detections)
    sides = {
        'ours': lambda: timed(lambda: ours_class(ovp_thresh=0.5, class_names=class_names), ours_batches,
                              lambda metric, batch: metric.update_arrays(*batch)),
        'gluoncv': lambda: timed(lambda: theirs_class(iou_thresh=0.5, class_names=class_names), their_batches,
                                 lambda metric, batch: metric.update(*batch)),
    }
    seconds, values = alternate(sides, repeats)
    difference = compare_values(values['ours'], values['gluoncv'])
    ratio = seconds['gluoncv'] / seconds['ours']
    equal = difference <= VALUE_TOLERANCE
    return dict(name='%s mAP %dx%d (s)' % (title, len(labels), detections.shape[1]), unit='s',
                ours=round(seconds['ours'], 6), peer=round(seconds['gluoncv'], 6),
                peer_name='gluoncv %s' % theirs_class.__name__, ratio=round(ratio, 3), higher_is_better=False,
                target=TARGET, met=bool(ratio >= TARGET and equal),
                ours_value=values['ours'][1][-1], peer_value=values['gluoncv'][1][-1],
                max_difference=difference, values_equal=bool(equal))


def run(num_images, detections, repeats):
    """Both rows (see the module notes)."""
    from gluoncv.utils.metrics import voc_detection

    from evaluate import eval_metric

    labels, dets = make_detections(num_images, detections)
    return [bench_pair(title, getattr(eval_metric, ours), getattr(voc_detection, theirs), labels, dets, repeats)
            for title, ours, theirs in PAIRS]


def print_table(rows):
    header = '%-32s %9s %9s %7s %7s  %-10s %-10s %s' % ('measure', 'project', 'gluoncv', 'speedup', 'target',
                                                        'mAP ours', 'mAP gcv', 'max |diff|')
    print(header)
    print('-' * len(header))
    for r in rows:
        print('%-32s %8.3fs %8.3fs %6.2fx %6.1fx  %-10.6f %-10.6f %.1e%s' % (
            r['name'], r['ours'], r['peer'], r['ratio'], r['target'], r['ours_value'], r['peer_value'],
            r['max_difference'], '' if r['met'] else '  (MISSED)'))


def main(args):
    check_args(args)
    load_before = os.getloadavg()
    rows = run(args.num_images, args.detections, args.repeats)
    print_table(rows)
    result = dict(date=time.strftime('%Y-%m-%d %H:%M'), load_average=[load_before, os.getloadavg()],
                  omp_num_threads=os.environ.get('OMP_NUM_THREADS'), quick=args.quick, num_images=args.num_images,
                  detections=args.detections, repeats=args.repeats, batch_size=BATCH_SIZE, rows=rows)
    print('wrote %s' % write_json(args.out, result, indent=2))
    return result


if __name__ == '__main__':
    configure_threads()
    run_cli(main, parse_args())
