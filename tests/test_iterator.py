"""DetRecordIter labels and data, label-width scanning, batch previews and drawing, on tiny .rec files."""
import os
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from config.schema import DEFAULTS
from dataset.iterator import DetRecordIter, scan_records, shared_label_width
from dataset.lst import flatten_label, format_lst_line
from evaluate.visualize import class_color, draw_boxes, save_image_grid, tile_images
from tools import preview_batches

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE = [[1, 0.1, 0.2, 0.5, 0.6, 0]]
THREE = [[0, 0.1, 0.1, 0.2, 0.2, 0], [2, 0.3, 0.3, 0.6, 0.7, 1], [3, 0.5, 0.55, 0.9, 0.95, 0]]
NONE = np.zeros((0, 6))


def write_rec(path, labels, images=None, ids=None, flat_labels=None):
    """Pack PNG records (pixels exact) into ``path`` (+ .idx); returns ``path``.

    labels : list of (N, 6) object rows; images : list of (H, W, 3) uint8 BGR (default: solid grey 40x60);
    ids : record ids (default 0..); flat_labels : raw IRHeader labels used instead of ``labels``.
    """
    writer = mx.recordio.MXIndexedRecordIO(os.path.splitext(str(path))[0] + '.idx', str(path), 'w')
    count = len(labels if flat_labels is None else flat_labels)
    for number in range(count):
        record_id = number if ids is None else ids[number]
        label = flatten_label(labels[number]) if flat_labels is None else flat_labels[number]
        image = np.full((40, 60, 3), 90, np.uint8) if images is None else images[number]
        header = mx.recordio.IRHeader(0, label, record_id, 0)
        writer.write_idx(record_id, mx.recordio.pack_img(header, image, img_fmt='.png'))
    writer.close()
    return str(path)


def first_batch(path, batch_size, **kwargs):
    iterator = DetRecordIter(path, batch_size, 32, **kwargs)
    return iterator, iterator.next()


def test_labels_come_out_exactly_padded_with_minus_one(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, THREE, NONE])
    iterator, batch = first_batch(rec, 3)
    labels = batch.label[0].asnumpy()
    assert labels.shape == (3, 3, 6) and iterator.provide_label[0].shape == (3, 3, 6)
    np.testing.assert_allclose(labels[0, 0], ONE[0], atol=1e-4)
    np.testing.assert_allclose(labels[1], THREE, atol=1e-4)
    assert np.all(labels[0, 1:] == -1) and np.all(labels[2] == -1)
    assert iterator.provide_label[0].name == 'label' and iterator.provide_data[0].name == 'data'
    assert batch.data[0].shape == (3, 3, 32, 32) and batch.pad == 0


def test_scan_records_counts_objects_per_record(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, THREE, NONE, ONE], ids=[10, 11, 12, 13])
    stats = scan_records(rec)
    assert (stats.num_records, stats.max_objects, stats.max_objects_id) == (4, 3, 11)
    assert (stats.num_objects, stats.num_empty, stats.num_degenerate) == (5, 1, 0)
    assert (stats.header_width, stats.object_width) == (2, 6)
    assert stats.record_ids.tolist() == [10, 11, 12, 13]


def test_explicit_label_width_adds_padding_rows(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, THREE])
    iterator, batch = first_batch(rec, 2, label_pad_width=5)
    labels = batch.label[0].asnumpy()
    assert labels.shape == (2, 5, 6) and iterator.label_width == 5
    np.testing.assert_allclose(labels[1, :3], THREE, atol=1e-4)
    assert np.all(labels[1, 3:] == -1) and np.all(labels[0, 1:] == -1)


def test_too_small_label_width_names_the_needed_width(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, THREE])
    with pytest.raises(UserError, match=r'a\.rec record 1 has 3 objects; set the label width to at least 3'):
        DetRecordIter(rec, 2, 32, label_pad_width=2)


def test_shared_label_width_is_the_max_over_files(tmp_path):
    small = write_rec(tmp_path / 'val.rec', [ONE, ONE, NONE])
    large = write_rec(tmp_path / 'train.rec', [ONE, THREE + ONE])
    assert shared_label_width(small) == 1
    assert shared_label_width(small, large) == shared_label_width(large, small) == 4
    listed = tmp_path / 'six.lst'
    listed.write_text(format_lst_line(0, THREE + THREE, 'a.png') + '\n')
    assert shared_label_width(small, str(listed)) == 6
    width = shared_label_width(small, large)
    shapes = [DetRecordIter(rec, 2, 32, label_pad_width=width).next().label[0].shape for rec in (small, large)]
    assert shapes == [(2, 4, 6), (2, 4, 6)]


def test_five_column_records_get_difficult_zero(tmp_path):
    flat = np.array([2, 5, 4, 0.1, 0.2, 0.3, 0.4, 7, 0.5, 0.5, 0.9, 0.8], np.float32)
    rec = write_rec(tmp_path / 'a.rec', None, flat_labels=[flat])
    labels = first_batch(rec, 1)[1].label[0].asnumpy()
    np.testing.assert_allclose(labels[0], [[4, 0.1, 0.2, 0.3, 0.4, 0], [7, 0.5, 0.5, 0.9, 0.8, 0]], atol=1e-6)


def test_classification_rec_is_a_one_line_user_error(tmp_path):
    rec = write_rec(tmp_path / 'cls.rec', None, flat_labels=[3.0, 1.0])
    with pytest.raises(UserError, match='pack with tools/im2rec.py --pack-label from a detection .lst') as err:
        DetRecordIter(rec, 2, 32)
    assert '\n' not in str(err.value) and 'cls.rec record 0' in str(err.value)
    multi = write_rec(tmp_path / 'multi.rec', None, flat_labels=[np.array([3, 5], np.float32)])
    with pytest.raises(UserError, match='--pack-label'):
        scan_records(multi)


def test_pixel_coordinates_are_rejected(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, [[0, 12, 20, 200, 180, 0]]])
    with pytest.raises(UserError, match=r'a\.rec record 1 has box \[ +12\. +20\. 200\. 180\.\] outside \[0, 1\]; '
                                        'coordinates must be normalized'):
        scan_records(rec)


def test_path_imglist_replaces_the_stored_labels(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, ONE, ONE], ids=[5, 6, 7])
    listed = tmp_path / 'other.lst'
    listed.write_text(''.join(format_lst_line(index, objects, 'img%d.png' % index) + '\n'
                              for index, objects in [(7, THREE), (5, NONE), (6, [[9, 0.2, 0.2, 0.4, 0.3, 1]])]))
    iterator = DetRecordIter(rec, 3, 32, path_imglist=str(listed))
    for _ in range(2):  # the list is read once, at construction; the second epoch still uses it
        labels = iterator.next().label[0].asnumpy()
        assert labels.shape == (3, 3, 6)
        assert np.all(labels[0] == -1)
        np.testing.assert_allclose(labels[1, 0], [9, 0.2, 0.2, 0.4, 0.3, 1], atol=1e-4)
        np.testing.assert_allclose(labels[2], THREE, atol=1e-4)
        iterator.reset()


def test_path_imglist_must_cover_every_record(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, ONE, ONE])
    listed = tmp_path / 'short.lst'
    listed.write_text(format_lst_line(0, ONE, 'a.png') + '\n')
    with pytest.raises(UserError, match='short.lst has no line for record ids 1, 2'):
        DetRecordIter(rec, 3, 32, path_imglist=str(listed))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(UserError, match='record file .*nothere.rec does not exist'):
        DetRecordIter(str(tmp_path / 'nothere.rec'), 2, 32)
    rec = write_rec(tmp_path / 'a.rec', [ONE])
    os.remove(tmp_path / 'a.idx')
    with pytest.raises(UserError, match=r'index file .*a\.idx does not exist'):
        DetRecordIter(rec, 2, 32)


def test_truncated_rec_is_a_user_error(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, ONE])
    with open(rec, 'r+b') as handle:
        handle.truncate(os.path.getsize(rec) - 100)
    with pytest.raises(UserError, match='a.rec is not a readable RecordIO file'):
        scan_records(rec)


def test_undecodable_image_is_a_user_error(tmp_path):
    good = cv2.imencode('.png', np.zeros((20, 20, 3), np.uint8))[1].tobytes()
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'bad.idx'), str(tmp_path / 'bad.rec'), 'w')
    for record_id, image in enumerate([good, b'not an image']):
        writer.write_idx(record_id, mx.recordio.pack(mx.recordio.IRHeader(0, flatten_label(ONE), record_id, 0),
                                                     image))
    writer.close()
    with pytest.raises(UserError, match=r'reading images from .*bad\.rec failed .*decodable image'):
        list(DetRecordIter(str(tmp_path / 'bad.rec'), 2, 32))


def test_data_is_rgb_minus_the_mean(tmp_path):
    blue_green_red = [(10, 20, 200), (250, 128, 0)]
    images = [np.full((30, 50, 3), color, np.uint8) for color in blue_green_red]
    rec = write_rec(tmp_path / 'a.rec', [ONE, ONE], images=images)
    mean = (100.0, 50.0, 25.0)
    data = DetRecordIter(rec, 2, (3, 20, 30), mean_pixels=mean).next().data[0].asnumpy()
    assert data.shape == (2, 3, 20, 30)
    for image, (blue, green, red) in enumerate(blue_green_red):
        expected = np.array([red - 100, green - 50, blue - 25], np.float32)
        np.testing.assert_array_equal(data[image], np.broadcast_to(expected[:, None, None], (3, 20, 30)))


def test_val_preset_reads_every_image_once_per_epoch(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [[[cls, 0.1, 0.1, 0.5, 0.5, 0]] for cls in range(5)])
    iterator = DetRecordIter(rec, 2, 32, preset='val')
    assert iterator.num_records == 5
    for _ in range(3):
        seen, pads = [], []
        for batch in iterator:
            classes = batch.label[0].asnumpy()[:, 0, 0]
            seen += classes[:len(classes) - batch.pad].astype(int).tolist()
            pads.append(batch.pad)
        assert seen == [0, 1, 2, 3, 4] and pads == [0, 0, 1]
        iterator.reset()


def test_ssd_train_preset_shuffles_across_the_whole_file(tmp_path):
    noise = np.random.RandomState(0).randint(0, 256, (128, 128, 3)).astype(np.uint8)
    image = cv2.imencode('.png', noise)[1].tobytes()                     # about 49 kB: 200 records are 10 MB
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'big.idx'), str(tmp_path / 'big.rec'), 'w')
    for record_id in range(200):
        writer.write_idx(record_id, mx.recordio.pack(mx.recordio.IRHeader(0, flatten_label(ONE), record_id, 0),
                                                     image))
    writer.close()
    assert os.path.getsize(tmp_path / 'big.rec') > 9e6
    iterator = DetRecordIter(str(tmp_path / 'big.rec'), 20, 16, preset='ssd_train')
    first_batches = []
    for _ in range(4):
        first_batches.append(sorted(iterator.next().index.tolist()))
        iterator.reset()
    offsets = dict(np.loadtxt(tmp_path / 'big.idx', dtype=np.int64))
    beyond_first_read = {record_id for record_id, offset in offsets.items() if offset >= 8 << 20}
    # MXNet's shuffle alone draws every epoch's first batch from the first 8 MB read of the file
    assert any(beyond_first_read.intersection(batch) for batch in first_batches)
    assert len(set(map(tuple, first_batches))) == 4


def test_bad_arguments_are_user_errors(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE])
    with pytest.raises(UserError, match="unknown iterator parameter 'rand_mirror'; did you mean 'rand_mirror_prob'"):
        DetRecordIter(rec, 1, 32, rand_mirror=0.5)
    with pytest.raises(UserError, match='unknown augmentation preset'):
        DetRecordIter(rec, 1, 32, preset='strong')
    with pytest.raises(UserError, match='data_shape'):
        DetRecordIter(rec, 1, (1, 32, 32))
    with pytest.raises(UserError, match='batch size'):
        DetRecordIter(rec, 0, 32)


def test_module_fit_binds_data_and_label_by_name(tmp_path):
    rec = write_rec(tmp_path / 'a.rec', [ONE, THREE, NONE, ONE, THREE])
    iterator = DetRecordIter(rec, 2, 16, preset='ssd_train')
    data, label = mx.sym.Variable('data'), mx.sym.Variable('label')
    pooled = mx.sym.Flatten(mx.sym.Pooling(data, kernel=(1, 1), global_pool=True, pool_type='avg'))
    prediction = mx.sym.reshape(mx.sym.FullyConnected(pooled, num_hidden=1), shape=(-1,))
    num_objects = mx.sym.sum(mx.sym.slice_axis(label, axis=2, begin=0, end=1) >= 0, axis=(1, 2))
    loss = mx.sym.MakeLoss(mx.sym.mean(mx.sym.square(prediction - num_objects)))
    module = mx.mod.Module(loss, data_names=['data'], label_names=['label'], context=mx.cpu())
    batches = []
    module.fit(iterator, num_epoch=2, optimizer='sgd', optimizer_params={'learning_rate': 1e-6},
               eval_metric=mx.metric.Loss(), batch_end_callback=lambda param: batches.append(param.nbatch))
    assert module.label_shapes[0].shape == (2, 3, 6)
    assert len(batches) >= 4  # 5 images in batches of 2, two epochs (round_batch wraps the last batch)


def test_draw_boxes_outlines_each_box_in_its_class_colour():
    image = np.zeros((100, 200, 3), np.uint8)
    normalized = draw_boxes(image, [[2, 0.1, 0.2, 0.5, 0.6, 0], [-1] * 6], ['a', 'b', 'c'])
    in_pixels = draw_boxes(image, [[2, 20, 20, 100, 60, 0]], ['a', 'b', 'c'], normalized=False)
    np.testing.assert_array_equal(normalized, in_pixels)
    assert tuple(normalized[40, 20]) == class_color(2) == tuple(normalized[60, 60])  # left and bottom edges
    assert tuple(normalized[40, 60]) == (0, 0, 0)                                     # inside stays untouched
    assert np.any(normalized[:20] != 0)                                               # the caption above it
    assert np.all(image == 0)                                                         # the input is not changed
    assert np.array_equal(draw_boxes(image, [[-1] * 6], ['a']), image)                # padding rows are skipped
    scored = draw_boxes(image, [[20, 20, 100, 60]], scores=[0.5], normalized=False)
    assert tuple(scored[40, 20]) == class_color(None) and np.any(scored[:20] != 0)


def test_tile_images_places_each_image_in_its_cell():
    images = [np.full((30, 40, 3), value, np.uint8) for value in (10, 20, 30, 40, 50)]
    grid = tile_images(images, cols=2, gap=2, background=255)
    assert grid.shape == (3 * 30 + 2 * 2, 2 * 40 + 2, 3)
    assert grid[0, 0, 0] == 10 and grid[0, 42, 0] == 20 and grid[32, 0, 0] == 30 and grid[64, 0, 0] == 50
    assert grid[64, 42, 0] == 255 and grid[30, 0, 0] == 255  # an empty cell and a gap


def test_save_image_grid_writes_rgb_as_a_picture(tmp_path):
    red = np.zeros((10, 12, 3), np.uint8)
    red[..., 0] = 255
    path = tmp_path / 'out' / 'grid.png'
    save_image_grid([red, red, red], str(path), cols=3, gap=0)
    written = cv2.imread(str(path))
    assert written.shape == (10, 36, 3) and tuple(written[5, 5]) == (0, 0, 255)  # BGR on disk
    assert os.listdir(tmp_path / 'out') == ['grid.png']
    with pytest.raises(UserError, match='grid.txt must end in one of'):
        save_image_grid([red], str(tmp_path / 'grid.txt'), cols=1)


def test_preview_batches_writes_a_picture_of_the_expected_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '2')  # mxnet is already imported here; nothing to configure
    rec = write_rec(tmp_path / 'train.rec', [ONE, THREE, NONE, ONE, THREE])
    (tmp_path / 'train.classes').write_text('cat\ndog\nbird\nfish\n')
    out = tmp_path / 'demo' / 'batches.png'
    args = preview_batches.parse_args(['--rec', rec, '--preset', 'ssd_train', '--out', str(out),
                                       '--batch-size', '4', '--num-batches', '3', '--data-shape', '64'])
    preview_batches.main(args)
    assert cv2.imread(str(out)).shape == (3 * 64 + 2 * 2, 4 * 64 + 3 * 2, 3)
    assert 'batches.png: 3 batches of 4 images' in capsys.readouterr().out
    assert preview_batches.class_names_for(rec) == ('cat', 'dog', 'bird', 'fish')


def test_preview_batch_images_undo_the_mean():
    data = np.zeros((3, 3, 2, 2), np.float32)
    data[:, 0] = 200 - DEFAULTS.data.mean_pixels[0]
    batch = mx.io.DataBatch(data=[mx.nd.array(data)], pad=1)
    images = preview_batches.batch_images(batch, DEFAULTS.data.mean_pixels)
    assert len(images) == 3 and images[0].shape == (2, 2, 3)
    mean = DEFAULTS.data.mean_pixels
    assert tuple(images[0][0, 0]) == (200, int(round(mean[1])), int(round(mean[2])))


def test_preview_cli_reports_a_missing_rec_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, 'tools/preview_batches.py', '--rec', str(tmp_path / 'none.rec'),
                             '--out', str(tmp_path / 'x.png')], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count('\n') == 0 and 'none.rec does not exist' in result.stderr
    assert 'Traceback' not in result.stderr


def test_a_file_smaller_than_one_batch_gives_one_padded_batch(tmp_path):
    labels = [np.array([[1, 0.1, 0.2, 0.5, 0.6, 0]], np.float32), np.array([[2, 0.3, 0.3, 0.9, 0.8, 1]], np.float32)]
    rec = write_rec(tmp_path / 'two.rec', labels)
    iterator = DetRecordIter(rec, 5, 32, preset='val')
    batches = list(iterator)
    assert len(batches) == 1 and batches[0].pad == 3
    label = batches[0].label[0].asnumpy()                      # (5, 1, 6)
    np.testing.assert_allclose(label[:2, 0], np.concatenate(labels), atol=1e-6)
    assert np.all(label[2:] == -1)                               # filler images: padding rows only
