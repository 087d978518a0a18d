"""MXNet's RecordIO format, written and read here without importing MXNet (its import alone takes seconds).

A ``.rec`` file is a sequence of records, each stored as one or more parts (dmlc-core ``recordio``)::

    magic (uint32 0xced7230a) | flag << 29 | length (uint32) | length bytes | zero padding to 4 bytes

A record whose bytes hold the magic number at a 4-byte aligned offset is split there (flag 1 first, 2 middle,
3 last part; 0 for a whole record) and the magic itself is left out: readers put it back between parts. A
detection record's bytes are what ``mx.recordio.pack`` builds: the 24-byte IRHeader ``(flag = label count,
label = 0, id, id2)``, the float32 label ``[2, 6, cls, xmin, ymin, xmax, ymax, difficult, ...]``, then the
image file. The ``.idx`` next to it holds one ``id<TAB>byte offset`` line per record.
"""
import os
import struct

import numpy as np

from config.errors import UserError
from dataset.lst import OBJECT_WIDTH, PACK_HINT, flatten_label

MAGIC_NUMBER = 0xced7230a                      # starts every record part
RECORD_MAGIC = struct.pack('<I', MAGIC_NUMBER)
MAGIC_WORD = np.uint32(MAGIC_NUMBER)            # compares with uint32 arrays faster than the Python int
MAX_RECORD_BYTES = 1 << 29                     # the length field has 29 bits; the top 3 hold the part flag
PART_HEADER = struct.Struct('<II')             # magic, flag << 29 | length
IR_HEADER = struct.Struct('<IfQQ')             # MXNet's IRHeader: flag (label count), label, id, id2 (24 bytes)
WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3        # part flags of a record split where its data holds the magic

NO_OBJECT_ROW = np.full((1, OBJECT_WIDTH), -1.0, np.float32)  # the label row of an image without objects
LABEL_LAYOUT = flatten_label(np.zeros((0, OBJECT_WIDTH))).tobytes()  # float32 [2, 6]: each label's first bytes


# --- writing -----------------------------------------------------------------------------------------------------
def _aligned_magic_offsets(data, start=0):
    """Offsets ``start + i`` with ``i % 4 == 0`` where ``data`` holds the record magic (a NumPy scan: 4x
    faster than ``bytes.find``)."""
    if len(data) < 4:
        return []
    matches = np.frombuffer(data, dtype='<u4', count=len(data) // 4) == MAGIC_WORD
    if not matches[matches.argmax()]:  # argmax stops at the first match: cheaper than any()
        return []
    return [start + 4 * int(i) for i in np.flatnonzero(matches)]


def _part(flag, data):
    """One record part: magic, ``flag << 29 | length``, the bytes, zero padding to a multiple of 4."""
    return [PART_HEADER.pack(MAGIC_NUMBER, flag << 29 | len(data)), data, b'\0' * (-len(data) % 4)]


def frame_record(head, body):
    """Frame one record's data ``head + body`` the way ``MXRecordIO.write`` does.

    dmlc's recordio splits a record wherever its data holds the magic number at a 4-byte aligned offset
    (the magic itself is dropped; readers put it back). ``head`` must have a length that is a multiple of 4.

    Parameters
    ----------
    head : bytes
        IRHeader plus label, ``len(head) % 4 == 0``.
    body : bytes
        Image bytes.

    Returns
    -------
    list of bytes
        Chunks to write one after the other.
    """
    size = len(head) + len(body)
    if size >= MAX_RECORD_BYTES:
        raise OSError('the encoded record has %d bytes; RecordIO holds at most %d' % (size, MAX_RECORD_BYTES - 1))
    splits = _aligned_magic_offsets(head) if RECORD_MAGIC in head else []  # short: a byte search is cheaper
    splits += _aligned_magic_offsets(body, len(head))
    if not splits:  # the usual case: no copy of the image bytes
        return [PART_HEADER.pack(MAGIC_NUMBER, WHOLE << 29 | size), head, body, b'\0' * (-size % 4)]
    data, chunks, begin = head + body, [], 0
    for number, offset in enumerate(splits):
        chunks += _part(FIRST if number == 0 else MIDDLE, data[begin:offset])
        begin = offset + 4
    return [b''.join(chunks + _part(LAST, data[begin:]))]  # one chunk: writev takes at most IOV_MAX


def record_head(index, objects):
    """IRHeader and flat float32 label of one record, as ``mx.recordio.pack`` writes them: the bytes of
    :func:`dataset.lst.flatten_label` without its NumPy concatenation (a tenth of the time).

    An image without objects gets one all -1 row: ``mx.io.ImageDetRecordIter`` stops on a label that is only
    the header (``Check failed: label_width >= 7``), and drops the -1 row itself; so do the project's readers.

    Parameters
    ----------
    index : int
        Record id (the ``.lst`` index).
    objects : (N, 6) float32 array
        ``[cls, xmin, ymin, xmax, ymax, difficult]`` rows.

    Returns
    -------
    bytes
        ``24 + 4 * (2 + 6 N)`` bytes.
    """
    rows = np.asarray(objects, dtype='<f4').reshape(-1, OBJECT_WIDTH) if len(objects) else NO_OBJECT_ROW
    return IR_HEADER.pack(len(LABEL_LAYOUT) // 4 + rows.size, 0.0, index, 0) + LABEL_LAYOUT + rows.tobytes()


class IndexedRecordWriter:
    """Appends framed records to a ``.rec`` file and collects their ``index<TAB>offset`` lines for the ``.idx``."""

    def __init__(self, rec_path):
        self._rec = open(rec_path, 'wb', buffering=0)  # one writev per record: no copy into a buffer
        self._index_lines = []
        self.offset = 0

    def write(self, index, chunks, size):
        """Append one record made of ``chunks`` (``size`` bytes in all) under id ``index``."""
        self._index_lines.append('%d\t%d\n' % (index, self.offset))
        written = os.writev(self._rec.fileno(), chunks)
        if written < size:  # a short write (interrupted, disk nearly full): finish it piece by piece
            rest = memoryview(b''.join(chunks))[written:]
            while rest:
                rest = rest[self._rec.write(rest):]
        self.offset += size

    def close(self, idx_path):
        """Finish the ``.rec`` and write the ``.idx`` to ``idx_path``."""
        self._rec.close()
        with open(idx_path, 'w') as handle:
            handle.writelines(self._index_lines)

    def abandon(self):
        """Close the ``.rec`` without writing an index (the caller removes the files)."""
        self._rec.close()


# --- reading -----------------------------------------------------------------------------------------------------
def idx_path_for(path_imgrec):
    """The index file that belongs to a record file: ``data/train.rec`` -> ``data/train.idx``."""
    return os.path.splitext(path_imgrec)[0] + '.idx'


def check_record_files(path_imgrec):
    """Raise :class:`UserError` naming the ``.rec`` or its ``.idx`` when one of them is missing."""
    if not os.path.isfile(path_imgrec):
        raise UserError('record file %s does not exist; pack it with tools/prepare_dataset.py or '
                        'tools/im2rec.py' % path_imgrec)
    if not os.path.isfile(idx_path_for(path_imgrec)):
        raise UserError('index file %s does not exist, so %s is incomplete; pack it again with '
                        'tools/im2rec.py' % (idx_path_for(path_imgrec), path_imgrec))


def _unreadable(path_imgrec, offset, problem):
    return UserError('%s is not a readable RecordIO file (%s at byte %d); pack it again with tools/im2rec.py'
                     % (path_imgrec, problem, offset))


def _next_part(handle, path_imgrec):
    """``(flag, length)`` from the next part header, or None at the end of the file."""
    header = handle.read(PART_HEADER.size)
    if not header:
        return None
    offset = handle.tell() - len(header)
    if len(header) < PART_HEADER.size:
        raise _unreadable(path_imgrec, offset, 'a cut part header')
    magic, word = PART_HEADER.unpack(header)
    if magic != MAGIC_NUMBER:
        raise _unreadable(path_imgrec, offset, 'no record magic')
    return word >> 29, word & (MAX_RECORD_BYTES - 1)


def _wanted_bytes(data):
    """How many leading bytes of a record hold its IRHeader and label, as far as ``data`` tells."""
    if len(data) < IR_HEADER.size:
        return IR_HEADER.size
    return IR_HEADER.size + 4 * IR_HEADER.unpack_from(data)[0]


def read_record_head(handle, path_imgrec, file_size):
    """The IRHeader and label bytes of the record at the handle's position; the image bytes are skipped.

    Parts are joined the way ``MXRecordIO.read`` joins them (the magic put back between them).

    Returns
    -------
    bytes or None
        The record's first ``24 + 4 * label count`` bytes (fewer when the record is shorter); None at the
        end of the file.
    """
    data, started = b'', False
    while True:
        part = _next_part(handle, path_imgrec)
        if part is None:
            if started:
                raise _unreadable(path_imgrec, file_size, 'a record cut short')
            return None
        started, (flag, length) = True, part
        left = length
        while left and len(data) < _wanted_bytes(data):
            chunk = handle.read(min(left, _wanted_bytes(data) - len(data)))
            if not chunk:
                raise _unreadable(path_imgrec, file_size, 'a record cut short')
            data, left = data + chunk, left - len(chunk)
        handle.seek(left + (-length % 4), os.SEEK_CUR)  # the rest of the part and its padding
        if handle.tell() > file_size:
            raise _unreadable(path_imgrec, file_size, 'a record cut short')
        if flag in (WHOLE, LAST):
            return data
        data += RECORD_MAGIC


def unpack_label(head, path_imgrec):
    """One record's leading bytes -> ``(record_id, flat_label (L,) float32)``; a scalar label is a UserError."""
    if len(head) < IR_HEADER.size:
        raise UserError('%s holds a record of %d bytes, too short for a header; pack it again'
                        % (path_imgrec, len(head)))
    flag, scalar, record_id, _ = IR_HEADER.unpack_from(head)
    if flag == 0:
        raise UserError('%s record %d has a single label number (%g) as in a classification .rec; %s'
                        % (path_imgrec, record_id, scalar, PACK_HINT))
    if len(head) < IR_HEADER.size + 4 * flag:
        raise UserError('%s record %d is truncated; pack it again' % (path_imgrec, record_id))
    return record_id, np.frombuffer(head, np.float32, count=flag, offset=IR_HEADER.size).copy()


def read_record_labels(path_imgrec):
    """Yield ``(record_id, flat_label)`` for each record of a ``.rec`` in file order, reading only the headers.

    Yields
    ------
    record_id : int
        The IRHeader id (the ``.lst`` index for files packed by tools/im2rec.py).
    flat_label : (L,) float32 array
        The label vector stored after the IRHeader.

    Raises
    ------
    UserError
        When the file is not RecordIO, is cut short, or holds a record without a label vector.
    """
    for _, record_id, flat in read_record_entries(path_imgrec):
        yield record_id, flat


def read_record_entries(path_imgrec):
    """Like :func:`read_record_labels`, with each record's byte offset: yields ``(offset, record_id, flat)``."""
    with open(path_imgrec, 'rb') as handle:
        file_size = os.fstat(handle.fileno()).st_size
        while True:
            offset = handle.tell()
            head = read_record_head(handle, path_imgrec, file_size)
            if head is None:
                return
            yield (offset,) + unpack_label(head, path_imgrec)


def read_index(idx_path):
    """The ``key<TAB>offset`` lines of a ``.idx`` file as a list of ``(key, offset)`` ints.

    Raises
    ------
    UserError
        Naming the line that is not two whole numbers.
    """
    entries = []
    with open(idx_path, 'rb') as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                key, offset = (int(field) for field in fields)
            except ValueError:
                raise UserError('index file %s line %d is %r, not "key<TAB>byte offset"; pack %s again with '
                                'tools/im2rec.py' % (idx_path, number, line[:60].decode('utf-8', 'replace'),
                                                     os.path.splitext(idx_path)[0] + '.rec')) from None
            entries.append((key, offset))
    return entries


def check_index_matches(path_imgrec, index, offsets):
    """Raise :class:`UserError` when the ``.idx`` entries do not point at the ``.rec``'s records (a stale index).

    Parameters
    ----------
    path_imgrec : str
    index : list of (key, offset)
        From :func:`read_index`.
    offsets : sequence of int
        Where each record of the ``.rec`` starts (:func:`read_record_entries`).
    """
    idx_path = idx_path_for(path_imgrec)
    listed, actual = sorted(offset for _, offset in index), sorted(offsets)
    if listed == actual:
        return
    if len(listed) != len(actual):
        detail = 'it lists %d records, the .rec holds %d' % (len(listed), len(actual))
    else:
        wrong = next(offset for offset, real in zip(listed, actual) if offset != real)
        detail = 'it points to byte %d, where no record starts' % wrong
    older = os.stat(idx_path).st_mtime_ns < os.stat(path_imgrec).st_mtime_ns
    raise UserError('index file %s does not match %s (%s): it is stale%s; pack both again with tools/im2rec.py'
                    % (idx_path, path_imgrec, detail, ', older than the .rec' if older else ''))
