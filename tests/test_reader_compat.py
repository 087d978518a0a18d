"""A .rec packed by MXNet's own bundled tools/im2rec.py reads correctly through the project's DetRecordIter,
including an image without objects (MXNet's tool stores a bare ``[2, 6]`` label for it, which the C++
iterator alone cannot read)."""
import shutil

import cv2
import numpy as np

from dataset.iterator import DetRecordIter, scan_records
from dataset.lst import format_lst_line
from tests.test_im2rec import assert_labels_match, data, run_mxnet_im2rec  # noqa: F401  (data is a fixture)

EMPTY_INDEX = 99


def add_image_without_objects(data):
    """Append a line with no objects (a plain grey 40x30 JPEG) to ``data.lst``."""
    cv2.imwrite('%s/images/empty.jpg' % data.root, np.full((30, 40, 3), 128, np.uint8))
    with open(data.lst, 'a') as handle:
        handle.write(format_lst_line(EMPTY_INDEX, np.zeros((0, 6)), 'images/empty.jpg') + '\n')


def read_all_labels(iterator):
    """``{record id: (label_width, 6) rows}`` over one epoch."""
    labels = {}
    for batch in iterator:
        rows = batch.label[0].asnumpy()
        for position, index in enumerate(batch.index[:iterator.batch_size - batch.pad]):
            labels[int(index)] = rows[position]
    return labels


def test_det_record_iter_reads_a_rec_packed_by_mxnet_im2rec(data, tmp_path):
    add_image_without_objects(data)
    prefix = run_mxnet_im2rec(data, tmp_path / 'mxnet')
    stats = scan_records(prefix + '.rec')
    assert (stats.num_records, stats.max_objects, stats.num_empty, stats.num_bare) == (7, 2, 1, 1)

    iterator = DetRecordIter(prefix + '.rec', 4, 64, preset='val')
    assert iterator.provide_label[0].shape == (4, 2, 6)
    labels = read_all_labels(iterator)
    assert sorted(labels) == sorted(data.order + [EMPTY_INDEX])
    assert np.all(labels[EMPTY_INDEX] == -1)
    for index in data.order:
        objects = data.entries[index][0]
        assert_labels_match(data, index, labels[index][:len(objects)])
        assert np.all(labels[index][len(objects):] == -1)


def test_mxnet_packed_rec_shares_its_label_width_with_ours(data, tmp_path):
    from dataset.iterator import shared_label_width
    from tools.im2rec import pack_records

    prefix = run_mxnet_im2rec(data, tmp_path / 'mxnet')
    shutil.copyfile(data.lst, tmp_path / 'ours.lst')
    pack_records(str(tmp_path / 'ours.lst'), data.root, progress=False)
    assert shared_label_width(prefix + '.rec', str(tmp_path / 'ours.rec')) == 2
