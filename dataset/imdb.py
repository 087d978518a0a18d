"""The dataset base class: image paths relative to a root, and one normalized label array per image.

Parsers (``pascal_voc.py``, ``coco.py``, ``yolo.py``) fill an :class:`Imdb`; ``tools/prepare_dataset.py``
writes it out as a ``.lst`` plus the ``.classes`` file and packs it.

Bad items
---------
A parser raises :class:`BadItem` for one unreadable item (a missing or undecodable image, a malformed or empty
annotation file, a bad label line). :func:`add_items` either lets it through (the default: the first one stops
the job, naming the file) or, with ``skip_bad``, skips the item with a one-line warning and counts it
(``Imdb.skipped``); ``tools/prepare_dataset.py --skip-bad`` turns that on.
"""
import collections
import os
import sys

import numpy as np
from tqdm import tqdm

from config.defaults import CLASSES_SUFFIX
from config.errors import UserError
from core.atomic import atomic_open
from core.run_dir import read_class_file
from dataset.lst import LST_ENCODING, OBJECT_WIDTH, format_lst_line

SKIPPED_NOTE = 'unreadable items skipped (--skip-bad)'  # the summary line counting Imdb.skipped


class BadItem(UserError):
    """One dataset item that cannot be read (image, annotation file, label line); the message names its file.

    Skippable: :func:`add_items` with ``skip_bad`` warns and goes on instead of stopping.
    """


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
    skipped : list of str
        One message per unreadable item skipped (see :func:`add_items`).
    """

    def __init__(self, name, root, classes):
        self.name = name
        self.root = root
        self.classes = tuple(classes)
        self.image_paths = []
        self.labels = []
        self.stats = collections.Counter()
        self.skipped = []

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

    def skip(self, problem):
        """Record one unreadable item: a ``warning: skipped ...`` line on stderr, counted in the summary."""
        self.skipped.append(str(problem))
        self.stats[SKIPPED_NOTE] += 1
        tqdm.write('warning: skipped an unreadable item: %s' % ' '.join(str(problem).split()), file=sys.stderr)

    def without(self, indices):
        """A copy without the images at ``indices`` (positions), e.g. those packing could not read.

        The copy's positions are renumbered, so it serves summaries, not ``write_lst`` of the same records.
        """
        drop = set(indices)
        copy = Imdb(self.name, self.root, self.classes)
        keep = [position for position in range(self.num_images) if position not in drop]
        copy.image_paths = [self.image_paths[position] for position in keep]
        copy.labels = [self.labels[position] for position in keep]
        copy.stats = collections.Counter(self.stats)
        copy.stats[SKIPPED_NOTE] += len(drop)
        copy.skipped = list(self.skipped)
        return copy

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
        with atomic_open(path, encoding=LST_ENCODING) as handle:
            for index in order:
                handle.write(format_lst_line(index, self.labels[index], self.image_paths[index]) + '\n')
        return len(order)

    def write_classes(self, path):
        """Write the class names, one per line, atomically."""
        with atomic_open(path) as handle:
            handle.write(''.join(name + '\n' for name in self.classes))


def add_items(imdb, items, read_item, skip_bad=False, desc=None, progress=False):
    """Read each item with ``read_item`` and add it to ``imdb`` (boxes clipped), skipping bad ones if asked.

    Parameters
    ----------
    imdb : Imdb
    items : iterable
        Whatever ``read_item`` takes: image ids, image entries, paths.
    read_item : callable
        ``read_item(item) -> (relative_path, (N, 6) rows)``, or None to leave the item out; raises
        :class:`BadItem` for an item that cannot be read.
    skip_bad : bool
        Skip a :class:`BadItem` with a warning (:meth:`Imdb.skip`) instead of raising it.
    desc : str, optional
        Progress bar label.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Imdb
        ``imdb`` itself.
    """
    for item in tqdm(items, desc=desc, unit='img', disable=not progress, file=sys.stderr):
        try:
            read = read_item(item)
        except BadItem as err:
            if not skip_bad:
                raise
            imdb.skip(err)
            continue
        if read is not None:
            imdb.add_clipped(*read)
    return imdb


def known_classes_text(classes, limit=30):
    """``'a, b, c'`` naming the known classes (the first ``limit`` and a count of the rest)."""
    names = list(classes[:limit]) + (['... %d more' % (len(classes) - limit)] if len(classes) > limit else [])
    return ', '.join(names)


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


def check_same_classes(*paths):
    """Raise :class:`UserError` when the ``.classes`` files next to ``paths`` (``.rec``/``.lst``) disagree.

    Files without a ``.classes`` next to them are not compared (nothing says what their ids mean).

    Parameters
    ----------
    *paths : str
        e.g. the train and validation ``.rec``; empty strings are ignored.
    """
    check_same_class_lists([(read_class_names(classes_path_for(path)), classes_path_for(path)) for path in paths
                            if path and os.path.isfile(classes_path_for(path))])


def check_same_class_lists(lists):
    """Raise :class:`UserError` when the class lists ``[(names, where they came from), ...]`` disagree; an empty
    list of names (nothing says what the ids mean) is not compared."""
    lists = [(source, tuple(names)) for names, source in lists if names]
    for (first_path, first), (other_path, other) in zip(lists, lists[1:]):
        if other != first:
            raise UserError('class lists differ: %s names %d classes (%s) but %s names %d (%s); %s; pack both '
                            'with the same classes (tools/prepare_dataset.py --class-names %s)'
                            % (first_path, len(first), known_classes_text(first), other_path, len(other),
                               known_classes_text(other), _first_difference(first, other), first_path))


def _first_difference(first, other):
    """Where two class lists part: ``'class 2 is triangle in the first, ring in the second'``."""
    for position, (mine, theirs) in enumerate(zip(first, other)):
        if mine != theirs:
            return 'class %d is %s in the first, %s in the second' % (position, mine, theirs)
    longer, shorter = (first, other) if len(first) > len(other) else (other, first)
    return 'the longer one goes on with %s' % known_classes_text(longer[len(shorter):])


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
