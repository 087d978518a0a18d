"""bench/torch_peer.py and the torch-free helpers of bench/ssdlite_peer.py, without torch: the scores of
hand-made detection files on a tiny VOC folder, ground truth equal to what prepare_dataset packs, and the
peer's XML reading and detection rows."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from bench import ssdlite_peer, torch_peer
from dataset.lst import read_lst
from tools import prepare_dataset
from tools import synthetic_voc as sv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ('circle', 'square')
# Image id -> (width, height, [(class name, 1-based inclusive VOC box, difficult)]).
IMAGES = {
    'a': (100, 50, [('circle', (11, 6, 30, 25), 0), ('circle', (51, 26, 70, 45), 0),
                    ('square', (71, 1, 100, 20), 0)]),
    'b': (100, 50, [('circle', (1, 1, 20, 20), 1), ('square', (41, 11, 60, 30), 0)]),
    'c': (100, 50, []),
}
# The same boxes normalized by hand, (x - 1) / W and (y - 1) / H: [cls, xmin, ymin, xmax, ymax].
NORMALIZED = {
    'a': [[0, 0.10, 0.10, 0.29, 0.48], [0, 0.50, 0.50, 0.69, 0.88], [1, 0.70, 0.00, 0.99, 0.38]],
    'b': [[0, 0.00, 0.00, 0.19, 0.38], [1, 0.40, 0.20, 0.59, 0.58]],
    'c': [],
}


def annotation(width, height, objects):
    """VOC XML text of one image."""
    root = ET.Element('annotation')
    size = ET.SubElement(root, 'size')
    for tag, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, tag).text = str(value)
    for name, box, difficult in objects:
        node = ET.SubElement(root, 'object')
        ET.SubElement(node, 'name').text = name
        ET.SubElement(node, 'difficult').text = str(difficult)
        bndbox = ET.SubElement(node, 'bndbox')
        for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bndbox, tag).text = str(value)
    return ET.tostring(root, encoding='unicode')


def write_voc(root, images, classes=CLASSES, split='test'):
    """A VOC2007 folder under ``root`` with these annotations (the JPEGs are placeholders); returns it."""
    voc_dir = os.path.join(str(root), 'VOC2007')
    for sub in ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    for image_id, (width, height, objects) in images.items():
        with open(os.path.join(voc_dir, 'Annotations', image_id + '.xml'), 'w') as handle:
            handle.write(annotation(width, height, objects))
        with open(os.path.join(voc_dir, 'JPEGImages', image_id + '.jpg'), 'wb') as handle:
            handle.write(b'not decoded by the reader')
    with open(os.path.join(voc_dir, 'ImageSets', 'Main', split + '.txt'), 'w') as handle:
        handle.write(''.join(image_id + '\n' for image_id in images))
    with open(os.path.join(voc_dir, 'classes.txt'), 'w') as handle:
        handle.write(''.join(name + '\n' for name in classes))
    return voc_dir


@pytest.fixture(scope='module')
def voc_dir(tmp_path_factory):
    return write_voc(tmp_path_factory.mktemp('voc'), IMAGES)


def detections_found(score_of):
    """Detections equal to the ground truth boxes of :data:`NORMALIZED`, those with a score in ``score_of``.

    ``score_of`` maps ``(image id, object position)`` to a score; objects not in it are not detected.
    """
    rows = {image_id: [] for image_id in NORMALIZED}
    for (image_id, position), score in score_of.items():
        cls, *box = NORMALIZED[image_id][position]
        rows[image_id].append([cls, score] + box)
    return rows


def record(detections):
    """A detection file's content as ssdlite_peer.py writes it."""
    clock = dict(training_seconds=60.0, iterations=10, images_seen=160)
    return ssdlite_peer.detection_record(1, clock, list(CLASSES), detections)


ALL_OBJECTS = {('a', 0): 0.9, ('a', 1): 0.8, ('a', 2): 0.9, ('b', 0): 0.7, ('b', 1): 0.8}


# ------------------------------------------------------------------------------------------- scoring
def test_ground_truth_is_voc_minus_one_over_the_size(voc_dir):
    classes, labels = torch_peer.ground_truth(voc_dir, 'test')
    assert classes == CLASSES
    assert list(labels) == ['a', 'b', 'c']
    for image_id, expected in NORMALIZED.items():
        difficult = [obj[2] for obj in IMAGES[image_id][2]]
        assert labels[image_id].dtype == np.float32 and labels[image_id].shape == (len(expected), 6)
        np.testing.assert_array_equal(labels[image_id][:, :5], np.float32(expected).reshape(-1, 5))
        np.testing.assert_array_equal(labels[image_id][:, 5], difficult)


def test_detections_equal_to_the_ground_truth_score_one(voc_dir):
    assert torch_peer.score_detections(record(detections_found(ALL_OBJECTS)), voc_dir) == 1.0


def test_half_the_circles_found(voc_dir):
    """circle: 2 positives (b's is difficult), 1 found -> precision 1 up to recall 0.5: 6 of 11 points;
    square: both found -> 1. The difficult circle's detection is ignored."""
    found = {('a', 0): 0.9, ('b', 0): 0.95, ('a', 2): 0.9, ('b', 1): 0.8}
    assert torch_peer.score_detections(record(detections_found(found)), voc_dir) == pytest.approx(
        (6 / 11 + 1) / 2, abs=1e-12)


def test_false_positive_ranked_first(voc_dir):
    """square: a false positive in the image without objects scores 0.99, then both squares: precision
    0, 1/2, 2/3 at recall 0, 1/2, 1 -> 2/3 at every recall point; circle 1 -> mAP 5/6."""
    detections = detections_found(ALL_OBJECTS)
    detections['c'].append([1, 0.99, 0.1, 0.1, 0.3, 0.3])
    assert torch_peer.score_detections(record(detections), voc_dir) == pytest.approx(5 / 6, abs=1e-12)


def test_a_shifted_box_below_half_overlap_misses(voc_dir):
    """a's square moved off its box (IoU 0) and ranked first: a false positive and a missed object. square:
    precision 0 then 1/2 at recall 0 then 1/2 -> 1/2 at the 6 points up to recall 0.5: 3/11; circle 1."""
    detections = detections_found(ALL_OBJECTS)
    detections['a'][2][2:6] = [0.99, 0.0, 1.0, 0.38]          # xmin 0.99: overlaps the truth by nothing
    detections['a'][2][1] = 0.95                               # ranked above b's square (0.8)
    assert torch_peer.score_detections(record(detections), voc_dir) == pytest.approx(
        (1 + 3 / 11) / 2, abs=1e-12)


def test_a_written_file_scores_like_its_content(voc_dir, tmp_path):
    path = os.path.join(str(tmp_path), ssdlite_peer.detections_filename(1))
    ssdlite_peer.write_json(path, record(detections_found(ALL_OBJECTS)))
    assert os.listdir(str(tmp_path)) == ['detections-1min.json']
    assert torch_peer.score_detections(path, voc_dir) == 1.0


def test_a_missing_image_is_an_error(voc_dir):
    detections = detections_found(ALL_OBJECTS)
    del detections['c']
    with pytest.raises(ValueError, match='1 images of the split have no entry'):
        torch_peer.score_detections(record(detections), voc_dir)


def test_ground_truth_is_what_prepare_dataset_packs(tmp_path):
    """On generated images (truncated and difficult objects included), the scorer's labels are bit for bit
    those of the validation .lst the benchmark packs for our trainer."""
    root = os.path.join(str(tmp_path), 'VOCdevkit')
    sv.main(sv.parse_args(['--root', root, '--num-trainval', '0', '--num-test', '6', '--min-side', '96',
                           '--max-side', '160', '--num-thread', '1']))
    target = os.path.join(str(tmp_path), 'val.lst')
    prepare_dataset.main(prepare_dataset.parse_args(['--dataset', 'pascal', '--year', '2007', '--set', 'test',
                                                     '--root', root, '--target', target, '--no-shuffle',
                                                     '--no-pack']), progress=False)
    packed = {os.path.splitext(os.path.basename(path))[0]: objects for _, objects, path in read_lst(target)}
    _, labels = torch_peer.ground_truth(os.path.join(root, 'VOC2007'), 'test')
    assert list(labels) == list(packed) and len(labels) == 6
    for image_id, objects in packed.items():
        np.testing.assert_array_equal(labels[image_id], objects)


# ------------------------------------------------------------------------------------ the peer's side
def test_parse_annotation_makes_voc_boxes_zero_based(tmp_path):
    """1-based inclusive -> minus 1; names matched case- and space-blind; unknown classes, boxes without
    width and what lies beyond the image handled as the project's reader does."""
    objects = [(' Circle ', (11, 6, 30, 25), 1), ('square', (71, 1, 105, 20), 0),
               ('triangle', (1, 1, 10, 10), 0), ('square', (5, 5, 5, 9), 0)]
    path = os.path.join(str(tmp_path), 'x.xml')
    with open(path, 'w') as handle:
        handle.write(annotation(100, 50, objects))
    target = ssdlite_peer.parse_annotation(path, CLASSES)
    assert target == dict(width=100, height=50, boxes=[[10.0, 5.0, 29.0, 24.0], [70.0, 0.0, 100.0, 19.0]],
                          labels=[1, 2], difficult=[1, 0])


def test_normalized_detections_shift_labels_and_divide_by_the_size():
    rows = ssdlite_peer.normalized_detections([[10.0, 5.0, 29.0, 24.0]], [0.8765432], [2], 100, 50)
    assert rows == [[1, 0.876543, 0.1, 0.1, 0.29, 0.48]]


def test_split_and_class_files_are_read_in_order(voc_dir):
    assert ssdlite_peer.read_classes(voc_dir) == list(CLASSES)
    assert ssdlite_peer.read_image_set(voc_dir, 'test') == ['a', 'b', 'c']


def test_warmup_goes_from_a_thousandth_to_one():
    assert [ssdlite_peer.warmup_factor(i, 200) for i in (0, 100, 200, 5000)] == pytest.approx([0.001, 0.5005, 1, 1])


def test_marks_name_their_files():
    assert ssdlite_peer.detections_filename(3) == 'detections-3min.json'
    assert ssdlite_peer.detections_filename(0.3) == 'detections-0.3min.json'
    assert ssdlite_peer.comma_floats('0.3, 0.6') == [0.3, 0.6]


def test_mark_files_come_from_progress_json(tmp_path):
    marks = [dict(mark_minutes=0.3, path='/x/detections-0.3min.json'),
             dict(mark_minutes=0.6, path='/x/detections-0.6min.json')]
    with open(os.path.join(str(tmp_path), 'progress.json'), 'w') as handle:
        json.dump(dict(marks=marks), handle)
    assert torch_peer.mark_files(str(tmp_path), [0.3, 0.6]) == {0.3: '/x/detections-0.3min.json',
                                                                0.6: '/x/detections-0.6min.json'}
    with pytest.raises(RuntimeError, match=r'no detections for marks \[1.0\]'):
        torch_peer.mark_files(str(tmp_path), [0.3, 1.0])


def test_peer_command_passes_every_flag():
    command = torch_peer.peer_command('/venv/python', 'D/VOC2007', 'OUT', [3, 6.5], threads=1, batch_size=8,
                                      lr=0.01, warmup_iters=50, seed=4)
    assert command == ['/venv/python', torch_peer.PEER_SCRIPT, '--voc-dir', 'D/VOC2007', '--out-dir', 'OUT',
                       '--marks', '3,6.5', '--threads', '1', '--batch-size', '8', '--lr', '0.01',
                       '--warmup-iters', '50', '--seed', '4']
    assert ssdlite_peer.parse_args(command[2:]).marks == [3.0, 6.5]


def test_peer_script_imports_neither_torch_nor_the_project():
    code = ('import sys; sys.path.insert(0, "bench"); import ssdlite_peer; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("torch", "torchvision", "mxnet", "config", "dataset", "evaluate")))')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == '[]'
