"""INT8 post-training quantization of a trained SSD on the CPU, and its comparison with the FP32 model.

The steps, with MXNet 1.9's MKLDNN (oneDNN) backend:

1. fuse the deploy graph for the CPU (``get_backend_symbol('MKLDNN_QUANTIZE')``): each Convolution with its
   BatchNorm and ReLU becomes one ``_sg_mkldnn_conv`` node;
2. rewrite it with quantized nodes (``mx.contrib.quantization.quantize_model_mkldnn``): a ``quantize`` node
   turns the FP32 input into int8, the fused convolutions run in int8 (and, in the ``smart`` mode, ops such
   as pooling whose input already is int8), and a ``dequantize`` is placed before every node kept in FP32;
3. calibrate: the FP32 graph runs on a few images while the value range of every quantized node's output is
   recorded (``naive``: the minimum and maximum seen; ``entropy``: the threshold whose int8 histogram is
   closest, in KL divergence, to the FP32 one); the ranges become constants of the graph, so nothing is
   measured at run time;
4. fuse again: the requantize / dequantize steps are folded into the convolutions.

The parameters stay FP32 in the saved file (the fused convolutions fold BatchNorm and quantize their weights
when the graph is bound), so the INT8 ``.params`` is as large as the FP32 one. ``entropy`` calibration is
slow in MXNet 1.9 (one KL search over 8001 histogram bins per layer: 15-30 s for the 47 layers of
mobilenet0.25 on 2 cores) and, on the small models measured here, no closer to FP32 than ``naive``.

What stays FP32 (:data:`FP32_OPS`): everything after the prediction convolutions, i.e. the reshaping of the
head outputs, the class softmax, the anchors and the box decoding with NMS. The box offsets and class scores
leave the last convolutions in FP32, so the decoding sees no rounding beyond that of the convolutions.
``exclude_first_conv`` also keeps the convolution(s) reading the image in FP32 (3 input channels gain little
from int8 and the mean-subtracted pixels are the widest-ranged input of the network).
"""
import collections
import dataclasses
import re
import time

import mxnet as mx
import numpy as np

from config.defaults import DETECT
from config.errors import UserError
from core.run_dir import RunDir
from dataset.iterator import DetRecordIter
from evaluate.eval_metric import box_iou
from evaluate.runner import map_metric, metric_values, run_detectors
from symbol import multibox
from symbol.common import graph_nodes

CALIB_MODES = ('naive', 'entropy')          # how the value ranges are found (see the module notes)
QUANTIZED_DTYPES = ('auto', 'int8', 'uint8')   # int8 type of the quantized tensors; auto: uint8 after ReLU
QUANTIZE_MODE = 'smart'                     # MXNet's pass: ops that may run either way go int8 only when
                                            # their input already is int8 (no extra quantize nodes)
FP32_OPS = ('transpose', 'Flatten', 'Reshape', 'Concat', 'softmax', 'L2Normalization',
            '_contrib_MultiBoxPrior', '_contrib_MultiBoxDetection')   # the head after the prediction convs
WARMUP_BATCHES = 2                          # forwards before timing (oneDNN picks and caches kernels)
TIMED_BATCHES = 5                           # timed forwards; their median gives images/s
CPUINFO = '/proc/cpuinfo'                   # where the CPU's instruction-set flags are read
VNNI_FLAG = 'avx512_vnni'                   # the int8 dot-product instructions oneDNN uses when present
# FP32 detections from this score on must reappear in INT8: the ones demo.py shows by default. Lower ones
# include the score floor of classes absent from an image (about 0.11 on a young model): ties among hundreds
# of anchors, whose NMS winner INT8 rounding decides differently on AVX2 and on VNNI kernels.
AGREEMENT_SCORE = DETECT['thresh']
AGREEMENT_IOU = 0.9                         # ... with the same class and at least this IoU


@dataclasses.dataclass
class QuantizedModel:
    """A calibrated INT8 graph and its parameters.

    Attributes
    ----------
    symbol : mx.sym.Symbol
        Input ``data`` (B, 3, S, S) float32, output ``detection`` (B, A, 6) as the FP32 deploy graph's.
    arg_params, aux_params : dict of str to mx.nd.NDArray
    calib_mode : str
    quantized_dtype : str
    num_calib_images : int
        Images whose layer outputs set the ranges.
    excluded_names : list of str
        Nodes kept in FP32 by name (the first convolution with ``exclude_first_conv``).
    """
    symbol: mx.sym.Symbol
    arg_params: dict
    aux_params: dict
    calib_mode: str
    quantized_dtype: str
    num_calib_images: int
    excluded_names: list


def check_mkldnn():
    """Raise :class:`UserError` unless this MXNet build has the MKLDNN backend that runs INT8 on the CPU."""
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        raise UserError('this MXNet build has no MKLDNN backend, which INT8 quantization needs; install the '
                        'plain "mxnet" 1.9.1 package (built with MKLDNN) for quantization.py')


def check_options(calib_mode, quantized_dtype, num_calib_batches, batch_size):
    """Raise :class:`UserError` naming the flag when a quantization setting is invalid."""
    if calib_mode not in CALIB_MODES:
        raise UserError('--calib-mode %r is not a calibration mode; use %s' % (calib_mode, ' or '.join(CALIB_MODES)))
    if quantized_dtype not in QUANTIZED_DTYPES:
        raise UserError('--quantized-dtype %r is not supported; use %s'
                        % (quantized_dtype, ', '.join(QUANTIZED_DTYPES)))
    if num_calib_batches < 1:
        raise UserError('--num-calib-batches %d must be at least 1' % num_calib_batches)
    if batch_size < 1:
        raise UserError('--batch-size %d must be at least 1' % batch_size)


def first_conv_names(symbol, data_name='data'):
    """Names of the Convolution nodes that read the input image directly.

    Parameters
    ----------
    symbol : mx.sym.Symbol
        An FP32 graph (before fusion).
    data_name : str
        The input variable.

    Returns
    -------
    list of str
    """
    nodes = graph_nodes(symbol)
    data_ids = {index for index, node in enumerate(nodes) if node['op'] == 'null' and node['name'] == data_name}
    return [node['name'] for node in nodes
            if node['op'] == 'Convolution' and any(source[0] in data_ids for source in node['inputs'])]


def is_quantized_node(node):
    """Whether a graph node computes in int8 or converts to int8.

    Counted: fused MKLDNN nodes with ``quantized='true'`` (``_sg_mkldnn_conv``, fully connected), the
    ``_contrib_quantized_*`` ops and the ``_contrib_quantize*`` input conversions; not counted: dequantize
    and requantize.
    """
    return node['op'].startswith('_contrib_quantize') or node.get('attrs', {}).get('quantized') == 'true'


def quantized_op_counts(symbol):
    """``{op name: count}`` of the quantized nodes of ``symbol`` (see :func:`is_quantized_node`)."""
    return dict(collections.Counter(node['op'] for node in graph_nodes(symbol) if is_quantized_node(node)))


def quantized_inner_names(symbol):
    """Names of the original nodes inside the quantized fused nodes of ``symbol``.

    Returns
    -------
    set of str
        E.g. ``{'conv1', 'bn1', 'relu1', ...}`` for a MobileNet whose first unit stayed FP32.
    """
    names = set()
    for node in graph_nodes(symbol):
        if is_quantized_node(node):
            names.add(node['name'])
            for subgraph in node.get('subgraphs', ()):
                names.update(inner['name'] for inner in subgraph['nodes'] if inner['op'] != 'null')
    return names


def read_images(rec_path, model, batch_size, num_batches):
    """The first images of a ``.rec``, prepared as the validation iterator prepares them.

    Parameters
    ----------
    rec_path : str
    model : evaluate.model.TrainedModel
        Gives the input side, mean and std.
    batch_size : int
    num_batches : int
        Batches read at most (filler images of the last batch are dropped).

    Returns
    -------
    (N, 3, S, S) float32 array
        ``N <= batch_size * num_batches``.
    """
    batches = DetRecordIter(rec_path, batch_size, model.data_shape, mean_pixels=model.mean_pixels,
                            std_pixels=model.std_pixels, preset='val')
    images = []
    for index, batch in enumerate(batches):
        if index == num_batches:
            break
        images.append(batch.data[0].asnumpy()[:batch.data[0].shape[0] - batch.pad])
    if not images:
        raise UserError('%s holds no images; pass a validation .rec with --rec-path' % rec_path)
    return np.concatenate(images)


def quantize(model, calib_images, batch_size, calib_mode='naive', quantized_dtype='auto',
             exclude_first_conv=False):
    """Quantize and calibrate the deploy graph of ``model``.

    Parameters
    ----------
    model : evaluate.model.TrainedModel
    calib_images : (N, 3, S, S) float32 array
        Prepared images the ranges are measured on (:func:`read_images`).
    batch_size : int
        Images per calibration forward.
    calib_mode : str
        One of :data:`CALIB_MODES`.
    quantized_dtype : str
        One of :data:`QUANTIZED_DTYPES`.
    exclude_first_conv : bool
        Keep the convolution(s) reading the image in FP32.

    Returns
    -------
    QuantizedModel
    """
    check_mkldnn()
    check_options(calib_mode, quantized_dtype, 1, batch_size)
    symbol = model.deploy_symbol()
    arg_params, aux_params = model.deploy_params()
    excluded = first_conv_names(symbol) if exclude_first_conv else []
    calib_data = mx.io.NDArrayIter(data={'data': calib_images}, batch_size=batch_size, last_batch_handle='pad')
    qsymbol, qarg_params, qaux_params = mx.contrib.quantization.quantize_model_mkldnn(
        symbol, arg_params, aux_params, data_names=('data',), label_names=None, ctx=mx.cpu(),
        excluded_sym_names=list(excluded), excluded_op_names=list(FP32_OPS), calib_mode=calib_mode,
        calib_data=calib_data, num_calib_examples=len(calib_images), quantized_dtype=quantized_dtype,
        quantize_mode=QUANTIZE_MODE)
    return QuantizedModel(qsymbol, qarg_params, qaux_params, calib_mode, quantized_dtype, len(calib_images),
                          excluded)


def summary_path(out_prefix):
    """``<out_prefix>-quantization.json``: the summary quantization.py writes beside the INT8 model."""
    return out_prefix + '-quantization.json'


def save(quantized, out_prefix, epoch):
    """Write the INT8 graph and parameters in MXNet's checkpoint format, both or neither
    (``RunDir(out_prefix).save_checkpoint``).

    Returns
    -------
    tuple of str
        The symbol and params paths (loadable with ``mx.model.load_checkpoint(out_prefix, epoch)``).
    """
    run = RunDir(out_prefix)
    run.save_checkpoint(epoch, quantized.symbol, quantized.arg_params, quantized.aux_params)
    return run.symbol_path, run.params_path(epoch)


def bind_quantized(quantized, model, batch_size):
    """An inference Module running ``quantized`` on ``(batch_size, 3, S, S)`` batches.

    Returns
    -------
    mx.mod.Module
        Output ``detection`` (B, A, 6) as :func:`evaluate.model.bind_detector`'s.
    """
    module = mx.mod.Module(quantized.symbol, data_names=('data',), label_names=None, context=mx.cpu())
    module.bind(data_shapes=[('data', (batch_size, 3, model.data_shape, model.data_shape))], for_training=False)
    module.set_params(quantized.arg_params, quantized.aux_params, allow_missing=False, allow_extra=True)
    return module


def detections_of(module, images):
    """Run ``module`` on one batch of prepared images.

    Parameters
    ----------
    module : mx.mod.Module
        Bound for batches of ``len(images)``.
    images : (B, 3, S, S) float32 array

    Returns
    -------
    (B, A, 6) float32 array
        ``[cls, score, xmin, ymin, xmax, ymax]``.
    """
    module.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    position = multibox.output_positions(module.symbol)[multibox.DETECTION]
    return module.get_outputs()[position].asnumpy()


def evaluate_modules(modules, rec_path, model, batch_size, num_batch=None, consumers=(), overlap=0.5,
                     use_difficult=False, voc07=True):
    """mAP of several detectors over one pass of a ``.rec`` (each batch decoded once, run by every module).

    Parameters
    ----------
    modules : dict
        ``{title: mx.mod.Module}``, each bound for ``batch_size`` images.
    rec_path : str
    model : evaluate.model.TrainedModel
        Input side, mean, std and class names.
    batch_size : int
    num_batch : int, optional
        Batches evaluated; None: the whole file.
    consumers : sequence of callable
        More :func:`evaluate.runner.run_detectors` consumers: each called after every batch with labels
        (b, N, 6) and ``{title: (b, A, 6) detections}`` of its real images (e.g. :class:`DetectionAgreement`).
    overlap, use_difficult, voc07 :
        Of :func:`evaluate.runner.map_metric`.

    Returns
    -------
    aps : dict
        ``{title: {class name: AP, ..., 'mAP': value}}``.
    num_images : int
        Images evaluated (filler images of the last batch left out).
    """
    batches = DetRecordIter(rec_path, batch_size, model.data_shape, mean_pixels=model.mean_pixels,
                            std_pixels=model.std_pixels, preset='val')
    metrics = {title: map_metric(model.class_names, voc07, overlap, use_difficult) for title in modules}
    feeders = [metric_feeder(title, metric) for title, metric in metrics.items()]
    num_images, _ = run_detectors(modules, batches, feeders + list(consumers), num_batch=num_batch,
                                  desc='evaluating %s' % ' and '.join(modules))
    return {title: metric_values(metric) for title, metric in metrics.items()}, num_images


def metric_feeder(title, metric):
    """A :func:`evaluate.runner.run_detectors` consumer updating ``metric`` with detector ``title``'s rows."""
    return lambda labels, found: metric.update_arrays(labels, found[title])


def match_detections(reference, other, min_score=AGREEMENT_SCORE, min_iou=AGREEMENT_IOU):
    """Which confident detections of ``reference`` reappear in ``other``, for the same images.

    A reference detection (class >= 0, score >= ``min_score``) reappears when ``other`` has a detection of
    the same class whose box overlaps it with IoU >= ``min_iou`` in the same image; its score is compared
    with that of the best-overlapping one (one ``other`` detection may answer several reference ones).

    Parameters
    ----------
    reference, other : (B, A, 6) array
        ``[cls, score, xmin, ymin, xmax, ymax]`` rows, ``cls`` -1 for none.
    min_score, min_iou : float

    Returns
    -------
    found : (D,) bool
        For each confident reference detection, in image order.
    score_differences : (M,) float64
        ``|score_other - score_reference|`` of the detections found, ``M = found.sum()``.
    """
    found, differences = [], []
    for wanted, offered in zip(np.asarray(reference, np.float64), np.asarray(other, np.float64)):
        wanted = wanted[(wanted[:, 0] >= 0) & (wanted[:, 1] >= min_score)]                  # (D_i, 6)
        offered = offered[offered[:, 0] >= 0]                                                # (O_i, 6)
        iou = box_iou(wanted[:, None, 2:], offered[None, :, 2:])                            # (D_i, O_i)
        iou[wanted[:, 0][:, None] != offered[:, 0][None, :]] = -1.0
        best = iou.argmax(axis=1) if offered.size else np.zeros(len(wanted), dtype=np.int64)
        hit = iou.max(axis=1, initial=-1.0) >= min_iou
        found.append(hit)
        differences.append(np.abs(offered[best[hit], 1] - wanted[hit, 1]))
    return np.concatenate(found), np.concatenate(differences)


class DetectionAgreement:
    """Counts, over many batches, how many confident detections of one model another reproduces.

    A consumer for :func:`evaluate_modules` (:func:`evaluate.runner.run_detectors`): called with the labels
    and ``{title: detections}`` after every batch.

    Parameters
    ----------
    reference, other : str
        Titles of the two modules, e.g. ``'FP32'`` and ``'INT8'``.
    """

    def __init__(self, reference, other, min_score=AGREEMENT_SCORE, min_iou=AGREEMENT_IOU):
        self.reference, self.other = reference, other
        self.min_score, self.min_iou = min_score, min_iou
        self.found, self.differences = [], []

    def __call__(self, labels, detections):
        found, differences = match_detections(detections[self.reference], detections[self.other],
                                              self.min_score, self.min_iou)
        self.found.append(found)
        self.differences.append(differences)

    def summary(self):
        """``{'detections', 'reproduced', 'mean_score_difference', 'max_score_difference', 'min_score',
        'min_iou'}`` (differences NaN when nothing was reproduced)."""
        found = np.concatenate(self.found) if self.found else np.zeros(0, bool)
        differences = np.concatenate(self.differences) if self.differences else np.zeros(0)
        return dict(detections=int(found.size), reproduced=int(found.sum()),
                    mean_score_difference=float(differences.mean()) if differences.size else float('nan'),
                    max_score_difference=float(differences.max()) if differences.size else float('nan'),
                    min_score=self.min_score, min_iou=self.min_iou)


def images_per_second(module, images, warmup=WARMUP_BATCHES, timed=TIMED_BATCHES):
    """Forward throughput of ``module``: batch size over the median time of ``timed`` forwards.

    Parameters
    ----------
    module : mx.mod.Module
        Bound for batches of ``len(images)``.
    images : (B, 3, S, S) float32 array
    warmup, timed : int
        Forwards run untimed first, then timed.

    Returns
    -------
    float
    """
    batch = mx.io.DataBatch([mx.nd.array(images)])
    seconds = []
    for run in range(warmup + timed):
        start = time.perf_counter()
        module.forward(batch, is_train=False)
        mx.nd.waitall()
        if run >= warmup:
            seconds.append(time.perf_counter() - start)
    return len(images) / float(np.median(seconds))


def timing_batch(images, batch_size):
    """A ``(batch_size, 3, S, S)`` batch from ``images``, repeating them when there are fewer."""
    return images[np.arange(batch_size) % len(images)]


def comparison_lines(fp32, int8):
    """The 3-row table: FP32, INT8 and their ratio (INT8 / FP32).

    Parameters
    ----------
    fp32, int8 : dict
        ``{'mAP': float, 'images_per_second': float}``.

    Returns
    -------
    list of str
    """
    lines = ['%-6s %8s %12s' % ('', 'mAP', 'images/s')]
    for title, row in (('FP32', fp32), ('INT8', int8)):
        lines.append('%-6s %8.4f %12.1f' % (title, row['mAP'], row['images_per_second']))
    map_ratio = int8['mAP'] / fp32['mAP'] if fp32['mAP'] > 0 else float('nan')
    lines.append('%-6s %8.3f %11.2fx' % ('ratio', map_ratio, int8['images_per_second'] / fp32['images_per_second']))
    return lines


def vnni_note(flags):
    """One line on the CPU's int8 instructions, or None when it has VNNI."""
    if VNNI_FLAG in flags:
        return None
    extensions = sorted(flag for flag in flags if re.fullmatch(r'avx2|avx512(f|bw)|amx_int8', flag))
    return ('note: this CPU lacks VNNI (%s is not among the %s flags; it has %s): oneDNN runs the int8 '
            'convolutions with ordinary multiply-add instructions, so the speed-up is smaller than on a VNNI '
            'CPU' % (VNNI_FLAG, CPUINFO, ', '.join(extensions) or 'no AVX2'))
