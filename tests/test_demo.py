"""demo.py: drawn boxes sit where the detections are (in the original image's pixels), detections.json
matches the pictures, unreadable images are skipped with a warning, the camera loop (a fake cv2.VideoCapture
and a real video file: there is no camera here), and one-line errors."""
import json
import os

import cv2
import numpy as np
import pytest

from config.errors import run_cli
from evaluate import detect_images, draw_detections
from evaluate.visualize import class_color
from tests.test_train import make_dataset, tiny_run
from tools.scripts import load_script

BACKGROUND = 40          # grey level of the hand-made test images
EPOCHS = 5               # 40 updates of 2 images: fewer leave BatchNorm's moving statistics near their
                         # start, and the detections then hardly depend on the image


demo = load_script('demo.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Five epochs of the tiny network on 16 synthetic images of three classes, 2 per batch (about 8 s);
    returns (prefix, three JPEGs of 64 to 96 pixels a side, not square)."""
    root = tmp_path_factory.mktemp('demo')
    train_rec, _ = make_dataset(root, 16, 3, classes='circle,square,triangle')
    prefix = str(root / 'model' / 'ssd')
    tiny_run(train_rec, prefix, lr=0.01, end_epoch=EPOCHS, batch_size=2)
    jpegs = sorted(str(path) for path in (root / 'VOC' / 'VOC2007' / 'JPEGImages').glob('*.jpg'))[:3]
    return prefix, jpegs


def fixed_detector(rows):
    """A stand-in for evaluate.detect_images.Detector that answers ``rows`` (A, 6) for every image."""
    def detect(images):
        return [np.array(rows, np.float32) for _ in images]
    return detect


def colour_mask(picture, class_id):
    """Pixels of exactly the class colour (BGR in the file)."""
    return np.all(picture == np.array(class_color(class_id)[::-1], np.uint8), axis=2)


def columns_of(mask_row):
    return list(np.flatnonzero(mask_row))


# --------------------------------------------------------------------------------- drawing, exact pixels
def test_drawn_box_sits_on_the_detection_in_original_pixels(tmp_path):
    wide, tall = str(tmp_path / 'wide.png'), str(tmp_path / 'tall.png')
    cv2.imwrite(wide, np.full((100, 200, 3), BACKGROUND, np.uint8))     # W 200, H 100
    cv2.imwrite(tall, np.full((150, 60, 3), BACKGROUND, np.uint8))      # W 60, H 150
    rows = [[1, 0.9, 0.1, 0.2, 0.5, 0.8],        # kept: star 0.90
            [0, 0.3, 0.0, 0.0, 1.0, 1.0],        # below --thresh 0.5
            [-1, 0.95, 0.2, 0.2, 0.4, 0.4]]      # suppressed row
    out = tmp_path / 'out'
    args = demo.parse_args(['--images', '%s,%s' % (wide, tall), '--out', str(out), '--batch-size', '2'])
    result = detect_images.run_images(args, [wide, tall], ('circle', 'star'), fixed_detector(rows), {})

    # 0.1, 0.2, 0.5, 0.8 of 200 x 100 -> x 20..100, y 20..80; of 60 x 150 -> x 6..30, y 30..120
    wide_entry, tall_entry = result['images']
    assert wide_entry['detections'] == [{'class_id': 1, 'class': 'star', 'score': 0.9,
                                         'box': [20.0, 20.0, 100.0, 80.0]}]
    assert tall_entry['detections'][0]['box'] == [6.0, 30.0, 30.0, 120.0]
    assert (wide_entry['width'], wide_entry['height'], tall_entry['width'], tall_entry['height']) == (200, 100,
                                                                                                       60, 150)
    assert sorted(os.listdir(out)) == ['detections.json', 'tall_det.png', 'wide_det.png']
    with open(out / 'detections.json') as handle:
        assert json.load(handle)['images'][0]['detections'] == wide_entry['detections']

    picture = cv2.imread(str(out / 'wide_det.png'))
    assert picture.shape == (100, 200, 3)
    line = colour_mask(picture, 1)
    for row in range(21, 80):                                   # the sides: one pixel wide, at x 20 and 100
        assert columns_of(line[row]) == [20, 100], row
    assert columns_of(line[80]) == list(range(20, 101))         # the bottom edge at y 80
    assert line[20, 20:101].all()                               # the top edge at y 20
    # the caption "star 0.90" sits on the top-left corner: OpenCV's simplex font at scale 0.35 makes it 52 x 8
    # pixels plus 4 below the baseline, so a box of the class colour over rows 8..20 and columns 20..72
    changed = np.any(picture != BACKGROUND, axis=2)
    assert changed[8:20, 20:73].all() and not changed[8:20, 73:100].any() and not changed[:8].any()
    ink = changed[8:20, 20:73] & ~line[8:20, 20:73]
    assert ink.sum() >= 100 and ink[:, :3].any() and ink[:, -3:].any()      # text from one end to the other
    assert not changed[81:].any() and not changed[:, :20].any() and not changed[:, 101:].any()
    assert not changed[21:80, 21:100].any()                     # the 0.30 full-image box is not drawn

    tall_line = colour_mask(cv2.imread(str(out / 'tall_det.png')), 1)
    for row in range(31, 120):
        assert columns_of(tall_line[row]) == [6, 30], row
    assert columns_of(tall_line[120]) == list(range(6, 31))


def test_output_names_keep_the_format_family_and_never_collide():
    from evaluate.draw_detections import output_names
    assert output_names(['a/x.JPG', 'b/x.jpg', 'c/x.png', 'y.gif', 'z.jpeg']) == [
        'x_det.jpg', 'x_det_2.jpg', 'x_det.png', 'y_det.png', 'z_det.jpeg']


# ------------------------------------------------------------------------------ end to end, real model
DEGENERATE_ROWS = [[0, 0.95, 0.01, 0.4, 0.01, 0.5],      # 0 px wide on a 200 px image (as [2, ., 2, .])
                   [1, 0.90, 0.1, 0.300, 0.5, 0.305],   # 0.5 px high on a 100 px image
                   [1, 0.80, 0.1, 0.2, 0.5, 0.8]]       # a normal box: x 20..100, y 20..80


def test_boxes_under_one_pixel_wide_or_high_are_no_detections():
    records = draw_detections.detections_in_pixels(DEGENERATE_ROWS, 200, 100, 0.5, ('circle', 'star'))
    assert records == [{'class_id': 1, 'class': 'star', 'score': 0.8, 'box': [20.0, 20.0, 100.0, 80.0]}]
    # clipped to the image first: x 199.5..240 keeps 199.5..200, half a pixel, so it is dropped
    outside = draw_detections.detections_in_pixels([[0, 0.9, 0.9975, 0.1, 1.2, 0.9]], 200, 100, 0.5, ('c',))
    assert outside == []
    inside = draw_detections.detections_in_pixels([[0, 0.9, 0.9, 0.1, 1.2, 0.9]], 200, 100, 0.5, ('c',))
    assert inside[0]['box'] == [180.0, 10.0, 200.0, 90.0]


def test_demo_json_and_picture_hold_only_the_normal_box(tmp_path):
    image = str(tmp_path / 'wide.png')
    cv2.imwrite(image, np.full((100, 200, 3), BACKGROUND, np.uint8))
    args = demo.parse_args(['--images', image, '--out', str(tmp_path / 'out')])
    result = detect_images.run_images(args, [image], ('circle', 'star'), fixed_detector(DEGENERATE_ROWS), {})
    with open(result['results_path']) as handle:
        assert [record['box'] for record in json.load(handle)['images'][0]['detections']] == [[20, 20, 100, 80]]
    picture = cv2.imread(result['images'][0]['output'])
    assert not colour_mask(picture, 0).any()              # nothing of the 0-wide circle is drawn
    assert columns_of(colour_mask(picture, 1)[50]) == [20, 100]   # one star box: its sides at x 20 and 100


def run_demo(argv):
    return run_cli(demo.main, demo.parse_args(argv))


def test_end_to_end_on_jpegs_boxes_match_the_json_and_the_unreadable_one_is_skipped(trained, tmp_path, capsys):
    prefix, jpegs = trained
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name, path in zip('abc', jpegs):   # 192 to 288 pixels a side, far from the network's 64
        image = cv2.imread(path)
        cv2.imwrite(str(folder / (name + '.jpg')), cv2.resize(image, None, fx=3, fy=3,
                                                              interpolation=cv2.INTER_CUBIC))
    (folder / 'b_broken.jpg').write_bytes(b'these bytes are no JPEG')
    (folder / 'notes.txt').write_text('not an image')
    first = run_demo(['--dir', str(folder), '--prefix', prefix, '--cpu', '--thresh', '0', '--batch-size', '2',
                      '--out', str(tmp_path / 'all')])
    broken = str(folder / 'b_broken.jpg')
    assert 'warning: skipped %s: OpenCV cannot decode it' % broken in capsys.readouterr().err
    assert first['skipped'] == [{'image': broken, 'reason': 'OpenCV cannot decode it'}]
    assert [entry['image'] for entry in first['images']] == [str(folder / name) for name in ('a.jpg', 'b.jpg',
                                                                                             'c.jpg')]
    assert sorted(os.listdir(tmp_path / 'all')) == ['a_det.jpg', 'b_det.jpg', 'c_det.jpg', 'detections.json']
    assert (first['epoch'], first['classes']) == (EPOCHS, ['circle', 'square', 'triangle'])
    for entry in first['images']:
        height, width = cv2.imread(entry['image']).shape[:2]
        assert (entry['width'], entry['height']) == (width, height) and cv2.imread(entry['output']).shape[:2] == (
            height, width)
        boxes = np.array([record['box'] for record in entry['detections']])
        scores = [record['score'] for record in entry['detections']]
        assert len(boxes) > 0 and scores == sorted(scores, reverse=True)
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()

    # every picture is the drawing of exactly the boxes listed for it: the pixels it changed are those that
    # drawing the JSON boxes changes (measured overlap 0.99), not those of the same boxes 2 pixels off (0.6-0.8)
    for entry in first['images']:
        assert_picture_draws(entry['image'], entry['output'], entry['detections'], largest_off_overlap=0.85)

    # a --thresh that keeps a few boxes keeps exactly the listed ones above it, and draws only those
    scores = sorted({record['score'] for entry in first['images'] for record in entry['detections']}, reverse=True)
    cut = next(i for i in range(4, len(scores) - 1) if scores[i] - scores[i + 1] > 1e-5)
    thresh = (scores[cut] + scores[cut + 1]) / 2
    out = tmp_path / 'few'
    again = run_demo(['--images', ','.join(e['image'] for e in first['images']), '--prefix', prefix, '--epoch',
                      str(EPOCHS), '--cpu', '--thresh', str(thresh), '--batch-size', '2', '--out', str(out)])
    assert sum(len(entry['detections']) for entry in again['images']) >= cut + 1 >= 5
    for before, after in zip(first['images'], again['images']):
        assert after['detections'] == [record for record in before['detections'] if record['score'] >= thresh]
        assert after['output'] == str(out / os.path.basename(before['output']))
        assert_picture_draws(after['image'], after['output'], after['detections'], largest_off_overlap=0.6)


def assert_picture_draws(image_path, picture_path, records, largest_off_overlap):
    """The picture changed the pixels that drawing ``records`` changes; with the boxes 2 pixels off, the
    overlap would be at most ``largest_off_overlap``."""
    original, picture = cv2.imread(image_path), cv2.imread(picture_path)
    assert drawing_overlap(original, picture, records) >= 0.95
    if records:
        shifted = [dict(record, box=[value + 2 for value in record['box']]) for record in records]
        assert drawing_overlap(original, picture, shifted) <= largest_off_overlap


def drawing_overlap(original, picture, records, names=('circle', 'square', 'triangle')):
    """Intersection over union of the pixels the JPEG ``picture`` changed and the pixels drawing ``records``
    changes (draw_detections, whose exact geometry the first test checks), both beyond JPEG noise."""
    from evaluate.draw_detections import draw_detections
    expected = draw_detections(original, records, names)
    drawn = np.abs(expected.astype(int) - original).max(axis=2) > 60
    seen = np.abs(picture.astype(int) - original).max(axis=2) > 60
    either = (drawn | seen).sum()
    return (drawn & seen).sum() / either if either else 1.0     # nothing drawn, nothing changed: the same


def test_batches_pad_the_last_one_and_results_do_not_depend_on_the_neighbours(trained):
    import mxnet as mx

    from evaluate.model import load_model
    prefix, jpegs = trained
    model = load_model(prefix, EPOCHS)
    detector = detect_images.Detector(model, [mx.cpu()], 2)
    images = [cv2.imread(path) for path in jpegs]
    in_order = detector(images[:2]) + detector(images[2:])           # [a, b], [c, padding]
    shuffled = detector([images[2], images[0]]) + detector([images[1]])   # [c, a], [b, padding]
    assert len(in_order) == 3 and in_order[0].shape[1] == 6
    for mine, other in zip(in_order, [shuffled[1], shuffled[2], shuffled[0]]):
        np.testing.assert_allclose(mine, other, atol=1e-5)
    for first, second in ((0, 1), (0, 2), (1, 2)):                  # different images, different detections
        assert not np.allclose(in_order[first], in_order[second], atol=1e-3)


# ---------------------------------------------------------------------------------------------- camera
class FakeCapture:
    """cv2.VideoCapture stand-in: gives ``frames`` then reports the end; records release()."""

    def __init__(self, frames, opened=True):
        self.frames, self.opened, self.released = list(frames), opened, False

    def isOpened(self):
        return self.opened

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        self.released = True


@pytest.fixture
def fake_camera(monkeypatch, trained):
    """cv2.VideoCapture replaced: five frames (the three JPEGs, then two again); returns the captures made."""
    frames = [cv2.imread(path) for path in trained[1] + trained[1][:2]]
    made = []

    def open_capture(source):
        made.append((source, FakeCapture(frames, opened=source == 0)))
        return made[-1][1]
    monkeypatch.setattr(cv2, 'VideoCapture', open_capture)
    return made


def test_camera_without_a_display_saves_every_nth_frame(trained, fake_camera, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    out = tmp_path / 'frames'
    result = run_demo(['--camera', '--prefix', trained[0], '--cpu', '--save-every', '2', '--max-frames', '10',
                       '--thresh', '0', '--out', str(out)])
    assert 'epoch %d (last saved)' % EPOCHS in capsys.readouterr().out
    (source, capture), = fake_camera
    assert source == 0 and capture.released
    assert result['frames'] == 5 and [frame['frame'] for frame in result['saved']] == [0, 2, 4]
    assert sorted(os.listdir(out)) == ['detections.json', 'frame_000000_det.jpg', 'frame_000002_det.jpg',
                                       'frame_000004_det.jpg']
    with open(out / 'detections.json') as handle:
        saved = json.load(handle)
    assert saved['camera'] == 0 and [frame['frame'] for frame in saved['frames']] == [0, 2, 4]
    first = cv2.imread(trained[1][0])
    assert cv2.imread(str(out / 'frame_000000_det.jpg')).shape == first.shape
    assert (saved['frames'][0]['width'], saved['frames'][0]['height']) == (first.shape[1], first.shape[0])
    assert all(record['box'][2] <= first.shape[1] for record in saved['frames'][0]['detections'])


def test_camera_with_a_display_shows_frames_until_q(trained, fake_camera, tmp_path, monkeypatch):
    monkeypatch.setenv('DISPLAY', ':0')
    shown, keys, closed = [], iter([-1, -1, ord('q')]), []
    monkeypatch.setattr(cv2, 'imshow', lambda title, image: shown.append(image.shape))
    monkeypatch.setattr(cv2, 'waitKey', lambda delay: next(keys))
    monkeypatch.setattr(cv2, 'destroyAllWindows', lambda: closed.append(True))
    out = tmp_path / 'none'
    result = run_demo(['--camera', '0', '--prefix', trained[0], '--epoch', str(EPOCHS), '--cpu', '--out', str(out)])
    assert result['frames'] == 3 and len(shown) == 3 and closed == [True]      # 'q' after the third frame
    assert shown[0] == cv2.imread(trained[1][0]).shape
    assert fake_camera[0][1].released and result['results_path'] is None and not out.exists()


def test_camera_reads_a_video_file_to_its_end(trained, tmp_path):
    clip = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*'MJPG'), 5, (72, 88))
    for number in range(12):
        writer.write(cv2.resize(cv2.imread(trained[1][number % 3]), (72, 88)))
    writer.release()
    out = tmp_path / 'clip_frames'
    result = run_demo(['--camera', clip, '--no-show', '--save-every', '5', '--prefix', trained[0], '--cpu',
                       '--out', str(out)])
    assert result['frames'] == 12 and [frame['frame'] for frame in result['saved']] == [0, 5, 10]
    assert cv2.imread(str(out / 'frame_000010_det.jpg')).shape == (88, 72, 3)


# ------------------------------------------------------------------------------------- one-line errors
@pytest.mark.parametrize('argv, words', [
    (['--camera', '3'], '--camera 3: OpenCV could not open video device 3'),
    (['--images', 'x.jpg', '--epoch', '7'], 'ssd-0007.params does not exist; epochs saved under this prefix: '
                                            '1, 2, 3, 4, 5'),
    (['--camera', '--show'], '--show needs a display'),
    (['--dir', 'EMPTY'], 'holds no .jpg/.jpeg'),
    (['--images', 'x.jpg', '--thresh', '1.5'], '--thresh 1.5 must lie in [0, 1]'),
    (['--images', 'x.jpg', '--network', 'resnet50'], '--network resnet50 contradicts the checkpoint'),
])
def test_bad_input_is_one_line(trained, fake_camera, tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    (tmp_path / 'empty').mkdir()
    argv = [str(tmp_path / 'empty') if token == 'EMPTY' else token for token in argv]
    with pytest.raises(SystemExit) as stop:
        run_demo(argv + ['--prefix', trained[0], '--cpu', '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.startswith('error: ') and '\n' not in err and words in err, err
    assert all(capture.released for _, capture in fake_camera)


def test_no_readable_image_is_an_error_naming_them(trained, tmp_path, capsys):
    junk = tmp_path / 'junk.jpg'
    junk.write_bytes(b'nope')
    with pytest.raises(SystemExit):
        run_demo(['--images', '%s,%s' % (junk, tmp_path / 'missing.png'), '--prefix', trained[0], '--cpu',
                  '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert 'warning: skipped %s: OpenCV cannot decode it' % junk in err
    assert 'warning: skipped %s: no such file' % (tmp_path / 'missing.png') in err
    assert 'error: none of the 2 images could be read' in err and not (tmp_path / 'out').exists()
