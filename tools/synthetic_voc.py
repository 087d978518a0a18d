"""Generate the embedded synthetic dataset: filled shapes on cluttered backgrounds, in PASCAL VOC layout.

::

    python tools/synthetic_voc.py --root DATA/VOCdevkit --num-trainval 2000 --num-test 500 --seed 0

writes ``<root>/VOC<year>/JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` (VOC XML, boxes as 1-based inclusive
pixel indices), ``classes.txt`` (one name per line) and, last, ``ImageSets/Main/{trainval,test}.txt``.

The shape decides the class; colours are random but always contrast with what lies beneath (except for a
few deliberately faint objects, marked difficult). Shapes are drawn into masks with anti-aliasing off; each
box is read back from the mask as the tight box of the shape's pixels still visible in the finished image
(cut by the border: truncated=1; partly covered by a later shape, which may hide at most 30% of it).

Image ``i`` draws everything from its own ``RandomState([seed, i])``, so a seed gives the same bytes whatever
the number of worker processes. A run first removes the ImageSets lists and writes them only when every
image is on disk, so a killed run is visibly incomplete; running it again regenerates everything.
"""
import argparse
import collections
import functools
import math
import multiprocessing
import os
import time
import xml.etree.ElementTree as ET

import cv2
import numpy as np
from tqdm import tqdm

from config.defaults import SYNTHETIC
from config.errors import UserError, run_cli
from config.runtime import available_cores
from core.atomic import atomic_open, atomic_paths
from tools.cli import comma_floats, is_range

SHAPES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')  # every shape this module can draw
SPLITS = ('trainval', 'test')

# Generator design: sizes are the diameter of the shape's circumscribed circle, as a fraction of the
# image's shorter side, drawn log-uniformly from ``object_size`` or, for a share ``small_share`` of the
# objects, from the small range below (SyntheticParams; defaults in config.defaults.SYNTHETIC).
SMALL_SIZE = (0.05, 0.10)
TRUNCATE_PROB = 0.20            # share of placements allowed to cross the image border
MIN_VISIBLE_TRUNCATED = 0.4     # a truncated shape keeps at least this share of its pixels inside the image
MAX_OCCLUDED = 0.3              # later shapes may cover at most this share of an earlier shape's pixels
PLACEMENT_TRIES = 20            # positions tried per shape before it is dropped
MIN_CONTRAST = 80.0             # colour distance (0..441) from the mean colour beneath the shape
LOW_CONTRAST_PROB = 0.025       # share of shapes drawn faint on purpose (difficult=1)
LOW_CONTRAST = (12.0, 28.0)     # colour distance range of those faint shapes
TINY_SIDE = 16                  # a box whose shorter side is below this many pixels is difficult
MAX_ASPECT = 1.6                # image aspect ratio (long / short side) is drawn from 1..MAX_ASPECT
LANDSCAPE_PROB = 0.7            # share of images wider than tall
BACKGROUND_CELL = 32            # pixels per cell of the coarse background grid
SUBPIXEL_BITS = 4               # fixed-point fraction bits of the polygon vertices given to cv2.fillPoly

SyntheticParams = collections.namedtuple('SyntheticParams',
                                         'classes min_side max_side max_objects object_size small_share')
SyntheticParams.__new__.__defaults__ = tuple(SYNTHETIC[key] for key in SyntheticParams._fields)
SyntheticParams.__doc__ = """What :func:`generate_image` draws: class names (a subset of ``SHAPES``, in label
order), the image side range in pixels, the most objects in one image, the ``(low, high)`` diameter range of
ordinary objects as fractions of the shorter image side, and the share of objects drawn from ``SMALL_SIZE``
instead."""

SyntheticObject = collections.namedtuple('SyntheticObject', 'name box truncated difficult color mask drawn_area')
SyntheticObject.__doc__ = """One drawn shape, as it shows in the finished image.

Attributes
----------
name : str
    Class name (the shape).
box : tuple of 4 int
    ``(xmin, ymin, xmax, ymax)``, 0-based inclusive pixel indices: the tight box of ``mask``, i.e. of the
    visible part, as the VOC guidelines ask.
truncated : bool
    The shape was cut by the image border.
difficult : bool
    Faint (low contrast) or tiny (visible box side below ``TINY_SIDE``).
color : (3,) uint8 array
    The BGR colour of every pixel of ``mask``.
mask : (H, W) bool array
    The shape's pixels that no later shape painted over.
drawn_area : int
    Pixels the shape painted inside the image when it was drawn (``mask.sum()`` before any occlusion).
"""

WriteSettings = collections.namedtuple('WriteSettings', 'seed params year_dir quality')
DATABASE = 'Synthetic shapes (tools/synthetic_voc.py)'  # the annotations' <source><database>


# ----------------------------------------------------------------------------------------------- shapes
def _unit_vertices(name, rng):
    """Polygon vertices of a shape inscribed in the unit circle, before rotation: ``(K, 2)`` float64."""
    if name == 'cross':
        half_width = rng.uniform(0.22, 0.32)
        arm = math.sqrt(1.0 - half_width ** 2)  # the arms' outer corners touch the unit circle
        quarter = np.array([(half_width, arm), (half_width, half_width), (arm, half_width)])
        quarter_turn = np.array([[0.0, -1.0], [1.0, 0.0]])  # (x, y) -> (y, -x): the next arm, clockwise
        turns = [np.linalg.matrix_power(quarter_turn, k) for k in range(4)]
        return np.concatenate([quarter @ turn for turn in turns])
    if name == 'star':
        radii = np.tile([1.0, rng.uniform(0.38, 0.5)], 5)
    else:
        radii = np.ones({'square': 4, 'triangle': 3}[name])
    angles = np.arange(len(radii)) * 2 * np.pi / len(radii)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def draw_shape_mask(name, radius, angle, rng):
    """Draw one filled shape, centred, into a fresh square mask (anti-aliasing off).

    Parameters
    ----------
    name : str
        One of ``SHAPES``.
    radius : float
        Radius of the shape's circumscribed circle in pixels.
    angle : float
        Rotation in radians (ignored by circle and ring).
    rng : numpy.random.RandomState
        Draws the shape's own proportions (star depth, cross arm width, ring hole).

    Returns
    -------
    (S, S) uint8 array
        1 on the shape, 0 elsewhere; ``S = 2 * ceil(radius) + 3``.
    """
    if name not in ('circle', 'ring'):
        return fill_polygon_mask(_unit_vertices(name, rng), radius, angle)
    side = 2 * int(math.ceil(radius)) + 3
    centre = (side - 1) // 2
    mask = np.zeros((side, side), np.uint8)
    outer = max(int(round(radius)), 1)
    cv2.circle(mask, (centre, centre), outer, 1, thickness=-1, lineType=cv2.LINE_8)
    if name == 'ring':
        inner = min(int(round(outer * rng.uniform(0.45, 0.7))), outer - 2)
        if inner >= 1:
            cv2.circle(mask, (centre, centre), inner, 0, thickness=-1, lineType=cv2.LINE_8)
    return mask


def fill_polygon_mask(unit_vertices, radius, angle):
    """Fill a polygon, scaled, rotated and centred, into a fresh square mask (anti-aliasing off).

    Parameters
    ----------
    unit_vertices : (K, 2) float array
        ``(x, y)`` vertices inside the unit circle, before rotation.
    radius : float
        Scale in pixels: the unit circle becomes a circle of this radius.
    angle : float
        Rotation in radians.

    Returns
    -------
    (S, S) uint8 array
        1 inside the polygon, 0 elsewhere; ``S = 2 * ceil(radius) + 3``.
    """
    side = 2 * int(math.ceil(radius)) + 3
    centre = (side - 1) // 2
    mask = np.zeros((side, side), np.uint8)
    cos, sin = math.cos(angle), math.sin(angle)
    vertices = np.asarray(unit_vertices) @ np.array([[cos, sin], [-sin, cos]]) * radius + centre
    fixed = np.round(vertices * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return mask


def tight_box(mask):
    """``(xmin, ymin, xmax, ymax)`` 0-based inclusive indices of the nonzero pixels of a 2-D mask, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


# ----------------------------------------------------------------------------------------- backgrounds
def gradient(rng, grid_h, grid_w):
    """A linear gradient between two random colours in a random direction: ``(grid_h, grid_w, 3)`` float32."""
    start, end = rng.randint(0, 256, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys = np.arange(grid_h, dtype=np.float32)[:, None] * math.sin(angle)
    xs = np.arange(grid_w, dtype=np.float32)[None, :] * math.cos(angle)
    ramp = ys + xs
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1.0)
    return start + ramp[:, :, None] * (end - start)


def _coarse_background(rng, height, width):
    """Gradient, mottling and a few blobs on a grid of 32-pixel cells: ``(grid_h, grid_w, 3)`` float32.

    Upsampled smoothly to the image size, the gradient stays linear and the cells and blobs turn soft.
    """
    grid_h, grid_w = height // BACKGROUND_CELL + 2, width // BACKGROUND_CELL + 2
    coarse = gradient(rng, grid_h, grid_w)
    coarse += rng.uniform(-1, 1, size=(grid_h, grid_w, 3)).astype(np.float32) * rng.uniform(5, 35)
    for _ in range(rng.randint(0, 4)):
        centre = (int(rng.randint(grid_w)), int(rng.randint(grid_h)))
        axes = (int(rng.randint(1, 4)), int(rng.randint(1, 4)))
        color = tuple(float(c) for c in rng.uniform(-70, 70, size=3))
        cv2.ellipse(coarse, centre, axes, float(rng.uniform(0, 180)), 0, 360, color, thickness=-1)
    return coarse


def _random_lines(rng, image):
    """Draw up to 6 thin straight lines of random colours across ``image`` in place."""
    height, width = image.shape[:2]
    for _ in range(rng.randint(0, 7)):
        x0, x1 = (int(v) for v in rng.randint(0, width, size=2))
        y0, y1 = (int(v) for v in rng.randint(0, height, size=2))
        color = tuple(int(c) for c in rng.randint(0, 256, size=3))
        cv2.line(image, (x0, y0), (x1, y1), color, thickness=int(rng.randint(1, 4)), lineType=cv2.LINE_8)


def make_background(rng, height, width):
    """A cluttered background: gradient + soft blobs + pixel noise + thin lines.

    Returns
    -------
    (H, W, 3) uint8 array
    """
    canvas = cv2.resize(_coarse_background(rng, height, width), (width, height), interpolation=cv2.INTER_CUBIC)
    amplitude = int(rng.randint(3, 21))
    canvas += rng.randint(-amplitude, amplitude + 1, size=(height, width, 1), dtype=np.int8)  # grey noise
    image = np.clip(canvas, 0, 255, out=canvas).astype(np.uint8)
    _random_lines(rng, image)
    return image


# ------------------------------------------------------------------------------------------- placement
def sample_image_size(rng, params):
    """``(height, width)``: the longer side in ``[min_side, max_side]``, aspect ratio in ``[1, MAX_ASPECT]``."""
    longer = int(rng.randint(params.min_side, params.max_side + 1))
    shorter = int(np.clip(round(longer / rng.uniform(1.0, MAX_ASPECT)), params.min_side, longer))
    return (shorter, longer) if rng.rand() < LANDSCAPE_PROB else (longer, shorter)


def sample_radius(rng, shorter_side, params):
    """A circumscribed radius in pixels: the diameter is log-uniform in ``params.object_size`` (or, for a
    share ``params.small_share`` of the objects, in ``SMALL_SIZE``) times the shorter side."""
    low, high = SMALL_SIZE if rng.rand() < params.small_share else params.object_size
    return math.exp(rng.uniform(math.log(low), math.log(high))) * shorter_side / 2.0


def _sample_offset(rng, local_box, height, width, may_cross_border):
    """Top-left ``(top, left)`` of the local mask in the image; inside the image unless ``may_cross_border``."""
    x0, y0, x1, y1 = local_box
    if may_cross_border:  # at least one pixel of the shape's box stays inside
        lefts, tops = (-x1, width - 1 - x0), (-y1, height - 1 - y0)
    else:
        lefts, tops = (-x0, max(width - 1 - x1, -x0)), (-y0, max(height - 1 - y1, -y0))
    return int(rng.randint(tops[0], tops[1] + 1)), int(rng.randint(lefts[0], lefts[1] + 1))


def paste_mask(local, top, left, height, width):
    """Place a local ``(S, S)`` mask at ``(top, left)`` in an ``(H, W)`` bool mask, clipped to the image."""
    full = np.zeros((height, width), bool)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + local.shape[0], height), min(left + local.shape[1], width)
    if y1 > y0 and x1 > x0:
        full[y0:y1, x0:x1] = local[y0 - top:y1 - top, x0 - left:x1 - left] > 0
    return full


def too_occluding(mask, box, placed, visible):
    """True when ``mask`` would leave some earlier shape with less than ``1 - MAX_OCCLUDED`` of its pixels."""
    for earlier, seen in zip(placed, visible):
        ex0, ey0, ex1, ey1 = earlier.box
        x0, y0, x1, y1 = max(box[0], ex0), max(box[1], ey0), min(box[2], ex1), min(box[3], ey1)
        if x1 < x0 or y1 < y0:
            continue
        covered = np.count_nonzero(seen[y0:y1 + 1, x0:x1 + 1] & mask[y0:y1 + 1, x0:x1 + 1])
        still_seen = np.count_nonzero(seen[ey0:ey1 + 1, ex0:ex1 + 1]) - covered
        if still_seen < (1.0 - MAX_OCCLUDED) * earlier.drawn_area:
            return True
    return False


def place_mask(rng, local, image_shape, placed, visible, truncate_prob=TRUNCATE_PROB):
    """Find a position for a local shape mask; the last try never crosses the border.

    Parameters
    ----------
    local : (S, S) uint8 array
        The shape, from :func:`draw_shape_mask`.
    image_shape : tuple
        ``(H, W)``.
    placed : list of SyntheticObject
        Shapes already drawn, with their masks and boxes as drawn.
    visible : list of (H, W) bool arrays
        Pixels of each placed shape not yet painted over.
    truncate_prob : float
        Share of the tries allowed to cross the image border.

    Returns
    -------
    tuple or None
        ``(mask (H, W) bool, box, truncated)``, or None when every try failed.
    """
    height, width = image_shape
    local_box, local_area = tight_box(local), np.count_nonzero(local)
    for attempt in range(PLACEMENT_TRIES):
        may_cross = attempt < PLACEMENT_TRIES - 1 and rng.rand() < truncate_prob
        top, left = _sample_offset(rng, local_box, height, width, may_cross)
        mask = paste_mask(local, top, left, height, width)
        inside = np.count_nonzero(mask)
        if inside < MIN_VISIBLE_TRUNCATED * local_area:
            continue
        box = tight_box(mask)
        if not too_occluding(mask, box, placed, visible):
            return mask, box, inside < local_area
    return None


# -------------------------------------------------------------------------------------------- drawing
def choose_color(rng, image, mask, box):
    """A colour for the pixels of ``mask``: contrasting with the mean colour beneath, or faint on purpose.

    Parameters
    ----------
    image : (H, W, 3) uint8 array
    mask : (H, W) bool array
    box : tuple of 4 int
        The tight box of ``mask``, ``(xmin, ymin, xmax, ymax)`` inclusive.

    Returns
    -------
    tuple
        ``(color (3,) uint8 array, faint bool)``.
    """
    x0, y0, x1, y1 = box
    beneath = image[y0:y1 + 1, x0:x1 + 1][mask[y0:y1 + 1, x0:x1 + 1]].mean(axis=0)
    if rng.rand() < LOW_CONTRAST_PROB:
        direction = rng.standard_normal(3)
        offset = direction / max(np.linalg.norm(direction), 1e-6) * rng.uniform(*LOW_CONTRAST)
        return np.clip(np.round(beneath + offset), 0, 255).astype(np.uint8), True
    for _ in range(PLACEMENT_TRIES):
        color = rng.randint(0, 256, size=3)
        if np.linalg.norm(color - beneath) >= MIN_CONTRAST:
            return color.astype(np.uint8), False
    return np.where(beneath < 128, 255, 0).astype(np.uint8), False  # the far corner of the colour cube


def add_object(rng, image, params, placed, visible):
    """Draw one random shape of a class of ``params.classes`` onto ``image`` in place.

    Returns
    -------
    SyntheticObject or None
        The shape as drawn (mask and box before any later occlusion; difficult only when faint), or None
        when no position worked.
    """
    height, width = image.shape[:2]
    name = params.classes[rng.randint(len(params.classes))]
    local = draw_shape_mask(name, sample_radius(rng, min(height, width), params), rng.uniform(0, 2 * np.pi), rng)
    placement = place_mask(rng, local, (height, width), placed, visible)
    if placement is None:
        return None
    mask, box, truncated = placement
    color, faint = choose_color(rng, image, mask, box)
    x0, y0, x1, y1 = box
    image[y0:y1 + 1, x0:x1 + 1][mask[y0:y1 + 1, x0:x1 + 1]] = color
    return SyntheticObject(name, box, truncated, faint, color, mask, int(np.count_nonzero(mask)))


def as_visible(drawn, visible, tiny_side=TINY_SIDE):
    """The object as it shows in the finished image: mask and box of its visible pixels, and difficult also
    when the box's shorter side is below ``tiny_side`` pixels (``drawn``: any namedtuple with the fields
    ``box``, ``difficult`` and ``mask``)."""
    box = tight_box(visible)
    tiny = min(box[2] - box[0], box[3] - box[1]) + 1 < tiny_side
    return drawn._replace(box=box, difficult=drawn.difficult or tiny, mask=visible)


def generate_image(rng_seed, index, params):
    """Generate image ``index`` of the dataset with seed ``rng_seed``, in memory.

    Parameters
    ----------
    rng_seed : int
        The dataset seed (>= 0).
    index : int
        The image's index (>= 0); with ``rng_seed`` it seeds the image's own ``RandomState``.
    params : SyntheticParams

    Returns
    -------
    tuple
        ``(image (H, W, 3) uint8 BGR, objects)``: ``objects`` is a list of 1..max_objects
        :class:`SyntheticObject` in drawing order (later ones lie on top).
    """
    rng = np.random.RandomState([rng_seed, index])
    height, width = sample_image_size(rng, params)
    image = make_background(rng, height, width)
    placed, visible = [], []
    for _ in range(rng.randint(1, params.max_objects + 1)):
        drawn = add_object(rng, image, params, placed, visible)
        if drawn is None:
            continue
        for seen in visible:
            seen &= ~drawn.mask
        placed.append(drawn)
        visible.append(drawn.mask.copy())
    return image, [as_visible(drawn, seen) for drawn, seen in zip(placed, visible)]


# -------------------------------------------------------------------------------------------- writing
def annotation_xml(image_id, folder, image_shape, objects, database=DATABASE):
    """The VOC annotation of one image as XML text; boxes become 1-based inclusive pixel indices.

    Parameters
    ----------
    image_id : str
    folder : str
        e.g. ``'VOC2007'``.
    image_shape : tuple
        ``(H, W, 3)``.
    objects : list of SyntheticObject
        Or any namedtuples with ``name``, ``truncated``, ``difficult`` and a 0-based ``box``.
    database : str
        The ``<source><database>`` text: which generator made the set.
    """
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = folder
    ET.SubElement(root, 'filename').text = image_id + '.jpg'
    source = ET.SubElement(root, 'source')
    ET.SubElement(source, 'database').text = database
    size = ET.SubElement(root, 'size')
    for tag, value in zip(('width', 'height', 'depth'), (image_shape[1], image_shape[0], image_shape[2])):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, 'segmented').text = '0'
    for obj in objects:
        node = ET.SubElement(root, 'object')
        ET.SubElement(node, 'name').text = obj.name
        ET.SubElement(node, 'pose').text = 'Unspecified'
        ET.SubElement(node, 'truncated').text = str(int(obj.truncated))
        ET.SubElement(node, 'difficult').text = str(int(obj.difficult))
        bndbox = ET.SubElement(node, 'bndbox')
        for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), obj.box):
            ET.SubElement(bndbox, tag).text = str(value + 1)
    ET.indent(root)
    return ET.tostring(root, encoding='unicode') + '\n'


def write_sample(settings, index_and_id):
    """Generate one image and write its JPEG and XML (each atomically).

    Returns
    -------
    tuple of int
        ``(objects, truncated, difficult)`` counts, for the summary.
    """
    index, image_id = index_and_id
    image, objects = generate_image(settings.seed, index, settings.params)
    return write_image_files(settings.year_dir, image_id, image, objects, settings.quality)


def write_image_files(year_dir, image_id, image, objects, quality, database=DATABASE):
    """Write ``JPEGImages/<image_id>.jpg`` and ``Annotations/<image_id>.xml`` under ``year_dir``, each atomically.

    Parameters
    ----------
    image : (H, W, 3) uint8 array
        BGR.
    objects : list of SyntheticObject
        Or namedtuples with the fields :func:`annotation_xml` reads.
    quality : int
        JPEG quality, 1..100.
    database : str
        The annotations' ``<source><database>`` text.

    Returns
    -------
    tuple of int
        ``(objects, truncated, difficult)`` counts, for the summary.
    """
    ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError('OpenCV could not encode image %s as JPEG' % image_id)
    with atomic_open(os.path.join(year_dir, 'JPEGImages', image_id + '.jpg'), 'wb') as handle:
        handle.write(encoded.tobytes())
    xml = annotation_xml(image_id, os.path.basename(year_dir), image.shape, objects, database)
    with atomic_open(os.path.join(year_dir, 'Annotations', image_id + '.xml')) as handle:
        handle.write(xml)
    return len(objects), sum(o.truncated for o in objects), sum(o.difficult for o in objects)


def _run(work, jobs, num_thread):
    """Yield ``work(job)`` for every job, in this process or, in completion order, from a process pool.

    The workers run OpenCV on one thread each (the pool already uses every core). They inherit that setting
    from this process at the fork: calling ``cv2.setNumThreads`` in a forked worker hangs once this process
    has started OpenCV's thread pool (e.g. by drawing a large image before), so this process's count is
    lowered around the pool's life instead.
    """
    if num_thread == 1:
        yield from map(work, jobs)
        return
    parent_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with multiprocessing.Pool(num_thread) as pool:
            yield from pool.imap_unordered(work, jobs, chunksize=8)
    finally:
        cv2.setNumThreads(parent_threads)


def write_samples(settings, image_ids, num_thread, work=write_sample, desc='synthetic VOC'):
    """Write every image and annotation with a progress bar; returns summed ``(objects, truncated, difficult)``.

    ``work(settings, (index, image_id))`` writes one image and returns its counts (default
    :func:`write_sample`; another generator passes its own, a module-level function so that the pool can
    pickle it); ``desc`` labels the progress bar.
    """
    jobs = list(enumerate(image_ids))
    totals = np.zeros(3, np.int64)
    with tqdm(total=len(jobs), unit='img', desc=desc, dynamic_ncols=True) as progress:
        for counts in _run(functools.partial(work, settings), jobs, num_thread):
            totals += counts
            progress.update()
    return tuple(totals.tolist())


def image_set_paths(year_dir):
    """``{split: path}`` of the ImageSets/Main lists this script writes."""
    return {split: os.path.join(year_dir, 'ImageSets', 'Main', split + '.txt') for split in SPLITS}


def prepare_directories(year_dir):
    """Create the VOC folders and remove old ImageSets lists, so that an interrupted run looks unfinished."""
    try:
        for sub in ('JPEGImages', 'Annotations', os.path.join('ImageSets', 'Main')):
            os.makedirs(os.path.join(year_dir, sub), exist_ok=True)
    except OSError as err:
        raise UserError('cannot create the dataset folders under %s (%s); give a writable --root'
                        % (year_dir, err.strerror))
    for path in image_set_paths(year_dir).values():
        if os.path.exists(path):
            os.remove(path)


def write_lists(year_dir, classes, splits):
    """Write ``classes.txt``, then every ImageSets list, each renamed into place only when complete."""
    with atomic_open(os.path.join(year_dir, 'classes.txt')) as handle:
        handle.write(''.join(name + '\n' for name in classes))
    paths = image_set_paths(year_dir)
    with atomic_paths(*(paths[split] for split in SPLITS)) as temps:
        for split, temp in zip(SPLITS, temps):
            with open(temp, 'w') as handle:
                handle.write(''.join(image_id + '\n' for image_id in splits[split]))


# ------------------------------------------------------------------------------------------------ CLI
def parse_class_list(text):
    """``'circle,ring'`` -> ``('circle', 'ring')``; raises UserError for unknown, repeated or no names."""
    names = tuple(name.strip() for name in text.split(',') if name.strip())
    unknown = [name for name in names if name not in SHAPES]
    if unknown:
        raise UserError('--classes: unknown shape %s; choose from %s' % (','.join(unknown), ','.join(SHAPES)))
    if not names or len(set(names)) != len(names):
        raise UserError('--classes %r: give distinct names from %s, comma separated' % (text, ','.join(SHAPES)))
    return names


def check_args(args):
    """Raise UserError naming the first flag whose value cannot work."""
    rules = [('--num-trainval', args.num_trainval >= 0, 'must be >= 0'),
             ('--num-test', args.num_test >= 0, 'must be >= 0'),
             ('--seed', args.seed >= 0, 'must be >= 0'),
             ('--min-side', args.min_side >= 32, 'must be >= 32'),
             ('--max-side', args.max_side >= args.min_side, 'must be >= --min-side (%d)' % args.min_side),
             ('--max-objects', args.max_objects >= 1, 'must be >= 1'),
             ('--object-size', is_range(args.object_size, 1e-3, 1),
              'must be two fractions LOW,HIGH of the shorter side with 0.001 <= LOW <= HIGH <= 1'),
             ('--small-share', 0 <= args.small_share <= 1, 'must be in 0..1'),
             ('--quality', 1 <= args.quality <= 100, 'must be in 1..100'),
             ('--num-thread', args.num_thread >= 1, 'must be >= 1')]
    check_generator_args(args, rules)


def check_generator_args(args, rules):
    """Raise UserError for the first ``(flag, ok, rule)`` of ``rules`` not ok, then for the checks every generator
    shares (something to generate, ``--year``, ``--root``); tools/synthetic_clutter.py uses it too."""
    for flag, ok, rule in rules:
        if not ok:
            raise UserError('%s %s %s' % (flag, getattr(args, flag[2:].replace('-', '_')), rule))
    if args.num_trainval + args.num_test == 0:
        raise UserError('--num-trainval and --num-test are both 0: nothing to generate')
    if not args.year.isalnum():
        raise UserError('--year %r must be letters and digits only, e.g. 2007' % args.year)
    if os.path.exists(args.root) and not os.path.isdir(args.root):
        raise UserError('--root %s is a file; give a directory (it is created when missing)' % args.root)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', required=True, help='VOCdevkit directory to write into, e.g. DATA/VOCdevkit')
    parser.add_argument('--year', default=SYNTHETIC['year'], help='written as <root>/VOC<year>/')
    parser.add_argument('--num-trainval', type=int, default=SYNTHETIC['num_trainval'], help='trainval images')
    parser.add_argument('--num-test', type=int, default=SYNTHETIC['num_test'], help='test images')
    parser.add_argument('--seed', type=int, default=SYNTHETIC['seed'], help='equal seeds give equal files')
    parser.add_argument('--classes', default=','.join(SYNTHETIC['classes']),
                        help='comma-separated shapes, in label order; from: %s' % ','.join(SHAPES))
    parser.add_argument('--min-side', type=int, default=SYNTHETIC['min_side'], help='shortest image side (px)')
    parser.add_argument('--max-side', type=int, default=SYNTHETIC['max_side'], help='longest image side (px)')
    parser.add_argument('--max-objects', type=int, default=SYNTHETIC['max_objects'],
                        help='objects per image: 1..this')
    parser.add_argument('--object-size', type=comma_floats, default=SYNTHETIC['object_size'],
                        help='LOW,HIGH: object diameters as fractions of the shorter image side (log-uniform)')
    parser.add_argument('--small-share', type=float, default=SYNTHETIC['small_share'],
                        help='share of objects drawn small instead (%g..%g of the shorter side)' % SMALL_SIZE)
    parser.add_argument('--quality', type=int, default=SYNTHETIC['quality'], help='JPEG quality, 1..100')
    parser.add_argument('--num-thread', type=int, default=SYNTHETIC['num_thread'] or available_cores(),
                        help='worker processes (default: one per core)')
    return parser.parse_args(argv)


def summary_line(splits, counts, year_dir, seconds):
    """One line saying what was written: images per split, objects, truncated and difficult shares."""
    objects, truncated, difficult = counts
    return ('wrote %d images (%d trainval, %d test) with %d objects (%.1f%% truncated, %.1f%% difficult) to %s '
            'in %.1f s' % (len(splits['trainval']) + len(splits['test']), len(splits['trainval']),
                           len(splits['test']), objects, 100.0 * truncated / max(objects, 1),
                           100.0 * difficult / max(objects, 1), year_dir, seconds))


def main(args):
    """Generate the dataset described by ``args``; returns ``{split: [image ids]}``."""
    check_args(args)
    classes = parse_class_list(args.classes)
    start = time.perf_counter()
    year_dir = os.path.join(args.root, 'VOC' + args.year)
    ids = ['%06d' % (index + 1) for index in range(args.num_trainval + args.num_test)]
    splits = {'trainval': ids[:args.num_trainval], 'test': ids[args.num_trainval:]}
    params = SyntheticParams(classes, args.min_side, args.max_side, args.max_objects, tuple(args.object_size),
                             args.small_share)
    prepare_directories(year_dir)
    counts = write_samples(WriteSettings(args.seed, params, year_dir, args.quality), ids, args.num_thread)
    write_lists(year_dir, classes, splits)
    print(summary_line(splits, counts, year_dir, time.perf_counter() - start))
    return splits


if __name__ == '__main__':
    run_cli(main, parse_args())
