"""Deploy checkpoints, the network body without NMS (for ONNX and speed measurements), and a NumPy reference
of the detection decoding and NMS that consumers of the body must reproduce.

Two graphs are built from a :class:`evaluate.model.TrainedModel`, with the parameter names of training:

- the deploy graph (``TrainedModel.deploy_symbol``): ``data`` (B, 3, S, S) -> ``detection`` (B, A, 6), with
  ``MultiBoxDetection`` (box decoding + NMS) and no loss layers; :func:`write_deploy` saves it as
  ``<dir>/deploy_<name>-symbol.json`` / ``-NNNN.params`` with ``.classes`` and ``-config.yaml`` (through
  ``core.run_dir.RunDir(prefix).deploy()``), loadable with ``mx.mod.Module`` (via ``mx.model.load_checkpoint``)
  and ``mx.gluon.nn.SymbolBlock.imports``;
- the body (:func:`body_symbol`): ``data`` -> ``cls_prob`` (B, 1 + K, A) softmax (background first),
  ``loc_preds`` (B, A * 4) encoded box offsets and, optionally, ``anchors`` (1, A, 4). MXNet 1.9.1's ONNX
  exporter has no converter for ``_contrib_MultiBoxPrior`` nor ``_contrib_MultiBoxDetection``, so
  :func:`export_onnx` exports ``cls_prob`` and ``loc_preds`` only and saves the anchors, which depend on the
  input side alone, as a constant ``.npy``. :func:`decode_detections` is what the consumer then runs.
"""
import dataclasses
import importlib
import json
import re

import mxnet as mx
import numpy as np

from config.defaults import DEPLOY
from config.errors import UserError
from config.schema import from_flat, resolved
from core.atomic import atomic_paths
from core.run_dir import RunDir
from evaluate.model import check_params_fit
from symbol import multibox, symbol_builder, symbol_factory

LOC_PREDS, ANCHORS = multibox.LOC_PREDS, multibox.ANCHORS
ONNX_PIN = DEPLOY['onnx_pin']
                                # 3.11 wheels and opset 19 (the exporter's ops are written for opsets 12-13)
ONNX_BATCH = DEPLOY['onnx_batch']
UNSUPPORTED_OP = re.compile(r'No conversion function registered for op type (\S+)')


@dataclasses.dataclass
class DeployPaths:
    """Files of a deploy checkpoint: ``<dir>/deploy_<name>...`` (the run directory ``RunDir(prefix).deploy()``)."""
    prefix: str
    symbol: str
    params: str
    classes: str
    config: str
    onnx: str
    anchors: str


def onnx_path(run, epoch):
    """``<deploy prefix>-NNNN.onnx``: the ONNX body of epoch ``epoch`` of the deploy run ``run``."""
    return '%s-%04d.onnx' % (run.prefix, epoch)


def anchors_path(run):
    """``<deploy prefix>-anchors.npy``: the anchors the ONNX body leaves out (they depend on the input side)."""
    return run.prefix + '-anchors.npy'


def deploy_paths(prefix, epoch, deploy_dir=None):
    """Where the deploy checkpoint of ``<prefix>`` epoch ``epoch`` goes.

    Parameters
    ----------
    prefix : str
        The training prefix, e.g. ``model/demo/ssd_demo``.
    epoch : int
    deploy_dir : str, optional
        The folder of the deploy files (default: the prefix's folder).

    Returns
    -------
    DeployPaths
        e.g. ``model/demo/deploy_ssd_demo-symbol.json``, ``-0012.params``, ``.classes``, ``-config.yaml``,
        ``-0012.onnx`` and ``-anchors.npy``.
    """
    run = RunDir(prefix).deploy(deploy_dir)
    return DeployPaths(prefix=run.prefix, symbol=run.symbol_path, params=run.params_path(epoch),
                       classes=run.classes_path, config=run.config_path, onnx=onnx_path(run, epoch),
                       anchors=anchors_path(run))


# ----------------------------------------------------------------------------------------------- graphs
def body_graph(num_classes, nms_thresh=None, force_suppress=None, nms_topk=None, with_anchors=True,
               **body_settings):
    """The SSD body with softmax class probabilities, as a group of named outputs.

    Parameters
    ----------
    num_classes : int
        Object classes, background excluded.
    nms_thresh, force_suppress, nms_topk :
        Ignored (the body has no NMS); accepted so that ``symbol_factory.build`` can call this.
    with_anchors : bool
        Whether ``anchors`` is an output.
    **body_settings :
        ``data_shape`` and the settings of :func:`symbol.symbol_builder.ssd_body`.

    Returns
    -------
    mx.sym.Symbol
        Outputs ``cls_prob`` (B, 1 + K, A), ``loc_preds`` (B, A * 4) and, with ``with_anchors``, ``anchors``
        (1, A, 4); read them with ``symbol.multibox.output_positions``.
    """
    loc_preds, cls_preds, anchor_boxes = symbol_builder.ssd_body(num_classes, **body_settings)
    outputs = [mx.sym.softmax(cls_preds, axis=1, name=multibox.CLS_PROB),
               mx.sym.identity(loc_preds, name=LOC_PREDS)]
    if with_anchors:
        outputs.append(mx.sym.identity(anchor_boxes, name=ANCHORS))
    return mx.sym.Group(outputs)


def body_symbol(network, data_shape, num_classes, with_anchors=True, **overrides):
    """:func:`body_graph` of ``network`` at input side ``data_shape``, checked as the deploy graph is.

    Raises
    ------
    UserError
        Unknown network, unsupported data shape, bad class count or overrides.
    """
    return symbol_factory.build(body_graph, network, data_shape, num_classes, multibox.NMS['nms_thresh'],
                                multibox.NMS['force_suppress'], multibox.NMS['nms_topk'], overrides,
                                with_anchors=with_anchors)


def model_body_symbol(model, with_anchors=True):
    """:func:`body_symbol` of a :class:`evaluate.model.TrainedModel`."""
    return body_symbol(model.network, model.data_shape, model.num_classes, with_anchors=with_anchors,
                       **model.network_overrides)


# ----------------------------------------------------------------------------------------- writing files
def deploy_config(model):
    """The deploy checkpoint's configuration on the schema: the training run's (schema defaults for a run
    without one) with the model's network, side, classes, input scaling and NMS settings, which
    ``evaluate.model.load_model`` reads, so the deploy checkpoint loads like a training one."""
    trained = RunDir(model.prefix).read_config()
    return resolved(trained if trained is not None else from_flat(), {
        'model.network': model.network, 'model.data_shape': model.data_shape,
        'model.network_overrides': dict(model.network_overrides), 'model.nms_thresh': model.nms_thresh,
        'model.force_suppress': model.force_suppress, 'data.class_names': list(model.class_names),
        'data.num_class': model.num_classes, 'data.mean_pixels': list(model.mean_pixels),
        'data.std_pixels': list(model.std_pixels)})


def deploy_provenance(model, nms_topk):
    """``{name: value}`` of where the deploy checkpoint comes from; written as the configuration's header."""
    return dict(deployed_from=dict(prefix=model.prefix, epoch=model.epoch), mxnet_version=mx.__version__,
                nms_topk=nms_topk)


def provenance_note(provenance):
    """The header comment lines of ``<deploy prefix>-config.yaml``: ``name: <JSON value>`` each."""
    return ['%s: %s' % (name, json.dumps(value)) for name, value in provenance.items()]


def read_provenance(config_path):
    """The :func:`deploy_provenance` record in the header comment of a deploy ``-config.yaml`` (``{}`` if none)."""
    found = {}
    with open(config_path) as handle:
        for line in handle:
            if not line.startswith('# '):
                break
            name, _, value = line[2:].partition(': ')
            try:
                found[name] = json.loads(value)
            except ValueError:
                continue
    return found


def write_deploy(model, nms_topk=multibox.NMS['nms_topk']):
    """Write the deploy checkpoint of ``model``: symbol, parameters, class list and configuration.

    Parameters
    ----------
    model : evaluate.model.TrainedModel
    nms_topk : int
        Detections kept per image before NMS (-1: all).

    Returns
    -------
    DeployPaths

    Raises
    ------
    UserError
        The checkpoint does not fit the graph (class count, missing or misshapen parameters).
    """
    symbol = model.deploy_symbol(nms_topk)
    check_params_fit(model, symbol)
    arg_params, aux_params = model.deploy_params(symbol)
    paths = deploy_paths(model.prefix, model.epoch)
    RunDir(paths.prefix).save_deploy_graph(model.epoch, symbol, arg_params, aux_params, deploy_config(model),
                                           model.class_names, provenance_note(deploy_provenance(model, nms_topk)))
    return paths


# ------------------------------------------------------------------------------------------------- ONNX
def require_onnx():
    """UserError unless an ``onnx`` package that MXNet's exporter can use (one with ``onnx.mapping``) imports."""
    try:
        onnx = importlib.import_module('onnx')
    except ImportError:
        raise UserError('--onnx needs the onnx package, which is not installed: pip install %s (MXNet 1.9.1\'s '
                        'exporter needs onnx.mapping, removed in onnx 1.19); nothing was written' % ONNX_PIN) \
            from None
    try:
        importlib.import_module('onnx.mapping')
    except ImportError:
        raise UserError('--onnx: onnx %s has no onnx.mapping, which MXNet 1.9.1\'s exporter needs: pip install %s; '
                        'nothing was written' % (getattr(onnx, '__version__', '?'), ONNX_PIN)) from None


def compute_anchors(model):
    """The anchors of ``model`` at its input side, computed by MXNet.

    Returns
    -------
    (1, A, 4) float32 array
        ``[xmin, ymin, xmax, ymax]`` normalized; the same for every image of that side.
    """
    symbol = model_body_symbol(model)
    executor = symbol.simple_bind(mx.cpu(), data=(1, 3, model.data_shape, model.data_shape), grad_req='null')
    arg_params, aux_params = model.deploy_params(symbol)
    executor.copy_params_from(arg_params, aux_params)
    outputs = executor.forward(is_train=False, data=mx.nd.zeros((1, 3, model.data_shape, model.data_shape)))
    return outputs[multibox.output_positions(symbol)[ANCHORS]].asnumpy().astype(np.float32)


def unsupported_operator(error):
    """The MXNet operator named in an exporter error, or None when the error is about something else."""
    match = UNSUPPORTED_OP.search(str(error))
    return match.group(1) if match else None


def export_onnx(model, paths):
    """Export the body (``cls_prob``, ``loc_preds``) to ONNX and the anchors to ``.npy``.

    Parameters
    ----------
    model : evaluate.model.TrainedModel
    paths : DeployPaths
        ``paths.onnx`` and ``paths.anchors`` are written (atomically, both or neither).

    Raises
    ------
    UserError
        onnx missing, or an operator the exporter cannot convert (named).
    """
    require_onnx()
    from mxnet import onnx as mx_onnx
    symbol = model_body_symbol(model, with_anchors=False)
    arg_params, aux_params = model.deploy_params(symbol)
    anchors = compute_anchors(model)
    side = model.data_shape
    with atomic_paths(paths.onnx, paths.anchors) as (onnx_path, anchors_path):
        try:
            mx_onnx.export_model(symbol, dict(arg_params, **aux_params), in_shapes=[(ONNX_BATCH, 3, side, side)],
                                 in_types=np.float32, onnx_file_path=onnx_path)
        except AttributeError as err:
            operator = unsupported_operator(err)
            if operator is None:
                raise
            raise UserError('--onnx: MXNet %s cannot export operator %s of network %s to ONNX; the MXNet deploy '
                            'checkpoint %s was written' % (mx.__version__, operator, model.network,
                                                           paths.symbol)) from None
        with open(anchors_path, 'wb') as handle:   # np.save(path) would append '.npy' to the temporary name
            np.save(handle, anchors)


# ------------------------------------------------------------------ NumPy reference of MultiBoxDetection
def decode_boxes(loc_preds, anchors, variances=multibox.VARIANCES, clip=multibox.CLIP_DETECTIONS):
    """Boxes from encoded offsets, as ``MultiBoxDetection`` decodes them.

    For an anchor with centre ``(ax, ay)`` and size ``(aw, ah)`` and offsets ``(px, py, pw, ph)``: centre
    ``(px * v0 * aw + ax, py * v1 * ah + ay)``, half size ``(exp(pw * v2) * aw / 2, exp(ph * v3) * ah / 2)``.

    Parameters
    ----------
    loc_preds : (B, A * 4) float array
    anchors : (1, A, 4) float array
        ``[xmin, ymin, xmax, ymax]``.
    variances : 4 floats
    clip : bool
        Clip the corners to [0, 1].

    Returns
    -------
    (B, A, 4) float32 array
        ``[xmin, ymin, xmax, ymax]``, normalized.
    """
    offsets = np.asarray(loc_preds, np.float32).reshape(len(loc_preds), -1, 4)
    anchors = np.asarray(anchors, np.float32)
    v0, v1, v2, v3 = (np.float32(value) for value in variances)
    half = np.float32(2)
    width, height = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
    centre_x, centre_y = (anchors[..., 0] + anchors[..., 2]) / half, (anchors[..., 1] + anchors[..., 3]) / half
    x = offsets[..., 0] * v0 * width + centre_x
    y = offsets[..., 1] * v1 * height + centre_y
    half_w = np.exp(offsets[..., 2] * v2) * width / half
    half_h = np.exp(offsets[..., 3] * v3) * height / half
    boxes = np.stack([x - half_w, y - half_h, x + half_w, y + half_h], axis=-1)
    return np.clip(boxes, 0, 1) if clip else boxes


def box_overlaps(box, boxes):
    """IoU of one ``[xmin, ymin, xmax, ymax]`` box with each of ``boxes`` (N, 4); 0 where the union is empty."""
    width = np.maximum(0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    height = np.maximum(0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = width * height
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union <= 0, np.float32(0), inter / np.where(union <= 0, np.float32(1), union))


def suppress(rows, nms_thresh, force_suppress):
    """Greedy NMS in place on score-sorted rows ``[cls, score, box]``: a row overlapping an earlier kept row
    of the same class (any class with ``force_suppress``) by IoU >= ``nms_thresh`` gets ``cls`` -1."""
    for index in range(len(rows)):
        if rows[index, 0] < 0:
            continue
        later = rows[index + 1:]
        rivals = (later[:, 0] >= 0) & (force_suppress | (later[:, 0] == rows[index, 0]))
        later[rivals & (box_overlaps(rows[index, 2:], later[:, 2:]) >= nms_thresh), 0] = -1


def image_detections(cls_prob, boxes, threshold, nms_thresh, force_suppress, nms_topk):
    """:func:`decode_detections` for one image: cls_prob (1 + K, A), boxes (A, 4) -> (A, 6)."""
    out = np.full((cls_prob.shape[1], 6), -1, np.float32)
    object_prob = cls_prob[1:]                              # background is class 0
    best = object_prob.argmax(axis=0)                       # the first of equal maxima, as MXNet's loop
    scores = object_prob[best, np.arange(object_prob.shape[1])]
    valid = scores >= threshold
    rows = np.concatenate([best[valid][:, None].astype(np.float32), scores[valid][:, None], boxes[valid]], axis=1)
    count = len(rows)
    out[:count] = rows                                      # anchor order
    if count == 0 or not 0 < nms_thresh <= 1:
        return out
    order = np.argsort(-rows[:, 1], kind='stable')
    keep = count if nms_topk <= 0 else min(nms_topk, count)
    out[keep:count, 0] = -1                                 # beyond the top k: dropped (rest of row unsorted)
    out[:keep] = rows[order[:keep]]
    suppress(out[:keep], nms_thresh, force_suppress)
    return out


def decode_detections(cls_prob, loc_preds, anchors, nms_thresh=multibox.NMS['nms_thresh'],
                      force_suppress=multibox.NMS['force_suppress'], nms_topk=multibox.NMS['nms_topk'],
                      threshold=multibox.DETECTION_THRESHOLD, variances=multibox.VARIANCES):
    """What ``MultiBoxDetection`` computes, in NumPy: the reference for consumers of the ONNX body.

    Per image: each anchor takes its most probable object class (background excluded) and that probability
    as score; anchors scoring below ``threshold`` are dropped; boxes are decoded (:func:`decode_boxes`); the
    rest are sorted by score (stable), only the ``nms_topk`` best kept (-1: all), then greedy NMS: a
    detection whose IoU with a higher-scored kept detection of the same class (of any class with
    ``force_suppress``) is >= ``nms_thresh`` gets class -1.

    Parameters
    ----------
    cls_prob : (B, 1 + K, A) float array
        Softmax probabilities, background first.
    loc_preds : (B, A * 4) float array
    anchors : (1, A, 4) float array
    nms_thresh, force_suppress, nms_topk, threshold, variances :
        See :mod:`symbol.multibox`.

    Returns
    -------
    (B, A, 6) float32 array
        Rows ``[cls, score, xmin, ymin, xmax, ymax]``, kept ones sorted by score, ``cls`` -1 for suppressed
        rows and padding; equal to ``MultiBoxDetection``'s output.
    """
    cls_prob = np.asarray(cls_prob, np.float32)
    boxes = decode_boxes(loc_preds, anchors, variances)
    return np.stack([image_detections(cls_prob[index], boxes[index], threshold, nms_thresh, force_suppress,
                                      nms_topk) for index in range(len(cls_prob))])

