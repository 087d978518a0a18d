"""COCO instances JSON (``annotations/instances_<set>.json``) -> :class:`dataset.imdb.Imdb`.

COCO boxes are ``[x, y, w, h]`` in continuous pixel coordinates (the image's left edge is ``x = 0``), so
``xmin = x / W``, ``xmax = (x + w) / W`` with no offset. ``iscrowd`` regions become objects with
difficult = 1, which the VOC-style metrics ignore rather than count as misses.
"""
import collections
import json
import os
import posixpath

import numpy as np

from config.errors import UserError
from dataset.imdb import BadItem, Imdb, add_items, known_classes_text

MALFORMED = (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError)
UNKNOWN_CATEGORY_NOTE = 'objects whose category_id is not in categories skipped'


def load_coco(root, image_set, annotation_file=None, classes=None, use_crowd=True, progress=False, skip_bad=False,
              skip_unknown=True):
    """Read one COCO image set.

    Parameters
    ----------
    root : str
        Holds ``annotations/`` and the image folder ``<image_set>/``; image paths are relative to it.
    image_set : str
        e.g. ``'train2017'``.
    annotation_file : str, optional
        Default ``<root>/annotations/instances_<image_set>.json``.
    classes : sequence of str, optional
        Category names to keep, in this order; default: every category, in category-id order.
    use_crowd : bool
        Keep ``iscrowd`` regions (as difficult = 1); False leaves them out.
    progress : bool
        Show a progress bar.
    skip_bad : bool
        Skip an image that is missing or whose entry or annotations are malformed, with a warning (default: a
        :class:`~dataset.imdb.BadItem` error naming the file and the image).
    skip_unknown : bool
        Leave out (and count) annotations whose ``category_id`` is not in ``categories``; False makes the first
        one an error listing the categories.

    Returns
    -------
    Imdb
        Labels ``(N, 6)`` ``[cls, xmin, ymin, xmax, ymax, difficult]`` normalized; images in the JSON's order,
        those without annotations kept with ``(0, 6)`` labels.
    """
    if not os.path.isdir(root):
        raise UserError('dataset root %s does not exist; give --root the COCO directory' % root)
    annotation_file = annotation_file or os.path.join(root, 'annotations', 'instances_%s.json' % image_set)
    data = read_json(annotation_file)
    try:
        names, class_of_category = map_categories(data['categories'], classes, annotation_file)
        known = {category['id']: category['name'] for category in data['categories']}
        by_image = annotations_by_image(data)
        images = list(data['images'])
    except MALFORMED as err:
        raise UserError('COCO annotation file %s has a malformed entry (%s: %s); check its categories, images '
                        'and annotations lists' % (annotation_file, type(err).__name__, err)) from None
    imdb = Imdb('coco_%s' % image_set, root, names)
    reader = ImageReader(imdb, image_set, annotation_file, by_image, class_of_category, known, use_crowd,
                         skip_unknown)
    return add_items(imdb, images, reader, skip_bad, desc='COCO %s' % image_set, progress=progress)


def annotations_by_image(data):
    """``{image_id: [annotation, ...]}`` from the JSON's ``annotations`` list (absent: none)."""
    by_image = collections.defaultdict(list)
    for annotation in data.get('annotations') or []:
        by_image[annotation['image_id']].append(annotation)
    return by_image


class ImageReader:
    """``reader(image entry) -> (relative path, (N, 6) rows)`` for :func:`dataset.imdb.add_items`.

    A missing image or a malformed image entry or annotation raises :class:`~dataset.imdb.BadItem` naming the
    annotation file and the image; an unknown ``category_id`` is counted, or an error when not
    ``skip_unknown``.
    """

    def __init__(self, imdb, image_set, annotation_file, by_image, class_of_category, known, use_crowd,
                 skip_unknown):
        self.imdb, self.image_set, self.annotation_file = imdb, image_set, annotation_file
        self.by_image, self.class_of_category, self.known = by_image, class_of_category, known
        self.use_crowd, self.skip_unknown = use_crowd, skip_unknown

    def __call__(self, image):
        try:
            relative = posixpath.join(self.image_set, image['file_name'])
            if not os.path.isfile(os.path.join(self.imdb.root, relative)):
                raise BadItem('image %s does not exist; the annotation file %s lists it'
                              % (os.path.join(self.imdb.root, relative), self.annotation_file))
            annotations = self.known_annotations(self.by_image.get(image['id'], []), image)
            rows = annotations_to_rows(annotations, image, self.class_of_category, self.use_crowd, self.imdb.stats)
        except MALFORMED as err:
            raise BadItem('COCO annotation file %s has a malformed entry (%s: %s) for image %s; each image needs '
                          'id, file_name, width, height and each annotation bbox [x, y, w, h] and category_id'
                          % (self.annotation_file, type(err).__name__, err, _image_name(image))) from None
        return relative, rows

    def known_annotations(self, annotations, image):
        """``annotations`` without those whose category is not in ``categories``: counted, or without
        ``skip_unknown`` an error listing the categories."""
        kept = []
        for annotation in annotations:
            if annotation['category_id'] in self.known:
                kept.append(annotation)
                continue
            if not self.skip_unknown:
                raise UserError('COCO annotation file %s: annotation %s of image %s has category_id %r, which is '
                                'not in its categories (%s); fix the file or pass --skip-unknown to leave such '
                                'objects out' % (self.annotation_file, annotation.get('id', '?'), _image_name(image),
                                                 annotation['category_id'], known_classes_text(
                                                     ['%s %s' % item for item in sorted(self.known.items())])))
            self.imdb.stats[UNKNOWN_CATEGORY_NOTE] += 1
        return kept


def _image_name(image):
    """``'7 (a.jpg)'``: an image entry's id and file name, as far as it has them."""
    if not isinstance(image, dict):
        return repr(image)[:40]
    return '%s (%s)' % (image.get('id', '?'), image.get('file_name', '?'))


def read_json(path):
    """The parsed JSON, checked to hold ``images`` and ``categories``."""
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise UserError('COCO annotation file %s does not exist; check --root and --set' % path) from None
    except (ValueError, RecursionError) as err:
        raise UserError('COCO annotation file %s is not valid JSON: %s' % (path, str(err)[:200])) from None
    if not isinstance(data, dict):
        raise UserError('COCO annotation file %s holds a JSON %s, not an object with images and categories; '
                        'expected an instances_*.json file' % (path, type(data).__name__))
    missing = [key for key in ('images', 'categories') if key not in data]
    if missing:
        raise UserError('COCO annotation file %s has no %s; expected an instances_*.json file'
                        % (path, ' or '.join(missing)))
    return data


def map_categories(categories, classes, source):
    """Category ids -> contiguous class ids.

    Parameters
    ----------
    categories : list of dict
        COCO ``categories`` entries (``id``, ``name``).
    classes : sequence of str or None
        Names to keep, in this order; None keeps every category in id order.
    source : str
        Names the file in error messages.

    Returns
    -------
    names : tuple of str
    class_of_category : dict
        ``{category id: class id}``, only for kept categories.
    """
    ordered = sorted(categories, key=lambda category: category['id'])
    if classes is None:
        names = tuple(category['name'] for category in ordered)
        return names, {category['id']: index for index, category in enumerate(ordered)}
    id_of_name = {category['name'].strip().lower(): category['id'] for category in ordered}
    unknown = [name for name in classes if name.strip().lower() not in id_of_name]
    if unknown:
        raise UserError('class names %s are not categories of %s (it has: %s)'
                        % (', '.join(unknown), source, ', '.join(c['name'] for c in ordered)))
    return tuple(classes), {id_of_name[name.strip().lower()]: index for index, name in enumerate(classes)}


def annotations_to_rows(annotations, image, class_of_category, use_crowd, stats):
    """One image's annotations -> ``(N, 6)`` normalized rows (not yet clipped).

    Parameters
    ----------
    annotations : list of dict
        COCO annotations with ``bbox`` ``[x, y, w, h]`` in pixels, ``category_id``, optional ``iscrowd``.
    image : dict
        The COCO image entry (``width``, ``height``).
    class_of_category : dict
    use_crowd : bool
    stats : collections.Counter

    Returns
    -------
    (N, 6) float32 array
        ``[cls, x / W, y / H, (x + w) / W, (y + h) / H, iscrowd]``.
    """
    width, height = float(image['width']), float(image['height'])
    rows = []
    for annotation in annotations:
        crowd = int(annotation.get('iscrowd', 0))
        if annotation['category_id'] not in class_of_category:
            stats['objects of categories not in the class list skipped'] += 1
        elif crowd and not use_crowd:
            stats['crowd regions left out'] += 1
        else:
            x, y, w, h = (float(v) for v in annotation['bbox'])
            rows.append([class_of_category[annotation['category_id']],
                         x / width, y / height, (x + w) / width, (y + h) / height, crowd])
    return np.array(rows, dtype=np.float32).reshape(-1, 6)
