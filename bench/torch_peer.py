"""The torchvision peer of the time-to-accuracy benchmark, seen from the project's venv.

- :func:`ensure_torch_venv` makes (once) a separate venv with CPU torch and torchvision, ``bench/.torch-venv``;
- :func:`run_peer` runs ``bench/ssdlite_peer.py`` with it (SSDlite320-MobileNetV3 from scratch) and returns the
  detection file of each training-time mark;
- :func:`score_detections` scores such a file with the project's own VOC07 mAP
  (:class:`evaluate.eval_metric.VOC07MApMetric`) against ground truth read by the project's own VOC reader and
  normalized exactly as the packed validation records hold it, so both trainers are scored identically.

Ground truth. ``bench_time_to_accuracy.py`` validates our trainer on ``tools/prepare_dataset.py --set test
--no-shuffle``: :func:`dataset.pascal_voc.load_pascal_voc` (difficult objects kept with their flag, boxes
``(x - 1) / W`` clipped into [0, 1], empty ones dropped), written to the ``.lst`` with 6 decimals and packed as
float32. :func:`ground_truth` takes the same path through :func:`dataset.lst.format_lst_line` and
:func:`dataset.lst.parse_lst_line`, so its labels are those floats bit for bit. The metric ignores difficult
objects (the ``eval.use_difficult`` default) and counts IoU >= 0.5 (``eval.overlap``).
"""
import json
import os
import posixpath
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np

from dataset.lst import format_lst_line, parse_lst_line
from dataset.pascal_voc import load_pascal_voc
from evaluate.eval_metric import VOC07MApMetric

BENCH = os.path.dirname(os.path.abspath(__file__))
TORCH_VENV = os.path.join(BENCH, '.torch-venv')
PEER_SCRIPT = os.path.join(BENCH, 'ssdlite_peer.py')
TORCH_INDEX = 'https://download.pytorch.org/whl/cpu'
# A torch and the torchvision built for it (torchvision's compiled ops load only with the torch build they were
# made for: PyPI's torchvision next to a +cpu torch fails with "operator torchvision::nms does not exist").
# Where TORCH_INDEX answers, pip takes its 2.14.1+cpu / 0.29.1+cpu (about 550 MB: a public pin matches the +cpu
# local versions, and those sort higher); where it does not (index_reachable), pip gets PyPI alone and takes its
# CUDA build with the nvidia-* wheels (about 3 GB, some 5 GB installed), which runs on the CPU just the same.
TORCH_REQUIREMENTS = ('torch==2.14.1', 'torchvision==0.29.1')
IMPORT_CHECK = 'import torch, torchvision, torchvision.ops; torchvision.ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)'
PROGRESS_FILE = 'progress.json'     # what ssdlite_peer.py writes at the end, listing its detection files
OVERLAP = 0.5                       # the eval.overlap default: IoU of a true positive
SCORE_CHUNK = 64                    # images per metric update


# ---------------------------------------------------------------------------------------------- the venv
def venv_python(venv_dir):
    """The python executable of a venv folder."""
    return os.path.join(venv_dir, 'bin', 'python')


def has_torchvision(python):
    """True when ``python`` exists and imports torch and torchvision (and runs torchvision's NMS)."""
    if not os.path.isfile(python):
        return False
    return subprocess.run([python, '-c', IMPORT_CHECK], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def ensure_torch_venv(venv_dir=TORCH_VENV, base_python='python3', requirements=TORCH_REQUIREMENTS,
                      extra_index_url=TORCH_INDEX):
    """The python of a venv with torch and torchvision, made on first use and reused afterwards.

    Parameters
    ----------
    venv_dir : str
        Where the venv lives (default ``bench/.torch-venv``, ignored by git).
    base_python : str
        The interpreter that creates it (``<base_python> -m venv``).
    requirements : sequence of str
        What pip installs.
    extra_index_url : str
        Given to pip as ``--extra-index-url`` when it answers: the CPU-only wheels, beside PyPI (which serves
        the dependencies either way, and the CUDA build where this index cannot be reached).

    Returns
    -------
    str
        Path of the venv's python.

    Raises
    ------
    RuntimeError
        When the venv cannot be made or still cannot import torchvision after the install.
    """
    python = venv_python(venv_dir)
    if has_torchvision(python):
        return python
    if not os.path.isfile(python):
        print('creating %s' % venv_dir, flush=True)
        _check_call([base_python, '-m', 'venv', venv_dir], 'creating the torch venv')
    indexes = ['--extra-index-url', extra_index_url] if index_reachable(extra_index_url) else []
    print('installing %s into %s%s' % (' '.join(requirements), venv_dir, '' if indexes else
                                       ' (%s does not answer: the CUDA build from PyPI, about 3 GB)'
                                       % extra_index_url), flush=True)
    _check_call([python, '-m', 'pip', 'install'] + indexes + list(requirements),
                'installing torch into %s' % venv_dir)
    if not has_torchvision(python):
        raise RuntimeError('%s was installed but `%s -c "%s"` still fails; remove %s and retry'
                           % (' '.join(requirements), python, IMPORT_CHECK, venv_dir))
    return python


def index_reachable(url, timeout=10):
    """True when ``url`` answers an HTTP request within ``timeout`` seconds (pip would retry it for minutes)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _check_call(command, what):
    result = subprocess.run(command)
    if result.returncode != 0:
        raise RuntimeError('%s failed (exit %d): %s' % (what, result.returncode, ' '.join(command)))


# ---------------------------------------------------------------------------------------------- the run
def peer_command(python, voc_dir, out_dir, marks, threads=2, batch_size=16, lr=0.02, warmup_iters=200, seed=0):
    """The command line of ``bench/ssdlite_peer.py`` (see :func:`run_peer` for the parameters)."""
    return [python, PEER_SCRIPT, '--voc-dir', voc_dir, '--out-dir', out_dir,
            '--marks', ','.join('%g' % mark for mark in marks), '--threads', str(threads),
            '--batch-size', str(batch_size), '--lr', '%g' % lr, '--warmup-iters', str(warmup_iters),
            '--seed', str(seed)]


def peer_environment(threads):
    """This process's environment for the peer: OpenMP/MKL threads set to ``threads``, no PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key not in ('PYTHONPATH', 'PYTHONHOME')}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_peer(voc_dir, out_dir, marks, python=None, threads=2, batch_size=16, lr=0.02, warmup_iters=200, seed=0):
    """Train SSDlite320 with ``bench/ssdlite_peer.py`` until the last mark, its output streamed to ours.

    Parameters
    ----------
    voc_dir : str
        The ``VOC<year>`` folder (with ``classes.txt`` and ImageSets/Main/trainval.txt and test.txt).
    out_dir : str
        Receives ``detections-<mark>min.json`` per mark and ``progress.json``.
    marks : sequence of float
        Training minutes at which the test split is predicted.
    python : str, optional
        The torch venv's python; default :func:`ensure_torch_venv`'s.
    threads, batch_size, lr, warmup_iters, seed
        The peer's flags (``--threads`` etc.).

    Returns
    -------
    dict
        ``{mark: path of its detections JSON}`` for every mark given, read from the peer's progress.json.
    """
    python = python or ensure_torch_venv()
    command = peer_command(python, voc_dir, out_dir, marks, threads, batch_size, lr, warmup_iters, seed)
    print(' '.join(command), flush=True)
    sys.stdout.flush()
    result = subprocess.run(command, env=peer_environment(threads))
    if result.returncode != 0:
        raise RuntimeError('the torchvision peer failed (exit %d): %s' % (result.returncode, ' '.join(command)))
    return mark_files(out_dir, marks)


def mark_files(out_dir, marks):
    """``{mark: detections path}`` from ``<out_dir>/progress.json``; RuntimeError when a mark has none."""
    with open(os.path.join(out_dir, PROGRESS_FILE), encoding='utf-8') as handle:
        written = {float(entry['mark_minutes']): entry['path'] for entry in json.load(handle)['marks']}
    missing = [mark for mark in marks if float(mark) not in written]
    if missing:
        raise RuntimeError('the peer wrote no detections for marks %s (it wrote %s)' % (missing, sorted(written)))
    return {mark: written[float(mark)] for mark in marks}


# ---------------------------------------------------------------------------------------------- scoring
def ground_truth(voc_dir, split='test'):
    """The labels our validation records hold for a VOC split (see the module docstring).

    Parameters
    ----------
    voc_dir : str
        The ``VOC<year>`` folder.
    split : str
        Image set, e.g. ``'test'``.

    Returns
    -------
    classes : tuple of str
    labels : dict
        ``{image id: (N, 6) float32 [cls, xmin, ymin, xmax, ymax, difficult]}``, normalized, in split order.
    """
    root, folder = os.path.split(os.path.normpath(voc_dir))
    if not folder.startswith('VOC'):
        raise ValueError('%s is not a VOC<year> folder' % voc_dir)
    imdb = load_pascal_voc(root, folder[3:], split, skip_unknown=False)
    labels = {}
    for index, (path, objects) in enumerate(zip(imdb.image_paths, imdb.labels)):
        _, packed, _ = parse_lst_line(format_lst_line(index, objects, path))
        labels[posixpath.splitext(posixpath.basename(path))[0]] = packed
    return imdb.classes, labels


def padded(arrays, width):
    """Stack ``(n_i, width)`` arrays into ``(B, max n_i, width)`` float32, padded with -1 rows."""
    rows = max((len(array) for array in arrays), default=0)
    out = np.full((len(arrays), max(rows, 1), width), -1.0, dtype=np.float32)
    for index, array in enumerate(arrays):
        out[index, :len(array)] = np.asarray(array, dtype=np.float32).reshape(-1, width)
    return out


def score_detections(detections_json, voc_dir, split='test'):
    """VOC07 11-point mAP of a peer detection file, with the project's metric and ground truth.

    Parameters
    ----------
    detections_json : str or dict
        A ``detections-<mark>min.json`` path (or its loaded content): ``detections`` maps every image id of
        the split to ``(D, 6)`` rows ``[class index, score, xmin, ymin, xmax, ymax]``, normalized.
    voc_dir : str
        The ``VOC<year>`` folder.
    split : str
        The image set the detections are of.

    Returns
    -------
    float
        The mAP over classes that have non-difficult ground truth.
    """
    record = detections_json
    if not isinstance(record, dict):
        with open(detections_json, encoding='utf-8') as handle:
            record = json.load(handle)
    classes, labels = ground_truth(voc_dir, split)
    detections = record['detections']
    check_same_images(labels, detections, detections_json if isinstance(detections_json, str) else 'detections')
    metric = VOC07MApMetric(ovp_thresh=OVERLAP, class_names=classes)
    image_ids = list(labels)
    for start in range(0, len(image_ids), SCORE_CHUNK):
        chunk = image_ids[start:start + SCORE_CHUNK]
        metric.update_arrays(padded([labels[i] for i in chunk], 6), padded([detections[i] for i in chunk], 6))
    return metric.get()[1][-1]


def check_same_images(labels, detections, source):
    """ValueError unless the detections name exactly the images of the split."""
    missing, extra = set(labels) - set(detections), set(detections) - set(labels)
    if missing or extra:
        raise ValueError('%s: %d images of the split have no entry (e.g. %s) and %d entries are not in it (e.g. %s)'
                         % (source, len(missing), sorted(missing)[:3], len(extra), sorted(extra)[:3]))
