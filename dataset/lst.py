"""MXNet's detection ``.lst`` format, shared by the packers and readers.

One line per image::

    index \\t 2 \\t 6 \\t [cls xmin ymin xmax ymax difficult] * N \\t relative/path.jpg

``2`` is the header width (the header itself: header width, object width) and ``6`` the width of one object.
Coordinates are normalized to [0, 1] by the image width and height. The same flat vector
``[2, 6, cls, xmin, ymin, xmax, ymax, difficult, ...]`` is the label stored in each ``.rec`` record.
"""
import numpy as np

from config.errors import UserError

HEADER_WIDTH = 2
OBJECT_WIDTH = 6


def flatten_label(objects):
    """Objects -> the flat label vector stored in ``.lst`` lines and ``.rec`` headers.

    Parameters
    ----------
    objects : (N, 6) array-like
        Rows ``[cls, xmin, ymin, xmax, ymax, difficult]``, coordinates normalized.

    Returns
    -------
    (2 + 6 N,) float32 array
    """
    objects = np.asarray(objects, dtype=np.float32).reshape(-1, OBJECT_WIDTH)
    header = np.array([HEADER_WIDTH, OBJECT_WIDTH], dtype=np.float32)
    return np.concatenate([header, objects.ravel()])


def unflatten_label(flat, source='label'):
    """The flat label vector -> ``(N, 6)`` objects; also accepts 5-wide objects (difficult = 0).

    Parameters
    ----------
    flat : (2 + W N,) array-like
        ``[header_width, object_width, ...header rest..., objects...]``; trailing -1 padding is dropped.
    source : str
        Names the record in the error message.

    Returns
    -------
    (N, 6) float32 array

    Raises
    ------
    UserError
        When the vector is not a detection label (e.g. a classification ``.rec``).
    """
    flat = np.asarray(flat, dtype=np.float32).ravel()
    if flat.size < 2 or flat[0] < 2 or flat[1] < 5 or flat[0] != int(flat[0]) or flat[1] != int(flat[1]):
        raise UserError('%s is not a detection label (got %s); pack with tools/im2rec.py --pack-label from '
                        'a detection .lst' % (source, np.array2string(flat[:8], precision=3)))
    header_width, object_width = int(flat[0]), int(flat[1])
    body = flat[header_width:]
    usable = body.size - body.size % object_width
    objects = body[:usable].reshape(-1, object_width)
    objects = objects[objects[:, 0] >= 0]  # -1 padding rows
    if object_width == 5:
        objects = np.hstack([objects, np.zeros((objects.shape[0], 1), np.float32)])
    return np.ascontiguousarray(objects[:, :OBJECT_WIDTH])


def format_lst_line(index, objects, path):
    """One ``.lst`` line (without the newline).

    Parameters
    ----------
    index : int
        Record index.
    objects : (N, 6) array-like
        ``[cls, xmin, ymin, xmax, ymax, difficult]`` rows, coordinates normalized.
    path : str
        Image path relative to the image root.

    Returns
    -------
    str
        e.g. ``'7\\t2\\t6\\t1\\t0.100000\\t0.200000\\t0.500000\\t0.600000\\t0\\tVOC2007/JPEGImages/a.jpg'``
    """
    objects = np.asarray(objects, dtype=np.float64).reshape(-1, OBJECT_WIDTH)
    fields = [str(int(index)), str(HEADER_WIDTH), str(OBJECT_WIDTH)]
    for cls, xmin, ymin, xmax, ymax, difficult in objects:
        fields += ['%d' % cls] + ['%.6f' % v for v in (xmin, ymin, xmax, ymax)] + ['%d' % difficult]
    fields.append(path)
    return '\t'.join(fields)


def parse_lst_line(line, source='.lst'):
    """One ``.lst`` line -> ``(index, objects (N, 6) float32, path)``.

    Raises
    ------
    UserError
        When the line is not in the detection format.
    """
    fields = line.rstrip('\r\n').split('\t')
    try:
        index = int(fields[0])
        flat = [float(f) for f in fields[1:-1]]
    except (ValueError, IndexError):
        raise UserError('%s: cannot parse line %r; expected index, label numbers and a path separated '
                        'by tabs' % (source, line[:80])) from None
    return index, unflatten_label(flat, source='%s line %d' % (source, index)), fields[-1]


def read_lst(path):
    """All entries of a ``.lst`` file as a list of ``(index, objects (N, 6), relative_path)``."""
    try:
        with open(path) as handle:
            return [parse_lst_line(line, source=path) for line in handle if line.strip()]
    except FileNotFoundError:
        raise UserError('list file %s does not exist' % path) from None
