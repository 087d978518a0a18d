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
from tqdm import tqdm

from config.errors import UserError
from dataset.imdb import Imdb, read_class_names

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def load_yolo(root, image_set, classes_file, progress=False):
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

    Returns
    -------
    Imdb
        Labels ``(N, 6)`` ``[cls, xmin, ymin, xmax, ymax, 0]`` normalized and clipped to [0, 1].
    """
    if not os.path.isdir(root):
        raise UserError('dataset root %s does not exist; give --root the YOLO dataset directory' % root)
    imdb = Imdb('yolo_%s' % image_set, root, read_class_names(classes_file))
    for relative in tqdm(list_images(root, image_set), desc='YOLO %s' % image_set, unit='img',
                         disable=not progress):
        label_path = os.path.join(root, label_path_for(relative))
        rows = read_label_file(label_path, len(imdb.classes), imdb.stats)
        imdb.add_clipped(relative, rows)
    return imdb


def list_images(root, image_set):
    """Image paths relative to ``root`` (``/``-separated), from ``<set>.txt`` or ``images/<set>/``."""
    list_file = os.path.join(root, image_set + '.txt')
    folder = os.path.join(root, 'images', image_set)
    if os.path.isfile(list_file):
        with open(list_file) as handle:
            paths = [_relative_to_root(line.strip(), root, list_file) for line in handle if line.strip()]
    elif os.path.isdir(folder):
        paths = [posixpath.join('images', image_set, name) for name in sorted(os.listdir(folder))
                 if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS]
    else:
        raise UserError('neither the image list %s nor the folder %s exists; check --root and --set'
                        % (list_file, folder))
    if not paths:
        raise UserError('image set %s under %s holds no images' % (image_set, root))
    return paths


def _relative_to_root(path, root, list_file):
    """A list-file entry -> a path relative to ``root``, checked to exist."""
    absolute = path if os.path.isabs(path) else os.path.join(root, path)
    relative = os.path.relpath(absolute, root)
    if relative.startswith(os.pardir):
        raise UserError('%s lists %s, which is outside the dataset root %s' % (list_file, path, root))
    if not os.path.isfile(absolute):
        raise UserError('image %s does not exist; %s lists it' % (absolute, list_file))
    return relative.replace(os.sep, '/')


def label_path_for(image_path):
    """``images/train/a.jpg`` -> ``labels/train/a.txt``; with no ``images`` folder, ``a.jpg`` -> ``a.txt``."""
    parts = image_path.split('/')
    if 'images' in parts[:-1]:
        last = len(parts) - 2 - parts[-2::-1].index('images')
        parts[last] = 'labels'
    return posixpath.splitext('/'.join(parts))[0] + '.txt'


def read_label_file(path, num_classes, stats):
    """One label file -> ``(N, 6)`` rows (not yet clipped); a missing file means no objects.

    Parameters
    ----------
    path : str
    num_classes : int
        Lines whose class id is outside ``0 .. num_classes - 1`` are skipped and counted.
    stats : collections.Counter

    Returns
    -------
    (N, 6) float32 array
        ``[cls, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0]``.
    """
    if not os.path.isfile(path):
        stats['images without a label file'] += 1
        return np.zeros((0, 6), np.float32)
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            cls, cx, cy, w, h = _parse_line(line, path, number)
            if not 0 <= cls < num_classes:
                stats['objects with a class id outside the class list skipped'] += 1
                continue
            rows.append([cls, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0])
    return np.array(rows, dtype=np.float32).reshape(-1, 6)


def _parse_line(line, path, number):
    """``'cls cx cy w h'`` -> ``(int, float, float, float, float)``."""
    fields = line.split()
    try:
        if len(fields) != 5 or float(fields[0]) != int(float(fields[0])):
            raise ValueError
        return (int(float(fields[0])),) + tuple(float(v) for v in fields[1:])
    except (ValueError, OverflowError):
        raise UserError('%s line %d is %r; expected "class_id cx cy w h" (normalized)'
                        % (path, number, line.strip()[:80])) from None
