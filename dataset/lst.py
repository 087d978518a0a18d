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
COORD_TOLERANCE = 1e-3  # normalized coordinates may stray this far outside [0, 1] (rounding in converters)
LST_ENCODING = 'utf-8'  # of .lst files, whatever the locale: image paths may be non-ASCII
PACK_HINT = 'pack with tools/im2rec.py --pack-label from a detection .lst'  # the fix for a non-detection label


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


def split_label(flat, where):
    """Check a flat detection label's layout and split it into the layout and its object rows.

    Parameters
    ----------
    flat : (L,) array-like
        ``[header_width, object_width, (header extras), objects...]``: ``header_width >= 2`` and
        ``object_width >= 5`` whole numbers, then whole object rows (padding rows included).
    where : str
        Names the record or line in the error message.

    Returns
    -------
    header_width, object_width : int
    objects : (N, object_width) float32 array
        A view of ``flat``; padding rows (class < 0) are kept.

    Raises
    ------
    UserError
        When the vector is not a detection label (e.g. a classification ``.rec`` or a cut ``.lst`` line).
    """
    flat = np.asarray(flat, dtype=np.float32).ravel()
    header_width, object_width = (float(flat[0]), float(flat[1])) if flat.size >= 2 else (0.0, 0.0)
    good = header_width >= 2 and object_width >= 5 and header_width.is_integer() and object_width.is_integer()
    if good:
        header_width, object_width = int(header_width), int(object_width)
        good = flat.size >= header_width and (flat.size - header_width) % object_width == 0
    if not good:
        raise UserError('%s is not a detection label (starts %s; expected header width %d, object width %d, '
                        'then objects); %s' % (where, np.array2string(flat[:8], precision=3), HEADER_WIDTH,
                                               OBJECT_WIDTH, PACK_HINT))
    return header_width, object_width, flat[header_width:].reshape(-1, object_width)


def to_six_columns(objects):
    """``(N, >=5)`` object rows -> ``(N, 6)`` ``[cls, xmin, ymin, xmax, ymax, difficult]`` (difficult 0 if absent).

    Returns
    -------
    (N, 6) float32 array
        A new array; columns after the sixth are dropped.
    """
    out = np.zeros((len(objects), OBJECT_WIDTH), dtype=np.float32)
    width = min(objects.shape[1], OBJECT_WIDTH)
    out[:, :width] = objects[:, :width]
    return out


def unflatten_label(flat, source='label'):
    """The flat label vector -> ``(N, 6)`` objects, padding rows (class < 0) dropped.

    Parameters
    ----------
    flat : (2 + W N,) array-like
        A detection label (see :func:`split_label`); 5-wide objects get difficult = 0.
    source : str
        Names the record or line in the error message.

    Returns
    -------
    (N, 6) float32 array

    Raises
    ------
    UserError
        When the vector is not a detection label (e.g. a classification ``.rec``).
    """
    objects = split_label(flat, source)[2]
    return to_six_columns(objects[objects[:, 0] >= 0])


def inside_unit_square(boxes):
    """Which boxes have all four coordinates in [0, 1], give or take :data:`COORD_TOLERANCE`.

    Parameters
    ----------
    boxes : (N, 4) float array
        ``[xmin, ymin, xmax, ymax]`` rows.

    Returns
    -------
    (N,) bool array
        False for a box with a coordinate outside the range or not finite (NaN).
    """
    with np.errstate(invalid='ignore'):  # NaN compares False
        return np.all((boxes >= -COORD_TOLERANCE) & (boxes <= 1 + COORD_TOLERANCE), axis=1)


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


def _split_fields(line, source):
    """One ``.lst`` line -> ``(index, label numbers as a list of floats, path)``."""
    fields = line.rstrip('\r\n').split('\t')
    try:
        return int(fields[0]), list(map(float, fields[1:-1])), fields[-1]
    except (ValueError, IndexError):
        raise UserError('%s: cannot parse line %r; expected index, label numbers and a path separated '
                        'by tabs' % (source, line[:80])) from None


def parse_lst_line(line, source='.lst'):
    """One ``.lst`` line -> ``(index, objects (N, 6) float32, path)``.

    Raises
    ------
    UserError
        When the line is not in the detection format.
    """
    index, numbers, path = _split_fields(line, source)
    return index, unflatten_label(numbers, source='%s line %d' % (source, index)), path


def _is_plain_label(numbers):
    """True for ``[2, 6, whole object rows, each with class >= 0]``: a label that :func:`unflatten_label`
    only reshapes (what :func:`format_lst_line` writes). NaN classes are not plain."""
    return (len(numbers) % OBJECT_WIDTH == HEADER_WIDTH and numbers[0] == HEADER_WIDTH
            and numbers[1] == OBJECT_WIDTH and all(cls >= 0 for cls in numbers[HEADER_WIDTH::OBJECT_WIDTH]))


def _lst_lines(path):
    """The non-blank lines of a list file."""
    try:
        with open(path, encoding=LST_ENCODING) as handle:
            return [line for line in handle.read().split('\n') if line.strip()]
    except FileNotFoundError:
        raise UserError('list file %s does not exist' % path) from None
    except IsADirectoryError:
        raise UserError('list file %s is a directory; give the .lst file' % path) from None
    except UnicodeDecodeError as err:
        raise UserError('list file %s is not UTF-8 text (byte %d); write it with tools/prepare_dataset.py'
                        % (path, err.start)) from None


def read_lst(path):
    """All entries of a ``.lst`` file as a list of ``(index, objects (N, 6) float32, relative_path)``.

    Plain labels (:func:`_is_plain_label`) are converted to float32 together, in one array whose rows the
    entries' ``objects`` are views of; the rest go one by one through :func:`unflatten_label`. Same result,
    about three times faster on a 5000-line list.

    Raises
    ------
    UserError
        When the file is missing or a line is not in the detection format (naming the line).
    """
    rows = [_split_fields(line, path) for line in _lst_lines(path)]
    plain = [_is_plain_label(numbers) for _, numbers, _ in rows]
    values = np.array([value for (_, numbers, _), is_plain in zip(rows, plain) if is_plain
                       for value in numbers[HEADER_WIDTH:]], dtype=np.float32).reshape(-1, OBJECT_WIDTH)
    entries, first_row = [], 0
    for (index, numbers, relative_path), is_plain in zip(rows, plain):
        if is_plain:
            count = (len(numbers) - HEADER_WIDTH) // OBJECT_WIDTH
            objects, first_row = values[first_row:first_row + count], first_row + count
        else:
            objects = unflatten_label(numbers, source='%s line %d' % (path, index))
        entries.append((index, objects, relative_path))
    return entries
