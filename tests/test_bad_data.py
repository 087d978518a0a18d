"""Bad input, data side: one row per case, each running the real entry script in a subprocess.

Every row asserts the exit status, that no traceback is printed, and the words of the message (the file or
flag named, what to do). Images that only look unusual (PNG, grayscale, CMYK, 16-bit, non-ASCII or spaced
names) must pack correctly: their rows check the packed record instead. The model and number cases
(checkpoints, NaN losses) live in their own file.
"""
import collections
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from dataset.lst import read_lst, unflatten_label
from tests.test_voc_parser import annotation_xml, object_xml, write_voc

pytestmark = pytest.mark.slow    # subprocesses end to end (make test-fast leaves them out)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPROCESS_TIMEOUT = 180                # seconds; a train.py row fails before its first batch
VOC_DOG = 11                            # 'dog' in the 20 VOC classes
TRAIN_FLAGS = ['--cpu', '--pretrained', '', '--end-epoch', '1', '--network', 'mobilenet0.25', '--data-shape', '64',
               '--batch-size', '4', '--lr-steps', '', '--log', '', '--frequent', '100', '--seed', '0']
OBJECTS_PER_TRAIN_IMAGE = [1, 2, 3, 1, 2, 1, 1, 2]   # the records fixture: at most 3 objects in one image

SKIP_COUNT = 'skipped 1 unreadable item (--skip-bad)'   # the count prepare_dataset.py prints at the end

Outcome = collections.namedtuple('Outcome', 'status stdout stderr')


# --- running ---------------------------------------------------------------------------------------------------
def run_script(*argv):
    """``python <argv>`` from the repository root, one decoding thread; returns :class:`Outcome`."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MXNET_CPU_WORKER_NTHREADS='1')
    result = subprocess.run([sys.executable] + [str(arg) for arg in argv], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT)
    return Outcome(result.returncode, result.stdout, result.stderr)


def prepare(dataset, root, target, *extra):
    """The ``tools/prepare_dataset.py`` command line for ``root`` (VOC: year 2007, set trainval)."""
    image_set = {'pascal': ['--year', '2007', '--set', 'trainval'], 'coco': ['--set', 'val'],
                 'yolo': ['--set', 'train']}[dataset]
    threads = [] if '--no-pack' in extra else ['--num-thread', '1']
    return (['tools/prepare_dataset.py', '--dataset', dataset, '--root', root, '--target', target, '--no-shuffle']
            + threads + image_set + list(extra))


# --- images ----------------------------------------------------------------------------------------------------
def smooth_image(height, width, channels=3, seed=0):
    """A smooth uint8 image (JPEG keeps it within a few levels)."""
    y, x = np.mgrid[0:height, 0:width]
    layers = [(127 + 100 * np.sin(x / (7.0 + 3 * c + seed) + c) * np.cos(y / 9.0)).astype(np.uint8)
              for c in range(channels)]
    return np.stack(layers, axis=-1) if channels > 1 else layers[0]


def packed_records(prefix):
    """``{record id: (objects (N, 6), decoded image (H, W, C) uint8, as stored)}`` of ``<prefix>.rec``."""
    import mxnet as mx
    reader = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'r')
    records = {}
    for key in reader.keys:
        header, data = mx.recordio.unpack(reader.read_idx(key))
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        records[header.id] = (unflatten_label(header.label), image)
    reader.close()
    return records


# --- datasets --------------------------------------------------------------------------------------------------
def voc(tmp, objects=None, extra_images=(), classes=None):
    """A VOC 2007 trainval set under ``tmp/voc``: image ``a`` (200x100) with ``objects`` (default one dog),
    plus ``extra_images`` ids with one dog each; returns the root."""
    objects = [object_xml('dog', (21, 11, 120, 61))] if objects is None else objects
    images = {'a': (annotation_xml(objects), (200, 100))}
    for image_id in extra_images:
        images[image_id] = (annotation_xml([object_xml('dog', (11, 11, 51, 41))]), (200, 100))
    return write_voc(tmp / 'voc', images, classes=classes)


def voc_jpeg(root, image_id='a'):
    return os.path.join(root, 'VOC2007', 'JPEGImages', image_id + '.jpg')


def voc_xml(root, image_id='a'):
    return os.path.join(root, 'VOC2007', 'Annotations', image_id + '.xml')


def write_coco(tmp, annotations=None, categories=None, drop=(), names=('a.jpg',)):
    """A COCO set under ``tmp/coco`` (images 200x100, one dog box each unless ``annotations``); ``drop``: top-level
    keys to leave out. Returns the root."""
    root = tmp / 'coco'
    os.makedirs(root / 'val')
    images = [{'id': number + 1, 'file_name': name, 'width': 200, 'height': 100} for number, name in enumerate(names)]
    for name in names:
        cv2.imwrite(str(root / 'val' / name), smooth_image(100, 200))
    if annotations is None:
        annotations = [{'id': number + 1, 'image_id': number + 1, 'category_id': 3, 'bbox': [20, 10, 100, 50]}
                       for number in range(len(names))]
    data = {'images': images, 'annotations': annotations,
            'categories': categories or [{'id': 3, 'name': 'dog'}, {'id': 5, 'name': 'cat'}]}
    os.makedirs(root / 'annotations')
    with open(root / 'annotations' / 'instances_val.json', 'w') as handle:
        json.dump({key: value for key, value in data.items() if key not in drop}, handle)
    return root


def write_yolo(tmp, labels, images=None):
    """A YOLO set under ``tmp/yolo``: ``labels`` ``{stem: label text}``; ``images`` ``{file name: array}``
    (default: one smooth 60x80 JPEG per label stem). Returns the root (its classes.txt: a, b)."""
    root = tmp / 'yolo'
    os.makedirs(root / 'images' / 'train')
    os.makedirs(root / 'labels' / 'train')
    images = images or {stem + '.jpg': smooth_image(60, 80) for stem in labels}
    for name, pixels in images.items():
        write_image(root / 'images' / 'train' / name, pixels)
    for stem, text in labels.items():
        (root / 'labels' / 'train' / (stem + '.txt')).write_text(text)
    (root / 'classes.txt').write_text('a\nb\n')
    return root


def write_image(path, pixels):
    """Write ``pixels`` (an array for cv2, or a Pillow image) to ``path``, whatever characters it holds."""
    if isinstance(pixels, Image.Image):
        pixels.save(str(path))
        return
    ok, data = cv2.imencode(os.path.splitext(str(path))[1], pixels)
    assert ok
    with open(path, 'wb') as handle:
        handle.write(data.tobytes())


# --- row builders: each returns the command line -----------------------------------------------------------------
def corrupt_jpeg(tmp, *flags):
    root = voc(tmp, extra_images=['b'])
    with open(voc_jpeg(root), 'wb') as handle:
        handle.write(b'\xff\xd8\xff' + bytes(range(256)) * 4)
    return prepare('pascal', root, tmp / 'train.lst', *flags)


def truncated_jpeg(tmp, *flags):
    root = voc(tmp, extra_images=['b'])
    data = cv2.imencode('.jpg', smooth_image(100, 200))[1].tobytes()
    with open(voc_jpeg(root), 'wb') as handle:
        handle.write(data[:len(data) // 2])
    return prepare('pascal', root, tmp / 'train.lst', *flags)


def missing_image(tmp, *flags):
    root = voc(tmp, extra_images=['b'])
    os.remove(voc_jpeg(root))
    return prepare('pascal', root, tmp / 'train.lst', *flags)


def voc_image(pixels):
    """A builder packing VOC image ``a`` replaced by ``pixels`` (cv2 array or Pillow image)."""
    def build(tmp):
        root = voc(tmp)
        write_image(voc_jpeg(root), pixels)
        return prepare('pascal', root, tmp / 'train.lst')
    return build


def yolo_image(name, pixels):
    """A builder packing a YOLO set whose one image is ``name`` holding ``pixels``."""
    def build(tmp):
        root = write_yolo(tmp, {os.path.splitext(name)[0]: '0 0.5 0.5 0.5 0.5\n'}, images={name: pixels})
        return prepare('yolo', root, tmp / 'train.lst')
    return build


def malformed_xml(tmp, *flags):
    root = voc(tmp, extra_images=['b'])
    with open(voc_xml(root), 'w') as handle:
        handle.write('<annotation><object><name>dog</name>')
    return prepare('pascal', root, tmp / 'train.lst', *flags)


def empty_xml(tmp):
    root = voc(tmp)
    open(voc_xml(root), 'w').close()
    return prepare('pascal', root, tmp / 'train.lst')


def unknown_class(tmp, *flags):
    root = voc(tmp, objects=[object_xml('unicorn', (21, 11, 120, 61)), object_xml('dog', (21, 11, 120, 61))])
    return prepare('pascal', root, tmp / 'train.lst', *flags)


def degenerate_boxes(tmp):
    root = voc(tmp, objects=[object_xml('dog', (41, 11, 41, 31)),    # zero width
                             object_xml('dog', (81, 31, 21, 11)),    # xmin > xmax, ymin > ymax
                             object_xml('dog', (21, 11, 41, 31))])
    return prepare('pascal', root, tmp / 'train.lst')


def box_outside(tmp):
    root = voc(tmp, objects=[object_xml('dog', (151, 51, 260, 140))])  # past the 200x100 image's corner
    return prepare('pascal', root, tmp / 'train.lst')


def no_objects(tmp):
    return prepare('pascal', voc(tmp, objects=[], extra_images=['b']), tmp / 'train.lst')


def coco_without_bbox(tmp, *flags):
    root = write_coco(tmp, annotations=[{'id': 1, 'image_id': 1, 'category_id': 3},
                                        {'id': 2, 'image_id': 2, 'category_id': 3, 'bbox': [0, 0, 20, 20]}],
                      names=('a.jpg', 'b.jpg'))
    return prepare('coco', root, tmp / 'val.lst', *flags)


def coco_without_categories(tmp):
    return prepare('coco', write_coco(tmp, drop=('categories',)), tmp / 'val.lst')


def coco_unknown_category(tmp, *flags):
    root = write_coco(tmp, annotations=[{'id': 1, 'image_id': 1, 'category_id': 42, 'bbox': [20, 10, 100, 50]},
                                        {'id': 2, 'image_id': 1, 'category_id': 3, 'bbox': [0, 0, 20, 20]}])
    return prepare('coco', root, tmp / 'val.lst', *flags)


def yolo_line(line, *flags):
    """A builder for a YOLO set whose ``a.txt`` holds ``line`` (and ``b.txt`` a good one)."""
    def build(tmp):
        root = write_yolo(tmp, {'a': line + '\n', 'b': '1 0.5 0.5 0.2 0.2\n'})
        return prepare('yolo', root, tmp / 'train.lst', *flags)
    return build


def non_ascii_name(tmp):
    root = write_voc(tmp / 'voc', {'ünïcødé_画像': (annotation_xml([object_xml('dog', (21, 11, 120, 61))]),
                                                   (200, 100))})
    write_image(voc_jpeg(root, 'ünïcødé_画像'), smooth_image(100, 200))
    return prepare('pascal', root, tmp / 'train.lst')


def spaced_name(tmp):
    return prepare('coco', write_coco(tmp, names=('a picture with  spaces.jpg',)), tmp / 'val.lst')


def im2rec_corrupt(tmp, *flags):
    root = voc(tmp, extra_images=['b'])
    prepared = run_script(*prepare('pascal', root, tmp / 'train.lst', '--no-pack'))
    assert prepared.status == 0, prepared.stderr
    with open(voc_jpeg(root), 'wb') as handle:
        handle.write(b'\xff\xd8\xff not a picture')
    return ['tools/im2rec.py', tmp / 'train', root, '--pack-label', '--num-thread', '1', '--no-progress'] + list(flags)


# --- checks of what a successful row wrote -----------------------------------------------------------------------
def check_packed_shape(height, width):
    """A check: one record, its image decoded to ``height x width`` with 3 channels."""
    def check(tmp, outcome, prefix='train'):
        records = packed_records(str(tmp / prefix))
        assert len(records) == 1
        (objects, image), = records.values()
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert len(objects) == 1
        return image
    return check


def check_colours_kept(expected_rgb, tolerance=12):
    """A check: the one packed image equals ``expected_rgb`` (H, W, 3) to JPEG noise."""
    def check(tmp, outcome):
        image = check_packed_shape(*expected_rgb.shape[:2])(tmp, outcome)
        difference = np.abs(image[..., ::-1].astype(int) - expected_rgb.astype(int))
        assert difference.mean() < tolerance, difference.mean()
    return check


def check_sixteen_bit_gray(tmp, outcome):
    image = check_packed_shape(60, 80)(tmp, outcome)
    expected = (smooth_image(60, 80, channels=1).astype(np.uint16) * 257) >> 8   # the high byte
    assert np.abs(image[..., 0].astype(int) - expected).mean() < 3
    assert np.array_equal(image[..., 0], image[..., 1])                          # gray in all three channels


def check_only_b_packed(tmp, outcome, prefix='train'):
    """A check: the bad image ``a`` is neither in the .rec nor in the .lst; ``b`` is in both."""
    records = packed_records(str(tmp / prefix))
    entries = read_lst(str(tmp / (prefix + '.lst')))
    assert [path.rsplit('/', 1)[-1] for _, _, path in entries] == ['b.jpg']
    assert sorted(records) == [entries[0][0]]


def check_lst_objects(expected):
    """A check: the ``.lst`` holds one image whose rows are ``expected`` (N, 6)."""
    def check(tmp, outcome):
        (_, objects, _), = read_lst(str(tmp / 'train.lst'))
        np.testing.assert_allclose(objects, np.reshape(expected, (-1, 6)), atol=1e-5)
    return check


def check_empty_image_packed(tmp, outcome):
    records = packed_records(str(tmp / 'train'))
    assert len(records) == 2
    assert sorted(len(objects) for objects, _ in records.values()) == [0, 1]


def check_val_packed(tmp, outcome):
    check_packed_shape(100, 200)(tmp, outcome, prefix='val')


GRAY = smooth_image(100, 200, channels=1)
RGB = smooth_image(100, 200)[..., ::-1]                # as RGB for Pillow; cv2 writes BGR arrays
PNG_BGR = smooth_image(60, 80, seed=2)
SIXTEEN_BIT_RGB = smooth_image(60, 80).astype(np.uint16) * 257
DATASET_CASES = [
    # (id, build, status, words in stderr/stdout, check)
    ('corrupt-jpeg', corrupt_jpeg, 2, ['a.jpg', 'cannot be packed', 'not an image', '--skip-bad'], None),
    ('truncated-jpeg', truncated_jpeg, 2, ['a.jpg', 'cannot be packed', 'truncated', '--skip-bad'], None),
    ('corrupt-jpeg-skip-bad', lambda tmp: corrupt_jpeg(tmp, '--skip-bad'), 0,
     ['warning: skipped', 'a.jpg', SKIP_COUNT, 'packed 1 images (1 skipped)'], check_only_b_packed),
    ('missing-image', missing_image, 2, ['JPEGImages/a.jpg does not exist', 'image set lists it', '--skip-bad'],
     None),
    ('missing-image-skip-bad', lambda tmp: missing_image(tmp, '--skip-bad'), 0,
     ['warning: skipped an unreadable item: image', 'a.jpg does not exist', SKIP_COUNT], check_only_b_packed),
    ('png-image', yolo_image('a.png', PNG_BGR), 0, ['packed 1 images (0 skipped)'],
     check_colours_kept(PNG_BGR[..., ::-1])),
    ('grayscale-jpeg', voc_image(GRAY), 0, ['packed 1 images (0 skipped)'],
     check_colours_kept(np.repeat(GRAY[..., None], 3, axis=2))),
    ('cmyk-jpeg', voc_image(Image.fromarray(RGB).convert('CMYK')), 0, ['packed 1 images (0 skipped)'],
     check_colours_kept(RGB, tolerance=16)),
    ('16-bit-gray-png', yolo_image('a.png', smooth_image(60, 80, channels=1).astype(np.uint16) * 257), 0,
     ['packed 1 images'], check_sixteen_bit_gray),
    ('16-bit-rgb-png', yolo_image('a.png', SIXTEEN_BIT_RGB), 0, ['packed 1 images'],
     check_colours_kept(smooth_image(60, 80)[..., ::-1], tolerance=3)),
    ('malformed-xml', malformed_xml, 2, ['a.xml is not valid XML', '--skip-bad'], None),
    ('malformed-xml-skip-bad', lambda tmp: malformed_xml(tmp, '--skip-bad'), 0,
     ['warning: skipped an unreadable item: annotation', 'a.xml is not valid XML', SKIP_COUNT], check_only_b_packed),
    ('empty-xml', empty_xml, 2, ['a.xml is empty', 'VOC <annotation> XML', '--skip-bad'], None),
    ('unknown-class', unknown_class, 2,
     ["a.xml has an object of class 'unicorn'", '20 known classes', 'aeroplane, bicycle', '--class-names',
      '--skip-unknown'], None),
    ('unknown-class-skip-unknown', lambda tmp: unknown_class(tmp, '--skip-unknown'), 0,
     ["objects of unknown class 'unicorn' skipped: 1"], check_lst_objects([[VOC_DOG, 0.1, 0.1, 0.595, 0.6, 0]])),
    ('degenerate-boxes', degenerate_boxes, 0, ['degenerate boxes skipped (xmax <= xmin or ymax <= ymin): 2'],
     check_lst_objects([[VOC_DOG, 0.1, 0.1, 0.2, 0.3, 0]])),
    ('box-outside-image', box_outside, 0, ['boxes clipped to the image: 1'],
     check_lst_objects([[VOC_DOG, 0.75, 0.5, 1, 1, 0]])),
    ('image-without-objects', no_objects, 0, ['images with no objects: 1', 'packed 2 images (0 skipped)'],
     check_empty_image_packed),
    ('coco-missing-bbox', coco_without_bbox, 2,
     ["instances_val.json has a malformed entry (KeyError: 'bbox') for image 1 (a.jpg)", 'bbox [x, y, w, h]',
      '--skip-bad'], None),
    ('coco-missing-bbox-skip-bad', lambda tmp: coco_without_bbox(tmp, '--skip-bad'), 0,
     ['warning: skipped an unreadable item: COCO annotation file', "(KeyError: 'bbox')", SKIP_COUNT],
     lambda tmp, outcome: check_only_b_packed(tmp, outcome, prefix='val')),
    ('coco-missing-categories', coco_without_categories, 2,
     ['instances_val.json has no categories', 'expected an instances_*.json file'], None),
    ('coco-unknown-category', coco_unknown_category, 2,
     ['annotation 1 of image 1 (a.jpg) has category_id 42', 'not in its categories (3 dog, 5 cat)',
      '--skip-unknown'], None),
    ('coco-unknown-category-skip-unknown', lambda tmp: coco_unknown_category(tmp, '--skip-unknown'), 0,
     ['objects whose category_id is not in categories skipped: 1'], check_val_packed),
    ('yolo-4-numbers', yolo_line('0 0.5 0.5 0.2'), 2,
     ["a.txt line 1 is '0 0.5 0.5 0.2'", 'expected "class_id cx cy w h"', 'not 4 values', '--skip-bad'], None),
    ('yolo-6-numbers', yolo_line('0 0.5 0.5 0.2 0.2 0.9'), 2, ['a.txt line 1', 'not 6 values', '--skip-bad'],
     None),
    ('yolo-outside-unit-range', yolo_line('1 120 80 40 30'), 2,
     ["a.txt line 1 is '1 120 80 40 30'", 'must lie in [0, 1]', 'divided by the image width', '--skip-bad'], None),
    ('yolo-bad-line-skip-bad', yolo_line('0 0.5 0.5 0.2', '--skip-bad'), 0,
     ['warning: skipped', 'a.txt line 1', SKIP_COUNT], check_only_b_packed),
    ('yolo-unknown-class-id', yolo_line('5 0.5 0.5 0.2 0.2'), 2,
     ['a.txt line 1 has class id 5', '2 classes (a, b: ids 0 to 1)', '--skip-unknown'], None),
    ('non-ascii-file-name', non_ascii_name, 0, ['packed 1 images (0 skipped)'], check_packed_shape(100, 200)),
    ('spaces-in-file-name', spaced_name, 0, ['packed 1 images (0 skipped)'], check_val_packed),
    ('im2rec-corrupt-image-skipped', im2rec_corrupt, 0, ['warning: skipped', 'a.jpg', 'packed 1 images (1 skipped)'],
     None),
    ('im2rec-corrupt-image-no-skip-bad', lambda tmp: im2rec_corrupt(tmp, '--no-skip-bad'), 2,
     ['a.jpg (.lst index 0) cannot be packed', 'drop --no-skip-bad'], None),
]


@pytest.mark.parametrize('build, status, words, check', [pytest.param(*row[1:], id=row[0]) for row in DATASET_CASES])
def test_dataset_input(tmp_path, build, status, words, check):
    outcome = run_script(*build(tmp_path))
    assert_outcome(outcome, status, words)
    if check is not None:
        check(tmp_path, outcome)
    if status:
        assert not any(name.endswith(('.rec', '.idx')) for name in os.listdir(tmp_path))  # nothing half-written


def assert_outcome(outcome, status, words):
    """Exit status, no traceback, and every word in the output (an error: in its one stderr line)."""
    assert outcome.status == status, outcome.stderr[-3000:]
    assert 'Traceback' not in outcome.stderr
    if status:
        errors = [line for line in outcome.stderr.splitlines() if line.startswith('error: ')]
        assert len(errors) == 1, outcome.stderr[-3000:]
        text = errors[0]
    else:
        text = outcome.stdout + outcome.stderr
    missing = [word for word in words if word not in text]
    assert not missing, 'missing %s in:\n%s' % (missing, text[-3000:])


# --- records, read by train.py -------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def records(tmp_path_factory):
    """``train.rec`` (8 images, 1 to 3 objects) and ``val.rec`` (4 images) with their .idx/.classes files."""
    tmp = tmp_path_factory.mktemp('records')
    objects = [[object_xml('dog' if number % 2 else 'cat', (11 + 20 * number, 11, 31 + 20 * number, 41))
                for number in range(count)] for count in OBJECTS_PER_TRAIN_IMAGE]
    for name, image_set in (('train', objects), ('val', objects[:4])):
        root = write_voc(tmp / name, {'%06d' % number: (annotation_xml(rows, size=(120, 80)), (120, 80))
                                      for number, rows in enumerate(image_set)})
        outcome = run_script(*prepare('pascal', root, tmp / (name + '.lst')))
        assert outcome.status == 0, outcome.stderr
    return tmp


def copy_records(records, tmp, name, source='train'):
    """Copy ``<source>.rec/.idx/.classes`` from the fixture to ``tmp/<name>.*``; returns the ``.rec`` path."""
    for suffix in ('.rec', '.idx', '.classes'):
        shutil.copy(records / (source + suffix), tmp / (name + suffix))
    return tmp / (name + '.rec')


def train_argv(tmp, train, val, *extra):
    return (['train.py', '--train-path', train, '--val-path', val, '--prefix', tmp / 'model' / 'ssd']
            + TRAIN_FLAGS + list(extra))


def truncated_rec(records, tmp):
    rec = copy_records(records, tmp, 'cut')
    with open(rec, 'r+b') as handle:
        handle.truncate(os.path.getsize(rec) - 100)                # inside the last record
    return train_argv(tmp, rec, records / 'val.rec')


def missing_idx(records, tmp):
    rec = copy_records(records, tmp, 'noidx')
    os.remove(tmp / 'noidx.idx')
    return train_argv(tmp, rec, records / 'val.rec')


def stale_idx_from_another_packing(records, tmp):
    rec = copy_records(records, tmp, 'stale')
    shutil.copy(records / 'val.idx', tmp / 'stale.idx')        # the index of a different, earlier .rec
    os.utime(tmp / 'stale.idx', ns=(os.stat(rec).st_mtime_ns - 10 ** 9,) * 2)
    return train_argv(tmp, records / 'train.rec', rec)


def stale_idx_offsets(records, tmp):
    rec = copy_records(records, tmp, 'shifted')
    lines = (tmp / 'shifted.idx').read_text().splitlines()
    key, offset = lines[-1].split('\t')
    lines[-1] = '%s\t%d' % (key, int(offset) + 4)
    (tmp / 'shifted.idx').write_text('\n'.join(lines) + '\n')
    return train_argv(tmp, rec, records / 'val.rec')


def classification_rec(records, tmp):
    import mxnet as mx
    writer = mx.recordio.MXIndexedRecordIO(str(tmp / 'cls.idx'), str(tmp / 'cls.rec'), 'w')
    for number in range(8):
        header = mx.recordio.IRHeader(0, float(number % 3), number, 0)
        writer.write_idx(number, mx.recordio.pack_img(header, smooth_image(64, 64), img_fmt='.jpg'))
    writer.close()
    shutil.copy(records / 'train.classes', tmp / 'cls.classes')
    return train_argv(tmp, tmp / 'cls.rec', records / 'val.rec')


def label_width_too_small(records, tmp):
    return train_argv(tmp, records / 'train.rec', records / 'val.rec', '--label-width', '2')


def different_classes(records, tmp):
    rec = copy_records(records, tmp, 'other', source='val')
    (tmp / 'other.classes').write_text('dog\ncat\n')                 # train.classes: the 20 VOC classes
    return train_argv(tmp, records / 'train.rec', rec)


def empty_rec(records, tmp):
    for suffix in ('.rec', '.idx'):
        (tmp / ('empty' + suffix)).write_bytes(b'')
    shutil.copy(records / 'train.classes', tmp / 'empty.classes')
    return train_argv(tmp, tmp / 'empty.rec', records / 'val.rec')


RECORD_CASES = [
    pytest.param(truncated_rec, ['cut.rec is not a readable RecordIO file', 'cut short', 'pack it again'],
                 id='truncated-rec'),
    pytest.param(missing_idx, ['index file', 'noidx.idx does not exist', 'incomplete', 'pack it again'],
                 id='missing-idx'),
    pytest.param(stale_idx_from_another_packing,
                 ['stale.idx does not match', 'it lists 4 records, the .rec holds 8', 'stale, older than the .rec',
                  'pack both again'], id='stale-idx-older'),
    pytest.param(stale_idx_offsets, ['shifted.idx does not match', 'where no record starts', 'stale',
                                     'pack both again'], id='stale-idx-offsets'),
    pytest.param(classification_rec, ['cls.rec record 0 has a single label number', 'classification .rec',
                                      'tools/im2rec.py --pack-label'], id='classification-rec'),
    pytest.param(label_width_too_small, ['label width 2 is too small', 'has 3 objects', 'at least 3',
                                         '--label-width 3'], id='label-width-too-small'),
    pytest.param(different_classes, ['class lists differ', 'train.classes names 20 classes', 'other.classes names 2',
                                     '--class-names'], id='train-val-class-lists-differ'),
    pytest.param(empty_rec, ['empty.rec holds no records', 'pack it again'], id='empty-rec'),
]


@pytest.mark.parametrize('build, words', RECORD_CASES)
def test_record_input(records, tmp_path, build, words):
    assert_outcome(run_script(*build(records, tmp_path)), 2, words)


def test_class_lists_are_compared_by_check_same_classes(records, tmp_path):
    """What train.py runs on its train and validation files (the table row above, once it is wired in)."""
    from config.errors import UserError
    from dataset.imdb import check_same_classes
    same = copy_records(records, tmp_path, 'same', source='val')
    check_same_classes(str(records / 'train.rec'), str(same), '')                  # equal lists, no val: fine
    other = copy_records(records, tmp_path, 'other', source='val')
    (tmp_path / 'other.classes').write_text('aeroplane\nbicycle\nbird\n')
    with pytest.raises(UserError, match=r'class lists differ: .*train\.classes names 20 classes \(aeroplane, .*\) '
                                        r'but .*other\.classes names 3 \(aeroplane, bicycle, bird\); the longer one '
                                        r'goes on with boat, bottle, .*--class-names'):
        check_same_classes(str(records / 'train.rec'), str(other))
    os.remove(tmp_path / 'other.classes')
    check_same_classes(str(records / 'train.rec'), str(other))                     # no .classes: not compared
