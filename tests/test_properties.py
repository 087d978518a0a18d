"""Property tests (hypothesis): the label codecs round-trip, the dataset readers fail only with UserError, and
anchor box encoding and decoding invert each other.

Example counts are small (30-50 each) and deadlines off, so the whole file runs in well under 30 s.
"""
import json
import os
import tempfile

import cv2
import mxnet as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import UserError
from dataset.coco import load_coco
from dataset.lst import OBJECT_WIDTH, flatten_label, format_lst_line, parse_lst_line, read_lst, unflatten_label
from dataset.pascal_voc import load_pascal_voc
from dataset.recordio import (
    IndexedRecordWriter,
    check_index_matches,
    frame_record,
    read_index,
    read_record_entries,
    record_head,
    unpack_label,
)
from dataset.yolo import load_yolo
from evaluate.deploy_net import decode_boxes
from symbol import multibox
from tests.test_voc_parser import annotation_xml, object_xml, write_voc

FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LST_PRECISION = 5e-7 + 1e-7        # format_lst_line writes %.6f, read back as float32


# --- strategies ------------------------------------------------------------------------------------------------
unit = st.floats(0, 1, width=32)


@st.composite
def objects(draw, max_size=8):
    """``(N, 6)`` float32 rows ``[cls, xmin, ymin, xmax, ymax, difficult]`` with ordered corners in [0, 1]."""
    count = draw(st.integers(0, max_size))
    rows = []
    for _ in range(count):
        x0, x1 = sorted((draw(unit), draw(unit)))
        y0, y1 = sorted((draw(unit), draw(unit)))
        rows.append([draw(st.integers(0, 999)), x0, y0, x1, y1, draw(st.integers(0, 1))])
    return np.array(rows, np.float32).reshape(-1, OBJECT_WIDTH)


# image paths: any printable text without tabs and line breaks (spaces, accents and CJK included)
paths = st.text(st.characters(blacklist_categories=('Cc', 'Cs', 'Zl', 'Zp'), blacklist_characters='\t\x85'),
                min_size=1, max_size=40).filter(lambda path: path.strip() == path and path)


@st.composite
def mutated(draw, original):
    """``original`` bytes with 1 to 4 random edits: a slice deleted, bytes inserted or replaced, a slice doubled."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 40)))
        edit = draw(st.sampled_from(['delete', 'insert', 'replace', 'double']))
        if edit == 'delete':
            del data[start:end]
        elif edit == 'insert':
            data[start:start] = draw(st.binary(min_size=1, max_size=12))
        elif edit == 'replace':
            data[start:end] = draw(st.binary(max_size=12))
        else:
            data[start:start] = data[start:end]
    return bytes(data)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True)
                           | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=8)


# --- the .lst and record label codecs ----------------------------------------------------------------------------
@SOME
@given(index=st.integers(0, 2 ** 31 - 1), rows=objects(), path=paths)
def test_lst_line_round_trips(index, rows, path):
    parsed_index, parsed, parsed_path = parse_lst_line(format_lst_line(index, rows, path))
    assert (parsed_index, parsed_path) == (index, path)
    assert parsed.shape == rows.shape and parsed.dtype == np.float32
    np.testing.assert_array_equal(parsed[:, [0, 5]], rows[:, [0, 5]])
    np.testing.assert_allclose(parsed[:, 1:5], rows[:, 1:5], rtol=0, atol=LST_PRECISION)


@FEW
@given(entries=st.lists(st.tuples(objects(max_size=4), paths), min_size=1, max_size=6))
def test_lst_file_round_trips(entries):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, 'a.lst')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.writelines(format_lst_line(index, rows, image) + '\n' for index, (rows, image) in enumerate(entries))
        read = read_lst(path)
    assert [(index, image) for index, _, image in read] == [(index, image) for index, (_, image) in enumerate(entries)]
    for (_, parsed, _), (rows, _) in zip(read, entries):
        np.testing.assert_allclose(parsed, rows, rtol=0, atol=LST_PRECISION)


@SOME
@given(rows=objects())
def test_flat_label_round_trips_exactly(rows):
    np.testing.assert_array_equal(unflatten_label(flatten_label(rows)), rows)


@SOME
@given(record_id=st.integers(0, 2 ** 64 - 1), rows=objects())
def test_record_head_round_trips_exactly(record_id, rows):
    parsed_id, flat = unpack_label(record_head(record_id, rows), 'a.rec')
    assert parsed_id == record_id
    np.testing.assert_array_equal(unflatten_label(flat), rows)  # an image without objects: its -1 row dropped


@FEW
@given(records=st.lists(st.tuples(objects(max_size=3), st.binary(max_size=64), st.lists(st.integers(0, 15))),
                        min_size=1, max_size=5))
def test_records_round_trip_through_the_files(records):
    """Framed, written and indexed, then read by our reader and by MXNet's: ids, labels and bytes come back, and
    the .idx matches the .rec. Bodies hold the record magic at the drawn word offsets."""
    magic = np.uint32(0xced7230a).tobytes()
    bodies = []
    for _, body, words in records:
        body = bytearray(body)
        for word in words:
            if 4 * word + 4 <= len(body):
                body[4 * word:4 * word + 4] = magic
        bodies.append(bytes(body))
    with tempfile.TemporaryDirectory() as directory:
        rec, idx = os.path.join(directory, 'a.rec'), os.path.join(directory, 'a.idx')
        writer = IndexedRecordWriter(rec)
        for number, ((rows, _, _), body) in enumerate(zip(records, bodies)):
            chunks = frame_record(record_head(100 + number, rows), body)
            writer.write(100 + number, chunks, sum(len(chunk) for chunk in chunks))
        writer.close(idx)
        entries = list(read_record_entries(rec))
        check_index_matches(rec, read_index(idx), [offset for offset, _, _ in entries])
        reader = mx.recordio.MXIndexedRecordIO(idx, rec, 'r')
        theirs = [mx.recordio.unpack(reader.read_idx(100 + number)) for number in range(len(records))]
        reader.close()
    assert [record_id for _, record_id, _ in entries] == list(range(100, 100 + len(records)))
    for (_, _, flat), (header, body), (rows, _, _), expected_body in zip(entries, theirs, records, bodies):
        np.testing.assert_array_equal(unflatten_label(flat), rows)
        np.testing.assert_array_equal(unflatten_label(header.label), rows)
        assert body == expected_body


# --- the readers fail only with UserError ------------------------------------------------------------------------
VALID_XML = annotation_xml([object_xml('dog', (21, 11, 120, 61)), object_xml('cat', ('3.5', 4, 50, 90), '1')]
                           ).encode()
VALID_COCO = json.dumps({
    'images': [{'id': 1, 'file_name': 'a.jpg', 'width': 200, 'height': 100}],
    'categories': [{'id': 3, 'name': 'dog'}, {'id': 5, 'name': 'cat'}],
    'annotations': [{'id': 1, 'image_id': 1, 'category_id': 3, 'bbox': [20, 10, 100, 50], 'iscrowd': 0},
                    {'id': 2, 'image_id': 1, 'category_id': 5, 'bbox': [150, 60, 80, 60]}]}).encode()
VALID_YOLO = b'0 0.5 0.5 0.2 0.4\n\n1 0.1 0.1 0.4 0.4\n'


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    """One VOC, COCO and YOLO dataset of one 200x100 image each, whose annotation file the tests overwrite."""
    root = tmp_path_factory.mktemp('fuzz')
    voc = write_voc(root / 'voc', {'a': (VALID_XML.decode(), (200, 100))})
    for folder in ('coco/val', 'coco/annotations', 'yolo/images/train', 'yolo/labels/train'):
        os.makedirs(root / folder)
    cv2.imwrite(str(root / 'coco' / 'val' / 'a.jpg'), np.zeros((100, 200, 3), np.uint8))
    cv2.imwrite(str(root / 'yolo' / 'images' / 'train' / 'a.jpg'), np.zeros((100, 200, 3), np.uint8))
    return dict(voc=(voc, os.path.join(voc, 'VOC2007', 'Annotations', 'a.xml')),
                coco=(str(root / 'coco'), str(root / 'coco' / 'annotations' / 'instances_val.json')),
                yolo=(str(root / 'yolo'), str(root / 'yolo' / 'labels' / 'train' / 'a.txt')))


LOADERS = {
    'voc': lambda root, **flags: load_pascal_voc(root, 2007, 'trainval', **flags),
    'coco': lambda root, **flags: load_coco(root, 'val', **flags),
    'yolo': lambda root, **flags: load_yolo(root, 'train', 'dog,cat', **flags),
}


def load_or_user_error(datasets, kind, data):
    """Write ``data`` as the dataset's annotation file and load it every way; anything but UserError fails.

    A successful load must give labels a packer accepts: finite, inside [0, 1], known classes.
    """
    root, annotation = datasets[kind]
    with open(annotation, 'wb') as handle:
        handle.write(data)
    for flags in (dict(skip_bad=False, skip_unknown=False), dict(skip_bad=True, skip_unknown=True)):
        try:
            imdb = LOADERS[kind](root, **flags)
        except UserError as err:
            assert '\n' not in ' '.join(str(err).split())
            continue
        for rows in imdb.labels:
            assert rows.shape[1] == OBJECT_WIDTH and np.all(np.isfinite(rows))
            assert np.all((rows[:, 1:5] >= 0) & (rows[:, 1:5] <= 1))
            assert np.all((rows[:, 0] >= 0) & (rows[:, 0] < len(imdb.classes)))


@FEW
@pytest.mark.parametrize('kind', ['voc', 'coco', 'yolo'])
@given(data=st.binary(max_size=200))
def test_readers_raise_only_user_error_on_arbitrary_bytes(datasets, kind, data):
    load_or_user_error(datasets, kind, data)


@FEW
@pytest.mark.parametrize('kind, valid', [('voc', VALID_XML), ('coco', VALID_COCO), ('yolo', VALID_YOLO)],
                         ids=['voc', 'coco', 'yolo'])
@given(draw=st.data())
def test_readers_raise_only_user_error_on_mutated_files(datasets, kind, valid, draw):
    load_or_user_error(datasets, kind, draw.draw(mutated(valid)))


@FEW
@given(path=st.lists(st.sampled_from(['images', 0, 'file_name', 'width', 'height', 'id', 'annotations', 1,
                                      'bbox', 'category_id', 'iscrowd', 'categories', 'name', 2]), max_size=4),
       value=json_values)
def test_coco_reader_raises_only_user_error_on_odd_values(datasets, path, value):
    """A value anywhere in a valid COCO file replaced by any JSON value (a key path may not exist: then added)."""
    data = json.loads(VALID_COCO)
    target = data
    for key in path[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            break
    try:
        target[path[-1] if path else 'images'] = value
    except (IndexError, TypeError):
        data['images'] = value
    load_or_user_error(datasets, 'coco', json.dumps(data).encode())


# --- anchor boxes ------------------------------------------------------------------------------------------------
@st.composite
def boxes(draw, count):
    """``(count, 4)`` float64 corner boxes inside [0, 1], each side at least 0.02."""
    rows = []
    for _ in range(count):
        width, height = draw(st.floats(0.02, 1)), draw(st.floats(0.02, 1))
        x0, y0 = draw(st.floats(0, 1 - width)), draw(st.floats(0, 1 - height))
        rows.append([x0, y0, x0 + width, y0 + height])
    return np.array(rows).reshape(-1, 4)


def encode_boxes(ground_truth, anchors, variances=multibox.VARIANCES):
    """The SSD box encoding (symbol/multibox.py's formula): offsets of each ground truth from its anchor.

    Parameters
    ----------
    ground_truth, anchors : (A, 4) float arrays
        ``[xmin, ymin, xmax, ymax]``, one ground truth per anchor.

    Returns
    -------
    (A * 4,) float array
        ``((gx - ax) / aw / v0, (gy - ay) / ah / v1, log(gw / aw) / v2, log(gh / ah) / v3)`` per anchor.
    """
    v0, v1, v2, v3 = variances
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    gw, gh = ground_truth[:, 2] - ground_truth[:, 0], ground_truth[:, 3] - ground_truth[:, 1]
    gx, gy = (ground_truth[:, 0] + ground_truth[:, 2]) / 2, (ground_truth[:, 1] + ground_truth[:, 3]) / 2
    return np.stack([(gx - ax) / aw / v0, (gy - ay) / ah / v1, np.log(gw / aw) / v2, np.log(gh / ah) / v3],
                    axis=1).ravel()


@SOME
@given(st.integers(1, 6).flatmap(lambda count: st.tuples(boxes(count), boxes(count))))
def test_decoding_inverts_the_ssd_encoding(pair):
    ground_truth, anchors = pair
    decoded = decode_boxes(encode_boxes(ground_truth, anchors)[None], anchors[None], clip=False)
    np.testing.assert_allclose(decoded[0], ground_truth, rtol=0, atol=2e-6)


@st.composite
def anchors_and_one_box(draw):
    """``(anchors (A, 4), ground truth (4,))``: the first anchor is the ground truth moved a little, so it matches."""
    truth = draw(boxes(1))[0]
    width, height = truth[2] - truth[0], truth[3] - truth[1]
    shift = np.array([draw(st.floats(-0.1, 0.1)) * width, draw(st.floats(-0.1, 0.1)) * height] * 2)
    return np.concatenate([(truth + shift)[None], draw(boxes(draw(st.integers(0, 5))))]), truth


@FEW
@given(anchors_and_one_box())
def test_decoding_inverts_mxnet_multibox_target(case):
    """MXNet's MultiBoxTarget (the training graph's encoder) encodes every anchor it matches to the ground truth;
    decode_boxes (the deploy side) gives the ground truth back, and both agree with :func:`encode_boxes`."""
    anchors, truth = case
    label = mx.nd.array([[[0] + truth.tolist()]])
    cls_preds = mx.nd.zeros((1, 2, len(anchors)))
    loc_target, loc_mask, _ = mx.nd.contrib.MultiBoxTarget(
        mx.nd.array(anchors[None]), label, cls_preds, overlap_threshold=multibox.OVERLAP_THRESHOLD,
        variances=multibox.VARIANCES)
    matched = loc_mask.asnumpy().reshape(-1, 4)[:, 0] > 0
    assert matched[0]                                      # the ground truth's own (shifted) anchor
    targets = loc_target.asnumpy().reshape(-1, 4)
    expected = encode_boxes(np.repeat(truth[None], len(anchors), axis=0), anchors).reshape(-1, 4)
    np.testing.assert_allclose(targets[matched], expected[matched], rtol=1e-4, atol=1e-4)
    decoded = decode_boxes(targets[None].reshape(1, -1), anchors[None], clip=False)[0]
    np.testing.assert_allclose(decoded[matched], np.repeat(truth[None], matched.sum(), axis=0), rtol=0, atol=1e-5)
