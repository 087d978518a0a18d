"""tools/prepare_dataset.py end to end on tiny hand-made VOC, COCO and YOLO sets.

Expected label rows are typed by hand from the annotations below; ``format_lst_line`` only formats them.
"""
import importlib
import json
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from config.errors import UserError
from dataset.lst import format_lst_line, read_lst, unflatten_label
from tests.test_voc_parser import annotation_xml, object_xml, write_voc
from tools.prepare_dataset import main, parse_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAT, DOG, PERSON = 7, 11, 14  # indices in the 20 VOC classes

# VOC 2007 trainval: two annotated images and one without objects; VOC 2012 trainval: one image.
VOC2007 = {
    '000001': (annotation_xml([object_xml('dog', (21, 11, 120, 61)),
                               object_xml('person', (1, 1, 101, 51), difficult='1')], size=(200, 100)), (200, 100)),
    '000002': (annotation_xml([object_xml('cat', ('17', '9.5', '97', '49'))], size=(160, 80)), (160, 80)),
    '000003': (annotation_xml([], size=(120, 90)), (120, 90)),
}
VOC2012 = {'2012_000001': (annotation_xml([object_xml('person', (11, 21, 61, 81))], size=(100, 100)), (100, 100))}
# (x - 1) / W, (y - 1) / H, worked out by hand
EXPECTED_2007 = [
    (0, [[DOG, 0.1, 0.1, 0.595, 0.6, 0], [PERSON, 0, 0, 0.5, 0.5, 1]], 'VOC2007/JPEGImages/000001.jpg'),
    (1, [[CAT, 0.1, 0.10625, 0.6, 0.6, 0]], 'VOC2007/JPEGImages/000002.jpg'),
    (2, [], 'VOC2007/JPEGImages/000003.jpg'),
]
EXPECTED_2012 = [(3, [[PERSON, 0.1, 0.2, 0.6, 0.8, 0]], 'VOC2012/JPEGImages/2012_000001.jpg')]


@pytest.fixture(autouse=True)
def fixed_threads(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / 'VOCdevkit'
    write_voc(root, VOC2007, year=2007)
    write_voc(root, VOC2012, year=2012)
    return str(root)


def run(*argv):
    return main(parse_args([str(a) for a in argv]))


def lst_lines(path):
    with open(path) as handle:
        return handle.read().splitlines()


def expected_lines(entries):
    return [format_lst_line(index, rows, path) for index, rows, path in entries]


def im2rec_or_skip():
    try:
        module = importlib.import_module('tools.im2rec')
    except ImportError:
        pytest.skip('tools/im2rec.py (another helper) does not exist yet; packing untested until it does')
    if not hasattr(module, 'pack_records'):
        pytest.skip('tools/im2rec.py has no pack_records yet')
    return module


@pytest.fixture
def fake_packer(monkeypatch):
    """Replaces tools.im2rec by a recorder so that flags reaching pack_records can be checked."""
    calls = []
    module = types.ModuleType('tools.im2rec')

    def pack_records(lst_path, root, **kwargs):
        calls.append(dict(lst_path=lst_path, root=root, **kwargs))
        return dict(images=3, bytes=0, skipped=0, seconds=0.0)

    module.pack_records = pack_records
    monkeypatch.setitem(sys.modules, 'tools.im2rec', module)
    return calls


def test_voc_no_shuffle_writes_exact_lines_and_classes(voc_root, tmp_path):
    target = tmp_path / 'data' / 'train.lst'
    imdb = run('--dataset', 'pascal', '--year', '2007', '--set', 'trainval', '--root', voc_root,
               '--target', target, '--no-shuffle', '--no-pack')
    assert lst_lines(target) == expected_lines(EXPECTED_2007)
    with open(tmp_path / 'data' / 'train.classes') as handle:
        assert handle.read().split('\n')[:3] == ['aeroplane', 'bicycle', 'bird']
    assert imdb.class_counts()['person'] == 1 and imdb.stats['images with no objects'] == 1


def test_years_join_in_order(voc_root, tmp_path):
    target = tmp_path / 'trainval.lst'
    run('--dataset', 'pascal', '--year', '2007,2012', '--set', 'trainval', '--root', voc_root,
        '--target', target, '--no-shuffle', '--no-pack')
    assert lst_lines(target) == expected_lines(EXPECTED_2007 + EXPECTED_2012)


def test_shuffle_keeps_index_to_image_pairs_and_follows_the_seed(voc_root, tmp_path):
    orders = []
    for seed in range(6):
        target = tmp_path / ('seed%d.lst' % seed)
        run('--dataset', 'pascal', '--year', '2007,2012', '--set', 'trainval', '--root', voc_root,
            '--target', target, '--shuffle-seed', seed, '--no-pack')
        lines = lst_lines(target)
        assert sorted(lines, key=lambda line: int(line.split('\t')[0])) == expected_lines(EXPECTED_2007 + EXPECTED_2012)
        orders.append([int(line.split('\t')[0]) for line in lines])
    run('--dataset', 'pascal', '--year', '2007,2012', '--set', 'trainval', '--root', voc_root,
        '--target', tmp_path / 'again.lst', '--shuffle-seed', 5, '--no-pack')
    assert [int(line.split('\t')[0]) for line in lst_lines(tmp_path / 'again.lst')] == orders[5]
    assert any(order != [0, 1, 2, 3] for order in orders)


def test_exclude_difficult_and_class_names_reach_the_parser(voc_root, tmp_path):
    target = tmp_path / 'persons.lst'
    run('--dataset', 'pascal', '--year', '2007', '--set', 'trainval', '--root', voc_root, '--target', target,
        '--no-shuffle', '--no-pack', '--class-names', 'person,dog', '--exclude-difficult')
    assert lst_lines(target) == expected_lines([
        (0, [[1, 0.1, 0.1, 0.595, 0.6, 0]], 'VOC2007/JPEGImages/000001.jpg'),
        (1, [], 'VOC2007/JPEGImages/000002.jpg'),
        (2, [], 'VOC2007/JPEGImages/000003.jpg')])
    with open(tmp_path / 'persons.classes') as handle:
        assert handle.read() == 'person\ndog\n'


def test_pack_flags_reach_pack_records(voc_root, tmp_path, fake_packer):
    target = tmp_path / 'train.lst'
    run('--dataset', 'pascal', '--year', '2007', '--set', 'trainval', '--root', voc_root, '--target', target,
        '--num-thread', 3, '--quality', 80, '--pass-through')
    assert len(fake_packer) == 1
    call = fake_packer[0]
    assert (call['lst_path'], call['root']) == (str(target), voc_root)
    assert (call['num_thread'], call['quality'], call['pass_through']) == (3, 80, True)


def test_pack_flags_without_packing_are_rejected(voc_root, tmp_path):
    with pytest.raises(UserError, match='only affect packing'):
        run('--dataset', 'pascal', '--year', '2007', '--set', 'trainval', '--root', voc_root,
            '--target', tmp_path / 'x.lst', '--no-pack', '--quality', 80)


def test_packs_rec_and_idx_that_read_back_to_the_lst_labels(voc_root, tmp_path):
    im2rec_or_skip()
    import mxnet as mx
    target = tmp_path / 'train.lst'
    run('--dataset', 'pascal', '--year', '2007,2012', '--set', 'trainval', '--root', voc_root, '--target', target,
        '--num-thread', 1)
    record = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'train.idx'), str(tmp_path / 'train.rec'), 'r')
    sizes = {0: (100, 200), 1: (80, 160), 2: (90, 120), 3: (100, 100)}
    for index, rows, _ in EXPECTED_2007 + EXPECTED_2012:
        header, image_bytes = mx.recordio.unpack(record.read_idx(index))
        np.testing.assert_allclose(unflatten_label(header.label), np.reshape(rows, (-1, 6)), atol=1e-6)
        assert cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_COLOR).shape[:2] == sizes[index]
    record.close()


def write_coco(root):
    for name, (width, height) in (('a.jpg', (200, 100)), ('b.jpg', (100, 50))):
        os.makedirs(os.path.join(root, 'val'), exist_ok=True)
        cv2.imwrite(os.path.join(root, 'val', name), np.zeros((height, width, 3), np.uint8))
    data = {
        'images': [{'id': 7, 'file_name': 'a.jpg', 'width': 200, 'height': 100},
                   {'id': 9, 'file_name': 'b.jpg', 'width': 100, 'height': 50}],
        'categories': [{'id': 3, 'name': 'dog'}, {'id': 1, 'name': 'cat'}],
        'annotations': [{'id': 1, 'image_id': 7, 'category_id': 3, 'bbox': [20, 10, 100, 50], 'iscrowd': 0},
                        {'id': 2, 'image_id': 7, 'category_id': 1, 'bbox': [0, 0, 50, 25], 'iscrowd': 1},
                        {'id': 3, 'image_id': 7, 'category_id': 1, 'bbox': [150, 60, 80, 60], 'iscrowd': 0}],
    }
    os.makedirs(os.path.join(root, 'annotations'))
    with open(os.path.join(root, 'annotations', 'instances_val.json'), 'w') as handle:
        json.dump(data, handle)


def test_coco_boxes_categories_and_crowd(tmp_path):
    root = tmp_path / 'coco'
    write_coco(str(root))
    target = tmp_path / 'val.lst'
    run('--dataset', 'coco', '--set', 'val', '--root', root, '--target', target, '--no-shuffle', '--no-pack')
    # cat is category 1 -> class 0, dog is category 3 -> class 1; x / 200, y / 100, (x + w) / 200, (y + h) / 100;
    # the third box [150, 60, 230, 120] crosses the corner and is clipped to [0.75, 0.6, 1, 1].
    assert lst_lines(target) == expected_lines([
        (0, [[1, 0.1, 0.1, 0.6, 0.6, 0], [0, 0, 0, 0.25, 0.25, 1], [0, 0.75, 0.6, 1, 1, 0]], 'val/a.jpg'),
        (1, [], 'val/b.jpg')])
    with open(tmp_path / 'val.classes') as handle:
        assert handle.read() == 'cat\ndog\n'
    run('--dataset', 'coco', '--set', 'val', '--root', root, '--target', target, '--no-shuffle', '--no-pack',
        '--class-names', 'dog', '--exclude-difficult')
    assert lst_lines(target) == expected_lines([(0, [[0, 0.1, 0.1, 0.6, 0.6, 0]], 'val/a.jpg'), (1, [], 'val/b.jpg')])


def write_yolo(root):
    for name in ('a.jpg', 'b.png'):
        os.makedirs(os.path.join(root, 'images', 'train'), exist_ok=True)
        cv2.imwrite(os.path.join(root, 'images', 'train', name), np.zeros((40, 60, 3), np.uint8))
    os.makedirs(os.path.join(root, 'labels', 'train'))
    with open(os.path.join(root, 'labels', 'train', 'a.txt'), 'w') as handle:
        handle.write('1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.4 0.4\n')


def test_yolo_centre_boxes_become_clipped_corners(tmp_path):
    root = tmp_path / 'yolo'
    write_yolo(str(root))
    target = tmp_path / 'train.lst'
    run('--dataset', 'yolo', '--set', 'train', '--root', root, '--target', target, '--no-shuffle', '--no-pack',
        '--class-names', 'a,b')
    # 0.5 -+ 0.1 and 0.5 -+ 0.2; the second box 0.1 -+ 0.2 is clipped at 0. b.png has no label file.
    assert lst_lines(target) == expected_lines([
        (0, [[1, 0.4, 0.3, 0.6, 0.7, 0], [0, 0, 0, 0.3, 0.3, 0]], 'images/train/a.jpg'),
        (1, [], 'images/train/b.png')])
    with open(root / 'train.txt', 'w') as handle:
        handle.write('./images/train/a.jpg\n')
    run('--dataset', 'yolo', '--set', 'train', '--root', root, '--target', target, '--no-shuffle', '--no-pack',
        '--class-names', 'a,b')
    assert [entry[2] for entry in read_lst(str(target))] == ['images/train/a.jpg']


def test_missing_root_exits_2_with_one_line(tmp_path):
    missing = tmp_path / 'no_such_dir'
    result = subprocess.run([sys.executable, 'tools/prepare_dataset.py', '--dataset', 'pascal', '--year', '2007',
                             '--set', 'trainval', '--root', str(missing), '--target', str(tmp_path / 'x.lst')],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert 'Traceback' not in result.stderr and str(missing) in result.stderr
    assert not os.path.exists(tmp_path / 'x.lst')


def test_boxes_agree_with_gluoncv_voc_reader(voc_root):
    gluoncv_data = pytest.importorskip('gluoncv.data')
    from dataset.pascal_voc import load_pascal_voc
    ours = load_pascal_voc(voc_root, 2007, 'trainval')
    theirs = gluoncv_data.VOCDetection(root=voc_root, splits=[(2007, 'trainval')])
    assert len(theirs) == ours.num_images == 3
    for index, objects in enumerate(ours.labels):
        image, label = theirs[index]
        height, width = image.shape[:2]
        label = label.reshape(-1, 6)
        assert len(label) == len(objects)
        # within 1 pixel is required; both readers subtract 1 from VOC's 1-based pixels, so they agree exactly
        np.testing.assert_allclose(objects[:, 1:5] * [width, height, width, height], label[:, :4], atol=1e-3)
        np.testing.assert_array_equal(objects[:, 0], label[:, 4])
        np.testing.assert_array_equal(objects[:, 5], label[:, 5])


def test_coco_missing_image_and_malformed_entry_name_the_file(tmp_path):
    from dataset.coco import load_coco
    root = str(tmp_path / 'coco')
    write_coco(root)
    os.remove(os.path.join(root, 'val', 'b.jpg'))
    with pytest.raises(UserError, match=r'val/b\.jpg does not exist'):
        load_coco(root, 'val')
    path = os.path.join(root, 'annotations', 'instances_val.json')
    with open(path) as handle:
        data = json.load(handle)
    del data['annotations'][0]['bbox']
    data['images'].pop()
    with open(path, 'w') as handle:
        json.dump(data, handle)
    with pytest.raises(UserError, match=r"instances_val\.json has a malformed entry \(KeyError: 'bbox'\)"):
        load_coco(root, 'val')


def test_yolo_bad_line_names_file_and_line_and_unknown_ids_are_counted(tmp_path):
    from dataset.yolo import load_yolo
    root = str(tmp_path / 'yolo')
    write_yolo(root)
    with open(os.path.join(root, 'labels', 'train', 'b.txt'), 'w') as handle:
        handle.write('5 0.5 0.5 0.2 0.2\n')
    imdb = load_yolo(root, 'train', 'a,b')
    assert [len(objects) for objects in imdb.labels] == [2, 0]
    assert imdb.stats['objects with a class id outside the class list skipped'] == 1
    with open(os.path.join(root, 'labels', 'train', 'b.txt'), 'w') as handle:
        handle.write('1 0.5 0.5 0.2 0.2\n1 0.5 0.5\n')
    with pytest.raises(UserError, match=r'b\.txt line 2 is .1 0\.5 0\.5.; expected "class_id cx cy w h"'):
        load_yolo(root, 'train', 'a,b')


@pytest.mark.parametrize('parts', [[], ['--num-parts', '2']])
def test_progress_callable_hears_every_packed_image_and_listed_the_count(voc_root, tmp_path, capsys, parts):
    im2rec_or_skip()
    listed, packed = [], []
    target = tmp_path / 'train.lst'
    argv = ['--dataset', 'pascal', '--year', '2007,2012', '--set', 'trainval', '--root', voc_root,
            '--target', str(target), '--num-thread', '1'] + parts
    main(parse_args(argv), progress=packed.append, listed=listed.append)
    assert listed == [4] and sum(packed) == 4
    assert '%|' not in capsys.readouterr().err          # no tqdm bars when a callable hears the progress
    if parts:
        packed.clear()
        main(parse_args(argv), progress=packed.append, listed=listed.append)   # kept parts report at once
        assert sum(packed) == 4 and capsys.readouterr().out.count('is complete, kept') == 2
