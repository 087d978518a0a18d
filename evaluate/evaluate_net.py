"""``evaluate_net``: score a trained SSD checkpoint on a whole packed validation set.

One pass over the ``.rec`` (no augmentation, file order; :func:`evaluate.runner.run_detectors`, padded images
dropped) runs the detector and feeds the same detections to

- :class:`evaluate.eval_metric.VOC07MApMetric` (11-point AP) and :class:`~evaluate.eval_metric.MApMetric`
  (all-point area), both made by :func:`evaluate.runner.map_metric`, printed as one per-class table;
- :class:`PrecisionRecallCurves`, drawn as one ``pr_<class>.png`` per class;
- optionally pycocotools' ``COCOeval`` (AP@[.5:.95], AP50, AP75).

Outputs (each written atomically) go to ``out_dir``, by default ``<prefix>-eval-<epoch>`` (``-eval-deploy-``
for the deploy graph)::

    detections.json   COCO results format: image_id, category_id, bbox [x, y, w, h], score
    summary.json      AP per class (both kinds), COCO numbers, images/s, epoch, prefix, ...
    pr_<class>.png    precision against recall, both APs in the title

Coordinates in the COCO parts. The ``.rec`` labels hold boxes normalized by the image size and not the
size itself, so ground truth and detections are both scaled to a fixed ``COCO_CANVAS`` x ``COCO_CANVAS``
pixel canvas. IoU does not change when x and y are scaled (even by different factors), so AP, AP50 and AP75
equal those of the real pixel boxes; only COCO's small/medium/large split would differ, and it is not
reported. ``image_id`` is the 0-based position of the image in the ``.rec`` (= its line in the ``.lst`` the
``.rec`` was packed from); ``category_id`` is the 0-based class id (the line of the ``.classes`` file).
Difficult objects are COCO "crowd" regions unless ``use_difficult``: ignored like VOC ignores them, except
that COCO matches a detection to a crowd region by intersection over the detection's area.
"""
import contextlib
import dataclasses
import io
import json
import math
import os
import re

import mxnet as mx
import numpy as np

from config.defaults import EVALUATE
from config.errors import UserError
from config.schema import DEFAULTS
from core.atomic import atomic_paths, write_json
from core.run_dir import RunDir
from dataset.iterator import DetRecordIter
from dataset.record_set import class_names_for, resolve_inputs
from evaluate.eval_metric import IGNORED, MApMetric, VOC07MApMetric, match_batch, precision_recall
from evaluate.model import bind_detector, load_model
from evaluate.report import format_ap_table
from evaluate.runner import map_metric, metric_values, run_detectors
from symbol import multibox

# New defaults of this module (candidates for config/defaults.py):
COCO_CANVAS = EVALUATE['coco_canvas']                    # see config/defaults.py
COCO_MAX_DETECTIONS = EVALUATE['coco_max_detections']
SUBGRAPH_ENV = 'MXNET_SUBGRAPH_BACKEND'   # MXNet reads it when binding; 'NONE': no MKLDNN conv+BN fusion
VOC07_COLUMN, AREA_COLUMN = 'VOC07', 'all-point'   # the two AP columns of the table and of summary.json
DETECTOR = 'model'                                 # the title of the one detector run_detectors runs here


# ------------------------------------------------------------------------------------------ checks and paths
def check_arguments(rec_path, batch_size, num_batch, overlap):
    """UserError naming the flag for values that cannot work."""
    try:
        resolve_inputs(rec_path)
    except UserError as err:
        raise UserError('--rec-path: %s' % err) from None
    if int(batch_size) != batch_size or batch_size < 1:
        raise UserError('--batch-size %s must be a positive whole number' % batch_size)
    if num_batch is not None and (int(num_batch) != num_batch or num_batch < 1):
        raise UserError('--num-batch %s must be a positive whole number (leave it out to score every image)'
                        % num_batch)
    if not 0 < overlap <= 1:
        raise UserError('--overlap %s must be in (0, 1]' % overlap)


def check_data_classes(rec_path, class_names):
    """Compare the ``.classes`` file of the records (if any; dataset/record_set.py) with the model's class names.

    Another count, or the same names in another order, is a UserError (the label ids would mean other
    classes than the network's outputs); other names with the same count (e.g. ``class_0``... of a
    checkpoint without a class list) only print a warning.
    """
    data_names, path = class_names_for(resolve_inputs(rec_path))
    if not data_names:
        return
    data_names, model_names = tuple(data_names), tuple(class_names)
    if data_names == model_names:
        return
    both = '%s lists %d classes (%s), the checkpoint has %d (%s)' % (
        path, len(data_names), ', '.join(data_names), len(model_names), ', '.join(model_names))
    if len(data_names) != len(model_names) or sorted(data_names) == sorted(model_names):
        raise UserError(both + "; evaluate on data packed with the checkpoint's classes, in its order")
    print('warning: %s; scoring by class id' % both)


def read_deploy_checkpoint(prefix, epoch, deploy_dir=None):
    """The deploy graph and weights that deploy.py wrote for checkpoint ``epoch`` of ``prefix``.

    Read through ``RunDir(prefix).deploy(deploy_dir)``: ``<deploy_dir or dirname(prefix)>/deploy_<name>``.

    Returns
    -------
    symbol : mx.sym.Symbol
        With a ``detection`` output.
    arg_params, aux_params : dict of str to mx.nd.NDArray

    Raises
    ------
    UserError
        A missing file (with the deploy epochs that exist and the deploy.py command), an unreadable one, or a
        graph without a ``detection`` output.
    """
    run = RunDir(prefix).deploy(deploy_dir)
    for path in (run.symbol_path, run.params_path(epoch)):
        if not os.path.isfile(path):
            raise UserError('--deploy: %s does not exist (deploy epochs saved: %s); write it with python deploy.py '
                            '--prefix %s --epoch %d' % (path, ', '.join(map(str, run.epochs())) or 'none', prefix,
                                                        epoch))
    try:
        symbol = run.read_symbol()
        arg_params, aux_params = run.read_params(epoch, '--deploy')
    except UserError:
        raise UserError('--deploy: %s or %s is not an MXNet file (truncated?); run deploy.py again'
                        % (run.symbol_path, run.params_path(epoch))) from None
    if multibox.DETECTION not in multibox.output_positions(symbol):
        raise UserError('--deploy: %s has outputs %s, no %s; it is not an SSD deploy graph'
                        % (run.symbol_path, symbol.list_outputs(), multibox.output_key(multibox.DETECTION)))
    return symbol, arg_params, aux_params


def with_input_scaling(model, mean_pixels=None, std_pixels=None):
    """The model with the per-channel ``mean_pixels`` / ``std_pixels`` that are not None replacing its own."""
    def merged(given, saved):
        given = given or (None, None, None)
        return tuple(saved[channel] if value is None else float(value) for channel, value in enumerate(given))
    return dataclasses.replace(model, mean_pixels=merged(mean_pixels, model.mean_pixels),
                               std_pixels=merged(std_pixels, model.std_pixels))


@contextlib.contextmanager
def unfused_graphs():
    """Bind without MXNet's MKLDNN subgraph fusion (unless ``MXNET_SUBGRAPH_BACKEND`` is set already).

    An inference-bound Module folds BatchNorm into the convolutions, which moves scores by ~1e-7; the
    training module that validates during training does not. Undertrained networks give nearly the same score
    to one anchor in every image, so such noise reorders those detections and moved a VOC07 mAP by 1e-4 in
    tests/test_evaluate.py. Unfused, the deploy graph's detections are bit-identical to the training graph's.
    """
    if SUBGRAPH_ENV in os.environ:
        yield
        return
    os.environ[SUBGRAPH_ENV] = 'NONE'
    try:
        yield
    finally:
        os.environ.pop(SUBGRAPH_ENV, None)


def bind(model, ctx, batch_size, symbol=None, source=None):
    """:func:`evaluate.model.bind_detector`, with weights that do not fit the graph as one line.

    ``source`` names the graph in the message (default: the network rebuilt from the checkpoint's settings).
    """
    try:
        return bind_detector(model, ctx, batch_size, symbol=symbol)
    except (mx.base.MXNetError, RuntimeError, ValueError, AssertionError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        telling = next((line for line in lines if 'Check failed' in line or 'shape' in line.lower()), lines[-1])
        graph = source or 'network %s with %d classes at data shape %d' % (model.network, model.num_classes,
                                                                            model.data_shape)
        raise UserError('the weights of %s epoch %d do not fit %s (%s); check --network, --num-class / '
                        '--class-names and --data-shape' % (model.prefix, model.epoch, graph, telling[:200])) from None


def graph_nms_settings(symbol, model):
    """``(nms_thresh, force_suppress)`` of the graph's detection node (the model's when the graph has none)."""
    attrs = symbol.attr_dict().get(multibox.DETECTION, {})
    return (float(attrs.get('nms_threshold', model.nms_thresh)),
            attrs.get('force_suppress', str(model.force_suppress)) in ('True', 'true', '1'))


# ------------------------------------------------------------------------------------------ accumulators
class PrecisionRecallCurves:
    """Precision and recall along each class's detections, matched exactly as :class:`MApMetric` matches.

    Parameters
    ----------
    num_classes : int
    ovp_thresh : float
    use_difficult : bool
    """

    def __init__(self, num_classes, ovp_thresh=0.5, use_difficult=False):
        self.num_classes, self.ovp_thresh, self.use_difficult = num_classes, ovp_thresh, use_difficult
        self.classes, self.scores, self.outcomes = [], [], []
        self.positives = np.zeros(num_classes, dtype=np.int64)

    def update(self, labels, detections):
        """Add a batch: labels (B, N, 6) and detections (B, A, 6), as :meth:`MApMetric.update_arrays`."""
        classes, scores, outcomes, positives = match_batch(labels, detections, self.ovp_thresh, self.use_difficult)
        self.classes.append(classes)
        self.scores.append(scores)
        self.outcomes.append(outcomes)
        self.positives[:len(positives)] += positives[:self.num_classes]

    def curve(self, class_id):
        """``(precision, recall)``, each (D,) float64 along the class's detections by decreasing score (ties
        in arrival order); None when the class has no (non-difficult) ground truth."""
        if self.positives[class_id] == 0:
            return None
        classes, scores, outcomes = (np.concatenate(parts) if parts else np.zeros(0)
                                     for parts in (self.classes, self.scores, self.outcomes))
        mine = (classes == class_id) & (outcomes != IGNORED)
        ranked = outcomes[mine][np.argsort(-scores[mine], kind='stable')]
        return precision_recall(ranked, self.positives[class_id])


@dataclasses.dataclass
class ScoredImages:
    """Per image (in ``.rec`` order): its ground-truth rows and its detections.

    Attributes
    ----------
    ground_truth : list of (N_i, 6) float32
        ``[cls, xmin, ymin, xmax, ymax, difficult]``.
    detections : list of (D_i, 6) float32
        ``[cls, score, xmin, ymin, xmax, ymax]``, by decreasing score, suppressed rows left out.
    """
    ground_truth: list = dataclasses.field(default_factory=list)
    detections: list = dataclasses.field(default_factory=list)

    def update(self, labels, detections):
        """Add a batch: labels (B, N, 6), detections (B, A, 6)."""
        for image_labels, image_detections in zip(labels, detections):
            self.ground_truth.append(image_labels[image_labels[:, 0] >= 0].copy())
            self.detections.append(image_detections[image_detections[:, 0] >= 0].copy())


@dataclasses.dataclass
class Scores:
    """Everything one pass accumulates: both VOC metrics, the PR curves, the per-image rows."""
    voc07: VOC07MApMetric
    area: MApMetric
    curves: PrecisionRecallCurves
    images: ScoredImages

    @classmethod
    def start(cls, class_names, overlap, use_difficult):
        """Empty accumulators; both VOC metrics from :func:`evaluate.runner.map_metric`."""
        names = list(class_names)
        return cls(voc07=map_metric(names, voc07=True, overlap=overlap, use_difficult=use_difficult),
                   area=map_metric(names, voc07=False, overlap=overlap, use_difficult=use_difficult),
                   curves=PrecisionRecallCurves(len(names), overlap, use_difficult), images=ScoredImages())

    def consumers(self):
        """The ``(labels (R, N, 6), detections (R, A, 6))`` callables of one detector's batches."""
        return [self.voc07.update_arrays, self.area.update_arrays, self.curves.update, self.images.update]

    def ap_columns(self):
        """``{'VOC07': {class: AP, 'mAP': v}, 'all-point': {...}}``."""
        return {column: metric_values(metric) for column, metric in ((VOC07_COLUMN, self.voc07),
                                                                     (AREA_COLUMN, self.area))}

    def summary(self, count, timing, nms_settings):
        """The summary entries these scores give (``coco``, ``out_dir``, ``outputs`` left None)."""
        return dict(class_names=list(self.voc07.class_names), num_images=count,
                    num_ground_truth=int(sum(len(rows) for rows in self.images.ground_truth)),
                    num_detections=int(sum(len(rows) for rows in self.images.detections)),
                    nms_thresh=nms_settings[0], force_suppress=nms_settings[1], ap=self.ap_columns(),
                    seconds=round(timing.total, 3), images_per_second=count / max(timing.total, 1e-9),
                    network_images_per_second=count / max(timing.network, 1e-9),
                    coco=None, coco_canvas=COCO_CANVAS, out_dir=None, outputs=None)


def fed_by(title, consumers):
    """:func:`evaluate.runner.run_detectors` consumers feeding ``consumer(labels, detections)`` with detector
    ``title``'s detections (R, A, 6)."""
    return [lambda labels, found, consumer=consumer: consumer(labels, found[title]) for consumer in consumers]


# ------------------------------------------------------------------------------------------ COCO
def canvas_box(row_box):
    """Normalized ``[xmin, ymin, xmax, ymax]`` -> COCO ``[x, y, w, h]`` on the canvas, 0.01 px steps, with
    ``x + w`` equal to the rounded ``xmax`` (so boxes stay inside the canvas)."""
    x1, y1, x2, y2 = (round(float(value) * COCO_CANVAS, 2) for value in row_box)
    return [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)]


def coco_ground_truth(ground_truth, class_names, use_difficult=False):
    """A COCO dataset dict (images, annotations, categories) from per-image label rows.

    Parameters
    ----------
    ground_truth : list of (N_i, 6) arrays
        ``[cls, xmin, ymin, xmax, ymax, difficult]`` normalized; image ``i`` gets ``image_id`` ``i``.
    class_names : sequence of str
        ``category_id`` is the index in this list.
    use_difficult : bool
        False: difficult objects become crowd regions (ignored).

    Returns
    -------
    dict
    """
    annotations = []
    for image_id, rows in enumerate(ground_truth):
        for row in np.asarray(rows, dtype=np.float64).reshape(-1, 6):
            box = canvas_box(row[1:5])
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=int(row[0]),
                                    bbox=box, area=box[2] * box[3],
                                    iscrowd=int(bool(row[5] > 0) and not use_difficult)))
    return dict(images=[dict(id=image_id, width=COCO_CANVAS, height=COCO_CANVAS)
                        for image_id in range(len(ground_truth))],
                annotations=annotations,
                categories=[dict(id=class_id, name=name) for class_id, name in enumerate(class_names)])


def top_per_class(rows, limit=COCO_MAX_DETECTIONS):
    """The ``limit`` highest-scored rows of each class of one image's ``(D, 6)`` detections, by score."""
    rows = rows[np.argsort(-rows[:, 1], kind='stable')]
    rank = np.zeros(len(rows), dtype=np.int64)
    for class_id in np.unique(rows[:, 0]):
        mine = rows[:, 0] == class_id
        rank[mine] = np.arange(mine.sum())
    return rows[rank < limit]


def coco_results(detections):
    """COCO results (list of dicts) from per-image ``(D_i, 6)`` detections; image ``i`` has ``image_id`` i.

    At most :data:`COCO_MAX_DETECTIONS` per image and class (the most COCOeval looks at); scores rounded to
    6 decimals, boxes to 0.01 canvas pixels.
    """
    results = []
    for image_id, rows in enumerate(detections):
        for row in top_per_class(np.asarray(rows, dtype=np.float64).reshape(-1, 6)):
            results.append(dict(image_id=image_id, category_id=int(row[0]), bbox=canvas_box(row[2:6]),
                                score=round(float(row[1]), 6)))
    return results


def coco_average_precision(dataset, results):
    """COCOeval's AP@[.5:.95], AP50 and AP75 (all areas, 100 detections per image).

    Parameters
    ----------
    dataset : dict
        From :func:`coco_ground_truth`.
    results : list of dict
        From :func:`coco_results` (not modified).

    Returns
    -------
    dict
        ``AP``, ``AP50``, ``AP75``: floats in [0, 1], NaN when no class has (non-crowd) ground truth; 0 when
        there is ground truth but no detection.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    has_truth = any(not annotation['iscrowd'] for annotation in dataset['annotations'])
    if not results or not has_truth:
        value = 0.0 if has_truth else math.nan
        return dict(AP=value, AP50=value, AP75=value)
    with contextlib.redirect_stdout(io.StringIO()):        # pycocotools prints its progress
        truth = COCO()
        truth.dataset = json.loads(json.dumps(dataset))
        truth.createIndex()
        found = truth.loadRes([dict(result) for result in results])
        evaluation = COCOeval(truth, found, 'bbox')
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [math.nan if value < 0 else float(value) for value in evaluation.stats[:3]]
    return dict(zip(('AP', 'AP50', 'AP75'), stats))


# ------------------------------------------------------------------------------------------ outputs
def file_safe(name):
    """A class name as a file-name part: characters other than letters, digits, ``-``, ``_``, ``.`` -> ``_``."""
    return re.sub(r'[^A-Za-z0-9_.-]', '_', name) or '_'


def curve_file_names(class_names):
    """``pr_<class>.png`` per class; a name that collides after :func:`file_safe` gets ``_<class id>``."""
    names, seen = [], set()
    for class_id, name in enumerate(class_names):
        file_name = 'pr_%s.png' % file_safe(name)
        if file_name in seen:
            file_name = 'pr_%s_%d.png' % (file_safe(name), class_id)
        seen.add(file_name)
        names.append(file_name)
    return names


def plot_precision_recall(curve, class_name, voc07_ap, area_ap, path):
    """Save one class's precision-recall curve (and its monotone envelope) as a PNG, atomically.

    Parameters
    ----------
    curve : (precision, recall) of (D,) arrays, or None when the class has no ground truth
        ``D`` is 0 when the class has ground truth but no detection (an early checkpoint): the axes are then
        left empty with a note, and both APs are 0.
    class_name : str
    voc07_ap, area_ap : float
        Shown in the title.
    path : str
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(4.5, 4))
    if curve is None or not len(curve[0]):
        note = 'no ground truth' if curve is None else 'no detections'
        axes.text(0.5, 0.5, note, ha='center', va='center')
        axes.set_title('%s: %s' % (class_name, note if curve is None else
                                   'AP %.3f (VOC07) %.3f (all-point), %s' % (voc07_ap, area_ap, note)), fontsize=9)
    else:
        precision, recall = curve
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        axes.plot(recall, precision, color='tab:blue', lw=1, label='precision')
        axes.plot(np.concatenate(([0.], recall)), np.concatenate((envelope[:1], envelope)), color='tab:orange',
                  lw=1.5, drawstyle='steps-pre', label='envelope (all-point AP area)')
        axes.legend(loc='lower left', fontsize=8)
        axes.set_title('%s: AP %.3f (VOC07) %.3f (all-point)' % (class_name, voc07_ap, area_ap), fontsize=9)
    axes.set(xlabel='recall', ylabel='precision', xlim=(0, 1.02), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_paths(path) as (temporary,):
        figure.savefig(temporary, format='png', dpi=80)
    plt.close(figure)


def json_ready(value):
    """``value`` with NaN floats as None (JSON has no NaN) and tuples as lists, recursively."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_outputs(out_dir, summary, results, curves, class_names):
    """detections.json, one pr_<class>.png per class, summary.json (last: it lists the others).

    Returns
    -------
    dict
        ``detections``, ``summary``: paths; ``pr_curves``: list of paths in class order.
    """
    paths = dict(detections=os.path.join(out_dir, 'detections.json'), summary=os.path.join(out_dir, 'summary.json'),
                 pr_curves=[os.path.join(out_dir, name) for name in curve_file_names(class_names)])
    write_json(paths['detections'], json_ready(results))
    columns = summary['ap']
    for class_id, (name, path) in enumerate(zip(class_names, paths['pr_curves'])):
        plot_precision_recall(curves.curve(class_id), name, columns[VOC07_COLUMN][name],
                              columns[AREA_COLUMN][name], path)
    summary['outputs'] = paths
    write_json(paths['summary'], json_ready(summary), indent=2)
    return paths


def report_lines(summary):
    """What the user reads at the end: the AP table, COCO numbers, speed, where the files went."""
    lines = ['scored %d images (%d objects) of %s with %s epoch %d (%s graph)'
             % (summary['num_images'], summary['num_ground_truth'], summary['rec_path'], summary['prefix'],
                summary['epoch'], summary['graph'])]
    lines += format_ap_table(summary['ap'], precision=4)
    if 'metric' in summary:
        kind = 'VOC07 11-point' if summary['metric'] == VOC07_COLUMN else 'all-point area, --no-voc07'
        lines.append('mAP %.4f (%s)' % (summary['mAP'], kind))
    coco = summary.get('coco')
    if coco:
        lines.append('COCO AP@[.5:.95] %.4f  AP50 %.4f  AP75 %.4f (pycocotools; boxes scaled to a %d x %d canvas, '
                     'which leaves IoU and these APs unchanged)' % (coco['AP'], coco['AP50'], coco['AP75'],
                                                                    COCO_CANVAS, COCO_CANVAS))
    lines.append('speed: %.1f images/s end to end (decoding, network, scoring), %.1f images/s network only, '
                 'batch size %d' % (summary['images_per_second'], summary['network_images_per_second'],
                                    summary['batch_size']))
    outputs = summary.get('outputs')
    if outputs:
        lines.append('wrote %s: detections.json, summary.json and %d precision-recall curves (pr_*.png)'
                     % (summary['out_dir'], len(outputs['pr_curves'])))
    return lines


# ------------------------------------------------------------------------------------------ the whole run
def load_graph_model(prefix, epoch, deploy=False, deploy_dir=None, mean_pixels=None, std_pixels=None,
                     **model_args):
    """The model with the input scaling overrides applied, and the graph to run.

    Parameters
    ----------
    prefix : str
    epoch : int
    deploy : bool
        Run deploy.py's graph (read from ``RunDir(prefix).deploy(deploy_dir)``; the model then holds its
        weights) instead of rebuilding it.
    mean_pixels, std_pixels : (3,) of float or None, optional
        See :func:`with_input_scaling`.
    **model_args :
        Of :func:`evaluate.model.load_model`.

    Returns
    -------
    model : evaluate.model.TrainedModel
    symbol : mx.sym.Symbol or None
        The deploy graph, or None (rebuilt from the model's settings).
    """
    model = with_input_scaling(load_model(prefix, epoch, **model_args), mean_pixels, std_pixels)
    if not deploy:
        return model, None
    symbol, arg_params, aux_params = read_deploy_checkpoint(prefix, epoch, deploy_dir)
    return dataclasses.replace(model, arg_params=arg_params, aux_params=aux_params), symbol


def load_detector(prefix, epoch, ctx, batch_size, deploy=False, deploy_dir=None, mean_pixels=None,
                  std_pixels=None, **model_args):
    """The model description and an inference Module for it (bound unfused, see :func:`unfused_graphs`).

    Returns
    -------
    model : evaluate.model.TrainedModel
    module : mx.mod.Module
        Bound for ``(batch_size, 3, S, S)``, with a ``detection`` output.
    """
    model, symbol = load_graph_model(prefix, epoch, deploy, deploy_dir, mean_pixels, std_pixels, **model_args)
    source = 'the deploy graph %s' % RunDir(prefix).deploy(deploy_dir).symbol_path if deploy else None
    with unfused_graphs():
        module = bind(model, ctx, batch_size, symbol, source)
    return model, module


def evaluate_net(rec_path, prefix, epoch, network=None, data_shape=None, num_class=None, class_names=None,
                 batch_size=DEFAULTS.data.batch_size, num_batch=None, nms_thresh=None, force_suppress=None,
                 mean_pixels=None, std_pixels=None, label_width=DEFAULTS.data.label_width,
                 overlap=DEFAULTS.eval.overlap, use_difficult=DEFAULTS.eval.use_difficult, ctx=None, deploy=False,
                 deploy_dir=None, coco_metric=False, out_dir=None, progress=True, write=True, list_path='',
                 voc07=DEFAULTS.eval.voc07):
    """Score checkpoint ``epoch`` of ``prefix`` on ``rec_path``; print and write the results.

    Parameters
    ----------
    rec_path : str
        Packed validation set (``.idx`` next to it).
    prefix : str
        Exactly the prefix train.py saved under.
    epoch : int
    network, data_shape, num_class, class_names, nms_thresh, force_suppress :
        Optional; see :func:`evaluate.model.load_model` (the checkpoint's ``-config.yaml`` provides them).
    batch_size : int
    num_batch : int, optional
        Score only the first ``num_batch`` batches (default: every image).
    mean_pixels, std_pixels : (3,) of float or None, optional
        Per-channel overrides of the trained input scaling (None entries keep the trained value).
    label_width : int, optional
        Object rows per image of the iterator's labels (default: the most in one image of ``rec_path``).
    overlap : float
        IoU of a true positive for the VOC APs.
    use_difficult : bool
    ctx : list of mx.Context, optional
        Default: the CPU.
    deploy : bool
        Run the deploy graph written by deploy.py (``deploy_dir``, default the prefix's folder).
    coco_metric : bool
        Also COCO AP@[.5:.95], AP50 and AP75 through pycocotools.
    out_dir : str, optional
        Default ``RunDir(prefix).eval_dir(epoch, deploy)``: ``<prefix>-eval-<epoch>`` (``-eval-deploy-``).
    progress : bool
        Show the tqdm bar.
    write : bool
        Write the output files (False: compute and print only).
    list_path : str
        Optional detection ``.lst`` whose labels replace those stored in ``rec_path`` (DetRecordIter's
        ``path_imglist``; MXNet's example ``--list-path``).
    voc07 : bool
        The headline ``mAP`` of the summary is VOC07 11-point (False: all-point); both stay in ``ap``.

    Returns
    -------
    dict
        The summary (as in summary.json): ``ap`` ({'VOC07': {class: AP, 'mAP': v}, 'all-point': {...}}),
        ``metric`` and ``mAP`` (the headline), ``coco`` (or None), ``num_images``, ``num_ground_truth``,
        ``num_detections``, ``images_per_second``,
        ``network_images_per_second``, ``outputs`` (paths), ...
    """
    check_arguments(rec_path, batch_size, num_batch, overlap)
    if list_path and not os.path.isfile(list_path):
        raise UserError('--list-path %s does not exist; give a detection .lst of the .rec\'s images (or none)'
                        % list_path)
    if deploy and (nms_thresh is not None or force_suppress is not None):
        raise UserError('--nms / --force change the rebuilt graph; the deploy graph keeps the NMS settings '
                        'deploy.py gave it: drop them, or run deploy.py again with them')
    ctx = list(ctx or [mx.cpu()])
    model, module = load_detector(
        prefix, epoch, ctx, batch_size, deploy=deploy, deploy_dir=deploy_dir, mean_pixels=mean_pixels,
        std_pixels=std_pixels, network=network, data_shape=data_shape, num_class=num_class,
        class_names=class_names, nms_thresh=nms_thresh, force_suppress=force_suppress)
    check_data_classes(rec_path, model.class_names)
    val_iter = DetRecordIter(rec_path, batch_size, model.data_shape, model.mean_pixels, std_pixels=model.std_pixels,
                             preset='val', label_pad_width=label_width, path_imglist=list_path)
    scores = Scores.start(model.class_names, overlap, use_difficult)
    count, timing = run_detectors({DETECTOR: module}, val_iter, fed_by(DETECTOR, scores.consumers()),
                                  num_batch=num_batch, progress=progress)
    results = coco_results(scores.images.detections)
    summary = dict(prefix=prefix, epoch=epoch, rec_path=rec_path, graph='deploy' if deploy else 'checkpoint',
                   network=model.network, data_shape=model.data_shape, batch_size=batch_size, overlap=overlap,
                   use_difficult=use_difficult, list_path=list_path)
    summary.update(scores.summary(count, timing, graph_nms_settings(module.symbol, model)))
    summary.update(metric=VOC07_COLUMN if voc07 else AREA_COLUMN)
    summary.update(mAP=summary['ap'][summary['metric']]['mAP'])
    if coco_metric:
        summary['coco'] = coco_average_precision(
            coco_ground_truth(scores.images.ground_truth, model.class_names, use_difficult), results)
    if write:
        summary['out_dir'] = out_dir or RunDir(prefix).eval_dir(epoch, deploy)
        write_outputs(summary['out_dir'], summary, results, scores.curves, model.class_names)
    for line in report_lines(summary):
        print(line)
    return summary
