"""Boxes drawn on images with their class names and scores, and images tiled into one picture (OpenCV).

Images are ``(H, W, 3) uint8`` in RGB order everywhere here (the order the record iterator gives);
:func:`save_image_grid` converts to OpenCV's BGR only when writing the file.
"""
import colorsys
import os

import cv2
import numpy as np

from config.errors import UserError
from core.atomic import atomic_open

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def denormalise(data, mean_pixels, std_pixels):
    """Network input back to pixels.

    Parameters
    ----------
    data : (B, 3, H, W) float32
        RGB, ``(pixel - mean_pixels) / std_pixels``.
    mean_pixels, std_pixels : (3,) floats

    Returns
    -------
    (B, H, W, 3) uint8 RGB
    """
    mean = np.asarray(mean_pixels, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std_pixels, np.float32).reshape(1, 3, 1, 1)
    return np.clip(np.round(data * std + mean), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def class_color(class_id):
    """A bright RGB colour per class id, far apart for neighbouring ids; ``None`` (no class) is white."""
    if class_id is None:
        return (255, 255, 255)
    hue = (int(class_id) * 0.618033988749895) % 1.0  # golden-ratio steps spread the hues
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(red * 255), int(green * 255), int(blue * 255)


def box_caption(class_id, class_names, score=None):
    """``'dog 0.87'``; an id without a name reads ``'class 7'``; no class and no score gives ``''``."""
    if class_id is None:
        words = []
    elif 0 <= class_id < len(class_names):
        words = [class_names[int(class_id)]]
    else:
        words = ['class %d' % class_id]
    if score is not None:
        words.append('%.2f' % score)
    return ' '.join(words)


def split_boxes(boxes, scores=None):
    """Label-style rows -> class ids, corners and scores, without padding rows.

    Parameters
    ----------
    boxes : (N, 4) or (N, >=5) array-like
        ``[xmin, ymin, xmax, ymax]`` rows (no class), or ``[cls, xmin, ymin, xmax, ymax, ...]`` rows such as
        labels ``(N, 6)``; rows with ``cls < 0`` are padding and left out.
    scores : (N,) array-like, optional

    Returns
    -------
    class_ids : list of int or None, length M
    corners : (M, 4) float array
    scores : (M,) float array or None
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.size else 4)
    if boxes.shape[1] == 4:
        keep, class_ids, corners = np.ones(len(boxes), bool), [None] * len(boxes), boxes
    elif boxes.shape[1] >= 5:
        keep = boxes[:, 0] >= 0
        class_ids, corners = [int(c) for c in boxes[keep, 0]], boxes[keep, 1:5]
    else:
        raise ValueError('boxes must have 4 columns or at least 5, got shape %s' % (boxes.shape,))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).ravel()[keep]
    return class_ids, corners, scores


def _draw_caption(image, text, corner, color, scale, thickness):
    """Write ``text`` on a filled box of ``color`` just above ``corner`` (inside the image)."""
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x = int(np.clip(corner[0], 0, max(image.shape[1] - width, 0)))
    y = int(corner[1]) if corner[1] - height - baseline >= 0 else int(corner[1]) + height + baseline
    cv2.rectangle(image, (x, y - height - baseline), (x + width, y), color, cv2.FILLED)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x, y - baseline), _FONT, scale, ink, thickness, cv2.LINE_AA)


def draw_boxes(image, boxes, class_names=(), scores=None, normalized=True):
    """A copy of ``image`` with each box outlined in its class colour and captioned "name score".

    Parameters
    ----------
    image : (H, W, 3) uint8 array
        RGB.
    boxes : (N, 4) or (N, >=5) array-like
        ``[xmin, ymin, xmax, ymax]`` or ``[cls, xmin, ymin, xmax, ymax, ...]`` rows (labels ``(N, 6)``
        work as they are; rows with ``cls < 0`` are skipped). For detections
        ``[cls, score, xmin, ymin, xmax, ymax]`` pass ``det[:, [0, 2, 3, 4, 5]]`` and ``scores=det[:, 1]``.
    class_names : sequence of str
        Name per class id; ids without a name are written as numbers.
    scores : (N,) array-like, optional
        Written after the name with two decimals.
    normalized : bool
        Coordinates are fractions of the width and height (True) or pixels (False).

    Returns
    -------
    (H, W, 3) uint8 array
    """
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    height, width = canvas.shape[:2]
    class_ids, corners, scores = split_boxes(boxes, scores)
    if normalized:
        corners = corners * [width, height, width, height]
    thickness = max(1, int(round(min(height, width) / 300.0)))
    scale = max(0.35, min(height, width) / 900.0)
    for number, (class_id, corner) in enumerate(zip(class_ids, corners)):
        color = class_color(class_id)
        x0, y0, x1, y1 = (int(round(v)) for v in corner)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, thickness)
        text = box_caption(class_id, class_names, None if scores is None else scores[number])
        if text:
            _draw_caption(canvas, text, (x0, y0), color, scale, 1)
    return canvas


def tile_images(images, cols, gap=2, background=255):
    """Images side by side, ``cols`` per row, in cells the size of the largest image.

    Parameters
    ----------
    images : sequence of (H_i, W_i, 3) uint8 arrays
    cols : int
        Images per row.
    gap : int
        Pixels between cells.
    background : int
        Grey level of the gaps and of the cells' unused parts.

    Returns
    -------
    (rows * H + (rows - 1) * gap, cols * W + (cols - 1) * gap, 3) uint8 array
        With ``rows = ceil(len(images) / cols)``, ``H`` and ``W`` the largest height and width.
    """
    if not images:
        raise ValueError('no images to tile')
    cols = max(1, min(int(cols), len(images)))
    rows = -(-len(images) // cols)
    cell_h = max(image.shape[0] for image in images)
    cell_w = max(image.shape[1] for image in images)
    grid = np.full((rows * cell_h + (rows - 1) * gap, cols * cell_w + (cols - 1) * gap, 3), background, np.uint8)
    for number, image in enumerate(images):
        top, left = (number // cols) * (cell_h + gap), (number % cols) * (cell_w + gap)
        grid[top:top + image.shape[0], left:left + image.shape[1]] = image
    return grid


def save_image_grid(images, path, cols, gap=2):
    """Tile RGB ``images`` (see :func:`tile_images`) and write the picture to ``path`` atomically.

    Returns
    -------
    (H, W, 3) uint8 array
        The picture written, RGB.

    Raises
    ------
    UserError
        When ``path`` does not end in an image extension (.png, .jpg, .jpeg, .bmp).
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in IMAGE_EXTENSIONS:
        raise UserError('output %s must end in one of %s' % (path, ', '.join(IMAGE_EXTENSIONS)))
    grid = tile_images(images, cols, gap)
    ok, encoded = cv2.imencode(extension, grid[:, :, ::-1])
    if not ok:
        raise UserError('OpenCV could not encode %s' % path)
    with atomic_open(path, 'wb') as handle:
        handle.write(encoded.tobytes())
    return grid
