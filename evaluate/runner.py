"""The one evaluation core: run bound detectors over a data iterator, drop padded images, feed consumers.

Training validation (``train/hooks.py``), ``evaluate.py`` (``evaluate/evaluate_net.py``) and
``quantization.py`` (``evaluate/quantize_net.py``) all score through :func:`run_detectors` and build their
VOC metrics with :func:`map_metric`.
"""
import dataclasses
import time

import mxnet as mx
from tqdm import tqdm

from evaluate.eval_metric import MApMetric, VOC07MApMetric
from symbol import multibox


def map_metric(class_names, voc07=True, overlap=0.5, use_difficult=False):
    """The VOC metric: 11-point (``voc07``, named 'VOC07 mAP') or area under the curve (named 'mAP')."""
    metric_class = VOC07MApMetric if voc07 else MApMetric
    return metric_class(ovp_thresh=overlap, use_difficult=use_difficult, class_names=class_names,
                        name='VOC07 mAP' if voc07 else 'mAP')


def metric_values(metric):
    """``{class name: AP, ..., 'mAP': value}`` of a VOC metric."""
    names, values = metric.get()
    return dict(zip(names, values))


def detection_position(module):
    """Position of the ``detection`` output among ``module``'s outputs (train and deploy graphs)."""
    return module.output_names.index(multibox.output_key(multibox.DETECTION))


@dataclasses.dataclass
class Timing:
    """Seconds of a whole scoring loop (decoding, network, metrics) and of the networks alone."""
    total: float = 0.0
    network: float = 0.0


def run_detectors(detectors, data_iter, consumers, num_batch=None, desc='evaluating', progress=True):
    """One pass over ``data_iter`` (each batch decoded once, run by every detector).

    Parameters
    ----------
    detectors : dict
        ``{title: mx.mod.Module}`` bound for ``data_iter``'s batch (inference or training module: run with
        ``is_train=False``); each has a ``detection`` output.
    data_iter : mx.io.DataIter
        Batches with labels (B, N, 6), -1 padded; reset first.
    consumers : sequence of callable
        ``consumer(labels (R, N, 6), {title: detections (R, A, 6)})`` per batch, for its R real images
        (``batch.pad`` fillers of the last batch dropped); detections ``[cls, score, x0, y0, x1, y1]``.
    num_batch : int, optional
        Stop after this many batches; None: the whole iterator.
    desc : str
        The progress bar's label.
    progress : bool
        Show a tqdm bar (images, img/s).

    Returns
    -------
    images : int
        Real images scored.
    timing : Timing
    """
    positions = {title: detection_position(module) for title, module in detectors.items()}
    total = getattr(data_iter, 'num_records', None)
    if total is not None and num_batch is not None:
        total = min(total, num_batch * data_iter.batch_size)
    timing, images = Timing(), 0
    data_iter.reset()
    started = time.perf_counter()
    with tqdm(total=total, unit='img', desc=desc, dynamic_ncols=True, leave=False, disable=not progress) as bar:
        for index, batch in enumerate(data_iter):
            if num_batch is not None and index >= num_batch:
                break
            real = batch.data[0].shape[0] - batch.pad
            labels = batch.label[0].asnumpy()[:real]
            detections = {}
            tic = time.perf_counter()
            for title, module in detectors.items():
                module.forward(mx.io.DataBatch(data=batch.data, label=batch.label), is_train=False)
                detections[title] = module.get_outputs()[positions[title]].asnumpy()[:real]
            timing.network += time.perf_counter() - tic
            for consumer in consumers:
                consumer(labels, detections)
            images += real
            bar.update(real)
    timing.total = time.perf_counter() - started
    return images, timing


def score(module, data_iter, metric, num_batch=None, desc='validating', progress=False):
    """``metric`` reset and fed by one detector over ``data_iter``; returns :func:`metric_values`."""
    metric.reset()
    run_detectors({'model': module}, data_iter, [lambda labels, found: metric.update_arrays(labels, found['model'])],
                  num_batch=num_batch, desc=desc, progress=progress)
    return metric_values(metric)
