"""Several ``.rec`` files read as one set (a parts manifest, a glob, a comma-separated list): every image once
per epoch in full batches, and a worker's share (``num_parts``/``part_index``) exactly as MXNet's reader splits
it, so that every worker can know every worker's image count."""
import collections
import json
import os
import shutil

import numpy as np
import pytest

from config.errors import UserError
from dataset.iterator import DetRecordIter
from dataset.record_set import class_names_for, resolve_inputs, worker_shares
from tests.test_train import BATCH, make_dataset, tiny_run
from tools import prepare_dataset

NUM_IMAGES, PARTS = 40, 4


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    """The same shuffled list packed whole (``train.rec``) and in 4 parts (``parts/train.json``)."""
    root = tmp_path_factory.mktemp('record_set')
    whole, _ = make_dataset(root, NUM_IMAGES, 2)
    target = str(root / 'parts' / 'train.lst')
    prepare_dataset.main(prepare_dataset.parse_args([
        '--dataset', 'pascal', '--year', '2007', '--set', 'trainval', '--root', str(root / 'VOC'), '--target', target,
        '--num-thread', '1', '--num-parts', str(PARTS)]))
    return whole, str(root / 'parts' / 'train.json'), str(root / 'parts')


def read_all(spec, batch_size=BATCH, **kwargs):
    """Every image's label rows of one epoch as a Counter of tuples, and each batch's pad."""
    iterator = DetRecordIter(spec, batch_size, 64, preset='val', preprocess_threads=1, **kwargs)
    images, pads = collections.Counter(), []
    for batch in iterator:
        labels = batch.label[0].asnumpy()
        for rows in labels[:batch_size - batch.pad]:
            images[tuple(np.round(rows[rows[:, 0] >= 0], 4).ravel())] += 1
        pads.append(batch.pad)
    return iterator, images, pads


def test_a_set_reads_every_image_once_in_full_batches(sets):
    whole, manifest, folder = sets
    _, expected, whole_pads = read_all(whole)
    assert sum(expected.values()) == NUM_IMAGES and whole_pads == [0] * (NUM_IMAGES // BATCH)
    parts = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith('.rec'))
    assert len(parts) == PARTS
    for spec in (manifest, os.path.join(folder, 'train-*.rec'), ','.join(parts), parts):
        iterator, images, pads = read_all(spec, batch_size=7)
        assert iterator.num_records == NUM_IMAGES and [part.rec for part in iterator.parts] == parts
        assert images == expected
        assert pads == [0] * 5 + [7 * 6 - NUM_IMAGES]     # batches run across the files: only the last is partial


@pytest.mark.parametrize('workers', [2, 3, 5])
def test_worker_shares_are_what_mxnet_reads_and_cover_the_set_once(sets, workers):
    whole, manifest, _ = sets
    _, expected, _ = read_all(whole)
    predicted = worker_shares(resolve_inputs(manifest), workers)
    seen = collections.Counter()
    for rank in range(workers):
        iterator, images, _ = read_all(manifest, batch_size=4, num_parts=workers, part_index=rank)
        assert sum(images.values()) == predicted[rank] == iterator.num_records
        assert iterator.worker_records.tolist() == predicted.tolist()
        seen.update(images)
    assert seen == expected and predicted.sum() == NUM_IMAGES
    assert predicted.max() - predicted.min() <= 3          # a split by bytes: nearly even for similar images


def test_one_file_splits_among_workers_as_mxnet_splits_it(sets):
    whole = sets[0]
    predicted = worker_shares(resolve_inputs(whole), 3)
    counted = [sum(read_all(whole, batch_size=4, num_parts=3, part_index=rank)[1].values()) for rank in range(3)]
    assert counted == predicted.tolist() and sum(counted) == NUM_IMAGES


def test_worker_shares_by_hand(tmp_path):
    """Two files of 40 and 24 bytes, records starting at 0, 16, 28 | 0, 12 (64 bytes joined); 3 workers: step
    ceil(64 / 3) = 22 rounded up to 24, ranges [0, 24) [24, 48) [48, 64) hold starts 0, 16 | 28, 40 | 52."""
    for name, size, offsets in (('a', 40, (0, 16, 28)), ('b', 24, (0, 12))):
        (tmp_path / (name + '.rec')).write_bytes(b'\0' * size)
        (tmp_path / (name + '.idx')).write_text(''.join('%d\t%d\n' % (key, offset) for key, offset
                                                        in enumerate(offsets)))
    parts = resolve_inputs([str(tmp_path / 'a.rec'), str(tmp_path / 'b.rec')])
    assert worker_shares(parts, 3).tolist() == [2, 2, 1]
    assert worker_shares(parts, 1).tolist() == [5]


def test_class_names_come_from_the_set(sets):
    _, manifest, folder = sets
    names, source = class_names_for(resolve_inputs(manifest))
    assert source == os.path.join(folder, 'train.classes') and len(names) == 6
    assert class_names_for(resolve_inputs(os.path.join(folder, 'train-0000[01]-of-00004.rec')))[0] == names


def test_bad_sets_and_workers_are_one_line_errors(sets, tmp_path):
    _, manifest, folder = sets
    with pytest.raises(UserError, match='no file matches'):
        DetRecordIter(os.path.join(folder, 'val-*.rec'), 4, 64)
    with pytest.raises(UserError, match='gets no images'):
        DetRecordIter(manifest, 4, 64, num_parts=100000, part_index=99999)
    with pytest.raises(UserError, match=r'part_index 4 must be a whole number in \[0, 4\)'):
        DetRecordIter(manifest, 4, 64, num_parts=4, part_index=4)
    stale = str(tmp_path / 'train.json')
    content = json.load(open(manifest))
    content['parts'][1]['records'] += 1
    for name in os.listdir(folder):
        if name.endswith(('.rec', '.idx')):
            shutil.copy(os.path.join(folder, name), str(tmp_path))
    with open(stale, 'w') as handle:
        json.dump(content, handle)
    with pytest.raises(UserError, match='train-00001-of-00004.rec holds %d records but .*train.json says %d'
                       % (content['parts'][1]['records'] - 1, content['parts'][1]['records'])):
        DetRecordIter(stale, 4, 64)


def test_training_on_a_manifest_reads_the_whole_set_each_epoch(sets, tmp_path):
    _, manifest, folder = sets
    result = tiny_run(manifest, tmp_path / 'run' / 'ssd', lr=0.01)
    assert result['iterations_per_epoch'] == NUM_IMAGES // BATCH
    assert result['config'].data.class_names == list(class_names_for(resolve_inputs(manifest))[0])
    assert len(result['history']) == 1


def test_a_shuffled_set_reads_every_image_once_in_a_new_order_each_epoch(sets):
    manifest = sets[1]
    iterator = DetRecordIter(manifest, 4, 64, preset='val', preprocess_threads=1, shuffle=True, shuffle_chunk_size=1,
                             seed=3)
    epochs = []
    for _ in range(2):
        order = []
        for batch in iterator:
            labels = batch.label[0].asnumpy()
            order.extend(tuple(np.round(rows[rows[:, 0] >= 0], 4).ravel()) for rows in labels[:4 - batch.pad])
        epochs.append(order)
        iterator.reset()
    assert len(epochs[0]) == NUM_IMAGES and sorted(epochs[0]) == sorted(epochs[1]) and epochs[0] != epochs[1]
