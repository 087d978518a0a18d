"""YOLO / darknet layout -> :class:`dataset.imdb.Imdb`.

Layout::

    <root>/images/<set>/a.jpg      <root>/labels/<set>/a.txt      (one "cls cx cy w h" line per object)

or an image list ``<root>/<set>.txt`` (one path per line, relative to ``<root>`` or absolute inside it).
A label file sits where the image is, with the last ``images`` folder replaced by ``labels`` and the
extension by ``.txt``; an image without one has no objects. Values are already normalized:
``xmin = cx - w / 2``, ``xmax = cx + w / 2`` (likewise for y).
"""
import os
import posixpath

import numpy as np

from config.errors import UserError
from dataset.imdb import BadItem, Imdb, add_items, known_classes_text, read_class_names

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def load_yolo(root, image_set, classes_file, progress=False, skip_bad=False, skip_unknown=True):
    """Read one YOLO image set.

    Parameters
    ----------
    root : str
        Dataset directory; image paths are made relative to it.
    image_set : str
        e.g. ``'train'``: ``<root>/<set>.txt`` when it exists, else every image in ``<root>/images/<set>/``.
    classes_file : str
        Class names, one per line (a darknet ``.names`` file) or a comma-separated list.
    progress : bool
        Show a progress bar.
    skip_bad : bool
        Skip an image that is missing or whose label file has a bad line, with a warning (default: a
        :class:`~dataset.imdb.BadItem` error naming the file and line).
    skip_unknown : bool
        Leave out (and count) objects whose class id is not in the class list; False makes the first one an
        error listing the classes.

    Returns
    -------
    Imdb
        Labels ``(N, 6)`` ``[cls, xmin, ymin, xmax, ymax, 0]`` normalized and clipped to [0, 1].
    """
    if not os.path.isdir(root):
        raise UserError('dataset root %s does not exist; give --root the YOLO dataset directory' % root)
    imdb = Imdb('yolo_%s' % image_set, root, read_class_names(classes_file))

    def read_item(relative):
        if not os.path.isfile(os.path.join(root, relative)):
            raise BadItem('image %s does not exist; %s lists it' % (os.path.join(root, relative),
                                                                   os.path.join(root, image_set + '.txt')))
        label_path = os.path.join(root, label_path_for(relative))
        rows = read_label_file(label_path, len(imdb.classes), imdb.stats,
                               classes=None if skip_unknown else imdb.classes)
        return relative, rows

    return add_items(imdb, list_images(root, image_set), read_item, skip_bad, desc='YOLO %s' % image_set,
                     progress=progress)


def list_images(root, image_set):
    """Image paths relative to ``root`` (``/``-separated), from ``<set>.txt`` or ``images/<set>/``."""
    list_file = os.path.join(root, image_set + '.txt')
    folder = os.path.join(root, 'images', image_set)
    if os.path.isfile(list_file):
        paths = [_relative_to_root(line.strip(), root, list_file) for line in _text_lines(list_file, UserError)
                 if line.strip()]
    elif os.path.isdir(folder):
        paths = [posixpath.join('images', image_set, name) for name in sorted(os.listdir(folder))
                 if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS]
    else:
        raise UserError('neither the image list %s nor the folder %s exists; check --root and --set'
                        % (list_file, folder))
    if not paths:
        raise UserError('image set %s under %s holds no images' % (image_set, root))
    return paths


def _text_lines(path, error):
    """The lines of a UTF-8 text file; ``error`` (an exception class) naming the file when it is not text."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read().splitlines()
    except UnicodeDecodeError as err:
        raise error('%s is not UTF-8 text (byte %d); expected one entry per line' % (path, err.start)) from None
    except ValueError as err:  # e.g. an embedded NUL in the path
        raise error('%s cannot be read: %s' % (path, err)) from None


def _relative_to_root(path, root, list_file):
    """A list-file entry -> a path relative to ``root`` (its existence is checked when the image is read)."""
    absolute = path if os.path.isabs(path) else os.path.join(root, path)
    relative = os.path.relpath(absolute, root)
    if relative.startswith(os.pardir):
        raise UserError('%s lists %s, which is outside the dataset root %s' % (list_file, path, root))
    return relative.replace(os.sep, '/')


def label_path_for(image_path):
    """``images/train/a.jpg`` -> ``labels/train/a.txt``; with no ``images`` folder, ``a.jpg`` -> ``a.txt``."""
    parts = image_path.split('/')
    if 'images' in parts[:-1]:
        last = len(parts) - 2 - parts[-2::-1].index('images')
        parts[last] = 'labels'
    return posixpath.splitext('/'.join(parts))[0] + '.txt'


def read_label_file(path, num_classes, stats, classes=None):
    """One label file -> ``(N, 6)`` rows (not yet clipped); a missing file means no objects.

    Parameters
    ----------
    path : str
    num_classes : int
        Lines whose class id is outside ``0 .. num_classes - 1`` are skipped and counted.
    stats : collections.Counter
    classes : sequence of str, optional
        When given, a class id outside the list is an error listing these names instead.

    Returns
    -------
    (N, 6) float32 array
        ``[cls, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0]``.

    Raises
    ------
    BadItem
        For a file that is not text or a line that is not ``cls cx cy w h`` with the four values in [0, 1].
    """
    if not os.path.isfile(path):
        stats['images without a label file'] += 1
        return np.zeros((0, 6), np.float32)
    rows = []
    for number, line in enumerate(_text_lines(path, BadItem), 1):
        if not line.strip():
            continue
        cls, cx, cy, w, h = _parse_line(line, path, number)
        if not 0 <= cls < num_classes:
            if classes is not None:
                raise UserError('%s line %d has class id %d, but the class list has %d classes (%s: ids 0 to %d); '
                                'give every class in --class-names (or the dataset\'s classes.txt), or pass '
                                '--skip-unknown to leave such objects out'
                                % (path, number, cls, num_classes, known_classes_text(classes), num_classes - 1))
            stats['objects with a class id outside the class list skipped'] += 1
            continue
        rows.append([cls, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0])
    return np.array(rows, dtype=np.float32).reshape(-1, 6)


def _parse_line(line, path, number):
    """``'cls cx cy w h'`` -> ``(int, float, float, float, float)``, the four values checked to lie in [0, 1]."""
    fields = line.split()
    try:
        values = tuple(float(v) for v in fields)
    except ValueError:
        values = None
    if values is None or len(values) != 5 or not values[0].is_integer():
        problem = ('%d values' % len(fields) if len(fields) != 5 else
                   'not numbers' if values is None else 'a class id that is not a whole number')
        raise BadItem('%s line %d is %r; expected "class_id cx cy w h" (5 numbers, normalized), not %s'
                      % (path, number, line.strip()[:80], problem))
    if not all(0 <= value <= 1 for value in values[1:]):  # False for NaN too
        raise BadItem('%s line %d is %r: cx cy w h must lie in [0, 1] (pixel values divided by the image width '
                      'and height)' % (path, number, line.strip()[:80]))
    return (int(values[0]),) + values[1:]
