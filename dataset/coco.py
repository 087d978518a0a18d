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
from tqdm import tqdm

from config.errors import UserError
from dataset.imdb import Imdb


def load_coco(root, image_set, annotation_file=None, classes=None, use_crowd=True, progress=False):
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
        imdb = Imdb('coco_%s' % image_set, root, names)
        add_images(imdb, data, image_set, class_of_category, use_crowd, progress)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        raise UserError('COCO annotation file %s has a malformed entry (%s: %s)'
                        % (annotation_file, type(err).__name__, err)) from None
    return imdb


def add_images(imdb, data, image_set, class_of_category, use_crowd, progress):
    """Add every image of the parsed JSON to ``imdb``, each checked to exist under ``imdb.root``."""
    by_image = collections.defaultdict(list)
    for annotation in data.get('annotations', []):
        by_image[annotation['image_id']].append(annotation)
    for image in tqdm(data['images'], desc='COCO %s' % image_set, unit='img', disable=not progress):
        relative = posixpath.join(image_set, image['file_name'])
        if not os.path.isfile(os.path.join(imdb.root, relative)):
            raise UserError('image %s does not exist; the annotation file lists it'
                            % os.path.join(imdb.root, relative))
        rows = annotations_to_rows(by_image[image['id']], image, class_of_category, use_crowd, imdb.stats)
        imdb.add_clipped(relative, rows)


def read_json(path):
    """The parsed JSON, checked to hold ``images`` and ``categories``."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise UserError('COCO annotation file %s does not exist; check --root and --set' % path) from None
    except ValueError as err:
        raise UserError('COCO annotation file %s is not valid JSON: %s' % (path, err)) from None
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
