"""Tests of tools/synthetic_clutter.py: determinism, tight boxes, unannotated distractors, sizes, and that the
project's VOC reader and prepare_dataset.py read what it writes; a dozen images in files, 40 in memory."""
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from config.defaults import SYNTHETIC_CLUTTER
from config.errors import UserError
from dataset.pascal_voc import load_pascal_voc
from tests.test_synthetic_voc import all_files, read_list
from tools import prepare_dataset
from tools import synthetic_clutter as sc

CLASSES = ('hexagon', 'ellipse', 'arrow', 'crescent', 'diamond')
SMALL = ['--num-trainval', '6', '--num-test', '3']


def generate(root, *extra):
    """Run the CLI's main in this process (one worker unless ``extra`` says otherwise); returns the year folder."""
    args = sc.parse_args(['--root', str(root), '--num-thread', '1'] + SMALL + list(extra))
    sc.main(args)
    return os.path.join(str(root), 'VOC' + args.year)


def read_annotation(year_dir, image_id):
    """``(width, height, [(name, truncated, difficult, (xmin, ymin, xmax, ymax)), ...])`` from the XML."""
    root = ET.parse(os.path.join(year_dir, 'Annotations', image_id + '.xml')).getroot()
    width, height = (int(root.find('size/' + tag).text) for tag in ('width', 'height'))
    objects = []
    for node in root.findall('object'):
        box = tuple(int(node.find('bndbox/' + tag).text) for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
        objects.append((node.find('name').text, int(node.find('truncated').text),
                        int(node.find('difficult').text), box))
    return width, height, objects


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    """9 images (6 trainval, 3 test), seed 0, one process; returns ``(year_dir, files)``."""
    year_dir = generate(tmp_path_factory.mktemp('seed0'), '--seed', '0')
    return year_dir, all_files(year_dir)


@pytest.fixture(scope='module')
def sample():
    """40 images generated in memory with the default parameters, seed 3: ``[(image, objects, distractors)]``."""
    params = sc.ClutterParams()
    return [sc.generate_image(3, index, params) for index in range(40)]


def all_objects(sample):
    return [(image, obj) for image, objects, _ in sample for obj in objects]


# ---------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes(tiny_set, tmp_path):
    _, first = tiny_set
    assert all_files(generate(tmp_path, '--seed', '0')) == first


def test_two_processes_give_the_same_bytes_as_one(tiny_set, tmp_path):
    _, first = tiny_set
    assert all_files(generate(tmp_path, '--seed', '0', '--num-thread', '2')) == first


def test_another_seed_gives_other_images(tiny_set, tmp_path):
    _, first = tiny_set
    other = all_files(generate(tmp_path, '--seed', '1'))
    jpegs = [name for name in first if name.endswith('.jpg')]
    assert len(jpegs) == 9
    assert all(other[name] != first[name] for name in jpegs)


# --------------------------------------------------------------------------------------------- layout
def test_layout_lists_and_class_file(tiny_set):
    year_dir, files = tiny_set
    assert read_list(year_dir, 'trainval') == ['%06d' % i for i in range(1, 7)]
    assert read_list(year_dir, 'test') == ['%06d' % i for i in range(7, 10)]
    assert files['classes.txt'] == b'hexagon\nellipse\narrow\ncrescent\ndiamond\n'
    expected = {os.path.join(sub, '%06d%s' % (i, ext)) for i in range(1, 10)
                for sub, ext in (('JPEGImages', '.jpg'), ('Annotations', '.xml'))}
    expected |= {os.path.join('ImageSets', 'Main', 'trainval.txt'), os.path.join('ImageSets', 'Main', 'test.txt'),
                 'classes.txt'}
    assert set(files) == expected  # nothing else, no temporary files left behind


def test_classes_are_five_shapes_unlike_the_first_set():
    assert SYNTHETIC_CLUTTER['classes'] == sc.CLASS_SHAPES == CLASSES
    assert not set(CLASSES) & set(sc.FIRST_SET_SHAPES)


def test_files_hold_what_generate_image_returns(tiny_set):
    """The XML lists exactly the generator's objects (not its distractors), boxes shifted to 1-based."""
    year_dir, _ = tiny_set
    params = sc.ClutterParams()
    for index in range(9):
        image, objects, distractors = sc.generate_image(0, index, params)
        width, height, written = read_annotation(year_dir, '%06d' % (index + 1))
        assert (height, width) == image.shape[:2]
        assert written == [(o.name, int(o.truncated), int(o.difficult), tuple(v + 1 for v in o.box))
                           for o in objects]
        assert len(distractors) >= 1 and len(written) == len(objects)


def test_voc_reader_and_prepare_dataset_read_the_set(tiny_set, tmp_path):
    year_dir, _ = tiny_set
    root = os.path.dirname(year_dir)
    imdb = load_pascal_voc(root, 2007, 'trainval')
    assert imdb.classes == CLASSES and imdb.num_images == 6
    params = sc.ClutterParams()
    for index, labels in enumerate(imdb.labels):
        image, objects, _ = sc.generate_image(0, index, params)
        height, width = image.shape[:2]
        expected = [[CLASSES.index(o.name), o.box[0] / width, o.box[1] / height, o.box[2] / width,
                     o.box[3] / height, o.difficult] for o in objects]
        np.testing.assert_allclose(labels, np.array(expected, np.float32), atol=1e-6)
    target = str(tmp_path / 'test.lst')
    packed = prepare_dataset.main(prepare_dataset.parse_args([
        '--dataset', 'pascal', '--year', '2007', '--set', 'test', '--root', root, '--target', target,
        '--no-shuffle', '--num-thread', '1']), progress=False)
    assert packed.num_images == 3 and packed.classes == CLASSES
    assert sum(len(labels) for labels in packed.labels) == sum(
        len(read_annotation(year_dir, image_id)[2]) for image_id in ('000007', '000008', '000009'))
    assert os.path.getsize(str(tmp_path / 'test.rec')) > 3 * 1000
    with open(str(tmp_path / 'test.classes')) as handle:
        assert handle.read().split() == list(CLASSES)


# ------------------------------------------------------------------------------------------ the boxes
def test_box_is_the_tight_box_of_the_visible_mask_in_the_objects_colours(sample):
    for image, obj in all_objects(sample):
        rows, cols = np.nonzero(obj.mask)
        assert obj.box == (cols.min(), rows.min(), cols.max(), rows.max())
        pixels = image[obj.mask].astype(int)                                            # (N, 3)
        off = np.abs(pixels[:, None, :] - obj.colors[None, :, :].astype(int)).max(axis=2).min(axis=1)
        assert off.max() <= sc.NOISE_AMPLITUDE[1]  # each visible pixel is a fill colour, up to the noise


def test_fills_are_solid_striped_and_two_tone(sample):
    two_colour = [not (obj.colors[0] == obj.colors[1]).all() for _, obj in all_objects(sample)]
    assert 0.25 <= np.mean(two_colour) <= 0.65  # 45 % of the fills are striped or two-tone


def test_distractors_are_drawn_visible_and_never_annotated(sample):
    kinds, names, on_top = set(), set(), set()
    for image, objects, distractors in sample:
        assert 2 <= len(distractors) <= 8 and all(obj.name in CLASSES for obj in objects)
        annotated = np.zeros(image.shape[:2], bool)
        for obj in objects:
            assert not (annotated & obj.mask).any()
            annotated |= obj.mask
        for distractor in distractors:
            assert not (annotated & distractor.mask).any()  # no distractor pixel is counted as an object's
            kinds.add(distractor.kind)
            names.add(distractor.name)
            on_top.add(distractor.on_top)
    assert kinds == set(sc.DISTRACTOR_KINDS) and on_top == {False, True}
    assert {'circle', 'square', 'triangle', 'polygon'} <= names
    visible = [int(d.mask.sum()) for _, _, distractors in sample for d in distractors]
    assert np.mean(np.array(visible) >= 30) >= 0.9


def test_earlier_objects_keep_at_least_70_percent_and_some_are_covered(sample):
    occluded = 0
    for _, obj in all_objects(sample):
        visible = int(obj.mask.sum())
        assert 0.7 * obj.drawn_area <= visible <= obj.drawn_area
        occluded += visible < obj.drawn_area
    assert occluded >= 10


def test_truncated_objects_touch_the_border_and_some_exist(sample):
    truncated = 0
    for image, obj in all_objects(sample):
        if obj.truncated:
            height, width = image.shape[:2]
            xmin, ymin, xmax, ymax = obj.box
            assert xmin == 0 or ymin == 0 or xmax == width - 1 or ymax == height - 1
            truncated += 1
    assert 0.03 * len(all_objects(sample)) <= truncated <= 0.25 * len(all_objects(sample))


def test_tiny_objects_are_difficult_and_difficult_ones_are_a_minority(sample):
    difficult = 0
    for _, obj in all_objects(sample):
        xmin, ymin, xmax, ymax = obj.box
        if min(xmax - xmin, ymax - ymin) + 1 < sc.TINY_SIDE:
            assert obj.difficult
        difficult += obj.difficult
    assert 0.02 * len(all_objects(sample)) <= difficult <= 0.25 * len(all_objects(sample))


def test_sizes_span_small_to_large_objects(sample):
    """Log-uniform diameters over 5..60 % of the shorter side: 44 % of them below 15 %, 28 % above 30 %."""
    fractions = np.array([(max(o.box[2] - o.box[0], o.box[3] - o.box[1]) + 1.0) / min(image.shape[:2])
                          for image, o in all_objects(sample) if not o.truncated])
    assert fractions.max() <= 0.6 + 2 / 240 and fractions.min() >= 0.03
    assert np.mean(fractions < 0.15) >= 0.3 and np.mean(fractions > 0.3) >= 0.1


def test_image_sizes_and_orientations(sample):
    shapes = np.array([image.shape[:2] for image, _, _ in sample])    # (40, 2): height, width
    shorter, longer = shapes.min(axis=1), shapes.max(axis=1)
    assert shorter.min() >= 240 and shorter.max() <= 480 and (longer <= 2 * shorter + 1).all()
    assert (shapes[:, 0] > shapes[:, 1]).sum() >= 3 and (shapes[:, 0] < shapes[:, 1]).sum() >= 3
    assert np.mean(longer >= 1.5 * shorter) >= 0.2   # elongated images occur, not just near-squares


def test_40_percent_of_the_images_are_portrait(sample):
    """The size is the first draw of an image's RandomState, so 400 sizes come cheap (binomial sd 2.5 %)."""
    params = sc.ClutterParams()
    sizes = np.array([sc.sample_image_size(np.random.RandomState([3, index]), params) for index in range(400)])
    assert [tuple(size) for size in sizes[:40]] == [image.shape[:2] for image, _, _ in sample]
    assert 0.33 <= np.mean(sizes[:, 0] > sizes[:, 1]) <= 0.47


def test_object_counts_use_the_range_one_to_six(sample):
    counts = [len(objects) for _, objects, _ in sample]
    assert min(counts) == 1 and max(counts) == 6
    names = {obj.name for _, obj in all_objects(sample)}
    assert names == set(CLASSES)


# ------------------------------------------------------------------------------------------ the shapes
def mask_extent(mask):
    """``(longer, shorter)`` side of the tight box of a mask drawn unrotated (long axis along x)."""
    rows, cols = np.nonzero(mask)
    return cols.max() - cols.min() + 1, rows.max() - rows.min() + 1


def test_class_shapes_have_their_proportions():
    """Radius 40, no rotation: ellipse axes 1.8..3 apart, diamond 1.7..2.8, hexagon area 3 sqrt(3)/2 r^2, each
    within a pixel along the edge; the crescent is a disc with a bite out of its rim."""
    rng = np.random.RandomState(0)
    radius = 40.0
    for name, (low, high) in (('ellipse', (1.8, 3.0)), ('diamond', (1.7, 2.8)), ('arrow', (1.8, 3.2))):
        for _ in range(5):
            longer, shorter = mask_extent(sc.draw_class_mask(name, radius, 0.0, rng))
            assert abs(longer - 2 * radius) <= 2, name
            assert low - 0.1 <= longer / shorter <= high + 0.15, (name, longer / shorter)
    hexagon = sc.draw_class_mask('hexagon', radius, 0.0, rng)
    assert abs(int(hexagon.sum()) - 3 * math.sqrt(3) / 2 * radius ** 2) <= 6 * radius
    disc_area = math.pi * radius ** 2
    for _ in range(5):
        crescent = sc.draw_class_mask('crescent', radius, 0.0, rng)
        centre = crescent.shape[0] // 2
        assert crescent[centre, centre] == 0 and crescent[centre, centre - int(0.9 * radius)] == 1
        assert 0.15 * disc_area <= crescent.sum() <= 0.6 * disc_area


def clone(rng):
    """A RandomState in the same state as ``rng``, to redraw what a call on ``rng`` drew."""
    copy = np.random.RandomState()
    copy.set_state(rng.get_state())
    return copy


def test_outline_distractors_are_hollow_and_partial_ones_are_cut():
    """Each distractor is redrawn whole from a copy of the RandomState (name first, then for an outline its
    width, then the shape): the outline and the part lie inside it and keep the shares they are due."""
    rng = np.random.RandomState(1)
    radius = 40.0
    outlines = 0
    for _ in range(10):
        copy = clone(rng)
        kind, name, outline = sc.draw_distractor_mask('outline', radius, 0.0, rng)
        if kind == 'outline':
            assert name == sc.CLASS_SHAPES[copy.randint(len(sc.CLASS_SHAPES))]
            copy.uniform(*sc.OUTLINE_WIDTH)
            filled = sc.draw_class_mask(name, radius, 0.0, copy)
            assert not (outline & (1 - filled)).any()
            assert 0 < outline.sum() <= (1 - sc.MIN_OUTLINE_HOLE) * filled.sum()
            outlines += 1
        copy = clone(rng)
        kind, name, part = sc.draw_distractor_mask('partial', radius, 0.0, rng)
        assert kind == 'partial' and name == sc.PARTIAL_SHAPES[copy.randint(len(sc.PARTIAL_SHAPES))]
        whole = sc.draw_class_mask(name, radius, 0.0, copy)
        assert not (part & (1 - whole)).any()
        assert sc.PARTIAL_KEEP[0] - 0.02 <= part.sum() / whole.sum() <= sc.PARTIAL_KEEP[1] + 0.02
    assert outlines >= 5  # most class shapes at radius 40 have room for a hole


# -------------------------------------------------------------------------------------------- the flags
@pytest.mark.parametrize('flags, named', [
    (['--num-trainval', '0', '--num-test', '0'], '--num-test'),
    (['--quality', '0'], '--quality'),
    (['--max-objects', '0'], '--max-objects'),
    (['--num-thread', '0'], '--num-thread'),
    (['--year', '20-07'], '--year'),
    (['--object-size', '0.3,0.2'], '--object-size'),
    (['--object-size', '0.1'], '--object-size'),
    (['--object-size', '0.1,1.2'], '--object-size'),
    (['--distractors', '1.5,3'], '--distractors'),
    (['--distractors=-1,3'], '--distractors'),
    (['--shorter-side', '16,100'], '--shorter-side'),
    (['--max-aspect', '0.5'], '--max-aspect'),
])
def test_bad_flags_raise_user_errors_naming_them(tmp_path, flags, named):
    with pytest.raises(UserError, match=named):
        generate(tmp_path, *flags)


def test_cli_prints_one_line_error_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, 'tools/synthetic_clutter.py', '--root', str(tmp_path),
                             '--seed', '-1'], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ['error: --seed -1 must be >= 0']


def test_max_objects_flag_reaches_the_files(tmp_path):
    year_dir = generate(tmp_path, '--max-objects', '1')
    counts = [len(read_annotation(year_dir, '%06d' % i)[2]) for i in range(1, 10)]
    assert counts == [1] * 9


def test_size_and_clutter_flags_reach_the_generator_and_the_files(tmp_path, monkeypatch):
    seen = []
    real_write = sc.write_samples

    def recording_write(settings, *args, **kwargs):
        seen.append(settings.params)
        return real_write(settings, *args, **kwargs)
    monkeypatch.setattr(sc, 'write_samples', recording_write)
    year_dir = generate(tmp_path, '--shorter-side', '120,120', '--max-aspect', '1', '--object-size', '0.3,0.4',
                        '--distractors', '0,1')
    assert seen[0].shorter_side == (120, 120) and seen[0].distractors == (0, 1)
    assert seen[0].object_size == (0.3, 0.4) and seen[0].max_aspect == 1.0
    for i in range(1, 10):
        width, height, objects = read_annotation(year_dir, '%06d' % i)
        assert (width, height) == (120, 120)
        # a diameter of at most 0.4 x 120 = 48 px bounds every box side (the tight box of the visible pixels)
        assert all(max(box[2] - box[0], box[3] - box[1]) + 1 <= 48 + 2 for _, _, _, box in objects)
    _, _, distractors = sc.generate_image(0, 0, seen[0])
    assert len(distractors) <= 1


# ------------------------------------------------------------------------------------------ crash safety
def test_interrupted_run_has_no_lists(tiny_set, tmp_path, monkeypatch):
    year_dir = generate(tmp_path, '--seed', '0')
    real_generate = sc.generate_image

    def fail_on_image_5(seed, index, params):
        if index == 5:
            raise RuntimeError('simulated crash')
        return real_generate(seed, index, params)

    monkeypatch.setattr(sc, 'generate_image', fail_on_image_5)
    with pytest.raises(RuntimeError, match='simulated crash'):
        generate(tmp_path, '--seed', '0')
    assert not os.path.exists(os.path.join(year_dir, 'ImageSets', 'Main', 'trainval.txt'))
    assert not os.path.exists(os.path.join(year_dir, 'ImageSets', 'Main', 'test.txt'))
