"""Pack a detection ``.lst`` and its images into MXNet's indexed RecordIO: ``<prefix>.rec`` + ``<prefix>.idx``.

Usage, with MXNet's im2rec arguments::

    python tools/im2rec.py data/train data/VOCdevkit --pack-label [--num-thread N] [--quality 95]
        [--resize 0] [--pass-through] [--encoding .jpg|.png] [--color 1]

``prefix`` may also be given as the ``.lst`` path itself. Each record is what ``mx.recordio.pack`` builds from
``IRHeader(flag=label.size, label=0, id=<.lst index>, id2=0)``: the 24-byte header, the flat float32 label
``[2, 6, cls, xmin, ymin, xmax, ymax, difficult, ...]`` (an image without objects gets one all -1 row,
which ``ImageDetRecordIter`` needs and drops), then the image bytes; the ``.idx`` holds one
``index<TAB>offset`` line per record. ``mx.io.ImageDetRecordIter``, ``mx.recordio.MXIndexedRecordIO`` and
gluoncv's ``RecordFileDetection`` read the pair.

Decisions, each differing from MXNet's ``tools/im2rec.py`` on purpose:

- ``--pack-label`` is required. Without it MXNet's tool packs one number per record, a classification
  record that no detector can train on; here its absence is a one-line error rather than a silent no-op.
- Images are decoded and encoded with Pillow on a pool of threads (its libjpeg-turbo releases the GIL and,
  in this environment, runs about 3x faster than OpenCV's build; it encodes into a per-thread in-memory
  file, since into a ``BytesIO`` Pillow's encoder holds the GIL), eight images per task; records are framed
  in the workers and written in ``.lst`` order by the calling thread, one ``writev`` per record. The list is
  streamed, a block of lines at a time, so memory stays flat in its length. ``--pass-through`` copies on
  the calling thread alone: with nothing to decode, a pool costs more than it saves. MXNet's tool pickles
  every image between processes and imports MXNet, which alone takes seconds; this module never imports
  MXNet and writes the RecordIO framing itself (:mod:`dataset.recordio`).
- EXIF orientation is applied when re-encoding, as ``cv2.imread`` (and so MXNet's tool) does. Labels are
  normalized, so ``--resize`` leaves them unchanged.
- An image that is missing or cannot be decoded is skipped with a warning naming it, as MXNet's tool does; the
  other records keep their ``.lst`` index as record id. ``--no-skip-bad`` makes the first one an error instead
  (``tools/prepare_dataset.py`` packs that way unless given ``--skip-bad``). Boxes are checked when the list is
  read: coordinates outside [0, 1] (unnormalized pixels) or empty boxes are a one-line error naming the ``.lst``
  line.
- Both files are written under temporary names and renamed when complete, the ``.idx`` last, so a killed
  job never leaves a pair that looks finished.
"""
import argparse
import array
import collections
import functools
import io
import itertools
import os
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from config.defaults import PACK
from config.errors import UserError, run_cli
from config.runtime import available_cores, configure_threads
from core.atomic import atomic_paths, remove_stale_temporaries
from dataset.imdb import BadItem
from dataset.lst import LST_ENCODING, inside_unit_square, parse_lst_line
from dataset.recordio import IndexedRecordWriter, frame_record, record_head

MAX_NAMED_WARNINGS = 10                        # skipped images named one by one; the rest only counted
LIST_BLOCK_LINES = 1024                        # .lst lines parsed and checked together when streaming a list
PROGRESS_BATCH = 64                           # a progress(count) callable hears at least every so many images
PROGRESS_SECONDS = 0.5                         # ... or this often, whichever comes first
TASK_BATCH = 8                                 # records one worker thread task prepares
IN_FLIGHT_PER_THREAD = 2                       # tasks prepared ahead of the writer, per worker thread
PIXEL_MODES_8BIT = {'1', 'L', 'LA', 'La', 'P', 'PA', 'RGB', 'RGBA', 'RGBa', 'RGBX', 'CMYK', 'YCbCr'}
PIXEL_MODES_16BIT = {'I', 'I;16', 'I;16L', 'I;16B', 'I;16N'}
EXIF_ORIENTATION_TAG = 0x0112
EXIF_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,  # orientation -> undo
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                   6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
PASS_THROUGH_SIGNATURES = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'BM', 'BMP'))
PASS_THROUGH_PREFIXES = tuple(signature for signature, _ in PASS_THROUGH_SIGNATURES)

_SCRATCH = threading.local()                   # per thread: the file encode_image writes into

ImageOptions = collections.namedtuple('ImageOptions', 'quality encoding resize color')
Prepared = collections.namedtuple('Prepared', 'index path chunks size problem')


# --- images ----------------------------------------------------------------------------------------------------
def target_size(width, height, shorter):
    """Size after resizing the shorter side to ``shorter`` (0: unchanged), rounded down like MXNet's im2rec."""
    if shorter <= 0:
        return width, height
    if height > width:
        return shorter, max(height * shorter // width, 1)
    return max(width * shorter // height, 1), shorter


def _to_8bit(image):
    """Pillow opens 16-bit grayscale as mode ``I;16``/``I``; keep the high byte, as ``cv2.imread`` does."""
    if image.mode in PIXEL_MODES_8BIT:
        return image
    if image.mode in PIXEL_MODES_16BIT:
        return Image.fromarray(np.clip(np.asarray(image) >> 8, 0, 255).astype(np.uint8), 'L')
    raise OSError('pixel mode %s is not supported; convert the image to 8-bit' % image.mode)


def _output_mode(image, options):
    """Pillow mode to encode: RGB for ``color=1``, L for 0; for -1 the image's own gray/color and alpha (PNG)."""
    if options.color != -1:
        return 'RGB' if options.color == 1 else 'L'
    gray = image.mode in ('1', 'L', 'LA', 'La')
    alpha = options.encoding == '.png' and (image.mode in ('LA', 'La', 'PA', 'RGBA', 'RGBa')
                                            or 'transparency' in image.info)
    return ('L' if gray else 'RGB') + ('A' if alpha else '')


def decode_image(data, options):
    """Image bytes -> the Pillow image to encode: decoded, resized, EXIF-oriented, in the output mode.

    A JPEG is decoded at a reduced scale (1/2, 1/4, 1/8) when that still covers the resize target, and
    straight to grayscale when ``color=0``.
    """
    image = Image.open(io.BytesIO(data))
    size = target_size(image.width, image.height, options.resize)
    image.draft('L' if options.color == 0 else None, size if options.resize else None)
    orientation = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    image = _to_8bit(image)
    mode = _output_mode(image, options)
    if image.mode != mode:
        image = image.convert(mode)
    if image.size != size:
        image = image.resize(size, Image.BILINEAR)
    if orientation in EXIF_TRANSPOSES:
        image = image.transpose(EXIF_TRANSPOSES[orientation])
    return image


def _scratch_file():
    """This thread's scratch file for :func:`encode_image`: an unbuffered in-memory file (``memfd``; a temporary
    file where there is none), made on first use and closed when the thread ends."""
    scratch = getattr(_SCRATCH, 'file', None)
    if scratch is None:
        if hasattr(os, 'memfd_create'):
            scratch = open(os.memfd_create('im2rec-encode'), 'r+b', buffering=0)
        else:
            scratch = tempfile.TemporaryFile(buffering=0)
        _SCRATCH.file = scratch
    return scratch


def encode_image(image, options):
    """Encode a Pillow image: JPEG at ``quality``, or PNG at compression ``min(quality, 9)``, as MXNet does.

    Pillow encodes into a thread's scratch file rather than a ``BytesIO``: given a file descriptor, its
    encoder writes there without holding the GIL, so worker threads encode in parallel (the bytes are the
    same; 2x the images/s on two threads for 200x150 JPEGs).
    """
    scratch = _scratch_file()
    scratch.seek(0)
    if options.encoding == '.jpg':
        image.save(scratch, 'JPEG', quality=options.quality)
    else:
        image.save(scratch, 'PNG', compress_level=min(options.quality, 9))
    return os.pread(scratch.fileno(), scratch.tell(), 0)


def _read_bytes(path):
    with open(path, 'rb', buffering=0) as handle:  # unbuffered: one read of the whole file, no extra copy
        return handle.read()


def reencoded_image(path, options):
    """The image at ``path`` decoded and encoded again; raises ``OSError``/``ValueError`` if unreadable."""
    return encode_image(decode_image(_read_bytes(path), options), options)


def passed_through_image(path, options=None):
    """The file's bytes unchanged, after checking that they start like a JPEG, PNG or BMP image."""
    data = _read_bytes(path)
    if not data.startswith(PASS_THROUGH_PREFIXES):
        raise OSError('not a %s file; pack it without --pass-through to re-encode it'
                      % '/'.join(name for _, name in PASS_THROUGH_SIGNATURES))
    return data


def prepare_record(entry, root, image_bytes, options):
    """One ``.lst`` entry -> :class:`Prepared` (framed chunks, or the problem that made it unreadable).

    Parameters
    ----------
    entry : tuple
        ``(index, objects (N, 6), relative_path)`` from :func:`dataset.lst.read_lst`.
    root : str
        Image root.
    image_bytes : callable
        ``image_bytes(path, options) -> bytes``: :func:`reencoded_image` or :func:`passed_through_image`.
    options : ImageOptions
    """
    index, objects, relative_path = entry
    try:
        body = image_bytes(os.path.join(root, relative_path), options)
        chunks = frame_record(record_head(index, objects), body)
    except FileNotFoundError:
        return Prepared(index, relative_path, None, 0, 'file not found')
    except Image.UnidentifiedImageError:
        return Prepared(index, relative_path, None, 0, 'not an image file that Pillow can decode')
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return Prepared(index, relative_path, None, 0, str(err) or type(err).__name__)
    return Prepared(index, relative_path, chunks, sum(len(chunk) for chunk in chunks), None)


def _map_batch(function, batch):
    return [function(item) for item in batch]


def ordered_map(function, items, num_thread, batch_size=TASK_BATCH):
    """``map(function, items)`` run on ``num_thread`` threads, yielded in input order.

    Items go to the threads ``batch_size`` at a time: one task per batch rather than per item, which for
    small images halves the time the threads spend waking each other. At most ``IN_FLIGHT_PER_THREAD *
    num_thread`` batches wait at a time, so memory stays bounded; on an error or when the consumer stops,
    queued work is cancelled.
    """
    if num_thread <= 1:
        yield from map(function, items)
        return
    from concurrent.futures import ThreadPoolExecutor  # imported only when needed: ~10 ms of start-up

    pool = ThreadPoolExecutor(num_thread, thread_name_prefix='im2rec')
    pending, items = collections.deque(), iter(items)
    try:
        for batch in iter(lambda: list(itertools.islice(items, batch_size)), []):
            pending.append(pool.submit(_map_batch, function, batch))
            if len(pending) >= IN_FLIGHT_PER_THREAD * num_thread:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- the list ----------------------------------------------------------------------------------------------------
def _reject_classification_list(lst_path):
    """A classification ``.lst`` (one label number per line) gets its own one-line error."""
    try:
        with open(lst_path, encoding=LST_ENCODING, errors='replace') as handle:
            first = next((line for line in handle if line.strip()), '')
    except FileNotFoundError:
        raise UserError('list file %s does not exist' % lst_path) from None
    except IsADirectoryError:
        raise UserError('list file %s is a directory; give the .lst file or its prefix' % lst_path) from None
    if len(first.rstrip('\r\n').split('\t')) == 3:
        raise UserError('%s is a classification list (one label number per line); --pack-label needs detection '
                        'lines "index 2 6 cls xmin ymin xmax ymax difficult ... path" (tab-separated), e.g. '
                        'written by tools/prepare_dataset.py' % lst_path)


def check_boxes(entries, lst_path):
    """Raise :class:`UserError` naming the first line whose boxes are unnormalized, empty or not finite."""
    counts = [len(objects) for _, objects, _ in entries]
    if not sum(counts):
        return
    objects = np.concatenate([objects for _, objects, _ in entries])
    boxes = objects[:, 1:5]
    with np.errstate(invalid='ignore'):  # NaN compares False: reported like any bad box
        good = (inside_unit_square(boxes) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                & (objects[:, 0] == np.floor(objects[:, 0])))
    if good.all():
        return
    bad = int(np.argmin(good))
    index = entries[int(np.repeat(np.arange(len(entries)), counts)[bad])][0]
    raise UserError('%s line with index %d has the object [%s]; classes must be whole numbers and boxes '
                    'xmin < xmax, ymin < ymax inside [0, 1] (pixel coordinates divided by the image width and '
                    'height)' % (lst_path, index, ' '.join('%g' % value for value in objects[bad])))


def _first_undecodable_byte(lst_path):
    """Offset of the first byte of ``lst_path`` that is not UTF-8 (read whole: only on that error's path)."""
    with open(lst_path, 'rb') as handle:
        try:
            handle.read().decode(LST_ENCODING)
        except UnicodeDecodeError as err:
            return err.start
    return 0


def list_lines(lst_path):
    """The non-blank lines of a list file, one at a time, as :func:`dataset.lst.read_lst` splits them.

    Raises
    ------
    UserError
        When the file is missing, a directory, or not UTF-8 (naming the byte).
    """
    try:
        with open(lst_path, encoding=LST_ENCODING) as handle:
            for line in handle:
                if line.strip():
                    yield line
    except FileNotFoundError:
        raise UserError('list file %s does not exist' % lst_path) from None
    except IsADirectoryError:
        raise UserError('list file %s is a directory; give the .lst file' % lst_path) from None
    except UnicodeDecodeError:
        raise UserError('list file %s is not UTF-8 text (byte %d); write it with tools/prepare_dataset.py'
                        % (lst_path, _first_undecodable_byte(lst_path))) from None


def iter_entry_blocks(lst_path, block_lines=None):
    """A detection ``.lst`` streamed: lists of up to ``block_lines`` (default :data:`LIST_BLOCK_LINES`) entries
    ``(index, objects (N, 6) float32, relative_path)``, in list order, parsed as :func:`dataset.lst.read_lst`
    parses them (not checked)."""
    block_lines = block_lines or LIST_BLOCK_LINES
    block = []
    for line in list_lines(lst_path):
        block.append(parse_lst_line(line, lst_path))
        if len(block) == block_lines:
            yield block
            block = []
    if block:
        yield block


def iter_entries(lst_path):
    """The entries of a detection ``.lst``, one at a time (see :func:`iter_entry_blocks`)."""
    for block in iter_entry_blocks(lst_path):
        yield from block


def _reject_negative_indices(block, lst_path):
    for index, _, _ in block:
        if index < 0:
            raise UserError('%s: index %d is negative; every line needs its own index >= 0' % (lst_path, index))


def _reject_repeated_indices(indices, lst_path):
    """Name the first line (in list order) whose index an earlier line has.

    Parameters
    ----------
    indices : (N,) uint64 array
        The ``.lst`` indices in list order.
    """
    order = np.argsort(indices, kind='stable')
    ordered = indices[order]
    repeats = order[1:][ordered[1:] == ordered[:-1]]   # positions of the later lines of each repeated index
    if repeats.size:
        raise UserError('%s: index %d is used twice; every line needs its own index >= 0'
                        % (lst_path, int(indices[repeats.min()])))


def scan_list(lst_path, visit=None):
    """Check a detection ``.lst`` in one streaming pass, :data:`LIST_BLOCK_LINES` lines at a time, so that
    memory does not grow with the list (8 bytes an entry).

    Parameters
    ----------
    lst_path : str
    visit : callable, optional
        ``visit(block)`` for every block of entries (see :func:`iter_entry_blocks`), in list order, before the
        checks that need the whole list (repeated indices) have run.

    Returns
    -------
    int
        The number of entries.

    Raises
    ------
    UserError
        Naming the first bad line: a classification list, a negative or repeated index (reported before any
        bad box), a bad box (:func:`check_boxes`), or no entries at all.
    """
    _reject_classification_list(lst_path)
    indices, box_problem = array.array('Q'), None
    for block in iter_entry_blocks(lst_path):
        _reject_negative_indices(block, lst_path)
        indices.extend(index for index, _, _ in block)
        if box_problem is None:
            try:
                check_boxes(block, lst_path)
            except UserError as err:
                box_problem = err
        if visit is not None:
            visit(block)
    if not indices:
        raise UserError('list file %s has no entries' % lst_path)
    _reject_repeated_indices(np.frombuffer(indices, np.uint64), lst_path)
    if box_problem is not None:
        raise box_problem
    return len(indices)


def load_entries(lst_path):
    """Read and check a detection ``.lst`` (:func:`scan_list`): ``[(index, objects (N, 6) float32,
    relative_path), ...]``, the whole list in memory."""
    entries = []
    scan_list(lst_path, entries.extend)
    return entries


def check_options(quality, encoding, resize, color, pass_through):
    """Validate the image options (each error names its flag); returns :class:`ImageOptions`."""
    if encoding not in ('.jpg', '.png'):
        raise UserError('--encoding %s is not supported; use .jpg or .png' % encoding)
    if encoding == '.jpg' and not 1 <= quality <= 100:
        raise UserError('--quality %d is not a JPEG quality; use 1..100' % quality)
    if encoding == '.png' and quality < 0:
        raise UserError('--quality %d is not a PNG compression level; use 0..9' % quality)
    if resize < 0:
        raise UserError('--resize %d is negative; give the shorter side in pixels, or 0 to keep the size' % resize)
    if color not in (-1, 0, 1):
        raise UserError('--color %d is not one of -1 (unchanged), 0 (grayscale), 1 (color)' % color)
    if pass_through and (resize or color != 1):
        raise UserError('--pass-through copies the files unchanged; drop --resize/--color or --pass-through')
    return ImageOptions(quality, encoding, resize, color)


# --- packing -----------------------------------------------------------------------------------------------------
def _warn_skipped(prepared, skipped):
    """Name the ``skipped``-th unreadable image on stderr (above the progress bar), the first few only."""
    if skipped <= MAX_NAMED_WARNINGS:
        tqdm.write('warning: skipped %s (index %d): %s' % (prepared.path, prepared.index, prepared.problem),
                   file=sys.stderr)


def _unpackable(prepared, root):
    """The :class:`BadItem` for an image that cannot be packed (when not skipping)."""
    return BadItem('image %s (.lst index %d) cannot be packed: %s'
                   % (os.path.join(root, prepared.path), prepared.index, prepared.problem))


class CallbackProgress:
    """Batches image counts for a ``progress(count)`` callable: it is called with the images done since its
    previous call once :data:`PROGRESS_BATCH` images or :data:`PROGRESS_SECONDS` seconds have gathered, and
    with the remainder on :meth:`close`."""

    def __init__(self, callback):
        self._callback = callback
        self._pending = 0
        self._last_call = time.monotonic()

    def update(self, count=1):
        self._pending += count
        if self._pending >= PROGRESS_BATCH or time.monotonic() - self._last_call >= PROGRESS_SECONDS:
            self._flush()

    def _flush(self):
        if self._pending:
            pending, self._pending = self._pending, 0
            self._callback(pending)
        self._last_call = time.monotonic()

    def close(self):
        self._flush()


def progress_reporter(progress, total, name):
    """What ``write_records`` reports each image to: a tqdm bar (``progress`` True/False, False hides it) or,
    for a callable ``progress(count)``, a :class:`CallbackProgress` (no bar)."""
    if callable(progress):
        return CallbackProgress(progress)
    return tqdm(total=total, unit='img', desc='packing %s' % name, disable=not progress, file=sys.stderr)


def write_records(entries, prepare, rec_path, idx_path, num_thread, progress, name, skip_bad=True, root='',
                  total=None):
    """Prepare every entry on ``num_thread`` threads and write the records in ``.lst`` order.

    Parameters
    ----------
    entries : iterable
        ``.lst`` entries (a list, or streamed by :func:`iter_entries`).
    total : int, optional
        How many ``entries`` there are, for the progress bar; default ``len(entries)``.
    skip_bad : bool
        Skip an unreadable image with a warning; False raises :class:`BadItem` naming it (under ``root``).

    Returns
    -------
    dict
        ``images`` written, ``bytes`` of the ``.rec``, ``skipped`` images and their ``skipped_indices``.
    """
    writer = IndexedRecordWriter(rec_path)
    images, skipped_indices = 0, []
    bar = progress_reporter(progress, len(entries) if total is None else total, name)
    try:
        for prepared in ordered_map(prepare, entries, num_thread):
            if prepared.chunks is None:
                if not skip_bad:
                    raise _unpackable(prepared, root)
                skipped_indices.append(prepared.index)
                _warn_skipped(prepared, len(skipped_indices))
            else:
                writer.write(prepared.index, prepared.chunks, prepared.size)
                images += 1
            bar.update()
    except BaseException:
        writer.abandon()
        raise
    finally:
        bar.close()
    writer.close(idx_path)
    return dict(images=images, bytes=writer.offset, skipped=len(skipped_indices), skipped_indices=skipped_indices)


def output_prefix(lst_path, prefix=None):
    """``<prefix>`` for ``.rec``/``.idx``: the given one (a trailing ``.lst`` dropped), else the list's path."""
    prefix = prefix or lst_path
    return prefix[:-len('.lst')] if prefix.endswith('.lst') else prefix


def pack_records(lst_path, root, prefix=None, num_thread=None, quality=PACK['quality'], encoding=PACK['encoding'],
                 resize=PACK['resize'], pass_through=PACK['pass_through'], progress=True, color=1, skip_bad=True,
                 count=None):
    """Pack the images of a detection ``.lst`` into ``<prefix>.rec`` + ``<prefix>.idx``.

    The list is streamed (read twice: checked, then packed), never held whole, so memory does not grow with
    its length.

    Parameters
    ----------
    lst_path : str
        Detection ``.lst`` (:mod:`dataset.lst` format).
    root : str
        Directory the ``.lst`` image paths are relative to.
    prefix : str, optional
        Output prefix; default: ``lst_path`` without ``.lst``.
    num_thread : int, optional
        Worker threads for re-encoding; default: the available cores. ``pass_through`` copies on the calling
        thread: with nothing to decode, a pool costs more than it saves (0.79 s against 0.63 s for 5000 files).
    quality : int
        JPEG quality 1..100, or PNG compression ``min(quality, 9)``.
    encoding : {'.jpg', '.png'}
        Encoding of re-encoded images.
    resize : int
        Shorter side in pixels after resizing; 0 keeps the size. Labels are normalized and do not change.
    pass_through : bool
        Copy the image files unchanged instead of re-encoding them.
    progress : bool or callable
        Show a progress bar (images/s, ETA); or, a callable ``progress(count)``, no bar and calls with the
        images done (written or skipped) since the previous call: every :data:`PROGRESS_BATCH` images or
        :data:`PROGRESS_SECONDS` seconds at most, and for the remainder when done.
    color : {1, 0, -1}
        Re-encode in color, grayscale, or the image's own channels.
    skip_bad : bool
        Skip a missing or undecodable image with a warning (MXNet's im2rec does); False stops at the first
        with :class:`~dataset.imdb.BadItem` naming it, and writes nothing.
    count : int, optional
        The number of entries, when the caller has checked the list already (:func:`scan_list`; e.g. the part
        lists tools/shards.py writes): the checking pass is skipped. None checks it.

    Returns
    -------
    dict
        ``images`` written, ``bytes`` of the ``.rec``, ``seconds`` taken, ``skipped`` images and their
        ``skipped_indices`` (``.lst`` indices).
    """
    start = time.perf_counter()
    options = check_options(quality, encoding, resize, color, pass_through)
    num_thread = available_cores() if num_thread is None else num_thread
    if num_thread < 1:
        raise UserError('--num-thread %d must be at least 1' % num_thread)
    if not os.path.isdir(root):
        raise UserError('image root %s is not a directory; give the folder the .lst paths are relative to' % root)
    count = scan_list(lst_path) if count is None else count
    prefix = output_prefix(lst_path, prefix)
    image_bytes = passed_through_image if pass_through else reencoded_image
    prepare = functools.partial(prepare_record, root=root, image_bytes=image_bytes, options=options)
    remove_stale_temporaries(os.path.dirname(os.path.abspath(prefix)), os.path.basename(prefix) + '.')
    with atomic_paths(prefix + '.rec', prefix + '.idx') as (rec_temp, idx_temp):
        result = write_records(iter_entries(lst_path), prepare, rec_temp, idx_temp,
                               1 if pass_through else num_thread, progress, os.path.basename(prefix + '.rec'),
                               skip_bad=skip_bad, root=root, total=count)
        if not result['images']:
            raise UserError('none of the %d images of %s could be read under %s; check the root argument'
                            % (count, lst_path, root))
    if result['skipped'] > MAX_NAMED_WARNINGS:
        print('warning: skipped %d images in all; the first %d are named above'
              % (result['skipped'], MAX_NAMED_WARNINGS), file=sys.stderr)
    result['seconds'] = time.perf_counter() - start
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Pack a detection .lst and its images into <prefix>.rec + '
                                                 '<prefix>.idx (MXNet indexed RecordIO).')
    parser.add_argument('prefix', help='reads <prefix>.lst, writes <prefix>.rec and <prefix>.idx; a path ending '
                                       'in .lst is taken as the list itself')
    parser.add_argument('root', help='folder that the image paths in the .lst are relative to')
    parser.add_argument('--pack-label', action='store_true',
                        help='pack each line\'s boxes into its record; required (detection lists only)')
    parser.add_argument('--num-thread', type=int, default=available_cores(),
                        help='worker threads for re-encoding (default: the available cores); --pass-through '
                             'copies on one thread, which is faster')
    parser.add_argument('--quality', type=int, default=PACK['quality'],
                        help='JPEG quality 1..100, or PNG compression min(quality, 9) (re-encoding only)')
    parser.add_argument('--resize', type=int, default=PACK['resize'],
                        help='resize the shorter side to this many pixels; 0 keeps the size')
    parser.add_argument('--pass-through', action='store_true', default=PACK['pass_through'],
                        help='copy the image files unchanged instead of decoding and re-encoding them')
    parser.add_argument('--encoding', default=PACK['encoding'], choices=['.jpg', '.png'],
                        help='encoding of re-encoded images')
    parser.add_argument('--color', type=int, default=1, choices=[-1, 0, 1],
                        help='1: color, 0: grayscale, -1: the image\'s own channels (re-encoding only)')
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction, default=True,
                        help='show a progress bar')
    parser.add_argument('--skip-bad', action=argparse.BooleanOptionalAction, default=True,
                        help='skip missing or undecodable images with a warning, as MXNet\'s im2rec does '
                             '(--no-skip-bad: stop at the first, writing nothing)')
    return parser.parse_args(argv)


def main(args):
    if not args.pack_label:
        raise UserError('add --pack-label: tools/im2rec.py packs detection lists, and a record without its boxes '
                        'cannot train a detector')
    lst_path = output_prefix(args.prefix) + '.lst'
    try:
        result = pack_records(lst_path, args.root, num_thread=args.num_thread, quality=args.quality,
                              encoding=args.encoding, resize=args.resize, pass_through=args.pass_through,
                              progress=args.progress, color=args.color, skip_bad=args.skip_bad)
    except BadItem as err:
        raise UserError('%s; fix or remove it, or drop --no-skip-bad to skip unreadable images with a warning'
                        % err) from None
    print('packed %d images (%d skipped) into %s.rec: %.1f MB in %.1f s, %.0f img/s' % (
        result['images'], result['skipped'], output_prefix(lst_path), result['bytes'] / 1e6, result['seconds'],
        result['images'] / max(result['seconds'], 1e-9)))
    return result


if __name__ == '__main__':
    configure_threads()
    run_cli(main, parse_args())
