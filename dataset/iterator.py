"""``DetRecordIter``: MXNet's C++ detection record iterator, with labels shaped ``(B, max_objects, 6)``.

``mx.io.ImageDetRecordIter`` decodes and augments images in C++ threads. Read back from records of known
content (tests/test_iterator.py), the raw label row it returns for each image is::

    [channels, rows, cols, L, header_width, object_width, (header extras), obj_1, ..., obj_n, pad, ...]
     \\_ the output image _/  \\__________ the record's label vector after augmentation: L floats ________/

padded with ``label_pad_value`` to ``4 + label_pad_width`` floats, so the C++ ``label_pad_width`` counts the
label vector (header included) in floats, not objects. :class:`DetRecordIter` strips those four numbers and
the label header and returns ``[cls, xmin, ymin, xmax, ymax, difficult]`` rows, -1 padded.

What else the reading showed about MXNet 1.9.1's C++ side:

- a record whose label is the bare header ``[2, 6]`` (an image with no objects) stops the iterator
  (``Check failed: label_width >= 7``); the augmenter drops every box with ``xmax <= xmin`` or
  ``ymax <= ymin`` instead. So when a ``.rec`` holds such records, the labels are handed to the C++ iterator
  through a temporary label list in which an image without objects carries one all ``-1`` row, which the
  augmenter then drops;
- ``path_imglist`` replaces the labels stored in the records: the list is read once, at construction,
  and looked up by record id (the IRHeader ``id``, i.e. the ``.lst`` index);
- ``seed`` only changes the shuffle order; the augmenters' random generators are seeded per decoding thread
  with fixed numbers and keep running across epochs;
- ``shuffle`` shuffles the images within each chunk read (8 MB), not across the whole file; with
  ``shuffle_chunk_size`` (MB) the file's parts of that size are also read in a new order each epoch;
- the iterator decodes its first batch while it is being constructed, so unreadable images can stop the
  constructor as well as ``next()``;
- ``round_batch=True`` fills the last batch from the start of the file and the next epoch then skips those
  images; with ``round_batch=False`` every epoch reads every image once (``batch.pad`` says how many of
  the last batch's images are filler).
"""
import contextlib
import dataclasses
import difflib
import functools
import os
import re
import tempfile

import mxnet as mx
import numpy as np
from tqdm import tqdm

from config.augmentation import augmentation_preset
from config.defaults import LABEL_PAD_VALUE
from config.errors import UserError
from config.runtime import decode_threads
from config.schema import DEFAULTS
from dataset.lst import (
    HEADER_WIDTH,
    OBJECT_WIDTH,
    format_lst_line,
    inside_unit_square,
    read_lst,
    split_label,
    to_six_columns,
)
from dataset.record_set import reader_path, resolve_inputs, worker_shares
from dataset.recordio import (
    NO_OBJECT_ROW,
    check_index_matches,
    check_record_files,
    idx_path_for,
    read_index,
    read_record_entries,
    read_record_labels,
)

RAW_INFO_WIDTH = 4                       # [channels, rows, cols, label length] before each raw label
_RESERVED_PARAMS = ('label_width', 'label_pad_value', 'mean_r', 'mean_g', 'mean_b', 'path_imgrec',
                    'num_parts', 'part_index')  # set by DetRecordIter


@dataclasses.dataclass(frozen=True, eq=False)
class RecordStats:
    """What :func:`scan_records` found in a ``.rec`` file.

    Attributes
    ----------
    path : str
        The ``.rec`` file.
    num_records : int
        Images in the file.
    max_objects : int
        Most objects in one image (boxes with ``xmax > xmin`` and ``ymax > ymin``, the ones MXNet keeps).
    max_objects_id : int
        Record id of an image with ``max_objects`` objects (-1 for an empty file).
    num_objects : int
        Objects in all images.
    num_empty : int
        Images without objects.
    num_bare : int
        Records whose label is the bare header, no object rows at all (MXNet's C++ iterator stops on them;
        ``tools/im2rec.py`` writes one all -1 row instead, MXNet's own im2rec does not).
    num_degenerate : int
        Boxes of class >= 0 with ``xmax <= xmin`` or ``ymax <= ymin``: MXNet drops them silently.
    header_width, object_width : int
        The label layout shared by every record (2 and 6 for files packed by this project).
    record_ids : (num_records,) int64 array
        The IRHeader ids in file order.
    """
    path: str
    num_records: int
    max_objects: int
    max_objects_id: int
    num_objects: int
    num_empty: int
    num_bare: int
    num_degenerate: int
    header_width: int
    object_width: int
    record_ids: np.ndarray = dataclasses.field(repr=False)


def _one_line(err):
    """The most telling line of an MXNet error (its 'Check failed' line when there is one)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if 'Check failed' in line or 'Invalid' in line:
            return line
    return lines[-1] if lines else type(err).__name__


def kept_boxes(objects, where):
    """Which object rows MXNet keeps (``xmax > xmin`` and ``ymax > ymin``), checking the coordinates.

    Parameters
    ----------
    objects : (N, >=5) float array
        ``[cls, xmin, ymin, xmax, ymax, ...]`` rows; rows with class < 0 are padding.
    where : str
        Names the record in error messages.

    Returns
    -------
    (N,) bool array

    Raises
    ------
    UserError
        When a real object has a coordinate that is not finite or lies outside [0, 1].
    """
    boxes = objects[:, 1:5]
    bad = (objects[:, 0] >= 0) & ~inside_unit_square(boxes)
    if bad.any():
        raise UserError('%s has box %s outside [0, 1]; coordinates must be normalized by the image width and '
                        'height (write the .lst with tools/prepare_dataset.py and pack it again)'
                        % (where, np.array2string(boxes[bad][0], precision=4)))
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def scan_records(path_imgrec):
    """Read every record's label header (no image decoding) and check that it is a detection label.

    Results are cached per file path, size and modification time.

    Parameters
    ----------
    path_imgrec : str
        A ``.rec`` file with its ``.idx`` next to it.

    Returns
    -------
    RecordStats

    Raises
    ------
    UserError
        When a file is missing, the file is not RecordIO, or a label is not a normalized detection label
        (a classification ``.rec`` gets "pack with tools/im2rec.py --pack-label from a detection .lst").
    """
    check_record_files(path_imgrec)
    status, index_status = os.stat(path_imgrec), os.stat(idx_path_for(path_imgrec))
    return _scan_cached(path_imgrec, (status.st_size, status.st_mtime_ns, index_status.st_size,
                                      index_status.st_mtime_ns))


def _read_layout_and_objects(path_imgrec):
    """Every record's id and object rows, checking that all records share one label layout and that the
    ``.idx`` points at them.

    Returns
    -------
    ids : list of int
    objects : list of (N_i, object_width) float32 arrays
    layout : (header_width, object_width)
    """
    index = read_index(idx_path_for(path_imgrec))
    ids, offsets, objects, layout = [], [], [], None
    progress = tqdm(read_record_entries(path_imgrec), total=len(index), unit='img', delay=2.0, leave=False,
                    desc='scanning %s' % os.path.basename(path_imgrec))
    for offset, record_id, flat in progress:
        header_width, object_width, rows = split_label(flat, '%s record %d' % (path_imgrec, record_id))
        if layout not in (None, (header_width, object_width)):
            raise UserError('%s mixes label layouts (header width, object width) %s and %s; pack it again '
                            'from one .lst' % (path_imgrec, layout, (header_width, object_width)))
        layout = (header_width, object_width)
        ids.append(record_id)
        offsets.append(offset)
        objects.append(rows)
    if not ids:
        raise UserError('%s holds no records; pack it again from a non-empty .lst' % path_imgrec)
    check_index_matches(path_imgrec, index, offsets)
    return ids, objects, layout


@functools.lru_cache(maxsize=16)
def _scan_cached(path_imgrec, file_status):
    ids, objects, (header_width, object_width) = _read_layout_and_objects(path_imgrec)
    record_of_row = np.repeat(np.arange(len(ids)), [len(rows) for rows in objects])
    rows = np.concatenate(objects)
    try:
        kept = kept_boxes(rows, path_imgrec)  # all rows at once; on a bad box, name its record:
    except UserError:
        for record_id, record_rows in zip(ids, objects):
            kept_boxes(record_rows, '%s record %d' % (path_imgrec, record_id))
        raise
    counts = np.bincount(record_of_row[kept], minlength=len(ids))
    degenerate = int(np.sum(~kept & (rows[:, 0] >= 0)))
    return RecordStats(path=path_imgrec, num_records=len(ids), max_objects=int(counts.max()),
                       max_objects_id=int(ids[int(counts.argmax())]), num_objects=int(counts.sum()),
                       num_empty=int(np.sum(counts == 0)), num_degenerate=degenerate,
                       num_bare=sum(1 for record_rows in objects if len(record_rows) == 0),
                       header_width=header_width, object_width=object_width,
                       record_ids=np.array(ids, dtype=np.int64))


def record_objects(path_imgrec):
    """The objects stored in each record, as MXNet would keep them.

    Returns
    -------
    dict
        ``{record_id: (N, 6) float32}``; boxes with ``xmax <= xmin`` or ``ymax <= ymin`` are left out.
    """
    labels = {}
    for record_id, flat in read_record_labels(path_imgrec):
        where = '%s record %d' % (path_imgrec, record_id)
        objects = split_label(flat, where)[2]
        labels[record_id] = to_six_columns(objects[kept_boxes(objects, where)])
    return labels


def list_objects(path_imglist):
    """The objects of each line of a detection ``.lst``, as MXNet would keep them.

    Returns
    -------
    dict
        ``{index: (N, 6) float32}``; padding rows and boxes with ``xmax <= xmin`` or ``ymax <= ymin`` are
        left out. A later line with the same index replaces an earlier one, as in MXNet's reader.
    """
    labels = {}
    for index, objects, _ in read_lst(path_imglist):
        labels[index] = objects[kept_boxes(objects, '%s line %d' % (path_imglist, index))]
    return labels


def _most_objects(labels):
    """``{id: (N, 6)}`` -> ``(max N, an id with max N)``; ``(0, -1)`` when empty."""
    if not labels:
        return 0, -1
    best = max(labels, key=lambda key: len(labels[key]))
    return len(labels[best]), best


def shared_label_width(*paths):
    """The label width (max objects per image) to use for ALL the given files, train and val alike.

    Parameters
    ----------
    *paths : str
        ``.rec`` files or sets of them (labels stored in the records; dataset/record_set.py) and/or ``.lst``
        files (labels given to the iterator as ``path_imglist``).

    Returns
    -------
    int
        The largest number of objects in one image over all files, at least 1.
    """
    widths = [1]
    for path in paths:
        if path.endswith('.lst'):
            widths.append(_most_objects(list_objects(path))[0])
        else:
            widths.extend(scan_records(part.rec).max_objects for part in resolve_inputs(path))
    return max(widths)


def as_data_shape(data_shape):
    """``300`` or ``(3, 300, 300)`` -> ``(3, H, W)``; anything else is a UserError."""
    shape = (3, data_shape, data_shape) if isinstance(data_shape, (int, np.integer)) else tuple(data_shape)
    if len(shape) != 3 or shape[0] != 3 or any(int(side) != side or side < 1 for side in shape):
        raise UserError('data_shape %r must be a positive int or (3, height, width)' % (data_shape,))
    return tuple(int(side) for side in shape)


def _resolve_label_width(label_pad_width, needed, where):
    """The label width to use: ``needed`` (at least 1) when None, else the given width if it is enough."""
    if label_pad_width is None:
        return max(needed, 1)
    if int(label_pad_width) != label_pad_width or label_pad_width < 1:
        raise UserError('label width %r must be a positive whole number of objects' % (label_pad_width,))
    if label_pad_width < needed:
        raise UserError('label width %d is too small: %s has %d objects; set the label width to at least %d '
                        '(train.py --label-width %d), or leave it unset to compute it from the data'
                        % (label_pad_width, where, needed, needed, needed))
    return int(label_pad_width)


@functools.lru_cache(maxsize=1)
def iterator_param_names():
    """Names of all parameters ``mx.io.ImageDetRecordIter`` accepts (read from its generated docstring)."""
    return frozenset(re.findall(r'^(\w+) : ', mx.io.ImageDetRecordIter.__doc__, re.M))


def iterator_params(preset, overrides):
    """Preset ``preset`` with ``overrides`` applied, checked against the C++ iterator's parameter names.

    MXNet silently ignores unknown keyword arguments, so a misspelt augmentation would do nothing.

    Returns
    -------
    dict
    """
    try:
        params = augmentation_preset(preset, **overrides)
    except KeyError as err:
        raise UserError(err.args[0]) from None
    for name in params:
        if name in _RESERVED_PARAMS:
            raise UserError('%s is set by DetRecordIter itself; do not pass it as an augmentation' % name)
        if name not in iterator_param_names():
            close = difflib.get_close_matches(name, iterator_param_names(), n=1)
            raise UserError('unknown iterator parameter %r%s' % (name, close and '; did you mean %r?' % close[0]
                                                                   or ''))
    params.setdefault('preprocess_threads', decode_threads())
    params.setdefault('verbose', False)
    return params


@contextlib.contextmanager
def temporary_label_list(labels):
    """Write ``{id: (N, 6)}`` labels as a ``.lst`` MXNet's label map reads; remove it afterwards.

    An image without objects gets one all ``-1`` row: MXNet refuses a label without any object row and
    drops that one as degenerate. The path column is a placeholder (the list only supplies labels).

    Yields
    ------
    str
        The list's path.
    """
    handle, path = tempfile.mkstemp(prefix='det-labels-', suffix='.lst')
    try:
        with os.fdopen(handle, 'w') as out:
            for index, objects in labels.items():
                rows = objects if len(objects) else NO_OBJECT_ROW
                out.write(format_lst_line(index, rows, 'unused') + '\n')
        yield path
    finally:
        os.remove(path)


def unpack_raw_labels(raw, label_width, pad=0):
    """The C++ iterator's raw label rows -> object rows, -1 padded.

    Parameters
    ----------
    raw : (B, 4 + header_width + object_width * label_width) float32 array
        ``[channels, rows, cols, L, header_width, object_width, (extras), objects..., pad...]``.
    label_width : int
        Object rows per image in the output.
    pad : int
        Filler images at the end of the batch: their rows hold whatever the C++ output buffer held before
        (nothing readable in a first batch, stale labels later) and are left as padding.

    Returns
    -------
    (B, label_width, 6) float32 array
        ``[cls, xmin, ymin, xmax, ymax, difficult]`` rows; difficult is 0 when the records have 5 columns.
        Filler images get padding rows only.
    """
    out = np.full((raw.shape[0], label_width, OBJECT_WIDTH), LABEL_PAD_VALUE, dtype=np.float32)
    for image, row in enumerate(raw[:raw.shape[0] - pad]):
        length, header_width, object_width = int(row[3]), int(row[4]), int(row[5])
        objects = row[RAW_INFO_WIDTH + header_width:RAW_INFO_WIDTH + length].reshape(-1, object_width)
        out[image, :len(objects)] = to_six_columns(objects)
    return out


def check_worker(num_parts, part_index):
    """UserError unless ``0 <= part_index < num_parts`` are whole numbers."""
    if int(num_parts) != num_parts or num_parts < 1:
        raise UserError('num_parts %r must be a positive whole number (the workers sharing the data)' % (num_parts,))
    if int(part_index) != part_index or not 0 <= part_index < num_parts:
        raise UserError('part_index %r must be a whole number in [0, %d) (this worker\'s rank)'
                        % (part_index, num_parts))


def checked_scan(part):
    """:func:`scan_records` of one part, checked against its manifest's record count when it has one."""
    stats = scan_records(part.rec)
    if part.manifest_records is not None and part.manifest_records != stats.num_records:
        raise UserError('%s holds %d records but %s says %d; the part was repacked after the manifest was '
                        'written: run tools/prepare_dataset.py again (it rewrites both)'
                        % (part.rec, stats.num_records, part.manifest, part.manifest_records))
    return stats


def shared_layout(stats):
    """The ``(header_width, object_width)`` all files share; UserError naming two files that differ."""
    first = stats[0]
    for item in stats[1:]:
        if (item.header_width, item.object_width) != (first.header_width, first.object_width):
            raise UserError('%s and %s store labels of other layouts (header, object width) %s and %s; pack '
                            'them from lists of one format' % (first.path, item.path,
                                                               (first.header_width, first.object_width),
                                                               (item.header_width, item.object_width)))
    return first.header_width, first.object_width


class DetRecordIter(mx.io.DataIter):
    """Batches of augmented images and their boxes from detection records (C++ decoding threads).

    Parameters
    ----------
    path_imgrec : str or list of str
        ``.rec`` packed by tools/im2rec.py (``.idx`` next to it); or several read as one set: a manifest of
        parts (``data/train.json``), a glob (``'data/train-*.rec'``), a comma-separated list or a list
        (dataset/record_set.py).
    batch_size : int
        Images per batch.
    data_shape : int or (3, H, W)
        Output image size; an int means a square.
    mean_pixels : (3,) floats
        RGB values subtracted from every pixel.
    label_pad_width : int, optional
        Object rows per image in the labels ("label width"). None: the most objects in one image of these
        files (use :func:`shared_label_width` to give train and val iterators the same width).
    path_imglist : str, optional
        A detection ``.lst`` whose labels replace those stored in the records (matched by record id).
    preset : str
        Augmentation preset in config/augmentation.py (``'ssd_train'``, ``'mirror'``, ``'val'``).
    std_pixels : (3,) floats
        RGB divisors applied after the mean is subtracted (1: none).
    num_parts, part_index : int
        Read only worker ``part_index``'s share of ``num_parts`` (distributed training): a split by bytes of
        the files joined, each record read by exactly one worker (dataset/record_set.py).
    **augmentation
        ``mx.io.ImageDetRecordIter`` parameters overriding the preset (e.g. ``rand_mirror_prob=0``,
        ``preprocess_threads=2``, ``seed=1``); decoding threads default to ``decode_threads()``.

    Attributes
    ----------
    parts : list of dataset.record_set.Part
        The ``.rec`` files read, in order.
    num_records : int
        Images this iterator reads per epoch (this worker's share).
    worker_records : (num_parts,) int array
        Images of every worker's share (all of them sum to the set's images).
    label_width : int
        Object rows per image in the labels.
    provide_data : [('data', (B, 3, H, W))]
        float32, RGB, ``(pixel - mean_pixels) / std_pixels``.
    provide_label : [('label', (B, label_width, 6))]
        float32 ``[cls, xmin, ymin, xmax, ymax, difficult]``, normalized, -1 padded.

    Notes
    -----
    A batch's data array belongs to the C++ prefetch buffers and is overwritten a few batches later:
    copy it (e.g. ``asnumpy()``) to keep it. ``batch.pad`` counts filler images at the end of a batch.
    """

    def __init__(self, path_imgrec, batch_size, data_shape, mean_pixels=DEFAULTS.data.mean_pixels,
                 label_pad_width=None, path_imglist='', preset='val', std_pixels=DEFAULTS.data.std_pixels,
                 num_parts=1, part_index=0, **augmentation):
        if int(batch_size) != batch_size or batch_size < 1:
            raise UserError('batch size %r must be a positive whole number' % (batch_size,))
        if len(mean_pixels) != 3:
            raise UserError('mean_pixels %r must be three numbers (R, G, B)' % (mean_pixels,))
        if len(std_pixels) != 3 or min(std_pixels) <= 0:
            raise UserError('std_pixels %r must be three positive numbers (R, G, B)' % (std_pixels,))
        check_worker(num_parts, part_index)
        super().__init__(int(batch_size))
        self.parts = resolve_inputs(path_imgrec)
        self.path_imgrec = ','.join(part.rec for part in self.parts)
        self.data_shape = as_data_shape(data_shape)
        stats = [checked_scan(part) for part in self.parts]
        layout = shared_layout(stats)
        self.worker_records = worker_shares(self.parts, num_parts)
        self.num_records = int(self.worker_records[part_index])
        if self.num_records == 0:
            raise UserError('worker %d of %d gets no images of %s (%d images); use fewer workers'
                            % (part_index, num_parts, self.path_imgrec, sum(item.num_records for item in stats)))
        labels = self._replacement_labels(stats, path_imglist)
        if labels is None:
            most = max(stats, key=lambda item: item.max_objects)
            needed, where = most.max_objects, '%s record %d' % (most.path, most.max_objects_id)
        else:
            layout, (needed, most_id) = (HEADER_WIDTH, OBJECT_WIDTH), _most_objects(labels)
            where = '%s entry %d' % (path_imglist or self.path_imgrec, most_id)
        self.label_width = _resolve_label_width(label_pad_width, needed, where)
        params = iterator_params(preset, augmentation)
        params.update(path_imgrec=reader_path(self.parts), batch_size=self.batch_size, data_shape=self.data_shape,
                      label_pad_width=layout[0] + layout[1] * self.label_width,
                      label_pad_value=LABEL_PAD_VALUE, num_parts=int(num_parts), part_index=int(part_index),
                      mean_r=mean_pixels[0], mean_g=mean_pixels[1], mean_b=mean_pixels[2],
                      std_r=std_pixels[0], std_g=std_pixels[1], std_b=std_pixels[2])
        self._iter = self._create(params, labels)
        self.provide_data = [mx.io.DataDesc('data', (self.batch_size,) + self.data_shape)]
        self.provide_label = [mx.io.DataDesc('label', (self.batch_size, self.label_width, OBJECT_WIDTH))]

    def _replacement_labels(self, stats, path_imglist):
        """Labels to hand to MXNet by id instead of those in the records, or None to use the records'.

        Returns
        -------
        dict or None
            ``{record_id: (N, 6)}`` from ``path_imglist`` when given; else, when some record has no objects
            but no object rows at all (MXNet cannot read those), the records' own labels.
        """
        record_ids = np.concatenate([item.record_ids for item in stats])
        if path_imglist:
            labels = list_objects(path_imglist)
            missing = sorted(set(record_ids.tolist()) - set(labels))
            if missing:
                raise UserError('%s has no line for record ids %s of %s; the list must name every record by '
                                'its index' % (path_imglist, ', '.join(map(str, missing[:5])), self.path_imgrec))
            return labels
        if sum(item.num_bare for item in stats) == 0:
            return None
        if len(np.unique(record_ids)) != len(record_ids):
            raise UserError('%s has images without objects and repeated record ids%s; pack %s with '
                            'tools/im2rec.py' % (self.path_imgrec, ' across its files' if len(stats) > 1 else '',
                                                 'the files from one .lst' if len(stats) > 1 else 'it again'))
        labels = {}
        for item in stats:
            labels.update(record_objects(item.path))
        return labels

    def _create(self, params, labels):
        """The C++ iterator (which decodes its first batch at once), with ``labels`` (if any) passed as a
        temporary label list that it reads at construction."""
        try:
            if labels is None:
                return mx.io.ImageDetRecordIter(**params)
            with temporary_label_list(labels) as path:
                return mx.io.ImageDetRecordIter(path_imglist=path, **params)
        except mx.base.MXNetError as err:
            raise self._reading_error(err) from None

    def _reading_error(self, err):
        return UserError('reading images from %s failed (%s); does every record hold a decodable image? Pack it '
                         'again with tools/im2rec.py' % (self.path_imgrec, _one_line(err)))

    def reset(self):
        """Start the next epoch (see the module notes on ``round_batch``)."""
        self._iter.reset()

    def next(self):
        """The next :class:`mx.io.DataBatch` (data ``(B, 3, H, W)``, label ``(B, label_width, 6)``, pad)."""
        try:
            batch = self._iter.next()
        except mx.base.MXNetError as err:
            raise self._reading_error(err) from None
        labels = unpack_raw_labels(batch.label[0].asnumpy(), self.label_width, batch.pad)
        return mx.io.DataBatch(data=[batch.data[0]], label=[mx.nd.array(labels)], pad=batch.pad,
                               index=batch.index, provide_data=self.provide_data,
                               provide_label=self.provide_label)
