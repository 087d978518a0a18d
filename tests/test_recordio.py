"""dataset/recordio.py: the header-only reader against files written by MXNet's own MXRecordIO, including
records split where their bytes hold the magic number, and the one-line errors for files it cannot read."""
import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from dataset.recordio import IR_HEADER, MAGIC_NUMBER, RECORD_MAGIC, frame_record, read_record_labels, record_head

MAGIC_AS_FLOAT = float(np.frombuffer(RECORD_MAGIC, np.float32)[0])  # a label value whose bytes are the magic


def body_with_magic_at(size, offsets):
    """``size`` pseudo-random bytes with the record magic written at each of ``offsets``."""
    body = bytearray(np.random.RandomState(size).randint(0, 256, size).astype(np.uint8).tobytes())
    for offset in offsets:
        body[offset:offset + 4] = RECORD_MAGIC
    return bytes(body[:size])


# (record id, label, image bytes): the magic at an aligned offset splits a record, in the IRHeader's id, in
# the label, in the image; at offset 13 of the image (not aligned, 24 + 8 * 4 + 13) it does not.
RECORDS = [
    (0, [2, 6, 1, 0.1, 0.2, 0.5, 0.6, 0], body_with_magic_at(37, [])),
    (MAGIC_NUMBER, [2, 6, 3, 0.2, 0.2, 0.4, 0.4, 1], body_with_magic_at(40, [])),
    (7, [2, 6, MAGIC_AS_FLOAT, 0.1, 0.1, 0.9, 0.9, 0], body_with_magic_at(9, [])),
    (8, [2, 6, 1, 0.1, 0.2, 0.5, 0.6, 0], body_with_magic_at(64, [0, 13, 20, 60])),
    (9, [2, 6, MAGIC_AS_FLOAT, 0.1, 0.1, 0.9, 0.9, MAGIC_AS_FLOAT], body_with_magic_at(8, [4])),
    (10, [2, 6], b''),
]


def write_with_mxnet(path, records):
    writer = mx.recordio.MXRecordIO(str(path), 'w')
    for record_id, label, body in records:
        writer.write(mx.recordio.pack(mx.recordio.IRHeader(0, np.array(label, np.float32), record_id, 0), body))
    writer.close()
    return str(path)


def test_labels_read_back_equal_to_mxnet_recordio(tmp_path):
    path = write_with_mxnet(tmp_path / 'a.rec', RECORDS)
    ours = list(read_record_labels(path))
    reader = mx.recordio.MXRecordIO(path, 'r')
    theirs = [mx.recordio.unpack(reader.read())[0] for _ in RECORDS]
    assert reader.read() is None
    reader.close()
    assert [record_id for record_id, _ in ours] == [header.id for header in theirs] == [r[0] for r in RECORDS]
    for (_, label), header, (_, expected, _) in zip(ours, theirs, RECORDS):
        assert label.dtype == np.float32 and label.tolist() == header.label.tolist()
        assert label.tolist() == np.array(expected, np.float32).tolist()


def test_the_magic_really_splits_records(tmp_path):
    """The file above holds more parts than records: one per record plus one per aligned magic."""
    path = write_with_mxnet(tmp_path / 'a.rec', RECORDS)
    data = open(path, 'rb').read()
    words = np.frombuffer(data, '<u4')
    part_flags = []
    position = 0
    while position < len(data):
        assert words[position // 4] == MAGIC_NUMBER
        word = int(words[position // 4 + 1])
        part_flags.append(word >> 29)
        position += 8 + ((word & ((1 << 29) - 1)) + 3) // 4 * 4
    # ids: 0 whole; MAGIC_NUMBER split in its id (2 parts); 7 in its label (2); 8 at image offsets 0, 20, 60
    # (4 parts); 9 in two label values and the image (4 parts); 10 whole
    assert part_flags == [0, 1, 3, 1, 3, 1, 2, 2, 3, 1, 2, 2, 3, 0]


def test_our_framing_reads_back_through_our_reader(tmp_path):
    objects = np.array([[MAGIC_AS_FLOAT, 0.1, 0.2, 0.3, 0.4, 0]], np.float32)
    head = record_head(MAGIC_NUMBER, objects)
    path = tmp_path / 'ours.rec'
    path.write_bytes(b''.join(frame_record(head, body_with_magic_at(20, [0, 16]))) * 2)
    labels = list(read_record_labels(str(path)))
    assert [record_id for record_id, _ in labels] == [MAGIC_NUMBER, MAGIC_NUMBER]
    assert labels[0][1].tolist() == [2, 6] + objects[0].tolist()


def test_cut_file_is_a_user_error(tmp_path):
    path = write_with_mxnet(tmp_path / 'a.rec', RECORDS[:1])
    data = open(path, 'rb').read()
    for size in (len(data) - 4, 8 + IR_HEADER.size + 4, 5):  # cut in the image, in the label, in a part header
        (tmp_path / 'cut.rec').write_bytes(data[:size])
        with pytest.raises(UserError, match=r'cut\.rec is not a readable RecordIO file \(a .*cut'):
            list(read_record_labels(str(tmp_path / 'cut.rec')))


def test_file_that_is_not_recordio_is_a_user_error(tmp_path):
    (tmp_path / 'a.rec').write_bytes(b'\xff\xd8\xff\xe0 a JPEG, not a record file')
    with pytest.raises(UserError, match=r'a\.rec is not a readable RecordIO file \(no record magic at byte 0\)'):
        list(read_record_labels(str(tmp_path / 'a.rec')))


def test_classification_record_names_the_fix(tmp_path):
    writer = mx.recordio.MXRecordIO(str(tmp_path / 'cls.rec'), 'w')
    writer.write(mx.recordio.pack(mx.recordio.IRHeader(0, 3.0, 5, 0), b'jpeg'))
    writer.close()
    with pytest.raises(UserError, match=r'cls\.rec record 5 has a single label number \(3\) .*--pack-label'):
        list(read_record_labels(str(tmp_path / 'cls.rec')))
