"""The dataset base class: image paths relative to a root, and one normalized label array per image.

Parsers (``pascal_voc.py``, ``coco.py``, ``yolo.py``) fill an :class:`Imdb`; ``tools/prepare_dataset.py``
writes it out as a ``.lst`` plus the ``.classes`` file and packs it.
"""
import collections
import os

import numpy as np

from config.defaults import CLASSES_SUFFIX
from config.errors import UserError
from core.atomic import atomic_open
from core.run_dir import read_class_file
from dataset.lst import OBJECT_WIDTH, format_lst_line


class Imdb:
    """A detection dataset held in memory.

    Attributes
    ----------
    name : str
        e.g. ``'voc_2007_trainval'``.
    root : str
        Directory that the image paths are relative to (the ``root`` argument of im2rec).
    classes : tuple of str
        Class names; a label's class id indexes this tuple.
    image_paths : list of str
        Image paths relative to ``root``.
    labels : list of (N, 6) float32 arrays
        ``[cls, xmin, ymin, xmax, ymax, difficult]`` per object, coordinates normalized to [0, 1].
    stats : collections.Counter
        Counts of what the parser fixed or skipped, e.g. ``'boxes clipped to the image'``.
    """

    def __init__(self, name, root, classes):
        self.name = name
        self.root = root
        self.classes = tuple(classes)
        self.image_paths = []
        self.labels = []
        self.stats = collections.Counter()

    @property
    def num_images(self):
        return len(self.image_paths)

    def add(self, relative_path, objects):
        """Append one image and its ``(N, 6)`` objects."""
        objects = np.asarray(objects, dtype=np.float32).reshape(-1, OBJECT_WIDTH)
        self.image_paths.append(relative_path)
        self.labels.append(objects)

    def add_clipped(self, relative_path, objects):
        """Append one image after clipping its boxes into [0, 1] and dropping empty ones, counting both.

        Parameters
        ----------
        relative_path : str
            Image path relative to ``root``.
        objects : (N, 6) array-like
            ``[cls, xmin, ymin, xmax, ymax, difficult]``, normalized but possibly outside [0, 1].
        """
        objects = np.asarray(objects, dtype=np.float32).reshape(-1, OBJECT_WIDTH).copy()
        boxes = objects[:, 1:5]
        clipped = np.clip(boxes, 0.0, 1.0)
        self.stats['boxes clipped to the image'] += int(np.any(clipped != boxes, axis=1).sum())
        objects[:, 1:5] = clipped
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])  # also drops NaN
        self.stats['degenerate boxes skipped (xmax <= xmin or ymax <= ymin)'] += int((~keep).sum())
        self.stats['images with no objects'] += int(not keep.any())
        self.add(relative_path, objects[keep])

    def class_counts(self):
        """Objects per class name, difficult ones included: ``{name: count}`` in class order."""
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for objects in self.labels:
            np.add.at(counts, objects[:, 0].astype(np.int64), 1)
        return collections.OrderedDict(zip(self.classes, counts.tolist()))

    def max_objects(self):
        """The largest number of objects in one image (0 for an empty dataset)."""
        return max((len(objects) for objects in self.labels), default=0)

    def summary(self):
        """A printable table: objects per class, images, and the parser's fix-up counts."""
        counts = self.class_counts()
        width = max([len(name) for name in counts] + [5])
        lines = ['%s: %d images, %d objects, at most %d in one image' % (
            self.name, self.num_images, sum(counts.values()), self.max_objects())]
        lines += ['  %-*s %7d' % (width, name, count) for name, count in counts.items()]
        lines += ['  note: %s: %d' % (what, count) for what, count in sorted(self.stats.items()) if count]
        return '\n'.join(lines)

    def write_lst(self, path, shuffle=True, seed=0):
        """Write the ``.lst`` file atomically; returns the number of lines written.

        Indices follow the original order, so a shuffled list still names each image by the same index.
        """
        order = np.arange(self.num_images)
        if shuffle:
            np.random.RandomState(seed).shuffle(order)
        with atomic_open(path) as handle:
            for index in order:
                handle.write(format_lst_line(index, self.labels[index], self.image_paths[index]) + '\n')
        return len(order)

    def write_classes(self, path):
        """Write the class names, one per line, atomically."""
        with atomic_open(path) as handle:
            handle.write(''.join(name + '\n' for name in self.classes))


def classes_path_for(lst_path):
    """The ``.classes`` file that belongs to a ``.lst`` or ``.rec``: ``data/train.lst`` -> ``data/train.classes``."""
    return os.path.splitext(lst_path)[0] + CLASSES_SUFFIX


def read_class_names(spec):
    """Class names from a file (one per line) or a comma-separated list.

    Parameters
    ----------
    spec : str
        ``'cat,dog'`` or a path to a text file.

    Returns
    -------
    tuple of str
    """
    if os.path.isfile(spec):
        names = list(read_class_file(spec))
    elif ',' in spec or not os.path.splitext(spec)[1]:
        names = [name.strip() for name in spec.split(',') if name.strip()]
    else:
        raise UserError('class names file %s does not exist; give a file with one name per line or a '
                        'comma-separated list' % spec)
    if len(set(names)) != len(names):
        raise UserError('class names %s contain duplicates' % spec)
    if not names:
        raise UserError('class names %r are empty' % spec)
    return tuple(names)


def concat_imdbs(imdbs):
    """Join datasets that share a root and a class list (e.g. VOC 2007 + 2012 trainval) into one."""
    first = imdbs[0]
    for other in imdbs[1:]:
        if other.classes != first.classes:
            raise UserError('cannot join %s and %s: their class lists differ' % (first.name, other.name))
        if os.path.abspath(other.root) != os.path.abspath(first.root):
            raise UserError('cannot join %s and %s: their image roots differ' % (first.name, other.name))
    joined = Imdb('+'.join(db.name for db in imdbs), first.root, first.classes)
    for db in imdbs:
        joined.image_paths += db.image_paths
        joined.labels += db.labels
        joined.stats.update(db.stats)
    return joined
