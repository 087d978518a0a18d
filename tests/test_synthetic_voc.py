"""Tests of tools/synthetic_voc.py: layout, determinism, tight boxes and the flags, on a dozen tiny images."""
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from config.defaults import SYNTHETIC
from config.errors import UserError
from tools import synthetic_voc as sv

SMALL = ['--num-trainval', '8', '--num-test', '4', '--min-side', '96', '--max-side', '160']


def generate(root, *extra):
    """Run the CLI's main in this process; returns the year folder."""
    args = sv.parse_args(['--root', str(root), '--num-thread', '1'] + SMALL + list(extra))
    sv.main(args)
    return os.path.join(str(root), 'VOC' + args.year)


def all_files(year_dir):
    """``{relative path: bytes}`` of every file under the year folder."""
    files = {}
    for directory, _, names in os.walk(year_dir):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, 'rb') as handle:
                files[os.path.relpath(path, year_dir)] = handle.read()
    return files


def read_list(year_dir, split):
    with open(os.path.join(year_dir, 'ImageSets', 'Main', split + '.txt')) as handle:
        return handle.read().split()


def read_annotation(year_dir, image_id):
    """``(width, height, depth, [(name, truncated, difficult, (xmin, ymin, xmax, ymax)), ...])`` from the XML."""
    root = ET.parse(os.path.join(year_dir, 'Annotations', image_id + '.xml')).getroot()
    assert root.find('filename').text == image_id + '.jpg'
    size = [int(root.find('size/' + tag).text) for tag in ('width', 'height', 'depth')]
    objects = []
    for node in root.findall('object'):
        box = tuple(int(node.find('bndbox/' + tag).text) for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
        objects.append((node.find('name').text, int(node.find('truncated').text),
                        int(node.find('difficult').text), box))
    return size[0], size[1], size[2], objects


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    """12 images (8 trainval, 4 test), seed 0, one process; returns ``(year_dir, files)``."""
    year_dir = generate(tmp_path_factory.mktemp('seed0'), '--seed', '0')
    return year_dir, all_files(year_dir)


@pytest.fixture(scope='module')
def sample():
    """200 images generated in memory with the default parameters, seed 3: ``[(image, objects), ...]``."""
    params = sv.SyntheticParams()
    return [sv.generate_image(3, index, params) for index in range(200)]


# ---------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes(tiny_set, tmp_path):
    _, first = tiny_set
    second = all_files(generate(tmp_path, '--seed', '0'))
    assert sorted(second) == sorted(first)
    assert all(second[name] == first[name] for name in first)


def test_two_processes_give_the_same_bytes_as_one(tiny_set, tmp_path):
    _, first = tiny_set
    parallel = all_files(generate(tmp_path, '--seed', '0', '--num-thread', '2'))
    assert parallel == first


def test_another_seed_gives_other_images(tiny_set, tmp_path):
    _, first = tiny_set
    other = all_files(generate(tmp_path, '--seed', '1'))
    jpegs = [name for name in first if name.endswith('.jpg')]
    assert len(jpegs) == 12
    assert all(other[name] != first[name] for name in jpegs)


# --------------------------------------------------------------------------------------------- layout
def test_layout_lists_and_class_file(tiny_set):
    year_dir, files = tiny_set
    assert read_list(year_dir, 'trainval') == ['%06d' % i for i in range(1, 9)]
    assert read_list(year_dir, 'test') == ['%06d' % i for i in range(9, 13)]
    with open(os.path.join(year_dir, 'classes.txt')) as handle:
        assert handle.read().split('\n') == list(SYNTHETIC['classes']) + ['']
    expected = {os.path.join(sub, '%06d%s' % (i, ext)) for i in range(1, 13)
                for sub, ext in (('JPEGImages', '.jpg'), ('Annotations', '.xml'))}
    expected |= {os.path.join('ImageSets', 'Main', 'trainval.txt'), os.path.join('ImageSets', 'Main', 'test.txt'),
                 'classes.txt'}
    assert set(files) == expected  # nothing else, no temporary files left behind


def test_xml_size_matches_jpeg_and_boxes_lie_inside(tiny_set):
    year_dir, _ = tiny_set
    for image_id in read_list(year_dir, 'trainval') + read_list(year_dir, 'test'):
        width, height, depth, objects = read_annotation(year_dir, image_id)
        image = cv2.imread(os.path.join(year_dir, 'JPEGImages', image_id + '.jpg'))
        assert image.shape == (height, width, depth) == (height, width, 3)
        assert 96 <= min(width, height) and max(width, height) <= 160
        assert 1 <= len(objects) <= SYNTHETIC['max_objects']
        for name, truncated, difficult, (xmin, ymin, xmax, ymax) in objects:
            assert name in SYNTHETIC['classes'] and truncated in (0, 1) and difficult in (0, 1)
            assert 1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height  # VOC: 1-based, inclusive


def test_files_hold_what_generate_image_returns(tiny_set):
    """The XML is the generator's objects with boxes shifted to 1-based; the JPEG is its image encoded."""
    year_dir, _ = tiny_set
    params = sv.SyntheticParams(min_side=96, max_side=160)
    for index in range(12):
        image, objects = sv.generate_image(0, index, params)
        width, height, _, written = read_annotation(year_dir, '%06d' % (index + 1))
        assert (height, width) == image.shape[:2]
        assert written == [(o.name, int(o.truncated), int(o.difficult), tuple(v + 1 for v in o.box))
                           for o in objects]
        _, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, SYNTHETIC['quality']])
        with open(os.path.join(year_dir, 'JPEGImages', '%06d.jpg' % (index + 1)), 'rb') as handle:
            assert handle.read() == encoded.tobytes()


# ------------------------------------------------------------------------------------------ the boxes
def test_box_is_the_tight_box_of_the_visible_mask(sample):
    for image, objects in sample:
        for obj in objects:
            rows, cols = np.nonzero(obj.mask)
            assert obj.box == (cols.min(), rows.min(), cols.max(), rows.max())
            assert (image[obj.mask] == obj.color).all()  # the mask is what shows in the image


def test_every_box_edge_shows_the_objects_colour(sample):
    for image, objects in sample:
        for obj in objects:
            xmin, ymin, xmax, ymax = obj.box
            edges = [image[ymin, xmin:xmax + 1], image[ymax, xmin:xmax + 1],
                     image[ymin:ymax + 1, xmin], image[ymin:ymax + 1, xmax]]
            assert all((edge == obj.color).all(axis=1).any() for edge in edges)


def test_masks_are_disjoint_and_later_objects_hide_at_most_30_percent(sample):
    occluded = 0
    for _, objects in sample:
        union = np.zeros_like(objects[0].mask)
        for obj in objects:
            assert not (union & obj.mask).any()
            union |= obj.mask
            visible = int(obj.mask.sum())
            assert 0.7 * obj.drawn_area <= visible <= obj.drawn_area
            occluded += visible < obj.drawn_area
    assert occluded >= 20  # some objects do overlap


def test_truncated_objects_touch_the_border_and_some_exist(sample):
    truncated = 0
    for image, objects in sample:
        height, width = image.shape[:2]
        for obj in objects:
            if obj.truncated:
                xmin, ymin, xmax, ymax = obj.box
                assert xmin == 0 or ymin == 0 or xmax == width - 1 or ymax == height - 1
                truncated += 1
    total = sum(len(objects) for _, objects in sample)
    assert 0.02 * total <= truncated <= 0.2 * total


def test_tiny_objects_are_difficult_and_difficult_ones_are_few(sample):
    difficult = 0
    for _, objects in sample:
        for obj in objects:
            xmin, ymin, xmax, ymax = obj.box
            if min(xmax - xmin, ymax - ymin) + 1 < sv.TINY_SIDE:
                assert obj.difficult
            difficult += obj.difficult
    total = sum(len(objects) for _, objects in sample)
    assert 0.01 * total <= difficult <= 0.12 * total


def test_objects_are_mostly_medium_or_large(sample):
    sides = [max(o.box[2] - o.box[0], o.box[3] - o.box[1]) + 1.0 for _, objects in sample for o in objects
             if not o.truncated]
    shorter = [min(image.shape[:2]) for image, objects in sample for o in objects if not o.truncated]
    fractions = np.array(sides) / np.array(shorter)
    assert fractions.max() <= 0.62
    assert np.mean(fractions >= 0.1) >= 0.7


def test_object_counts_and_image_sizes_follow_the_params(sample):
    counts = [len(objects) for _, objects in sample]
    assert min(counts) >= 1 and max(counts) <= SYNTHETIC['max_objects']
    assert max(counts) >= 6  # the range is used, not just 1
    sides = np.array([image.shape[:2] for image, _ in sample])
    assert sides.min() >= SYNTHETIC['min_side'] and sides.max() <= SYNTHETIC['max_side']
    assert (sides[:, 0] != sides[:, 1]).mean() > 0.5  # varied aspect ratios
    small = sv.SyntheticParams(max_objects=2, min_side=64, max_side=64)
    for index in range(20):
        image, objects = sv.generate_image(0, index, small)
        assert image.shape == (64, 64, 3) and 1 <= len(objects) <= 2


def box_sides(params, count=60):
    """Per object of ``count`` generated images: (longer box side / shorter image side, name, truncated)."""
    rows = []
    for index in range(count):
        image, objects = sv.generate_image(0, index, params)
        shorter = min(image.shape[:2])
        for obj in objects:
            x0, y0, x1, y1 = obj.box
            rows.append(((max(x1 - x0, y1 - y0) + 1) / shorter, obj.name, obj.truncated))
    return rows


def test_object_size_and_small_share_set_the_diameters():
    """A box is never wider than the shape's circumscribed circle; a whole circle's box is its diameter
    (within a pixel, unless a later shape covers part of its edge)."""
    sized = box_sides(sv.SyntheticParams(object_size=(0.3, 0.4), small_share=0.0))
    assert max(side for side, _, _ in sized) <= 0.4 + 2 / 96
    circles = [side for side, name, truncated in sized if name == 'circle' and not truncated]
    assert len(circles) >= 10 and np.mean(np.array(circles) >= 0.3 - 2 / 96) >= 0.8
    small = box_sides(sv.SyntheticParams(object_size=(0.3, 0.4), small_share=1.0))
    assert max(side for side, _, _ in small) <= sv.SMALL_SIZE[1] + 2 / 96


def test_shapes_have_their_geometric_areas():
    """Circumscribed radius r = 40: circle pi r^2, square 2 r^2, triangle 3 sqrt(3)/4 r^2, each within one
    pixel along its perimeter (the rasterized edge); holes only where due."""
    rng = np.random.RandomState(0)
    radius = 40.0
    masks = {name: sv.draw_shape_mask(name, radius, 0.0, rng) for name in sv.SHAPES}
    expected = {'circle': (math.pi * radius ** 2, 2 * math.pi * radius),  # (area, perimeter)
                'square': (2 * radius ** 2, 4 * math.sqrt(2) * radius),
                'triangle': (3 * math.sqrt(3) / 4 * radius ** 2, 3 * math.sqrt(3) * radius)}
    for name, (area, perimeter) in expected.items():
        assert abs(int(masks[name].sum()) - area) <= perimeter, name
    centre = masks['circle'].shape[0] // 2
    assert masks['ring'][centre, centre] == 0 and masks['circle'][centre, centre] == 1
    assert masks['star'][centre, centre] == 1 and masks['cross'][centre, centre] == 1
    assert masks['star'].sum() < masks['square'].sum() < masks['circle'].sum()


# -------------------------------------------------------------------------------------------- the flags
def test_classes_year_and_object_flags_reach_the_files(tmp_path):
    year_dir = generate(tmp_path, '--classes', 'ring,circle', '--year', '2012', '--max-objects', '2',
                        '--object-size', '0.2,0.25', '--small-share', '0')
    assert year_dir.endswith('VOC2012')
    with open(os.path.join(year_dir, 'classes.txt')) as handle:
        assert handle.read() == 'ring\ncircle\n'
    names = set()
    for image_id in read_list(year_dir, 'trainval') + read_list(year_dir, 'test'):
        width, height, _, objects = read_annotation(year_dir, image_id)
        assert 1 <= len(objects) <= 2
        for _, _, _, (x0, y0, x1, y1) in objects:  # circles and rings: the box side is the diameter
            assert max(x1 - x0, y1 - y0) + 1 <= 0.25 * min(width, height) + 2
        names |= {name for name, _, _, _ in objects}
    assert names == {'ring', 'circle'}
    root = ET.parse(os.path.join(year_dir, 'Annotations', '000001.xml')).getroot()
    assert root.find('folder').text == 'VOC2012'


def test_quality_flag_changes_only_the_jpeg_size(tmp_path):
    low = generate(tmp_path / 'low', '--quality', '30')
    high = generate(tmp_path / 'high', '--quality', '95')
    for index in range(1, 13):
        low_jpeg, high_jpeg = ('%s/JPEGImages/%06d.jpg' % (d, index) for d in (low, high))
        assert os.path.getsize(low_jpeg) < os.path.getsize(high_jpeg)
        assert cv2.imread(low_jpeg).shape == cv2.imread(high_jpeg).shape


@pytest.mark.parametrize('flags, named', [
    (['--classes', 'circle,hexagon'], 'hexagon'),
    (['--classes', 'circle,circle'], '--classes'),
    (['--max-side', '50'], '--max-side'),
    (['--num-trainval', '0', '--num-test', '0'], '--num-test'),
    (['--quality', '0'], '--quality'),
    (['--max-objects', '0'], '--max-objects'),
    (['--object-size', '0.5,0.2'], '--object-size'),
    (['--object-size', '0.2'], '--object-size'),
    (['--object-size', '0,0.2'], '--object-size'),
    (['--object-size', '0.2,1.5'], '--object-size'),
    (['--small-share', '1.5'], '--small-share'),
])
def test_bad_flags_raise_user_errors_naming_them(tmp_path, flags, named):
    with pytest.raises(UserError, match=named):
        generate(tmp_path, *flags)


def test_cli_prints_one_line_error_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, 'tools/synthetic_voc.py', '--root', str(tmp_path),
                             '--classes', 'hexagon'], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'error: --classes: unknown shape hexagon; choose from %s' % ','.join(sv.SHAPES)]


# ------------------------------------------------------------------------------------------ crash safety
def test_interrupted_run_has_no_lists_and_a_rerun_restores_them(tiny_set, tmp_path, monkeypatch):
    _, complete = tiny_set
    year_dir = generate(tmp_path, '--seed', '0')
    real_generate = sv.generate_image

    def fail_on_image_5(seed, index, params):
        if index == 5:
            raise RuntimeError('simulated crash')
        return real_generate(seed, index, params)

    monkeypatch.setattr(sv, 'generate_image', fail_on_image_5)
    with pytest.raises(RuntimeError, match='simulated crash'):
        generate(tmp_path, '--seed', '0')
    for split in sv.SPLITS:
        assert not os.path.exists(os.path.join(year_dir, 'ImageSets', 'Main', split + '.txt'))
    monkeypatch.setattr(sv, 'generate_image', real_generate)
    generate(tmp_path, '--seed', '0')
    assert all_files(year_dir) == complete
