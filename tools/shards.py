"""Pack a detection ``.lst`` in parts: ``<stem>-00000-of-00004.rec/.idx/.lst`` and a manifest ``<stem>.json``.

Parts are balanced by image count (sizes differ by at most one) and by bytes: images are dealt to the parts
in a snake order of their file sizes, and each part keeps its images in the ``.lst``'s order. Each part is
complete or absent (its ``.idx`` is written last, core/atomic.py); the manifest is rewritten after every part
with the parts finished so far, so a rerun of the same command after a kill keeps every part whose files are
there and whose list, options and record count match the manifest, and packs only the rest (``force`` repacks
all). The manifest::

    {"format": 1, "tool": "mxnet-ssd-trainer <version>", "source": {...}, "options": {...}, "num_parts": N,
     "classes": [...], "records": R, "bytes": B, "objects_per_class": {...},
     "parts": [{"index": i, "rec": "<stem>-0000i-of-0000N.rec", "idx": ..., "lst": ..., "records": r,
                "bytes": b, "objects_per_class": {...}, "lst_sha1": ...}, ...]}

Paths in the manifest are relative to its folder.

The list is streamed, never held whole: one pass checks it and reads the image file sizes (8 bytes an entry
kept), a second writes the part lists, and each part is packed from its own list, streamed too; so memory
stays flat in the number of images (bench/bench_shards.py: peak RSS at 5,000 vs 20,000 images).
"""
import array
import contextlib
import hashlib
import json
import os

import numpy as np

from config.errors import UserError
from core.atomic import atomic_open, write_json
from dataset.imdb import classes_path_for, read_class_names
from dataset.lst import LST_ENCODING, format_lst_line

MANIFEST_FORMAT = 1
TOOL = 'mxnet-ssd-trainer 0.1.0'


def part_stem(stem, index, num_parts):
    """``data/train-00001-of-00008``."""
    return '%s-%05d-of-%05d' % (stem, index, num_parts)


def manifest_path(stem):
    return stem + '.json'


def source_size(root, relative_path):
    """Bytes of an image file (0 when it is missing: packing reports it)."""
    try:
        return os.path.getsize(os.path.join(root, relative_path))
    except OSError:
        return 0


def part_numbers(sizes, num_parts):
    """The part of every entry: dealt largest file first in snake order (0..N-1, N-1..0, ...), ties in list
    order, so counts differ by at most one and bytes nearly match.

    Parameters
    ----------
    sizes : (M,) int array
        File size of each entry, in list order.
    num_parts : int

    Returns
    -------
    (M,) int32 array
        Part number of each entry.
    """
    order = np.argsort(-np.asarray(sizes, np.int64), kind='stable')     # largest first, ties in list order
    lap, offset = np.divmod(np.arange(len(order)), num_parts)
    parts = np.empty(len(order), np.int32)
    parts[order] = np.where(lap % 2 == 0, offset, num_parts - 1 - offset)
    return parts


def assign_parts(entries, sizes, num_parts):
    """Positions in ``entries`` per part (:func:`part_numbers`), each part in list order.

    Parameters
    ----------
    entries : sequence
        ``.lst`` entries, in list order (only their number is used).
    sizes : sequence of int
        File size of each entry.
    num_parts : int

    Returns
    -------
    list of list of int
        Positions in ``entries``, ascending, one list per part.
    """
    numbers = part_numbers(np.asarray(sizes, np.int64).reshape(len(entries)), num_parts)
    return [np.flatnonzero(numbers == part).tolist() for part in range(num_parts)]


def list_file_sizes(lst_path, root):
    """Check ``lst_path`` (:func:`tools.im2rec.scan_list`) and read the size of every image it names, streaming.

    Returns
    -------
    (M,) int64 array
        File size of each entry, in list order (0 for a missing file).
    """
    from tools.im2rec import scan_list
    sizes = array.array('q')
    scan_list(lst_path, lambda block: sizes.extend(source_size(root, path) for _, _, path in block))
    return np.frombuffer(sizes, np.int64)


def count_objects(counts, objects, class_names):
    """Add the objects ``(N, 6)`` of one entry to ``counts`` (``{class name: objects}``, in place)."""
    for cls in objects[:, 0].tolist():
        cls = int(cls)
        name = class_names[cls] if 0 <= cls < len(class_names) else 'class_%d' % cls
        counts[name] = counts.get(name, 0) + 1


def write_part_lists(lst_path, names, parts, class_names):
    """Write every part's ``.lst`` in one streaming pass over ``lst_path`` (the original indices kept: they are
    the records' ids; each part in list order).

    Parameters
    ----------
    lst_path : str
        The whole list, already checked.
    names : list of str
        The part list paths, one per part.
    parts : (M,) int array
        Part number of each entry (:func:`part_numbers`).
    class_names : list of str

    Returns
    -------
    list of dict
        Per part: ``records`` and ``objects_per_class`` (``{class name: objects}``).
    """
    from tools.im2rec import iter_entries
    stats = [dict(records=0, objects_per_class=dict.fromkeys(class_names, 0)) for _ in names]
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(atomic_open(name, encoding=LST_ENCODING)) for name in names]
        for part, (index, objects, relative_path) in zip(parts.tolist(), iter_entries(lst_path)):
            handles[part].write(format_lst_line(index, objects, relative_path) + '\n')
            stats[part]['records'] += 1
            count_objects(stats[part]['objects_per_class'], objects, class_names)
    return stats


def file_sha1(path):
    digest = hashlib.sha1()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path):
    """The manifest as a dict, or None when there is none or it cannot be read (then every part is repacked)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) and manifest.get('format') == MANIFEST_FORMAT else None


def reusable_part(previous, part, folder, options, num_parts):
    """Whether the part already packed (``previous`` manifest) is complete and valid for this job."""
    if not previous or previous.get('options') != options or previous.get('num_parts') != num_parts:
        return False
    done = {item['index']: item for item in previous.get('parts', [])}
    item = done.get(part['index'])
    if not item or item.get('lst_sha1') != part['lst_sha1'] or item.get('records') != part['records']:
        return False
    rec, idx = os.path.join(folder, item['rec']), os.path.join(folder, item['idx'])
    return os.path.isfile(rec) and os.path.isfile(idx) and os.path.getsize(rec) == item.get('bytes')


def pack_parts(lst_path, root, num_parts, options, source=None, force=False, progress=True, num_thread=None):
    """Pack ``lst_path`` into ``num_parts`` parts beside it, resuming a killed job; returns the manifest.

    Parameters
    ----------
    lst_path : str
        The whole detection ``.lst``; its ``.classes`` names the classes.
    root : str
        Folder the image paths are relative to.
    num_parts : int
        At least 1.
    options : dict
        :func:`tools.im2rec.pack_records` keyword arguments (quality, encoding, resize, pass_through, ...),
        recorded in the manifest: a rerun with other options repacks.
    source : dict, optional
        What the list was made from (dataset, root, sets), recorded in the manifest.
    force : bool
        Repack every part even when a finished one is valid.
    progress : bool or callable
        A progress bar per part; or a callable ``progress(count)`` (no bar) called with the images packed
        since its previous call (see :func:`tools.im2rec.pack_records`); a kept part reports all its records
        at once.
    num_thread : int, optional
        Packing threads (not recorded: the bytes do not depend on it).
    """
    from tools.im2rec import output_prefix, pack_records
    if num_parts < 1:
        raise UserError('--num-parts %d must be at least 1' % num_parts)
    sizes = list_file_sizes(lst_path, root)
    if num_parts > len(sizes):
        raise UserError('--num-parts %d: %s has only %d images' % (num_parts, lst_path, len(sizes)))
    stem = output_prefix(lst_path)
    folder = os.path.dirname(os.path.abspath(stem))
    class_file = classes_path_for(lst_path)
    class_names = list(read_class_names(class_file)) if os.path.isfile(class_file) else []
    previous = None if force else read_manifest(manifest_path(stem))
    names = [part_stem(stem, index, num_parts) for index in range(num_parts)]
    stats = write_part_lists(lst_path, [name + '.lst' for name in names], part_numbers(sizes, num_parts),
                             class_names)
    manifest = dict(format=MANIFEST_FORMAT, tool=TOOL, source=source or {}, options=options, num_parts=num_parts,
                    classes=class_names, parts=[])
    for index, (name, part_stats) in enumerate(zip(names, stats)):
        part = dict(index=index, rec=os.path.basename(name + '.rec'), idx=os.path.basename(name + '.idx'),
                    lst=os.path.basename(name + '.lst'), lst_sha1=file_sha1(name + '.lst'), **part_stats)
        if reusable_part(previous, part, folder, options, num_parts):
            part['bytes'] = os.path.getsize(name + '.rec')
            part['reused'] = True
            print('part %d of %d: %s is complete, kept' % (index + 1, num_parts, part['rec']))
            if callable(progress):
                progress(part['records'])
        else:
            result = pack_records(name + '.lst', root, progress=progress, num_thread=num_thread, skip_bad=False,
                                  count=part['records'], **options)
            if result['skipped']:
                raise UserError('%s: %d images could not be packed (named above); fix them, or pack without '
                                '--num-parts and --skip-bad' % (name + '.lst', result['skipped']))
            part['bytes'] = os.path.getsize(name + '.rec')
        manifest['parts'].append(part)
        write_manifest(stem, manifest, previous)
    return write_manifest(stem, manifest, None)


def write_manifest(stem, manifest, previous):
    """The manifest with totals over the parts done, plus the still valid parts of ``previous`` not redone yet
    (so a second kill keeps them too)."""
    parts = {part['index']: {key: value for key, value in part.items() if key != 'reused'}
             for part in manifest['parts']}
    if previous and previous.get('options') == manifest['options'] and \
            previous.get('num_parts') == manifest['num_parts']:
        for part in previous.get('parts', []):
            parts.setdefault(part['index'], part)
    ordered = [parts[index] for index in sorted(parts)]
    totals = {}
    for part in ordered:
        for name, count in part['objects_per_class'].items():
            totals[name] = totals.get(name, 0) + count
    result = dict(manifest, parts=ordered, records=sum(part['records'] for part in ordered),
                  bytes=sum(part['bytes'] for part in ordered), objects_per_class=totals)
    write_json(manifest_path(stem), result, indent=1)
    return result
