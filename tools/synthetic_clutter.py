"""Generate a second synthetic detection set, unlike tools/synthetic_voc.py's, in PASCAL VOC layout.

::

    python tools/synthetic_clutter.py --root DATA/clutter/VOCdevkit --num-trainval 2000 --num-test 500 --seed 0

writes ``<root>/VOC<year>/JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` (VOC XML, boxes as 1-based inclusive
pixel indices), ``classes.txt`` and, last, ``ImageSets/Main/{trainval,test}.txt``, as synthetic_voc.py does, so
``tools/prepare_dataset.py --dataset pascal --year 2007 --root <root>`` reads it unchanged.

It exists to check that a training recipe tuned on synthetic_voc.py's set holds up on data it was not tuned
on, so it differs from that set in every way a detector would notice:

- classes: 5 other shapes (``CLASS_SHAPES``): hexagon, ellipse (axis ratio 1.8..3), arrow, crescent and
  diamond (an elongated rhombus), most of them far from square; filled plain, striped or two-tone;
- clutter: 2..8 unannotated distractors per image, drawn like objects: synthetic_voc.py's shapes (circle,
  square, triangle, star, cross, ring), irregular polygons, and outlines and cut-off parts of the class
  shapes; some lie under the objects, some on top;
- backgrounds: stripes, checkerboards, smooth noise, gradients or a blend of two, with pixel noise over the
  whole finished image (objects included);
- images: the shorter side 240..480 px, the longer 1..2 times that, 40 % portrait;
- objects: 1..6 per image, diameters log-uniform over 5..60 % of the shorter side (many small ones); a
  box side below ``TINY_SIDE`` (12 px) or a faint object is difficult.

As in synthetic_voc.py (whose pieces this module reuses), the boxes are the tight boxes of each object's
pixels still visible once everything is drawn (distractors on top included; together with later objects they
hide at most 30 % of an object, synthetic_voc.MAX_OCCLUDED), a shape cut by the border is truncated, and image
``i`` draws everything from its own ``RandomState([seed, i])``, so a seed gives the same bytes whatever the
number of processes. The ImageSets lists are removed first and written last, so a killed run looks unfinished.
"""
import argparse
import collections
import math
import os
import time

import cv2
import numpy as np

from config.defaults import SYNTHETIC_CLUTTER
from config.errors import run_cli
from config.runtime import available_cores
from tools.cli import comma_floats, is_range
from tools.synthetic_voc import SHAPES as FIRST_SET_SHAPES
from tools.synthetic_voc import (
    WriteSettings,
    as_visible,
    check_generator_args,
    draw_shape_mask,
    fill_polygon_mask,
    gradient,
    place_mask,
    prepare_directories,
    summary_line,
    write_image_files,
    write_lists,
    write_samples,
)

CLASS_SHAPES = ('hexagon', 'ellipse', 'arrow', 'crescent', 'diamond')  # every class shape this module draws
DATABASE = 'Synthetic clutter (tools/synthetic_clutter.py)'            # the annotations' <source><database>

# Generator design (sizes: the diameter of a shape's circumscribed circle, as a fraction of the shorter side).
MIN_RADIUS = 5.0                # pixels: the smallest circumscribed radius drawn (shapes stay visible)
TRUNCATE_PROB = 0.35            # share of placement tries allowed to cross the image border (synthetic_voc: 0.2)
TINY_SIDE = 12                  # a box whose shorter side is below this many pixels is difficult
FILL_STYLES = ('solid', 'stripes', 'two-tone')
FILL_STYLE_PROBS = (0.55, 0.25, 0.20)
STRIPE_WIDTH = (2.0, 9.0)       # pixels per stripe of a striped fill
MIN_CONTRAST = 70.0             # colour distance (0..441) a fill keeps from 90 % of the pixels beneath it
CONTRAST_QUANTILE = 10          # percentile of the distances to the pixels beneath that must reach MIN_CONTRAST
MIN_TONE_CONTRAST = 60.0        # colour distance between the two colours of a striped or two-tone fill
COLOR_CANDIDATES = 24           # random colours tried per fill colour
CONTRAST_SAMPLES = 128          # pixels beneath a shape its colours are compared with (a regular subsample)
FAINT_PROB = 0.03               # share of objects drawn faint on purpose (solid, difficult=1)
FAINT_CONTRAST = (15.0, 30.0)   # colour distance of a faint object from the median colour beneath it
DISTRACTOR_KINDS = ('first-set', 'polygon', 'outline', 'partial')
DISTRACTOR_KIND_PROBS = (0.40, 0.25, 0.20, 0.15)
DISTRACTOR_ON_TOP_PROB = 0.5    # share of distractors drawn after the objects (the rest before, beneath them)
PARTIAL_SHAPES = ('hexagon', 'ellipse', 'diamond')  # cut into 'partial' distractors (not arrow, crescent:
PARTIAL_KEEP = (0.35, 0.55)     # share of their pixels kept                  a part of those still looks whole)
OUTLINE_WIDTH = (0.06, 0.16)    # outline thickness as a share of the radius (at least 1 pixel)
MIN_OUTLINE_HOLE = 0.5          # an outline's hole holds at least this share of the filled shape
BACKGROUNDS = ('stripes', 'checkerboard', 'smooth', 'gradient', 'mixed')
BACKGROUND_SCALE = 2            # backgrounds are drawn at 1/2 resolution, then upsampled (sizes: in those pixels)
TEXTURE_CONTRAST = (30.0, 140.0)  # colour distance between the two colours of a striped or checked background
NOISE_AMPLITUDE = (2, 10)       # colour noise over the finished image: uniform in -A..A, A drawn from this

ClutterParams = collections.namedtuple(
    'ClutterParams', 'classes shorter_side max_aspect portrait_share max_objects object_size distractors')
ClutterParams.__new__.__defaults__ = tuple(SYNTHETIC_CLUTTER[key] for key in ClutterParams._fields)
ClutterParams.__doc__ = """What :func:`generate_image` draws: class names (a subset of ``CLASS_SHAPES``, in
label order), the ``(low, high)`` shorter image side in pixels, the longest long / short side ratio, the share
of portrait images, the most objects in one image, the ``(low, high)`` object diameter as fractions of the
shorter side (log-uniform) and the ``(low, high)`` count of distractors per image."""

ClutterObject = collections.namedtuple('ClutterObject', 'name box truncated difficult colors mask drawn_area')
ClutterObject.__doc__ = """One annotated shape, as it shows in the finished image.

Attributes
----------
name : str
    Class name (the shape).
box : tuple of 4 int
    ``(xmin, ymin, xmax, ymax)``, 0-based inclusive: the tight box of ``mask``.
truncated : bool
    The shape was cut by the image border.
difficult : bool
    Faint, or tiny (box side below ``TINY_SIDE``).
colors : (2, 3) uint8 array
    The BGR fill colours (equal rows for a solid fill); every pixel of ``mask`` is one of them before the
    image's pixel noise (at most ``NOISE_AMPLITUDE[1]`` per channel).
mask : (H, W) bool array
    The shape's pixels that nothing drawn later painted over.
drawn_area : int
    Pixels the shape painted inside the image when it was drawn.
"""

Distractor = collections.namedtuple('Distractor', 'kind name on_top mask')
Distractor.__doc__ = """One unannotated clutter shape: its kind (one of ``DISTRACTOR_KINDS``), the shape it was
made from, whether it was drawn after the objects, and its ``(H, W)`` bool mask of still visible pixels."""


# ----------------------------------------------------------------------------------------------- shapes
def pick(rng, names, probs):
    """One of ``names``, drawn with the probabilities ``probs`` (one uniform draw; faster than ``rng.choice``)."""
    return names[min(int(np.searchsorted(np.cumsum(probs), rng.rand(), side='right')), len(names) - 1)]


def _circle(num_points=48, centre=(0.0, 0.0), radius=1.0):
    """``(num_points, 2)`` vertices of a circle."""
    angles = np.arange(num_points) * 2 * np.pi / num_points
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)


def _arrow_vertices(rng):
    """An arrow along +x: shaft, then a triangular head; ``(7, 2)`` scaled into the unit circle."""
    shaft, head_width = rng.uniform(0.10, 0.20), rng.uniform(0.32, 0.50)
    head_base = 1.0 - 2.0 * rng.uniform(0.28, 0.42)
    vertices = np.array([(-1, -shaft), (head_base, -shaft), (head_base, -head_width), (1, 0),
                         (head_base, head_width), (head_base, shaft), (-1, shaft)])
    return vertices / np.linalg.norm(vertices, axis=1).max()


def class_unit_vertices(name, rng):
    """Polygon vertices of a class shape (not the crescent) in the unit circle, long axis along x: ``(K, 2)``."""
    if name == 'hexagon':
        return _circle(6)
    if name == 'ellipse':
        return _circle(48) * np.array([1.0, 1.0 / rng.uniform(1.8, 3.0)])
    if name == 'diamond':
        rhombus = np.array([(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)])
        return rhombus * np.array([1.0, 1.0 / rng.uniform(1.7, 2.8)])
    if name == 'arrow':
        return _arrow_vertices(rng)
    raise ValueError('no polygon for shape %r' % name)


def draw_class_mask(name, radius, angle, rng):
    """Draw one filled class shape, centred, into a fresh square mask.

    Parameters
    ----------
    name : str
        One of ``CLASS_SHAPES``.
    radius : float
        Radius of the shape's circumscribed circle in pixels.
    angle : float
        Rotation in radians.
    rng : numpy.random.RandomState
        Draws the shape's own proportions (axis ratios, arrow head, crescent bite).

    Returns
    -------
    (S, S) uint8 array
        1 on the shape; ``S = 2 * ceil(radius) + 3``.
    """
    if name != 'crescent':
        return fill_polygon_mask(class_unit_vertices(name, rng), radius, angle)
    bite = rng.uniform(0.70, 0.85)                      # radius of the circle bitten out of the disc
    offset = rng.uniform(max(0.40, 1.1 - bite), 0.62)   # its centre's distance: it always cuts the rim
    disc = fill_polygon_mask(_circle(64), radius, angle)
    hole = fill_polygon_mask(_circle(64, (offset, 0.0), bite), radius, angle)
    return disc & (1 - hole)


def _irregular_polygon(rng):
    """5..9 vertices at sorted random angles and random radii: ``(K, 2)`` in the unit circle."""
    count = rng.randint(5, 10)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=count))
    radii = rng.uniform(0.35, 1.0, size=count)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _outline(mask, width):
    """The pixels of ``mask`` within ``width`` pixels of its edge, thinned until the hole holds at least
    ``MIN_OUTLINE_HOLE`` of the shape (a thick outline of a thin shape looks filled); None when even a
    1-pixel outline leaves too small a hole."""
    area = np.count_nonzero(mask)
    for thickness in range(width, 0, -1):
        side = 2 * thickness + 1
        inner = cv2.erode(mask, np.ones((side, side), np.uint8), borderValue=0)
        if np.count_nonzero(inner) >= MIN_OUTLINE_HOLE * area:
            return mask & (1 - inner)
    return None


def _cut(rng, mask):
    """Keep the share ``PARTIAL_KEEP`` of ``mask``'s pixels lying on one side of a random straight line."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask
    angle = rng.uniform(0, 2 * np.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    threshold = np.quantile(along, rng.uniform(*PARTIAL_KEEP))
    kept = np.zeros_like(mask)
    kept[ys[along <= threshold], xs[along <= threshold]] = 1
    return kept


def draw_distractor_mask(kind, radius, angle, rng):
    """Draw one distractor into a fresh square mask.

    Parameters
    ----------
    kind : str
        One of ``DISTRACTOR_KINDS``: a synthetic_voc.py shape, an irregular polygon, the outline of a class
        shape, or one of ``PARTIAL_SHAPES`` cut by a straight line.
    radius, angle, rng
        As for :func:`draw_class_mask`.

    Returns
    -------
    tuple
        ``(kind, name, (S, S) uint8 mask)``: an outline too thin to show its hole becomes a first-set shape.
    """
    if kind == 'polygon':
        return kind, 'polygon', fill_polygon_mask(_irregular_polygon(rng), radius, angle)
    if kind == 'outline':
        name = CLASS_SHAPES[rng.randint(len(CLASS_SHAPES))]
        width = max(1, int(round(radius * rng.uniform(*OUTLINE_WIDTH))))
        outline = _outline(draw_class_mask(name, radius, angle, rng), width)
        if outline is not None:
            return kind, name, outline
    if kind == 'partial':
        name = PARTIAL_SHAPES[rng.randint(len(PARTIAL_SHAPES))]
        return kind, name, _cut(rng, draw_class_mask(name, radius, angle, rng))
    name = FIRST_SET_SHAPES[rng.randint(len(FIRST_SET_SHAPES))]
    return 'first-set', name, draw_shape_mask(name, radius, angle, rng)


# ------------------------------------------------------------------------------------------ backgrounds
def _rotated_coordinates(rng, height, width):
    """Pixel coordinates along and across a random direction: two ``(H, W)`` float32 arrays."""
    angle = rng.uniform(0, np.pi)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    return xs * cos + ys * sin, ys * cos - xs * sin


def _two_colors(rng):
    """Two BGR colours ``TEXTURE_CONTRAST`` apart: ``(2, 3)`` float32."""
    first = rng.uniform(0, 256, size=3)
    direction = rng.standard_normal(3)
    second = first + direction / max(np.linalg.norm(direction), 1e-6) * rng.uniform(*TEXTURE_CONTRAST)
    return np.clip(np.stack([first, second]), 0, 255).astype(np.float32)


def _blend(colors, weight):
    """``colors[0]`` where ``weight`` is 0, ``colors[1]`` where it is 1: ``(H, W, 3)`` float32."""
    return colors[0] + weight[:, :, None] * (colors[1] - colors[0])


def _stripes(rng, height, width):
    """Soft-edged stripes of random width, direction and colours."""
    along, _ = _rotated_coordinates(rng, height, width)
    wave = np.sin(along * np.float32(2 * np.pi / rng.uniform(6, 36)))
    weight = np.clip(wave * np.float32(rng.uniform(1, 6)), -1, 1) * 0.5 + 0.5
    return _blend(_two_colors(rng), weight)


def _checkerboard(rng, height, width):
    """A rotated checkerboard of random cell size and colours."""
    along, across = _rotated_coordinates(rng, height, width)
    cell = np.float32(rng.uniform(6, 32))
    weight = ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float32)
    return _blend(_two_colors(rng), weight)


def _smooth_field(rng, height, width, channels, cell):
    """Random values on a grid of ``cell``-pixel cells, upsampled smoothly: ``(H, W, channels)`` in about -1..1."""
    grid = rng.uniform(-1, 1, size=(int(height / cell) + 2, int(width / cell) + 2, channels)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)


def _smooth(rng, height, width):
    """A base colour with two octaves of smooth colour noise."""
    base = rng.uniform(40, 216, size=3).astype(np.float32)
    coarse = _smooth_field(rng, height, width, 3, rng.uniform(24, 64)) * np.float32(rng.uniform(30, 80))
    fine = _smooth_field(rng, height, width, 3, rng.uniform(5, 12)) * np.float32(rng.uniform(5, 25))
    return base + coarse + fine


def _mixed(rng, height, width):
    """Two of the other backgrounds, blended through a soft random mask."""
    first, second = rng.choice(len(BACKGROUNDS) - 1, size=2, replace=False)
    layers = [_BACKGROUND_MAKERS[BACKGROUNDS[k]](rng, height, width) for k in (first, second)]
    field = _smooth_field(rng, height, width, 1, rng.uniform(32, 80))
    weight = np.clip(0.5 + field * np.float32(rng.uniform(2, 8)), 0, 1)
    return layers[0] + weight * (layers[1] - layers[0])


_BACKGROUND_MAKERS = {'stripes': _stripes, 'checkerboard': _checkerboard, 'smooth': _smooth,
                      'gradient': gradient, 'mixed': _mixed}


def make_background(rng, height, width):
    """One of ``BACKGROUNDS``, chosen uniformly, drawn at ``1 / BACKGROUND_SCALE`` of the size and upsampled
    (bilinear: the stripe and check edges turn slightly soft): ``(H, W, 3)`` uint8."""
    small = _BACKGROUND_MAKERS[BACKGROUNDS[rng.randint(len(BACKGROUNDS))]](
        rng, -(-height // BACKGROUND_SCALE), -(-width // BACKGROUND_SCALE))
    return cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)


def add_pixel_noise(rng, image):
    """Add colour noise, uniform in ``-A..A`` per channel with ``A`` drawn from ``NOISE_AMPLITUDE``, to the
    ``(H, W, 3)`` uint8 ``image`` in place (clipped to 0..255)."""
    amplitude = int(rng.randint(NOISE_AMPLITUDE[0], NOISE_AMPLITUDE[1] + 1))
    raw = np.frombuffer(rng.bytes(image.size), np.uint8).reshape(image.shape)
    offsets = np.arange(256) % (2 * amplitude + 1) - amplitude          # random byte -> offset in -A..A
    raise_by = cv2.LUT(raw, np.maximum(offsets, 0).astype(np.uint8))   # one of the two is 0 at each pixel,
    lower_by = cv2.LUT(raw, np.maximum(-offsets, 0).astype(np.uint8))  # so saturating add, subtract = clip
    cv2.subtract(cv2.add(image, raise_by), lower_by, dst=image)


# ------------------------------------------------------------------------------------------------- fills
def _contrast(candidates, beneath):
    """Per candidate colour, the ``CONTRAST_QUANTILE`` percentile of its distances to the pixels beneath.

    Parameters
    ----------
    candidates : (C, 3) float array
    beneath : (N, 3) float array

    Returns
    -------
    (C,) float array
    """
    distances = np.sqrt(((candidates[:, None, :] - beneath[None, :, :]) ** 2).sum(axis=2))   # (C, N)
    rank = len(beneath) * CONTRAST_QUANTILE // 100
    return np.partition(distances, rank, axis=1)[:, rank]


def _contrasting_color(rng, beneath, avoid=None):
    """A colour ``MIN_CONTRAST`` from (most of) ``beneath`` and, if given, ``MIN_TONE_CONTRAST`` from ``avoid``;
    the best of the candidates when none is: ``(3,)`` float32."""
    candidates = rng.randint(0, 256, size=(COLOR_CANDIDATES, 3)).astype(np.float32)
    score = _contrast(candidates, beneath)
    if avoid is not None:
        tone = np.linalg.norm(candidates - avoid, axis=1)
        score = np.where(tone >= MIN_TONE_CONTRAST, score, np.minimum(score, tone))
    passing = np.flatnonzero(score >= MIN_CONTRAST)
    return candidates[passing[0] if passing.size else int(np.argmax(score))]


def choose_fill(rng, pixels_beneath, may_be_faint):
    """The style and colours of one shape's fill.

    Parameters
    ----------
    pixels_beneath : (N, 3) uint8 array
        The image's pixels under the shape.
    may_be_faint : bool
        Whether the shape may be drawn faint (objects may, distractors not).

    Returns
    -------
    tuple
        ``(style, colors (2, 3) uint8 array, faint bool)``; style is one of ``FILL_STYLES``.
    """
    step = max(1, len(pixels_beneath) // CONTRAST_SAMPLES)
    beneath = pixels_beneath[::step].astype(np.float32)
    if may_be_faint and rng.rand() < FAINT_PROB:
        direction = rng.standard_normal(3)
        offset = direction / max(np.linalg.norm(direction), 1e-6) * rng.uniform(*FAINT_CONTRAST)
        color = np.clip(np.round(np.median(beneath, axis=0) + offset), 0, 255).astype(np.uint8)
        return 'solid', np.stack([color, color]), True
    style = pick(rng, FILL_STYLES, FILL_STYLE_PROBS)
    first = _contrasting_color(rng, beneath)
    second = first if style == 'solid' else _contrasting_color(rng, beneath, avoid=first)
    return style, np.stack([first, second]).astype(np.uint8), False


def second_tone(rng, style, shape):
    """Which pixels of a ``(h, w)`` box take the second colour of a ``'stripes'`` or ``'two-tone'`` fill:
    stripes of random width and direction, or one side of a line through the box centre. ``(h, w)`` bool."""
    angle = rng.uniform(0, np.pi)
    ys = np.arange(shape[0], dtype=np.float32)[:, None] - (shape[0] - 1) / 2.0
    xs = np.arange(shape[1], dtype=np.float32)[None, :] - (shape[1] - 1) / 2.0
    along = xs * np.float32(math.cos(angle)) + ys * np.float32(math.sin(angle))
    if style == 'stripes':
        return np.floor(along / np.float32(rng.uniform(*STRIPE_WIDTH))) % 2 == 1
    return along > 0


def paint(rng, image, mask, box, may_be_faint):
    """Fill the pixels of ``mask`` (``(H, W)`` bool, tight box ``box``) in ``image`` in place.

    Returns
    -------
    tuple
        ``(colors (2, 3) uint8 array, faint bool)``.
    """
    x0, y0, x1, y1 = box
    region, inside = image[y0:y1 + 1, x0:x1 + 1], mask[y0:y1 + 1, x0:x1 + 1]
    style, colors, faint = choose_fill(rng, region[inside], may_be_faint)
    region[inside] = colors[0]
    if style != 'solid':
        region[inside & second_tone(rng, style, inside.shape)] = colors[1]
    return colors, faint


# ------------------------------------------------------------------------------------------- placement
def sample_image_size(rng, params):
    """``(height, width)``: the shorter side in ``params.shorter_side``, the longer 1..``max_aspect`` times it,
    portrait for a share ``params.portrait_share`` of the images."""
    shorter = int(rng.randint(params.shorter_side[0], params.shorter_side[1] + 1))
    longer = int(round(shorter * rng.uniform(1.0, params.max_aspect)))
    return (longer, shorter) if rng.rand() < params.portrait_share else (shorter, longer)


def sample_radius(rng, shorter_side, params):
    """A circumscribed radius in pixels: the diameter log-uniform in ``params.object_size`` times the shorter
    side, at least ``MIN_RADIUS``."""
    low, high = params.object_size
    return max(math.exp(rng.uniform(math.log(low), math.log(high))) * shorter_side / 2.0, MIN_RADIUS)


class Canvas:
    """The image being drawn and every shape on it, with the pixels of each that still show.

    Attributes
    ----------
    image : (H, W, 3) uint8 array
    objects, distractors : list of ClutterObject, list of Distractor
        As drawn (masks as painted; the visible ones are in ``object_seen`` and ``distractor_seen``).
    object_seen, distractor_seen : list of (H, W) bool arrays
    """

    def __init__(self, image):
        self.image = image
        self.objects, self.object_seen = [], []
        self.distractors, self.distractor_seen = [], []

    def cover(self, mask, box):
        """Mark the pixels of ``mask`` as no longer showing any earlier shape."""
        x0, y0, x1, y1 = box
        hidden = mask[y0:y1 + 1, x0:x1 + 1]
        for seen in self.object_seen + self.distractor_seen:
            seen[y0:y1 + 1, x0:x1 + 1] &= ~hidden

    def place(self, rng, local):
        """``place_mask`` against the objects (no object loses more than 30 % of its pixels, as in
        synthetic_voc.py): ``(mask (H, W) bool, box, truncated)`` or None."""
        if not local.any():
            return None
        return place_mask(rng, local, self.image.shape[:2], self.objects, self.object_seen, TRUNCATE_PROB)

    def add_object(self, rng, params):
        """Draw one random object of ``params.classes``; returns False when no position worked."""
        height, width = self.image.shape[:2]
        name = params.classes[rng.randint(len(params.classes))]
        local = draw_class_mask(name, sample_radius(rng, min(height, width), params), rng.uniform(0, 2 * np.pi), rng)
        placement = self.place(rng, local)
        if placement is None:
            return False
        mask, box, truncated = placement
        colors, faint = paint(rng, self.image, mask, box, may_be_faint=True)
        self.cover(mask, box)
        self.objects.append(ClutterObject(name, box, truncated, faint, colors, mask, int(np.count_nonzero(mask))))
        self.object_seen.append(mask.copy())
        return True

    def add_distractor(self, rng, params, on_top):
        """Draw one random distractor (on top of objects: hiding at most 30 % of any of them)."""
        height, width = self.image.shape[:2]
        kind = pick(rng, DISTRACTOR_KINDS, DISTRACTOR_KIND_PROBS)
        radius = sample_radius(rng, min(height, width), params)
        kind, name, local = draw_distractor_mask(kind, radius, rng.uniform(0, 2 * np.pi), rng)
        placement = self.place(rng, local)
        if placement is None:
            return
        mask, box, _ = placement
        paint(rng, self.image, mask, box, may_be_faint=False)
        self.cover(mask, box)
        self.distractors.append(Distractor(kind, name, on_top, mask))
        self.distractor_seen.append(mask.copy())


def generate_image(rng_seed, index, params):
    """Generate image ``index`` of the dataset with seed ``rng_seed``, in memory.

    Distractors drawn beneath the objects come first, then the objects, then the distractors on top (later
    shapes together hide at most 30 % of an object), then the pixel noise.

    Parameters
    ----------
    rng_seed : int
        The dataset seed (>= 0).
    index : int
        The image's index (>= 0); with ``rng_seed`` it seeds the image's own ``RandomState``.
    params : ClutterParams

    Returns
    -------
    tuple
        ``(image (H, W, 3) uint8 BGR, objects, distractors)``: 1..max_objects :class:`ClutterObject` and
        the :class:`Distractor` list, each in drawing order with its visible pixels as its mask.
    """
    rng = np.random.RandomState([rng_seed, index])
    height, width = sample_image_size(rng, params)
    canvas = Canvas(make_background(rng, height, width))
    on_top = rng.rand(rng.randint(params.distractors[0], params.distractors[1] + 1)) < DISTRACTOR_ON_TOP_PROB
    for _ in range(int(np.count_nonzero(~on_top))):
        canvas.add_distractor(rng, params, on_top=False)
    wanted = rng.randint(1, params.max_objects + 1)
    for _ in range(2 * wanted):  # up to ``wanted`` failed placements are made up for
        if len(canvas.objects) == wanted:
            break
        canvas.add_object(rng, params)
    for _ in range(int(np.count_nonzero(on_top))):
        canvas.add_distractor(rng, params, on_top=True)
    add_pixel_noise(rng, canvas.image)
    objects = [as_visible(drawn, seen, TINY_SIDE) for drawn, seen in zip(canvas.objects, canvas.object_seen)]
    distractors = [drawn._replace(mask=seen) for drawn, seen in zip(canvas.distractors, canvas.distractor_seen)]
    return canvas.image, objects, distractors


# -------------------------------------------------------------------------------------------- writing
def write_sample(settings, index_and_id):
    """Generate one image and write its JPEG and XML (each atomically); returns ``(objects, truncated,
    difficult)`` counts."""
    index, image_id = index_and_id
    image, objects, _ = generate_image(settings.seed, index, settings.params)
    return write_image_files(settings.year_dir, image_id, image, objects, settings.quality, DATABASE)


# ------------------------------------------------------------------------------------------------ CLI
def check_args(args):
    """Raise UserError naming the first flag whose value cannot work."""
    rules = [('--num-trainval', args.num_trainval >= 0, 'must be >= 0'),
             ('--num-test', args.num_test >= 0, 'must be >= 0'),
             ('--seed', args.seed >= 0, 'must be >= 0'),
             ('--max-objects', args.max_objects >= 1, 'must be >= 1'),
             ('--object-size', is_range(args.object_size, 1e-3, 1),
              'must be two fractions LOW,HIGH of the shorter side with 0.001 <= LOW <= HIGH <= 1'),
             ('--distractors', is_range(args.distractors, 0, whole=True),
              'must be two whole numbers LOW,HIGH with 0 <= LOW <= HIGH'),
             ('--shorter-side', is_range(args.shorter_side, 32, whole=True),
              'must be two whole pixel counts LOW,HIGH with 32 <= LOW <= HIGH'),
             ('--max-aspect', args.max_aspect >= 1, 'must be >= 1'),
             ('--quality', 1 <= args.quality <= 100, 'must be in 1..100'),
             ('--num-thread', args.num_thread >= 1, 'must be >= 1')]
    check_generator_args(args, rules)


def parse_args(argv=None):
    defaults = SYNTHETIC_CLUTTER
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', required=True, help='VOCdevkit directory to write into, e.g. DATA/clutter/VOCdevkit')
    parser.add_argument('--year', default=defaults['year'], help='written as <root>/VOC<year>/')
    parser.add_argument('--num-trainval', type=int, default=defaults['num_trainval'], help='trainval images')
    parser.add_argument('--num-test', type=int, default=defaults['num_test'], help='test images')
    parser.add_argument('--seed', type=int, default=defaults['seed'], help='equal seeds give equal files')
    parser.add_argument('--max-objects', type=int, default=defaults['max_objects'], help='objects per image: 1..this')
    parser.add_argument('--object-size', type=comma_floats, default=defaults['object_size'],
                        help='LOW,HIGH object diameter (log-uniform), fractions of the shorter side')
    parser.add_argument('--distractors', type=comma_floats, default=defaults['distractors'],
                        help='LOW,HIGH unannotated look-alike shapes per image')
    parser.add_argument('--shorter-side', type=comma_floats, default=defaults['shorter_side'],
                        help='LOW,HIGH shorter image side in pixels')
    parser.add_argument('--max-aspect', type=float, default=defaults['max_aspect'],
                        help='the longer image side is 1..this times the shorter')
    parser.add_argument('--quality', type=int, default=defaults['quality'], help='JPEG quality, 1..100')
    parser.add_argument('--num-thread', type=int, default=defaults['num_thread'] or available_cores(),
                        help='worker processes (default: one per core)')
    return parser.parse_args(argv)


def main(args):
    """Generate the dataset described by ``args``; returns ``{split: [image ids]}``."""
    check_args(args)
    start = time.perf_counter()
    year_dir = os.path.join(args.root, 'VOC' + args.year)
    ids = ['%06d' % (index + 1) for index in range(args.num_trainval + args.num_test)]
    splits = {'trainval': ids[:args.num_trainval], 'test': ids[args.num_trainval:]}
    params = ClutterParams(max_objects=args.max_objects, object_size=tuple(args.object_size),
                           distractors=tuple(int(count) for count in args.distractors),
                           shorter_side=tuple(int(side) for side in args.shorter_side), max_aspect=args.max_aspect)
    prepare_directories(year_dir)
    counts = write_samples(WriteSettings(args.seed, params, year_dir, args.quality), ids, args.num_thread,
                           work=write_sample, desc='synthetic clutter')
    write_lists(year_dir, params.classes, splits)
    print(summary_line(splits, counts, year_dir, time.perf_counter() - start))
    return splits


if __name__ == '__main__':
    run_cli(main, parse_args())
