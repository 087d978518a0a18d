"""Class balance by repeat-factor sampling (LVIS, Gupta et al. 2019), at record level.

For each class ``c``, ``f(c)`` is the fraction of training images holding at least one object of ``c``; its
repeat factor is ``r(c) = max(1, sqrt(t / f(c)))`` for the threshold ``t`` (``--balance-threshold``), so a
class in fewer than ``t`` of the images is seen as if it were in ``t`` of them (square-root damped). An image
is repeated ``r(i) = max over its classes of r(c)`` times (1 without objects). The fractional part is rounded
stochastically, once, with the run's seed, so the expected repeats are ``r(i)``.

The reader (MXNet's C++ ``ImageDetRecordIter``) streams record files and cannot sample, so the repeats are
written out: :func:`balanced_records` copies every record of the training set ``r(i)`` times into one
``.rec``/``.idx`` beside the run's prefix (``<prefix>-balanced.rec``, with its ``.classes`` and a small
``.json`` saying what it was made from). Copies get new record ids (the original id kept in the header's
second id), so the file passes every check a packed file does. A later run with the same inputs, threshold
and seed reuses the file; every worker of a group writes the same bytes, atomically, so they may all build it.
"""
import json
import os

import numpy as np

from config.errors import UserError
from core.atomic import atomic_open, atomic_paths, write_json
from dataset.lst import unflatten_label
from dataset.record_set import class_names_for, resolve_inputs
from dataset.recordio import IR_HEADER, IndexedRecordWriter, frame_record, read_record_labels

FORMAT = 1


def label_classes(flat_label, source='label'):
    """The distinct class ids of one record's objects (:func:`dataset.lst.unflatten_label`, padding dropped).

    Returns
    -------
    (K,) int64 array
    """
    return np.unique(unflatten_label(flat_label, source)[:, 0].astype(np.int64))


def class_image_fractions(image_classes, num_classes):
    """``f(c)``: the fraction of images holding class ``c``.

    Parameters
    ----------
    image_classes : list of (K_i,) int arrays
    num_classes : int

    Returns
    -------
    (num_classes,) float64 array
    """
    images = np.zeros(num_classes, np.float64)
    for classes in image_classes:
        images[classes[classes < num_classes]] += 1
    return images / max(len(image_classes), 1)


def repeat_factors(image_classes, num_classes, threshold):
    """``r(i) = max(1, max over the image's classes of sqrt(threshold / f(c)))``; 1 for an image without objects.

    Returns
    -------
    (N,) float64 array
    """
    fractions = class_image_fractions(image_classes, num_classes)
    with np.errstate(divide='ignore'):
        per_class = np.maximum(1.0, np.sqrt(threshold / fractions))
    return np.array([per_class[classes].max() if classes.size else 1.0 for classes in image_classes])


def repeat_counts(factors, seed):
    """Whole repeats per image: ``floor(r) + 1`` with probability ``r - floor(r)`` (a seeded draw).

    Returns
    -------
    (N,) int64 array
        Each at least 1.
    """
    whole = np.floor(factors)
    draw = np.random.RandomState(seed).random_sample(len(factors))
    return (whole + (draw < factors - whole)).astype(np.int64)


def effective_counts(image_classes, counts, num_classes):
    """Images per class before and after repeating: ``(before, after)``, each ``(num_classes,)`` int64."""
    before, after = np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64)
    for classes, count in zip(image_classes, counts):
        classes = classes[classes < num_classes]
        before[classes] += 1
        after[classes] += count
    return before, after


def read_records(parts):
    """Every record of ``parts``, in order, whole (MXNet's reader puts split records together): yields
    ``(payload bytes, flat label (L,) float32)``. Only for copying: labels alone are read from the headers."""
    import mxnet as mx  # its reader puts split records together
    for part in parts:
        reader = mx.recordio.MXRecordIO(part.rec, 'r')
        try:
            while True:
                payload = reader.read()
                if payload is None:
                    break
                flag = IR_HEADER.unpack_from(payload)[0]
                yield payload, np.frombuffer(payload, np.float32, count=flag, offset=IR_HEADER.size)
        finally:
            reader.close()


def renumbered(payload, new_id):
    """``payload`` with IRHeader id ``new_id`` and the old id moved to the second id; ``(head, body)``."""
    flag, label, old_id, _ = IR_HEADER.unpack_from(payload)
    head_size = IR_HEADER.size + 4 * flag
    return IR_HEADER.pack(flag, label, new_id, old_id) + payload[IR_HEADER.size:head_size], payload[head_size:]


def source_description(parts, threshold, seed):
    """What a balanced file is made from: the inputs (path, size, modification time), threshold and seed."""
    return dict(format=FORMAT, threshold=threshold, seed=seed,
                inputs=[[os.path.abspath(part.rec), os.path.getsize(part.rec), int(os.path.getmtime(part.rec))]
                        for part in parts])


def up_to_date(prefix, description):
    """Whether ``<prefix>.rec``/``.idx``/``.json`` exist and the ``.json`` describes the same inputs."""
    if not all(os.path.isfile(prefix + suffix) for suffix in ('.rec', '.idx', '.json')):
        return False
    try:
        with open(prefix + '.json') as handle:
            return json.load(handle).get('source') == description
    except (OSError, ValueError):
        return False


def balanced_records(train_path, prefix, threshold, seed, log=print):
    """The training set of ``train_path`` with every image repeated ``r(i)`` times, as ``<prefix>.rec``.

    Parameters
    ----------
    train_path : str
        A ``.rec``, a manifest, a glob or a comma list (dataset/record_set.py).
    prefix : str
        Where the balanced ``.rec``/``.idx``/``.classes``/``.json`` go.
    threshold : float
        ``t`` in (0, 1].
    seed : int or None
        Seed of the stochastic rounding (None: 0).
    log : callable
        Receives the summary lines (per class: images before and after).

    Returns
    -------
    str
        ``<prefix>.rec``.
    """
    if not 0 < threshold <= 1:
        raise UserError('--balance-threshold %g must be in (0, 1]: the image fraction below which a class is '
                        'repeated' % threshold)
    parts = resolve_inputs(train_path)
    class_names = list(class_names_for(parts)[0])
    seed = 0 if seed is None else int(seed)
    description = source_description(parts, threshold, seed)
    image_classes = [label_classes(flat, '%s record %d' % (part.rec, record_id))
                     for part in parts for record_id, flat in read_record_labels(part.rec)]   # headers only
    num_classes = max(len(class_names), max((int(c.max()) + 1 for c in image_classes if c.size), default=0))
    counts = repeat_counts(repeat_factors(image_classes, num_classes, threshold), seed)
    before, after = effective_counts(image_classes, counts, num_classes)
    names = class_names + ['class_%d' % index for index in range(len(class_names), num_classes)]
    log('--balance repeat-factor (threshold %g): %d images -> %d records; images per class, before -> after:'
        % (threshold, len(counts), int(counts.sum())))
    for name, old, new in zip(names, before, after):
        log('  %-16s %6d -> %6d  (x%.2f)' % (name, old, new, new / max(old, 1)))
    if not up_to_date(prefix, description):
        write_balanced(parts, counts, prefix, names, description)
    return prefix + '.rec'


def write_balanced(parts, counts, prefix, class_names, description):
    """Write the repeated records, the ``.idx``, the ``.classes`` and the ``.json``, each atomically (the
    ``.json``, which marks the set complete, last)."""
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with atomic_paths(prefix + '.rec', prefix + '.idx') as (rec_temp, idx_temp):
        writer = IndexedRecordWriter(rec_temp)
        new_id = 0
        try:
            for (payload, _), count in zip(read_records(parts), counts):
                for _ in range(int(count)):
                    head, body = renumbered(payload, new_id)
                    chunks = frame_record(head, body)
                    writer.write(new_id, chunks, sum(len(chunk) for chunk in chunks))
                    new_id += 1
        except BaseException:
            writer.abandon()
            raise
        writer.close(idx_temp)
    with atomic_open(prefix + '.classes') as handle:
        handle.write(''.join(name + '\n' for name in class_names))
    write_json(prefix + '.json', dict(source=description, records=int(counts.sum()),
                                      repeats=np.bincount(counts).tolist()), indent=1)
