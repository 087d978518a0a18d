"""Pascal VOC annotations (``VOCdevkit/VOC<year>``) -> :class:`dataset.imdb.Imdb`.

Coordinate convention
---------------------
VOC pixel coordinates are 1-based: the top-left pixel is ``(1, 1)``. Like GluonCV's ``VOCDetection`` we
subtract 1 from all four values, giving 0-based pixel coordinates, and divide by the image width and height:
``xmin = (x1 - 1) / W``, ``xmax = (x2 - 1) / W``. A box over the whole image (``x1 = 1``, ``x2 = W``) becomes
``[0, (W - 1) / W]``. Multiplying our normalized boxes by the image size therefore gives GluonCV's pixel
boxes exactly.

Missing files
-------------
An image named by the image-set file whose XML or JPEG is missing, or whose XML is empty or malformed, is an
error (:class:`~dataset.imdb.BadItem` naming the file): silently dropping it would change the data set behind
the user's back. ``skip_bad=True`` (``tools/prepare_dataset.py --skip-bad``) skips such images with a warning
each instead.
"""
import os
import posixpath
import xml.etree.ElementTree as ET

import numpy as np

from config.errors import UserError
from dataset.imdb import BadItem, Imdb, add_items, known_classes_text, read_class_names

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
               'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')
CLASSES_FILE = 'classes.txt'  # optional, inside VOC<year>/: one class name per line (the synthetic set writes it)
COORDINATES = ('xmin', 'ymin', 'xmax', 'ymax')


def load_pascal_voc(root, year, image_set, classes=None, use_difficult=True, progress=False, skip_bad=False,
                    skip_unknown=True):
    """Read one VOC year and image set.

    Parameters
    ----------
    root : str
        The directory holding ``VOC<year>/`` (e.g. ``VOCdevkit``); image paths are made relative to it, so
        2007 and 2012 join under one root.
    year : str or int
        e.g. ``2007``.
    image_set : str
        e.g. ``'trainval'``: ``VOC<year>/ImageSets/Main/<image_set>.txt`` lists the image ids.
    classes : sequence of str, optional
        Class names; default: ``VOC<year>/classes.txt`` when it exists, else the 20 VOC classes.
    use_difficult : bool
        Keep objects marked ``<difficult>1</difficult>`` (with difficult = 1 in their row).
    progress : bool
        Show a progress bar.
    skip_bad : bool
        Skip an image whose XML or JPEG is missing or unreadable, with a warning (default: a
        :class:`~dataset.imdb.BadItem` error naming the file).
    skip_unknown : bool
        Leave out (and count) objects whose class is not in ``classes``; False makes the first one an error
        listing the known classes.

    Returns
    -------
    Imdb
        Labels ``(N, 6)``: ``[cls, xmin, ymin, xmax, ymax, difficult]`` normalized as described in the
        module docstring; images without objects are kept with ``(0, 6)`` labels.
    """
    voc_dir = voc_directory(root, year)
    image_ids = read_image_set(voc_dir, image_set)
    classes = tuple(classes) if classes else default_classes(voc_dir)
    lookup = class_lookup(classes)
    imdb = Imdb('voc_%s_%s' % (year, image_set), root, classes)

    def read_item(image_id):
        relative = posixpath.join('VOC%s' % year, 'JPEGImages', image_id + '.jpg')
        xml_path = os.path.join(voc_dir, 'Annotations', image_id + '.xml')
        width, height, objects = read_annotation(xml_path, os.path.join(root, relative), imdb.stats)
        if not skip_unknown:
            check_known_classes(objects, lookup, classes, xml_path)
        return relative, objects_to_rows(objects, width, height, lookup, use_difficult, imdb.stats)

    return add_items(imdb, image_ids, read_item, skip_bad, desc='VOC%s %s' % (year, image_set), progress=progress)


def voc_directory(root, year):
    """``<root>/VOC<year>``, checked to exist."""
    if not os.path.isdir(root):
        raise UserError('dataset root %s does not exist; give --root the directory that holds VOC<year>/'
                        % root)
    voc_dir = os.path.join(root, 'VOC%s' % str(year).strip())
    if not os.path.isdir(voc_dir):
        found = sorted(name for name in os.listdir(root) if name.startswith('VOC')) or ['none']
        raise UserError('%s does not exist (VOC folders under %s: %s); check --root and --year'
                        % (voc_dir, root, ', '.join(found)))
    return voc_dir


def read_image_set(voc_dir, image_set):
    """Image ids listed in ``ImageSets/Main/<image_set>.txt`` (first word of each non-empty line)."""
    main = os.path.join(voc_dir, 'ImageSets', 'Main')
    path = os.path.join(main, image_set + '.txt')
    if not os.path.isfile(path):
        found = sorted(name[:-4] for name in os.listdir(main) if name.endswith('.txt') and '_' not in name) \
            if os.path.isdir(main) else []
        raise UserError('image set file %s does not exist (sets found: %s); check --set'
                        % (path, ', '.join(found) or 'none'))
    try:
        with open(path, encoding='utf-8') as handle:
            ids = [line.split()[0] for line in handle if line.strip()]
    except UnicodeDecodeError as err:
        raise UserError('image set file %s is not UTF-8 text (byte %d); write one image id per line'
                        % (path, err.start)) from None
    if not ids:
        raise UserError('image set file %s lists no images' % path)
    return ids


def default_classes(voc_dir):
    """``<voc_dir>/classes.txt`` when it exists, else the 20 VOC classes."""
    path = os.path.join(voc_dir, CLASSES_FILE)
    return read_class_names(path) if os.path.isfile(path) else VOC_CLASSES


def check_known_classes(objects, lookup, classes, xml_path):
    """Raise :class:`UserError` (listing the known classes) for the first object of a class not in ``lookup``."""
    for name, _, _ in objects:
        if name not in lookup:
            raise UserError('annotation %s has an object of class %r, which is not one of the %d known classes '
                            '(%s); list every class in --class-names (or VOC<year>/%s), or pass --skip-unknown '
                            'to leave such objects out' % (xml_path, name, len(classes),
                                                           known_classes_text(classes), CLASSES_FILE))


def class_lookup(classes):
    """``{normalized name: class id}``; names are matched stripped and lower-cased."""
    lookup = {}
    for index, name in enumerate(classes):
        key = name.strip().lower()
        if key in lookup:
            raise UserError('class names %s and %s are the same once case and spaces are ignored'
                            % (classes[lookup[key]], name))
        lookup[key] = index
    return lookup


def read_annotation(xml_path, image_path, stats):
    """Parse one VOC XML file.

    Parameters
    ----------
    xml_path : str
    image_path : str
        The JPEG; checked to exist, and read for its size when the XML has no usable ``<size>``.
    stats : collections.Counter
        Receives fix-up counts.

    Returns
    -------
    width, height : int
    objects : list of (name, (4,) float64 1-based pixel box or None, difficult)
        Only the object's own ``<bndbox>`` counts (never those of its ``<part>`` children).
    """
    if not os.path.isfile(xml_path):
        raise BadItem('annotation %s does not exist; the image set lists it' % xml_path)
    if not os.path.isfile(image_path):
        raise BadItem('image %s does not exist; the image set lists it' % image_path)
    annotation = parse_xml(xml_path)
    width, height = _annotated_size(annotation, xml_path)
    if width <= 0 or height <= 0:
        width, height = image_size(image_path)
        stats['image sizes read from the image (no usable <size> in the XML)'] += 1
    objects = [_read_object(element, xml_path) for element in annotation.findall('object')]
    return width, height, objects


def parse_xml(xml_path):
    """The root element of an annotation file; :class:`BadItem` when it is empty or not well-formed XML."""
    if os.path.getsize(xml_path) == 0:
        raise BadItem('annotation %s is empty; expected a VOC <annotation> XML file' % xml_path)
    try:
        return ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise BadItem('annotation %s is not valid XML: %s' % (xml_path, err)) from None
    except (ValueError, LookupError, UnicodeError) as err:  # e.g. an unknown encoding in the XML declaration
        raise BadItem('annotation %s is not readable XML: %s' % (xml_path, err)) from None


def _annotated_size(annotation, xml_path):
    """``(width, height)`` from ``<size>``, or ``(0, 0)`` when the block or a value is missing."""
    size = annotation.find('size')
    if size is None:
        return 0, 0
    values = [_number(size, tag, xml_path, required=False) for tag in ('width', 'height')]
    return (0, 0) if None in values else (int(values[0]), int(values[1]))


def _read_object(element, xml_path):
    """One ``<object>`` -> ``(name, box or None, difficult)``; a missing ``<difficult>`` reads as 0."""
    name = (element.findtext('name') or '').strip().lower()
    difficult = _number(element, 'difficult', xml_path, required=False)
    box_element = element.find('bndbox')  # a direct child: <part> boxes are ignored
    box = None
    if box_element is not None:
        box = np.array([_number(box_element, tag, xml_path) for tag in COORDINATES], dtype=np.float64)
    return name, box, int(difficult or 0)


def _number(parent, tag, xml_path, required=True):
    """The finite float in ``parent/<tag>``; None when absent or empty and not ``required``."""
    text = (parent.findtext(tag) or '').strip()
    if not text:
        if required:
            raise BadItem('annotation %s: <%s> inside <%s> is missing or empty' % (xml_path, tag, parent.tag))
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadItem('annotation %s: <%s> is %r, not a number' % (xml_path, tag, text[:40])) from None
    if not np.isfinite(value):
        raise BadItem('annotation %s: <%s> is %r, not a finite number' % (xml_path, tag, text[:40]))
    return value


def image_size(image_path):
    """``(width, height)`` of an image file, decoded with OpenCV."""
    import cv2  # only needed for the rare annotation without <size>
    image = cv2.imread(image_path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise BadItem('image %s cannot be decoded; replace it or remove it from the image set' % image_path)
    return image.shape[1], image.shape[0]


def objects_to_rows(objects, width, height, lookup, use_difficult, stats):
    """Parsed objects -> ``(N, 6)`` normalized rows (not yet clipped), skipping and counting what is unusable.

    Parameters
    ----------
    objects : list of (name, (4,) 1-based pixel box or None, difficult)
    width, height : int
        Image size in pixels.
    lookup : dict
        Normalized class name -> class id.
    use_difficult : bool
    stats : collections.Counter

    Returns
    -------
    (N, 6) float32 array
        ``[cls, (x1 - 1) / W, (y1 - 1) / H, (x2 - 1) / W, (y2 - 1) / H, difficult]``.
    """
    scale = np.array([width, height, width, height], dtype=np.float64)
    rows = []
    for name, box, difficult in objects:
        if name not in lookup:
            stats['objects of unknown class %r skipped' % name] += 1
        elif box is None:
            stats['objects without <bndbox> skipped'] += 1
        elif difficult and not use_difficult:
            stats['difficult objects left out'] += 1
        else:
            rows.append([lookup[name], *((box - 1.0) / scale), 1 if difficult else 0])
    return np.array(rows, dtype=np.float32).reshape(-1, 6)
