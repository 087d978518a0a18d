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
"""
import hashlib
import json
import os

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


def assign_parts(entries, sizes, num_parts):
    """Indices of ``entries`` per part: dealt largest file first in snake order (0..N-1, N-1..0, ...), so
    counts differ by at most one and bytes nearly match; each part sorted back into list order.

    Parameters
    ----------
    entries : list
        ``.lst`` entries, in list order.
    sizes : list of int
        File size of each entry.
    num_parts : int

    Returns
    -------
    list of list of int
        Positions in ``entries``, ascending, one list per part.
    """
    order = sorted(range(len(entries)), key=lambda position: (-sizes[position], position))
    parts = [[] for _ in range(num_parts)]
    for rank, position in enumerate(order):
        lap, offset = divmod(rank, num_parts)
        parts[offset if lap % 2 == 0 else num_parts - 1 - offset].append(position)
    return [sorted(part) for part in parts]


def write_part_list(path, entries):
    """A part's ``.lst`` (the original indices kept: they are the records' ids)."""
    with atomic_open(path, encoding=LST_ENCODING) as handle:
        for index, objects, relative_path in entries:
            handle.write(format_lst_line(index, objects, relative_path) + '\n')


def file_sha1(path):
    digest = hashlib.sha1()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def objects_per_class(entries, class_names):
    """``{class name: objects}`` of ``entries``."""
    counts = {name: 0 for name in class_names}
    for _, objects, _ in entries:
        for row in objects:
            name = class_names[int(row[0])] if 0 <= int(row[0]) < len(class_names) else 'class_%d' % int(row[0])
            counts[name] = counts.get(name, 0) + 1
    return counts


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
    num_thread : int, optional
        Packing threads (not recorded: the bytes do not depend on it).
    """
    from tools.im2rec import load_entries, output_prefix, pack_records
    if num_parts < 1:
        raise UserError('--num-parts %d must be at least 1' % num_parts)
    entries = load_entries(lst_path)
    if num_parts > len(entries):
        raise UserError('--num-parts %d: %s has only %d images' % (num_parts, lst_path, len(entries)))
    stem = output_prefix(lst_path)
    folder = os.path.dirname(os.path.abspath(stem))
    class_file = classes_path_for(lst_path)
    class_names = list(read_class_names(class_file)) if os.path.isfile(class_file) else []
    previous = None if force else read_manifest(manifest_path(stem))
    positions = assign_parts(entries, [source_size(root, entry[2]) for entry in entries], num_parts)
    manifest = dict(format=MANIFEST_FORMAT, tool=TOOL, source=source or {}, options=options, num_parts=num_parts,
                    classes=class_names, parts=[])
    for index, members in enumerate(positions):
        part_entries = [entries[position] for position in members]
        name = part_stem(stem, index, num_parts)
        write_part_list(name + '.lst', part_entries)
        part = dict(index=index, rec=os.path.basename(name + '.rec'), idx=os.path.basename(name + '.idx'),
                    lst=os.path.basename(name + '.lst'), lst_sha1=file_sha1(name + '.lst'),
                    records=len(part_entries), objects_per_class=objects_per_class(part_entries, class_names))
        if reusable_part(previous, part, folder, options, num_parts):
            part['bytes'] = os.path.getsize(name + '.rec')
            part['reused'] = True
            print('part %d of %d: %s is complete, kept' % (index + 1, num_parts, part['rec']))
        else:
            result = pack_records(name + '.lst', root, progress=progress, num_thread=num_thread, skip_bad=False,
                                  **options)
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
