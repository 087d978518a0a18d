"""Augmentation geometry through DetRecordIter: boxes must stay on the pixels of their objects.

Each image is a uniform background with one or two solid squares (class 0 red, class 1 blue) at known
places, packed as PNG so pixels are exact. After augmentation the centre of every box must still show its
square's colour, and the boxes must move the way each augmentation says (mirror: x -> 1 - x; pad: a
uniform shrink into the canvas; crop: a zoom that keeps the square under its box).
"""
import numpy as np
import pytest

from config.augmentation import SSD_TRAIN
from config.errors import UserError
from config.schema import DEFAULTS
from dataset.iterator import DetRecordIter
from tests.test_iterator import write_rec

HEIGHT, WIDTH, SIDE = 120, 160, 96            # source image and network input sizes in pixels
BACKGROUND = (40, 160, 40)                    # RGB, green; the pad canvas is grey 127
SQUARE_RGB = {0: (220, 30, 30), 1: (30, 60, 220)}
NO_JITTER = dict(random_hue_prob=0, random_saturation_prob=0, random_illumination_prob=0,
                 random_contrast_prob=0)
NO_GEOMETRY = dict(rand_crop_prob=0, rand_pad_prob=0, rand_mirror_prob=0)
TOLERANCE = 6                                 # colour difference allowed inside a box (interpolation)
MIN_BOX_PIXELS = 6                            # boxes narrower than this in the output are not pixel-checked


def square_images(num_images, seed=0):
    """Images with squares, and their labels.

    Returns
    -------
    images : list of (HEIGHT, WIDTH, 3) uint8 BGR
    labels : list of (N, 6) float32, N in {1, 2}; class 0 in the left half, class 1 in the right half
    """
    rng = np.random.RandomState(seed)
    images, labels = [], []
    for number in range(num_images):
        image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        image[:] = BACKGROUND[::-1]
        objects = []
        for cls in ((0, 1) if number % 3 else (number % 2,)):
            side = rng.randint(25, 45)
            left = rng.randint(0, WIDTH // 2 - side) + cls * WIDTH // 2
            top = rng.randint(20, HEIGHT - side)      # rows above 20 stay background
            image[top:top + side, left:left + side] = SQUARE_RGB[cls][::-1]
            objects.append([cls, left / WIDTH, top / HEIGHT, (left + side) / WIDTH, (top + side) / HEIGHT, 0])
        images.append(image)
        labels.append(np.array(objects, np.float32))
    return images, labels


@pytest.fixture(scope='module')
def squares(tmp_path_factory):
    """``(rec_path, {record_id: (N, 6) labels})`` for 12 square images."""
    images, labels = square_images(12)
    rec = write_rec(tmp_path_factory.mktemp('squares') / 'squares.rec', labels, images=images)
    return rec, dict(enumerate(labels))


def augmented(rec, preset, num_epochs=1, **overrides):
    """Every image the iterator gives over ``num_epochs`` epochs, with its labels and record id.

    Returns
    -------
    list of (image (SIDE, SIDE, 3) float32 RGB, labels (N, 6) without padding rows, record_id)
    """
    iterator = DetRecordIter(rec, 4, SIDE, preset=preset, **overrides)
    samples = []
    for _ in range(num_epochs):
        for batch in iterator:
            data = batch.data[0].asnumpy() + np.reshape(DEFAULTS.data.mean_pixels, (1, 3, 1, 1))
            labels = batch.label[0].asnumpy()
            for number in range(len(data) - batch.pad):
                rows = labels[number][labels[number][:, 0] >= 0]
                samples.append((data[number].transpose(1, 2, 0), rows, int(batch.index[number])))
        iterator.reset()
    return samples


def box_centre_pixels(image, box):
    """Pixels of the middle half (each way) of a normalized box, or None when the box is too small."""
    x0, y0, x1, y1 = np.asarray(box) * SIDE
    if x1 - x0 < MIN_BOX_PIXELS or y1 - y0 < MIN_BOX_PIXELS:
        return None
    quarter_w, quarter_h = (x1 - x0) / 4, (y1 - y0) / 4
    rows = slice(int(np.ceil(y0 + quarter_h)), int(np.floor(y1 - quarter_h)))
    cols = slice(int(np.ceil(x0 + quarter_w)), int(np.floor(x1 - quarter_w)))
    return image[rows, cols].reshape(-1, 3)


def assert_boxes_on_their_squares(samples):
    """Every box lies in [0, 1] and its centre shows its class's square colour; returns boxes checked."""
    checked = 0
    for image, rows, record_id in samples:
        assert len(rows) >= 1, 'record %d lost all its objects' % record_id
        boxes = rows[:, 1:5]
        assert np.all(boxes >= 0) and np.all(boxes <= 1), boxes
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1]), boxes
        for cls, box in zip(rows[:, 0].astype(int), boxes):
            pixels = box_centre_pixels(image, box)
            if pixels is not None:
                difference = np.abs(pixels - SQUARE_RGB[cls]).max()
                assert difference <= TOLERANCE, 'record %d class %d box %s: colour off by %.0f' % (
                    record_id, cls, box, difference)
                checked += 1
    return checked


def original_box(originals, record_id, cls):
    rows = originals[record_id]
    return rows[rows[:, 0] == cls][0, 1:5]


def area(box):
    return (box[2] - box[0]) * (box[3] - box[1])


def test_ssd_train_keeps_every_box_on_its_square(squares):
    rec, originals = squares
    samples = []
    for seed in (0, 1, 2):  # the seed reorders images; the augmenters' random streams keep running
        samples += augmented(rec, 'ssd_train', num_epochs=3, seed=seed, **NO_JITTER)
    checked = assert_boxes_on_their_squares(samples)
    assert checked >= 0.8 * sum(len(rows) for _, rows, _ in samples)
    ratios = [area(box) / area(original_box(originals, record_id, int(cls)))
              for _, rows, record_id in samples for cls, *box in rows[:, :5]]
    assert min(ratios) < 0.5 and max(ratios) > 2.0  # both zoom-out (pad) and zoom-in (crop) happened


def test_colour_jitter_alone_changes_pixels_not_boxes(squares):
    rec, originals = squares
    jitter = {name: value for name, value in SSD_TRAIN.items() if 'random' in name}
    jitter.update({name: 1.0 for name in jitter if name.endswith('_prob')})
    plain = augmented(rec, 'val', inter_method=0)
    jittered = augmented(rec, 'val', inter_method=0, **jitter)
    assert [record_id for _, _, record_id in jittered] == list(range(12))
    for _, rows, record_id in jittered:
        np.testing.assert_allclose(rows, originals[record_id], atol=1e-6)
    changes = [np.abs(a[0] - b[0]).mean() for a, b in zip(plain, jittered)]
    assert np.mean(changes) > 5 and sum(change > 1 for change in changes) >= 10


def test_mirror_moves_boxes_to_one_minus_x(squares):
    rec, originals = squares
    samples = augmented(rec, 'ssd_train', **{**NO_JITTER, **NO_GEOMETRY, 'rand_mirror_prob': 1.0})
    for _, rows, record_id in samples:
        expected = originals[record_id].copy()
        expected[:, [1, 3]] = 1 - originals[record_id][:, [3, 1]]
        np.testing.assert_allclose(rows, expected, atol=1e-6)
    assert assert_boxes_on_their_squares(samples) == sum(len(rows) for _, rows, _ in samples)


def canvas_extent(rows, originals, record_id):
    """Where the original image lies in the padded output: ``(scale, left, top)`` in normalized units."""
    cls, x0, y0, x1, _ = rows[0, :5]
    before = original_box(originals, record_id, int(cls))
    scale = (x1 - x0) / (before[2] - before[0])
    return scale, x0 - before[0] * scale, y0 - before[1] * scale


def test_pad_shrinks_boxes_into_the_canvas(squares):
    rec, originals = squares
    max_scale = 3.0
    samples = augmented(rec, 'ssd_train', num_epochs=2,
                        **{**NO_JITTER, **NO_GEOMETRY, 'rand_pad_prob': 1.0, 'max_pad_scale': max_scale})
    padded = 0
    for image, rows, record_id in samples:
        scale, left, top = canvas_extent(rows, originals, record_id)
        assert 1 / max_scale - 1e-4 <= scale <= 1 + 1e-6
        expected = originals[record_id].copy()
        expected[:, [1, 3]] = left + expected[:, [1, 3]] * scale
        expected[:, [2, 4]] = top + expected[:, [2, 4]] * scale
        np.testing.assert_allclose(rows, expected, atol=1e-4)  # one shrink and one shift for all boxes
        if left * SIDE > 3:   # left of the original image: the grey canvas
            assert np.abs(image[SIDE // 2, int(left * SIDE) - 3] - SSD_TRAIN['fill_value']).max() <= 1
        if (20 / HEIGHT) * scale * SIDE > 6:  # the top rows of the original image are background
            row, col = int((top + 10 / HEIGHT * scale) * SIDE), int((left + 0.5 * scale) * SIDE)
            assert np.abs(image[row, col] - BACKGROUND).max() <= TOLERANCE
        padded += scale < 0.95
    assert padded >= len(samples) // 2
    assert_boxes_on_their_squares(samples)


def test_crop_zooms_in_and_keeps_squares_under_their_boxes(squares):
    rec, originals = squares
    samples = augmented(rec, 'ssd_train', num_epochs=3,
                        **{**NO_JITTER, **NO_GEOMETRY, 'rand_crop_prob': 1.0})
    zoomed = 0
    for _, rows, record_id in samples:
        for cls, x0, y0, x1, y1 in rows[:, :5]:
            before = original_box(originals, record_id, int(cls))
            clipped = min(x0, y0) <= 1e-6 or max(x1, y1) >= 1 - 1e-6
            assert clipped or area((x0, y0, x1, y1)) >= area(before) - 1e-5  # a crop only enlarges boxes
            zoomed += area((x0, y0, x1, y1)) > 1.2 * area(before)
    assert zoomed >= len(samples) // 2
    assert assert_boxes_on_their_squares(samples) >= len(samples)


def test_mirror_preset_mirrors_about_half_and_keeps_every_image(squares):
    rec, originals = squares
    samples = augmented(rec, 'mirror', num_epochs=4, seed=0)
    assert sorted(record_id for _, _, record_id in samples) == sorted(list(range(12)) * 4)
    mirrored = 0
    for _, rows, record_id in samples:
        flipped = originals[record_id].copy()
        flipped[:, [1, 3]] = 1 - originals[record_id][:, [3, 1]]
        same = np.allclose(rows, originals[record_id], atol=1e-6)
        assert same or np.allclose(rows, flipped, atol=1e-6), record_id
        mirrored += not same
    assert 12 <= mirrored <= 36   # 48 draws at probability 0.5: mean 24, sd 3.5
    assert assert_boxes_on_their_squares(samples) == sum(len(rows) for _, rows, _ in samples)


def test_std_pixels_divide_after_the_mean(squares):
    rec, _ = squares
    std = np.array([2.0, 4.0, 8.0], np.float32)
    plain = next(iter(DetRecordIter(rec, 4, SIDE, preset='val'))).data[0].asnumpy()
    scaled = next(iter(DetRecordIter(rec, 4, SIDE, preset='val', std_pixels=tuple(std)))).data[0].asnumpy()
    np.testing.assert_allclose(scaled * std.reshape(1, 3, 1, 1), plain, atol=1e-3)
    with pytest.raises(UserError, match='std_pixels'):
        DetRecordIter(rec, 4, SIDE, std_pixels=(1.0, 0.0, 1.0))
