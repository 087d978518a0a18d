"""Inspect and verify detection ``.rec`` files: what they hold, whether every record is good, whether they match a list.

Prints the records, images per file, objects per class, boxes per image, an image size histogram and the label
width the data needs; ``--verify`` checks every record, ``--against`` compares the labels with a ``.lst``,
``--show`` draws records with their boxes, ``--json`` writes the numbers.

Usage::

    python tools/rec_info.py data/train.rec [data/val.rec ...]    # several files, a glob 'data/train-*.rec',
    python tools/rec_info.py data/train.json                      # or a manifest of parts (tools/shards.py)
    python tools/rec_info.py data/train.rec --verify --against data/train.lst
    python tools/rec_info.py data/train.rec --show 16 --out preview.png --json info.json

A manifest is a JSON object ``{"parts": [{"rec": "train-00000-of-00002.rec"}, ...]}``, the paths relative to
its folder. Class names come from the ``.classes`` file next to each ``.rec``, else from the manifest's
``classes`` or the ``.classes`` next to the manifest.

``--verify`` decodes every record and checks:

- the framing: the records follow one another from the first byte to the last (a region no record covers is
  named with its bytes; the scan goes on at the next record start);
- the ``.idx``: every line's offset is a record start and its key the id of that record, no key twice, and
  every record is listed;
- the label: a detection layout (header width 2 or more, object width 5 or more, as in the header) shared by
  every record; real objects (class >= 0) with a whole class number below the class count, coordinates in
  [0, 1] (give or take the reader's 1e-3), ``xmin < xmax`` and ``ymin < ymax`` (MXNet drops other boxes
  silently), a difficult flag 0 or 1;
- the image bytes: OpenCV (the decoder of MXNet's C++ iterator) and Pillow (which also notices a cut file)
  decode them.

Each bad record is named by its number in the file (0-based, file order), its byte offset and id, and what is
wrong; the exit status is 1 when anything is bad, 0 when all is good. ``--against`` compares the labels of the
records, in order, with the lines of one ``.lst`` (or one list per ``.rec``) to 1e-4 and exits 1 on a
difference. Bad paths and arguments are one-line errors (exit status 2).
"""
import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import io
import math
import os
import re
import sys

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError
from tqdm import tqdm

from config.errors import UserError, run_cli
from config.runtime import available_cores, configure_threads
from core.atomic import write_json
from dataset.lst import inside_unit_square, read_lst, split_label, to_six_columns
from dataset.record_set import class_names_for, resolve_inputs
from dataset.recordio import (
    FIRST,
    IR_HEADER,
    MAGIC_WORD,
    WHOLE,
    idx_path_for,
    read_index,
    read_record_head,
    unpack_label,
)

AGAINST_TOLERANCE = 1e-4          # --against: label numbers may differ this much (the .lst has 6 decimals)
SHOW_GAP = 2                      # pixels between the pictures of --show (evaluate.visualize.tile_images)
DECODE_BATCH = 16                 # records decoded together on the thread pool per thread (bounds the memory)
SCAN_WORDS = 1 << 20              # uint32 words searched at a time for the next record start
HISTOGRAM_BAR = 40                # characters of the longest histogram bar
SIZE_BINS = 8                     # bins of the image size histogram


class CheckFailed(UserError):
    """``--verify`` or ``--against`` found something wrong (listed above the one-line error): exit status 1."""
    exit_status = 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='+', metavar='REC',
                        help='.rec files (their .idx next to them), globs like "data/train-*.rec", or a manifest '
                             '<target>.json listing parts')
    parser.add_argument('--verify', action='store_true',
                        help='decode every record and check the .idx offsets, the labels and the image bytes; '
                             'exit 1 naming each bad record')
    parser.add_argument('--against', action='append', default=[], metavar='LST',
                        help='a .lst whose labels every record must equal (1e-4), in order; one list for all the '
                             'records, or give it once per .rec')
    parser.add_argument('--show', type=int, default=0, metavar='N',
                        help='draw N records (spread evenly over all of them) with their boxes into --out')
    parser.add_argument('--out', help='picture written by --show (.png, .jpg)')
    parser.add_argument('--show-size', type=int, default=256,
                        help='side of each square picture cell of --show in pixels (default: 256)')
    parser.add_argument('--json', dest='json_path', metavar='PATH', help='also write the numbers to this JSON file')
    parser.add_argument('--max-listed', type=int, default=50,
                        help='problems named one by one per kind and file, the rest counted (default: 50; 0: all)')
    parser.add_argument('--num-thread', type=int, default=None, help='image decoding threads (default: all cores)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


# --- reading records ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Record:
    """One record as read from a ``.rec`` (or a stretch of bytes no record covers: ``number`` None)."""
    number: int                  # position in the file, 0-based; None for bytes that are no record
    offset: int                  # byte offset of its first part header
    end: int                     # byte offset after it (and its padding)
    record_id: int = None        # IRHeader id (the .lst index)
    layout: tuple = None         # (header_width, object_width)
    rows: np.ndarray = None      # (N, object_width) object rows, padding included
    image: bytes = None
    problems: list = dataclasses.field(default_factory=list)
    width: int = 0               # image size from its header, 0 when unknown
    height: int = 0
    format: str = ''
    mode: str = ''

    def name(self):
        if self.number is None:
            return 'bytes %d-%d' % (self.offset, self.end)
        id_text = '' if self.record_id is None else ', id %d' % self.record_id
        return 'record %d (byte %d%s)' % (self.number, self.offset, id_text)


class MXNetRecords:
    """Whole records at given byte offsets, read by MXNet's own RecordIO reader (dmlc-core's, the one the
    training iterator uses); the ``.idx`` is not read (the offsets come from the scan)."""

    def __init__(self, path):
        import mxnet as mx
        self._mx = mx
        self._reader = mx.recordio.MXIndexedRecordIO(os.devnull, path, 'r')

    def read_at(self, offset):
        self._reader.idx = {offset: offset}
        try:
            return self._reader.read_idx(offset), ''
        except self._mx.base.MXNetError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            detail = next((line for line in lines if 'Check failed' in line or 'Invalid' in line), lines[-1])
            return None, detail[:160]

    def close(self):
        self._reader.close()


def next_record_start(words, start):
    """The byte offset of the first record start at or after ``start``: a 4-byte aligned record magic followed
    by a whole or first part (a valid file has no other aligned magic: writers split records there).

    Parameters
    ----------
    words : (size // 4,) uint32 array
        The file as little-endian words.
    start : int
        Byte offset.

    Returns
    -------
    int or None
    """
    first = -(-start // 4)
    for begin in range(first, len(words), SCAN_WORDS):
        for hit in np.flatnonzero(words[begin:begin + SCAN_WORDS + 1] == MAGIC_WORD) + begin:
            if hit + 1 < len(words) and int(words[hit + 1]) >> 29 in (WHOLE, FIRST):
                return 4 * int(hit)
    return None


def _framing_problem(err):
    """What read_record_head's error says, without the file name and advice: ``no record magic at byte 40``."""
    match = re.search(r'\(([^()]*at byte \d+)\)', str(err))
    return match.group(1) if match else str(err)


def _parse_label(record, head, path):
    """Fill ``record_id``, ``layout`` and ``rows`` from the record's leading bytes; a problem when unreadable."""
    try:
        record.record_id, flat = unpack_label(head, path)
        header_width, object_width, rows = split_label(flat, 'label')
    except UserError as err:
        record.problems.append('label: %s' % str(err).replace(path, '').strip().split('; pack')[0])
        return None
    record.layout, record.rows = (header_width, object_width), rows
    return IR_HEADER.size + 4 * len(flat)


def walk_records(path, index_offsets, reader):
    """Every record of ``path`` in file order, each with its label and image bytes; damaged stretches are
    yielded with their problem and the walk goes on at the next record start.

    Parameters
    ----------
    path : str
    index_offsets : set of int
        Offsets the ``.idx`` lists: a damaged stretch starting at one of them is a damaged record (numbered),
        other stretches are bytes that no record covers.
    reader : MXNetRecords

    Yields
    ------
    Record
    """
    size = os.path.getsize(path)
    words = np.memmap(path, dtype='<u4', mode='r', shape=(size // 4,)) if size >= 4 else np.zeros(0, '<u4')
    number = 0
    with open(path, 'rb') as handle:
        position = 0
        while position < size:
            handle.seek(position)
            try:
                head = read_record_head(handle, path, size)
                end = handle.tell()
            except UserError as err:
                end = next_record_start(words, position + 4) or size
                damaged = position in index_offsets
                record = Record(number if damaged else None, position, end)
                record.problems.append('%s; bytes %d-%d hold no readable record' % (_framing_problem(err),
                                                                                   position, end))
                number += damaged
                position = end
                yield record
                continue
            record = Record(number, position, end)
            number += 1
            image_start = _parse_label(record, head, path)
            if image_start is not None:
                data, problem = reader.read_at(position)
                if data is None:
                    record.problems.append("MXNet's RecordIO reader fails on it (%s)" % problem)
                elif data[:image_start] != head[:image_start]:  # (head may run on: read_record_head's own)
                    record.problems.append("MXNet's RecordIO reader reads other bytes than the record's")
                else:
                    record.image = data[image_start:]
            position = end
            yield record


def image_header(record):
    """Size, format and mode of the record's image from its header (Pillow reads no pixels for that)."""
    try:
        with Image.open(io.BytesIO(record.image)) as image:
            record.width, record.height = image.size
            record.format, record.mode = image.format or '', image.mode
    except (UnidentifiedImageError, OSError, ValueError):
        pass


def decode_check(record):
    """Decode the record's image with OpenCV and Pillow, noting a failure of either (verify).

    Pillow notices a cut image only while ``ImageFile.LOAD_TRUNCATED_IMAGES`` is off: call it inside
    :func:`pillow_refuses_cut_images`, as :func:`_decoded` does.
    """
    import cv2
    if record.image is None:
        return record
    if not record.image:
        record.problems.append('image: no image bytes after the label')
        return record
    image_header(record)
    start = ' '.join('%02x' % byte for byte in record.image[:4])
    pixels = cv2.imdecode(np.frombuffer(record.image, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        record.problems.append('image: OpenCV cannot decode its %d bytes (starting %s), so MXNet\'s iterator '
                               'would stop on it' % (len(record.image), start))
        return record
    if not record.width:
        record.height, record.width = pixels.shape[:2]
    try:
        with Image.open(io.BytesIO(record.image)) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        if not isinstance(err, UnidentifiedImageError):
            record.problems.append('image: damaged (Pillow: %s)' % str(err).split('\n')[0][:120])
    return record


def check_objects(record, num_classes, file_layout):
    """Label checks of ``--verify`` on one record's object rows; problems appended to the record."""
    if record.layout is None:
        return
    if file_layout is not None and record.layout != file_layout:
        record.problems.append('label layout (header width, object width) %s differs from the file\'s %s'
                               % (record.layout, file_layout))
    for number, row in enumerate(record.rows):
        cls = row[0]
        if cls < 0:
            continue  # padding, or the all -1 row of an image without objects
        box = row[1:5]
        text = '[%s]' % ' '.join('%.4g' % value for value in box)
        what = []
        if not float(cls).is_integer():
            what.append('class %g is not a whole number' % cls)
        elif num_classes and cls >= num_classes:
            what.append('class %d is not below the %d classes' % (cls, num_classes))
        if not inside_unit_square(box[None])[0]:  # the reader's own test (1e-3 of rounding allowed; NaN fails)
            what.append('box %s is outside [0, 1]' % text)
        else:
            if box[2] <= box[0]:
                what.append('box %s has xmax <= xmin' % text)
            if box[3] <= box[1]:
                what.append('box %s has ymax <= ymin' % text)
        if len(row) > 5 and row[5] not in (0, 1):
            what.append('difficult flag %g is not 0 or 1' % row[5])
        if what:
            record.problems.append('object %d: %s' % (number, ', '.join(what)))


def real_objects(record):
    """The record's objects (class >= 0) as ``(N, 6)``; empty for an unreadable label."""
    if record.rows is None:
        return np.zeros((0, 6), np.float32)
    return to_six_columns(record.rows[record.rows[:, 0] >= 0])


def kept_count(objects):
    """Objects MXNet keeps (``xmax > xmin`` and ``ymax > ymin``): the label width an image needs."""
    return int(np.sum((objects[:, 3] > objects[:, 1]) & (objects[:, 4] > objects[:, 2])))


# --- the numbers -------------------------------------------------------------------------------------------------
class Tally:
    """Counts over records, kept small: per-image numbers only, no labels or images."""

    def __init__(self, class_names):
        self.class_names = class_names
        self.records = 0
        self.boxes = collections.Counter()              # objects per image -> images
        self.objects = collections.Counter()            # class id -> objects
        self.difficult = collections.Counter()          # class id -> difficult objects
        self.images_with = collections.Counter()        # class id -> images holding it
        self.degenerate = 0
        self.unreadable = 0                             # records whose label could not be read (--verify)
        self.label_width = 0
        self.label_width_at = ''
        self.sizes = collections.Counter()              # (width, height) -> images
        self.formats = collections.Counter()
        self.modes = collections.Counter()
        self.unknown_size = 0
        self.repeated_ids = 0                           # ids used more than once within one file
        self._ids = collections.Counter()               # of the current file

    def start_file(self):
        self.repeated_ids += sum(1 for count in self._ids.values() if count > 1)
        self._ids = collections.Counter()

    def add(self, record, where):
        self.records += 1
        if record.record_id is not None:
            self._ids[record.record_id] += 1
        if record.rows is None:
            self.unreadable += 1
            return
        objects = real_objects(record)
        self.boxes[len(objects)] += 1
        classes = objects[:, 0].astype(np.int64)
        self.objects.update(classes.tolist())
        self.difficult.update(classes[objects[:, 5] > 0].tolist())
        self.images_with.update(set(classes.tolist()))
        kept = kept_count(objects)
        self.degenerate += len(objects) - kept
        if kept > self.label_width:
            self.label_width, self.label_width_at = kept, '%s %s' % (where, record.name())
        if record.width:
            self.sizes[(record.width, record.height)] += 1
            self.formats[record.format or 'unknown'] += 1
            self.modes[record.mode or 'unknown'] += 1
        else:
            self.unknown_size += 1

    def class_name(self, class_id):
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else 'class %d' % class_id

    def per_class(self):
        ids = sorted(set(range(len(self.class_names))) | set(self.objects))
        return [dict(id=class_id, name=self.class_name(class_id), objects=self.objects[class_id],
                     difficult=self.difficult[class_id], images=self.images_with[class_id]) for class_id in ids]

    def boxes_summary(self):
        images = sum(self.boxes.values())
        if not images:
            return dict(min=0, mean=0.0, max=0, histogram={})
        total = sum(count * number for count, number in self.boxes.items())
        return dict(min=min(self.boxes), mean=total / images, max=max(self.boxes),
                    histogram={str(count): self.boxes[count] for count in sorted(self.boxes)})

    def size_summary(self):
        if not self.sizes:
            return dict(images=0, unknown=self.unknown_size)
        widths = [width for width, _ in self.sizes.elements()]
        heights = [height for _, height in self.sizes.elements()]
        longer = collections.Counter()
        for (width, height), count in self.sizes.items():
            longer[max(width, height)] += count
        return dict(images=sum(self.sizes.values()), unknown=self.unknown_size,
                    width=dict(min=min(widths), mean=float(np.mean(widths)), max=max(widths)),
                    height=dict(min=min(heights), mean=float(np.mean(heights)), max=max(heights)),
                    longer_side_histogram=binned(longer, SIZE_BINS),
                    most_common=[dict(width=width, height=height, images=count)
                                 for (width, height), count in self.sizes.most_common(5)],
                    formats=dict(self.formats), modes=dict(self.modes))


def binned(counter, bins):
    """``{value: count}`` -> up to ``bins`` ranges of equal width ``[{"low", "high", "count"}]`` (inclusive)."""
    low, high = min(counter), max(counter)
    width = max(1, math.ceil((high - low + 1) / bins))
    out = []
    for start in range(low, high + 1, width):
        stop = min(start + width - 1, high)
        out.append(dict(low=start, high=stop,
                        count=sum(count for value, count in counter.items() if start <= value <= stop)))
    return out


# --- the checks ----------------------------------------------------------------------------------------------------
def index_problems(idx_entries, records):
    """What is wrong with a ``.idx`` given the records found: lines pointing at no record start or at a record
    of another id, keys listed twice, records not listed. Returns a list of strings."""
    starts = {record.offset: record for record in records if record.number is not None}
    problems, keys, listed = [], {}, set()
    for line, (key, offset) in enumerate(idx_entries, 1):
        record = starts.get(offset)
        if record is None:
            problems.append('.idx line %d (key %d): byte %d is not a record start' % (line, key, offset))
        elif record.record_id is not None and record.record_id != key:
            problems.append('.idx line %d: key %d points to record %d, whose id is %d'
                            % (line, key, record.number, record.record_id))
        if key in keys:
            problems.append('.idx lines %d and %d both have key %d (a reader by key finds only one)'
                            % (keys[key], line, key))
        keys.setdefault(key, line)
        listed.add(offset)
    for offset, record in starts.items():
        if offset not in listed:
            problems.append('%s is not in the .idx' % record.name())
    return problems


class Against:
    """Compares records, in order, with the entries of a ``.lst``."""

    def __init__(self, lst_path):
        self.path = lst_path
        self.entries = read_lst(lst_path)
        self.position = 0
        self.mismatches = []
        self.count = 0

    def compare(self, record, where):
        position = self.position
        self.position += 1
        if position >= len(self.entries):
            if position == len(self.entries):
                self._mismatch('%s %s: %s has only %d entries' % (where, record.name(), self.path,
                                                                   len(self.entries)))
            return
        index, expected, _ = self.entries[position]
        expected = expected[expected[:, 0] >= 0]
        entry = '%s entry %d (index %d)' % (self.path, position, index)
        if record.rows is None:
            self._mismatch('%s %s: its label is unreadable; %s' % (where, record.name(), entry))
        elif record.record_id != index:
            self._mismatch('%s %s: id %d, but %s' % (where, record.name(), record.record_id, entry))
        else:
            objects = real_objects(record)
            if objects.shape != expected.shape:
                self._mismatch('%s %s: %d objects, %s has %d' % (where, record.name(), len(objects), entry,
                                                                 len(expected)))
            else:
                difference = np.abs(objects - expected)
                if np.any(~(difference <= AGAINST_TOLERANCE)):
                    row = int(np.argmax(np.nan_to_num(difference, nan=np.inf).max(axis=1)))
                    self._mismatch('%s %s: object %d is [%s], %s has [%s]' % (
                        where, record.name(), row, ' '.join('%.6g' % v for v in objects[row]), entry,
                        ' '.join('%.6g' % v for v in expected[row])))

    def finish(self):
        if self.position < len(self.entries):
            self._mismatch('%s has %d entries, the records %d: entries %d-%d have no record'
                           % (self.path, len(self.entries), self.position, self.position, len(self.entries) - 1))

    def _mismatch(self, text):
        self.count += 1
        self.mismatches.append(text)


def _listed(items, limit):
    """The first ``limit`` items (all for 0), then a line counting the rest."""
    if not limit or len(items) <= limit:
        return list(items)
    return list(items[:limit]) + ['... and %d more (--max-listed 0 lists all; --json keeps all)'
                                  % (len(items) - limit)]


# --- drawing -------------------------------------------------------------------------------------------------------
def show_numbers(total, count):
    """Global record numbers of ``count`` records spread evenly over ``total``."""
    if total <= 0 or count <= 0:
        return set()
    return set(np.unique(np.round(np.linspace(0, total - 1, min(count, total))).astype(int)).tolist())


def picture_of(record, class_names, side, caption):
    """The record's image with its boxes and class names, letterboxed into a ``side`` x ``side`` cell (RGB)."""
    import cv2

    from evaluate.visualize import draw_boxes
    pixels = None
    if record.image:
        pixels = cv2.imdecode(np.frombuffer(record.image, np.uint8), cv2.IMREAD_COLOR)
    cell = np.full((side, side, 3), 128, np.uint8)
    if pixels is None:
        caption += ' (no image)'
    else:
        height, width = pixels.shape[:2]
        scale = side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        pixels = np.ascontiguousarray(pixels[:, :, ::-1])
        drawn = draw_boxes(pixels, real_objects(record), class_names)
        top, left = (side - size[1]) // 2, (side - size[0]) // 2
        cell[top:top + size[1], left:left + size[0]] = drawn
    cv2.putText(cell, caption, (3, side - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(cell, caption, (3, side - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return cell


# --- the report ----------------------------------------------------------------------------------------------------
def plural(count, noun, nouns=None):
    """``'1 bad record'``, ``'3 bad records'``."""
    return '%d %s' % (count, noun if count == 1 else nouns or noun + 's')


def bar(count, most):
    return '#' * max(1 if count else 0, round(HISTOGRAM_BAR * count / most)) if most else ''


def format_report(info):
    """The readable text report of :func:`inspect`'s numbers."""
    lines = []
    files = info['files']
    lines.append('%d record%s in %d file%s, %.1f MB; classes from %s' % (
        info['records'], 's' * (info['records'] != 1), len(files), 's' * (len(files) != 1), info['bytes'] / 1e6,
        info['classes_from'] or 'nowhere (no .classes file): numbers only'))
    if len(files) > 1 or files[0]['manifest']:
        lines.append('images per file:')
        width = max(len(item['path']) for item in files)
        for item in files:
            expected = item.get('manifest_records')
            note = '' if expected in (None, item['records']) else '  (the manifest says %d)' % expected
            lines.append('  %-*s %8d records %8.1f MB %9d objects%s' % (width, item['path'], item['records'],
                                                                      item['bytes'] / 1e6, item['objects'], note))
    lines.append('objects per class: %d objects in all, %d difficult' % (
        sum(item['objects'] for item in info['classes']), sum(item['difficult'] for item in info['classes'])))
    name_width = max([5] + [len(item['name']) for item in info['classes']])
    lines.append('  %-*s %8s %9s %7s' % (name_width, 'class', 'objects', 'difficult', 'images'))
    for item in info['classes']:
        lines.append('  %-*s %8d %9d %7d' % (name_width, item['name'], item['objects'], item['difficult'],
                                             item['images']))
    boxes = info['boxes_per_image']
    lines.append('boxes per image: min %d, mean %.2f, max %d' % (boxes['min'], boxes['mean'], boxes['max']))
    histogram = {int(key): value for key, value in boxes['histogram'].items()}
    if histogram:
        most = max(histogram.values())
        if max(histogram) < 16:
            rows = [('%d' % count, histogram.get(count, 0)) for count in range(min(histogram), max(histogram) + 1)]
        else:
            rows = [('%d-%d' % (item['low'], item['high']), item['count']) for item in binned(histogram, 10)]
        label_width = max(len(label) for label, _ in rows)
        lines += ['  %*s %7d %s' % (label_width, label, count, bar(count, most)) for label, count in rows]
    sizes = info['image_sizes']
    if sizes['images']:
        lines.append('image sizes: width %d-%d (mean %.0f), height %d-%d (mean %.0f); longer side:' % (
            sizes['width']['min'], sizes['width']['max'], sizes['width']['mean'], sizes['height']['min'],
            sizes['height']['max'], sizes['height']['mean']))
        most = max(item['count'] for item in sizes['longer_side_histogram'])
        for item in sizes['longer_side_histogram']:
            lines.append('  %5d-%-5d %7d %s' % (item['low'], item['high'], item['count'], bar(item['count'], most)))
        lines.append('  most common: %s' % ', '.join('%dx%d (%d)' % (item['width'], item['height'], item['images'])
                                                     for item in sizes['most_common']))
        lines.append('  formats: %s; modes: %s' % (
            ', '.join('%s %d' % pair for pair in sorted(sizes['formats'].items())),
            ', '.join('%s %d' % pair for pair in sorted(sizes['modes'].items()))))
    if sizes['unknown']:
        lines.append('  %d images whose size their header does not tell' % sizes['unknown'])
    lines.append('label width needed: %d (the most objects in one image%s)' % (
        info['label_width'], ', ' + info['label_width_at'] if info['label_width_at'] else ''))
    notes = []
    if info['degenerate_boxes']:
        notes.append('%s with xmax <= xmin or ymax <= ymin (MXNet drops them)'
                     % plural(info['degenerate_boxes'], 'box', 'boxes'))
    if info['empty_images']:
        notes.append('%d images without objects' % info['empty_images'])
    if info['unreadable_labels']:
        notes.append('%d records whose label cannot be read (not counted above)' % info['unreadable_labels'])
    if info['repeated_ids']:
        notes.append('%d record ids used more than once in a file' % info['repeated_ids'])
    if notes:
        lines.append('notes: %s' % '; '.join(notes))
    return '\n'.join(lines)


def format_checks(info):
    lines = []
    verify = info.get('verify')
    if verify is not None:
        for item in info['files']:
            found = item['verify']
            if not found['bad_records'] and not found['index_problems'] and not found['file_problems']:
                lines.append('verify %s: all %d records good (framing, .idx, labels, images)'
                             % (item['path'], item['records']))
                continue
            lines.append('verify %s: %s, %s, %s' % (
                item['path'], plural(len(found['bad_records']), 'bad record'),
                plural(len(found['index_problems']), '.idx problem'),
                plural(len(found['file_problems']), 'file problem')))
            lines += ['  %s' % text for text in found['file_problems']]
            bad_lines = ['%s: %s' % (bad['name'], '; '.join(bad['problems'])) for bad in found['bad_records']]
            lines += ['  %s' % text for text in _listed(bad_lines, info['max_listed'])]
            lines += ['  %s' % text for text in _listed(found['index_problems'], info['max_listed'])]
    for against in info.get('against', []):
        if not against['mismatches']:
            lines.append('against %s: every record\'s label equals the list (to %g), in order'
                         % (against['lst'], AGAINST_TOLERANCE))
            continue
        lines.append('against %s: %s' % (against['lst'], plural(against['count'], 'mismatch', 'mismatches')))
        lines += ['  %s' % text for text in _listed(against['mismatches'], info['max_listed'])]
    if info.get('show'):
        lines.append('wrote %s: %d records with their boxes' % (info['show']['path'], info['show']['records']))
    return '\n'.join(lines)


# --- the scan ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def pillow_refuses_cut_images():
    """Pillow's process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES`` off for the block, as it was afterwards.

    gluoncv.data switches it on when imported. It is switched once around all the decoding threads: switched
    per record, one thread's restore let another's cut image through.
    """
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def _decoded(records, check, num_thread):
    """``check`` applied to each record on a thread pool, in order, a bounded number in flight, with Pillow
    refusing cut images (:func:`pillow_refuses_cut_images`) until the last record is out."""
    with pillow_refuses_cut_images():
        if num_thread <= 1:
            yield from map(check, records)
            return
        with concurrent.futures.ThreadPoolExecutor(num_thread) as pool:
            batch = []
            for record in records:
                batch.append(record)
                if len(batch) >= DECODE_BATCH * num_thread:
                    yield from pool.map(check, batch)
                    batch = []
            yield from pool.map(check, batch)


def _against_for(lists, parts):
    """One :class:`Against` for every record (one list) or one per part (a list each)."""
    if not lists:
        return None
    if len(lists) == 1:
        return [Against(lists[0])] * len(parts)
    if len(lists) != len(parts):
        raise UserError('--against is given %d times for %d .rec files; give one .lst for all the records or '
                        'one per .rec, in the same order' % (len(lists), len(parts)))
    return [Against(path) for path in lists]


def _index_for(part, verify):
    """The ``.idx`` entries, or ``(None, problem)`` under --verify when the file cannot be read."""
    try:
        return read_index(idx_path_for(part.rec)), None
    except UserError as err:
        if not verify:
            raise
        return None, str(err).split('; pack')[0]


def _check_readable(parts):
    """Without --verify the files must be well formed: the reader's own check (its one-line error on a bad file,
    pointing at --verify)."""
    from dataset.iterator import scan_records
    for part in parts:
        try:
            scan_records(part.rec)
        except UserError as err:
            raise UserError('%s (tools/rec_info.py --verify %s names every bad record)' % (err, part.rec)) from None


def _file_problems(part, records, index_problem):
    """Problems of a whole file under --verify: an unreadable .idx, a count the manifest does not say, no records."""
    problems = [index_problem] if index_problem else []
    if part.manifest_records is not None and part.manifest_records != records:
        problems.append('%s says %d records, the file holds %d' % (part.manifest, part.manifest_records, records))
    if not records:
        problems.append('it holds no records')
    return problems


class Inspection:
    """One pass over the records of every part, feeding the counts, the checks, the comparison and the picture."""

    def __init__(self, parts, verify, lists, show, show_size, num_thread, progress):
        self.parts, self.verify, self.show_size = parts, verify, show_size
        self.class_names, self.classes_from = class_names_for(parts)
        self.againsts = _against_for(list(lists), parts) or [None] * len(parts)
        self.indexes = [_index_for(part, verify) for part in parts]
        total = sum(len(entries) for entries, _ in self.indexes if entries is not None)
        self.wanted = show_numbers(total, show)
        self.num_thread = num_thread or available_cores()
        self.tally, self.shown, self.files, self.number = Tally(self.class_names), [], [], 0
        self.progress = tqdm(total=total, unit='rec', delay=2.0, leave=False, disable=not progress,
                             desc='reading')

    def run(self):
        for part, (entries, index_problem), against in zip(self.parts, self.indexes, self.againsts):
            self.files.append(self._one_file(part, entries, index_problem, against))
        self.progress.close()
        self.tally.start_file()
        for against in dict.fromkeys(self.againsts):
            if against is not None:
                against.finish()
        return self

    def _one_file(self, part, entries, index_problem, against):
        self.tally.start_file()
        records, objects = self.tally.records, sum(self.tally.objects.values())
        file_layout, bad, found = None, [], []
        reader = MXNetRecords(part.rec)
        try:
            walked = walk_records(part.rec, {offset for _, offset in entries or ()}, reader)
            for record in _decoded(walked, decode_check, self.num_thread) if self.verify else walked:
                if record.number is not None:
                    self.progress.update()
                    file_layout = file_layout or record.layout
                    self._one_record(record, part, file_layout, against)
                if self.verify:
                    found.append(Record(record.number, record.offset, record.end, record.record_id))
                    if record.problems:
                        bad.append(dict(name=record.name(), number=record.number, offset=record.offset,
                                        id=record.record_id, problems=record.problems))
        finally:
            reader.close()
        item = dict(path=part.rec, manifest=part.manifest, records=self.tally.records - records,
                    bytes=os.path.getsize(part.rec), objects=sum(self.tally.objects.values()) - objects)
        if part.manifest_records is not None:
            item['manifest_records'] = part.manifest_records
        if self.verify:
            item['verify'] = dict(bad_records=bad, file_problems=_file_problems(part, item['records'], index_problem),
                                  index_problems=index_problems(entries, found) if entries is not None else [])
        return item

    def _one_record(self, record, part, file_layout, against):
        if self.verify:
            check_objects(record, len(self.class_names), file_layout)
        if record.image is not None and not record.width:
            image_header(record)
        self.tally.add(record, part.rec)
        if against is not None:
            against.compare(record, part.rec)
        if self.number in self.wanted:
            self.shown.append(picture_of(record, self.class_names, self.show_size,
                                         '%s #%d' % (os.path.basename(part.rec), record.number)))
        self.number += 1

    def numbers(self, max_listed):
        """The ``--json`` document."""
        tally = self.tally
        info = dict(inputs=[part.rec for part in self.parts], files=self.files, records=tally.records,
                    bytes=sum(item['bytes'] for item in self.files), classes_from=self.classes_from,
                    class_names=list(self.class_names), classes=tally.per_class(),
                    boxes_per_image=tally.boxes_summary(), image_sizes=tally.size_summary(),
                    label_width=max(tally.label_width, 1), label_width_at=tally.label_width_at,
                    degenerate_boxes=tally.degenerate, unreadable_labels=tally.unreadable,
                    empty_images=tally.boxes.get(0, 0), repeated_ids=tally.repeated_ids, max_listed=max_listed)
        if self.verify:
            info['verify'] = dict(ok=not any(item['verify'][key] for item in self.files
                                             for key in ('bad_records', 'index_problems', 'file_problems')))
        else:  # the width training computes (equal to the tally's: both count the boxes MXNet keeps)
            from dataset.iterator import shared_label_width
            info['label_width'] = shared_label_width(*(part.rec for part in self.parts))
        againsts = [against for against in dict.fromkeys(self.againsts) if against is not None]
        if againsts:
            info['against'] = [dict(lst=against.path, count=against.count, mismatches=against.mismatches)
                               for against in againsts]
        return info


def inspect(parts, verify=False, lists=(), show=0, show_out=None, show_size=256, num_thread=None, progress=True,
            max_listed=50):
    """Read every record of ``parts`` once; returns the numbers (the ``--json`` document).

    Parameters
    ----------
    parts : list of Part
    verify : bool
        Check the framing, the ``.idx``, the labels and decode every image.
    lists : sequence of str
        ``.lst`` files to compare the labels with (one for all, or one per part).
    show, show_out, show_size :
        Draw ``show`` records (spread evenly) into ``show_out``, in square cells of ``show_size`` pixels.
    num_thread : int, optional
        Decoding threads of --verify (default: all cores).
    max_listed : int
        Problems printed one by one per kind and file (0: all); kept for :func:`format_checks`.

    Returns
    -------
    dict
    """
    if not verify:
        _check_readable(parts)
    inspection = Inspection(parts, verify, lists, show, show_size, num_thread, progress).run()
    info = inspection.numbers(max_listed)
    if show:
        from evaluate.visualize import save_image_grid
        cols = math.ceil(math.sqrt(len(inspection.shown))) if inspection.shown else 1
        if inspection.shown:
            save_image_grid(inspection.shown, show_out, cols=cols, gap=SHOW_GAP)
        info['show'] = dict(path=show_out if inspection.shown else None, records=len(inspection.shown), cols=cols,
                            cell=show_size)
    return info


def check_args(args):
    if args.show < 0:
        raise UserError('--show %d must be 0 or more records' % args.show)
    if args.show and not args.out:
        raise UserError('--show %d needs --out, the picture to write (e.g. --out preview.png)' % args.show)
    if args.out and not args.show:
        raise UserError('--out %s is written by --show N; give the number of records to draw' % args.out)
    if args.out:
        from evaluate.visualize import IMAGE_EXTENSIONS
        if os.path.splitext(args.out)[1].lower() not in IMAGE_EXTENSIONS:
            raise UserError('--out %s must end in one of %s' % (args.out, ', '.join(IMAGE_EXTENSIONS)))
    if args.show_size < 32:
        raise UserError('--show-size %d must be at least 32 pixels' % args.show_size)
    if args.max_listed < 0:
        raise UserError('--max-listed %d must be 0 (all) or more' % args.max_listed)
    if args.num_thread is not None and args.num_thread < 1:
        raise UserError('--num-thread %d must be at least 1' % args.num_thread)
    if args.json_path and os.path.isdir(args.json_path):
        raise UserError('--json %s is a folder; give a file name such as info.json' % args.json_path)
    for path in args.against:
        if not path.endswith('.lst'):
            raise UserError('--against %s must be a .lst file' % path)


def main(args):
    configure_threads()
    import mxnet  # noqa: F401  (imported here, after configure_threads: it reads OMP_NUM_THREADS once)

    check_args(args)
    parts = resolve_inputs(args.inputs)
    info = inspect(parts, verify=args.verify, lists=args.against, show=args.show, show_out=args.out,
                   show_size=args.show_size, num_thread=args.num_thread, progress=not args.no_progress,
                   max_listed=args.max_listed)
    print(format_report(info))
    checks = format_checks(info)
    if checks:
        print(checks)
    if args.json_path:
        write_json(args.json_path, info, indent=1)
        print('wrote %s' % args.json_path)
    sys.stdout.flush()
    failed = []
    if args.verify and not info['verify']['ok']:
        counts = [plural(sum(len(item['verify'][key]) for item in info['files']), noun) for key, noun in
                  (('bad_records', 'bad record'), ('index_problems', '.idx problem'),
                   ('file_problems', 'file problem'))]
        failed.append('--verify found %s' % ', '.join(counts))
    if any(item['count'] for item in info.get('against', [])):
        failed.append('--against found %s' % plural(sum(item['count'] for item in info['against']), 'mismatch',
                                                     'mismatches'))
    if failed:
        raise CheckFailed('%s (listed above); pack the files again with tools/im2rec.py or '
                          'tools/prepare_dataset.py' % ' and '.join(failed))
    return info


if __name__ == '__main__':
    run_cli(main, parse_args())
