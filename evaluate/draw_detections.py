"""Detections of the deploy graph as pixel boxes of the original image, drawn and saved (demo.py).

The deploy graph gives ``[cls, score, xmin, ymin, xmax, ymax]`` rows normalized to the network input, which
is the whole image squashed to ``S x S``; multiplying by the ORIGINAL width and height gives the box in the
original image's pixels. The drawing itself is :func:`evaluate.visualize.draw_boxes` (RGB); this module only
converts from OpenCV's BGR and back, so a box's colour is the same as in every other picture of the project.
"""
import os

import cv2
import numpy as np

from config.defaults import DETECT
from config.errors import UserError
from core.atomic import atomic_open
from evaluate.visualize import draw_boxes

# Input and output picture formats. An output keeps its input's extension when OpenCV can write it, else
# it is a PNG (lossless).
WRITABLE_EXTENSIONS = ('.jpg', '.jpeg', '.jpe', '.png', '.bmp', '.tif', '.tiff', '.webp')
FALLBACK_EXTENSION = '.png'
OUTPUT_SUFFIX = '_det'
JPEG_QUALITY = 95     # high quality and no chroma subsampling: one-pixel coloured lines stay their colour


def detections_in_pixels(detections, width, height, thresh, class_names, min_side=DETECT['min_box_pixels']):
    """The detections kept at ``thresh``, as boxes in pixels of the original image, best first.

    This is the one place where NMS output rows become the pixel boxes users see (demo.py's pictures and
    ``detections.json``): a box is clipped to the image, and one narrower or lower than ``min_side`` pixels
    is no detection and is dropped (e.g. ``[2.0, 169.21, 2.0, 172.77]``, zero wide).

    Parameters
    ----------
    detections : (A, 6) array-like
        ``[cls, score, xmin, ymin, xmax, ymax]`` rows, coordinates normalized to [0, 1]; ``cls < 0`` rows
        (suppressed or padding) are dropped.
    width, height : int
        Size of the original image in pixels.
    thresh : float
        Lowest score kept (inclusive).
    class_names : sequence of str
        Name per class id; an id without a name is called ``'class <id>'``.
    min_side : float
        Smallest width and height in pixels a kept box has (default ``DETECT['min_box_pixels']``, 1).

    Returns
    -------
    list of dict
        ``{'class_id': int, 'class': str, 'score': float, 'box': [xmin, ymin, xmax, ymax]}`` sorted by
        decreasing score (ties keep the graph's order); ``box`` is ``normalized * (W, H, W, H)`` clipped to
        ``[0, W] x [0, H]`` and rounded to two decimals, the numbers the picture is drawn from.
    """
    rows = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
    rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= thresh)]
    rows = rows[np.argsort(-rows[:, 1], kind='stable')]
    boxes = np.clip(rows[:, 2:6] * [width, height, width, height], 0, [width, height, width, height])  # (D, 4)
    sized = (boxes[:, 2] - boxes[:, 0] >= min_side) & (boxes[:, 3] - boxes[:, 1] >= min_side)
    records = []
    for (cls, score), box in zip(rows[sized, :2], boxes[sized]):
        class_id = int(cls)
        records.append({
            'class_id': class_id,
            'class': class_names[class_id] if class_id < len(class_names) else 'class %d' % class_id,
            'score': round(float(score), 6),
            'box': [round(float(value), 2) for value in box],
        })
    return records


def draw_detections(image_bgr, records, class_names):
    """A copy of ``image_bgr`` with each record's box outlined in its class colour and captioned "name score".

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8 array
        As ``cv2.imread`` returns it.
    records : list of dict
        From :func:`detections_in_pixels` (pixel boxes, best first). The best is drawn last, on top.
    class_names : sequence of str

    Returns
    -------
    (H, W, 3) uint8 array, BGR
    """
    drawing_order = list(reversed(records))
    boxes = np.array([[record['class_id']] + list(record['box']) for record in drawing_order],
                     dtype=np.float64).reshape(-1, 5)
    scores = np.array([record['score'] for record in drawing_order], dtype=np.float64)
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    drawn = draw_boxes(rgb, boxes, class_names, scores, normalized=False)
    return np.ascontiguousarray(drawn[:, :, ::-1])


def output_extension(input_path):
    """The input's extension (lower case) when OpenCV writes that format, else :data:`FALLBACK_EXTENSION`."""
    extension = os.path.splitext(input_path)[1].lower()
    return extension if extension in WRITABLE_EXTENSIONS else FALLBACK_EXTENSION


def output_names(input_paths):
    """``<stem>_det<ext>`` per input path, made unique by ``_2``, ``_3``... when two inputs share a name.

    Parameters
    ----------
    input_paths : sequence of str

    Returns
    -------
    list of str
        File names (no directory), one per input, in the same order.
    """
    names, taken = [], set()
    for path in input_paths:
        stem = os.path.splitext(os.path.basename(path))[0] + OUTPUT_SUFFIX
        extension = output_extension(path)
        name, copy = stem + extension, 1
        while name.lower() in taken:
            copy += 1
            name = '%s_%d%s' % (stem, copy, extension)
        taken.add(name.lower())
        names.append(name)
    return names


def encode_options(extension):
    """``cv2.imencode`` parameters: for JPEG the quality and 4:4:4 sampling (when this OpenCV has it)."""
    if extension not in ('.jpg', '.jpeg', '.jpe'):
        return []
    options = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if hasattr(cv2, 'IMWRITE_JPEG_SAMPLING_FACTOR'):
        options += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    return options


def save_picture(image_bgr, path):
    """Encode ``image_bgr`` in the format of ``path``'s extension and write it atomically.

    Raises
    ------
    UserError
        When OpenCV cannot encode that format.
    """
    extension = os.path.splitext(path)[1].lower()
    try:
        ok, encoded = cv2.imencode(extension, image_bgr, encode_options(extension))
    except cv2.error:
        ok = False
    if not ok:
        raise UserError('OpenCV could not encode %s; use one of %s' % (path, ', '.join(WRITABLE_EXTENSIONS)))
    with atomic_open(path, 'wb') as handle:
        handle.write(encoded.tobytes())
