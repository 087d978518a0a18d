"""A set of ``.rec`` files read as one: a single file, several, a glob, or a manifest of parts.

What users give as ``--train-path`` / ``--rec-path`` / ``tools/rec_info.py`` inputs::

    data/train.rec                        one file (its .idx next to it)
    data/train.json                       a manifest of parts written by tools/prepare_dataset.py --num-parts
    'data/train-*.rec'                    a glob (quoted, so the shell leaves it alone)
    data/voc07.rec,data/voc12.rec         several, comma-separated

MXNet's C++ record reader takes several files joined by ``;`` and reads them as one stream (dmlc's
``InputSplit``), so one ``ImageDetRecordIter`` reads the whole set: batches run across file boundaries and
only the epoch's last batch is partial. With ``num_parts``/``part_index`` it reads one worker's share, split
by BYTES of the joined files (dmlc's rule, :func:`worker_shares`): a record belongs to worker ``k`` when its
first byte lies in ``[k * step, (k + 1) * step)``, ``step`` being the joined size divided by the workers
and rounded up to 4 bytes. So the workers' record counts differ a little; each worker can compute all of
them from the ``.idx`` files, without talking to the others.
"""
import dataclasses
import glob
import json
import os
import re

import numpy as np

from config.errors import UserError
from dataset.imdb import check_same_class_lists, classes_path_for, read_class_names
from dataset.recordio import check_record_files, idx_path_for, read_index

SPLIT_ALIGN = 4                                    # dmlc aligns a worker's byte range to 4 bytes
PART_SUFFIX = re.compile(r'-\d{5}-of-\d{5}$')     # train-00001-of-00008 -> train (tools/shards.py names)


@dataclasses.dataclass
class Part:
    """One ``.rec`` to read, and where it came from."""
    rec: str
    manifest: str = ''                     # the manifest that listed it ('' for a .rec given directly)
    manifest_classes: tuple = ()           # the manifest's "classes"
    manifest_records: int = None           # the manifest's "records" for this part, when it says


def _has_glob(text):
    return any(char in text for char in '*?[')


def read_manifest(path):
    """The parts listed by a manifest ``{"parts": [{"rec": ...}, ...]}`` (paths relative to its folder).

    Returns
    -------
    list of Part
    """
    if not os.path.isfile(path):
        raise UserError('manifest %s does not exist; give a manifest written by tools/prepare_dataset.py '
                        '--num-parts, or the .rec files' % path)
    try:
        with open(path, encoding='utf-8') as handle:
            manifest = json.load(handle)
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError('manifest %s is not JSON (%s); give a manifest written by tools/prepare_dataset.py '
                        '--num-parts, or the .rec files' % (path, err)) from None
    parts = manifest.get('parts') if isinstance(manifest, dict) else None
    if not isinstance(parts, list) or not parts:
        raise UserError('manifest %s has no "parts" list; expected {"parts": [{"rec": "name.rec"}, ...]} with '
                        'paths relative to its folder' % path)
    classes = manifest.get('classes') or ()
    folder = os.path.dirname(os.path.abspath(path))
    found = []
    for number, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get('rec'), str) or not part['rec']:
            raise UserError('manifest %s part %d has no "rec" path; each part must be {"rec": "name.rec", ...}'
                            % (path, number))
        records = part.get('records')
        found.append(Part(os.path.normpath(os.path.join(folder, part['rec'])), path,
                          tuple(classes) if isinstance(classes, list) else (),
                          records if isinstance(records, int) and not isinstance(records, bool) else None))
    return found


def _one_input(spec):
    if _has_glob(spec):
        matches = sorted(glob.glob(spec))
        if not matches:
            raise UserError('no file matches %s; give .rec files, a glob of them or a manifest .json' % spec)
        return [part for match in matches for part in _one_input(match)]
    extension = os.path.splitext(spec)[1].lower()
    if os.path.isdir(spec):
        raise UserError('%s is a folder; give .rec files, a glob like %s or a manifest .json'
                        % (spec, os.path.join(spec, '*.rec')))
    if extension == '.json':
        return read_manifest(spec)
    if extension in ('.lst', '.idx', '.classes'):
        raise UserError('%s is not a record file; give the .rec packed from it (%s)'
                        % (spec, os.path.splitext(spec)[0] + '.rec'))
    if extension != '.rec':
        raise UserError('%s is neither a .rec file nor a manifest .json' % spec)
    return [Part(spec)]


def split_specs(spec):
    """``'a.rec,b.rec'`` or ``['a.rec', 'b.rec']`` -> ``['a.rec', 'b.rec']`` (a str naming an existing file
    is one spec even when it holds a comma)."""
    if isinstance(spec, (list, tuple)):
        return [str(item) for item in spec]
    if ',' in spec and not os.path.exists(spec):
        return [item.strip() for item in spec.split(',') if item.strip()]
    return [spec]


def resolve_inputs(specs):
    """``.rec`` paths, globs and manifests -> the list of :class:`Part` to read, each file once, in order.

    Parameters
    ----------
    specs : str or list of str
        See the module notes; a str may list several, comma-separated.

    Raises
    ------
    UserError
        Naming a path that matches nothing, is missing, is not a ``.rec`` or manifest, or lacks its ``.idx``.
    """
    parts, seen = [], set()
    for spec in (split_specs(specs) if isinstance(specs, str) else specs):
        for part in _one_input(spec):
            key = os.path.realpath(part.rec)
            if key not in seen:
                seen.add(key)
                check_record_files(part.rec)
                parts.append(part)
    if not parts:
        raise UserError('no record file given; give a .rec, a glob of them or a manifest .json')
    return parts


def classes_file_for(rec_path):
    """The ``.classes`` naming a ``.rec``'s ids: the one next to it, else (for a part
    ``train-00001-of-00008.rec``) the whole set's ``train.classes``; None when neither exists."""
    stem = os.path.splitext(rec_path)[0]
    for candidate in (classes_path_for(rec_path), classes_path_for(PART_SUFFIX.sub('', stem) + '.rec')):
        if os.path.isfile(candidate):
            return candidate
    return None


def class_names_for(parts):
    """``(names, where they came from)``: the ``.classes`` of the ``.rec`` files (all the same), else the
    manifest's classes or the ``.classes`` next to it; ``((), '')`` when nothing names them.

    Raises
    ------
    UserError
        When two files' class lists differ (their ids would mean other classes).
    """
    found = []
    for part in parts:
        path = classes_file_for(part.rec)
        if path:
            found.append((read_class_names(path), path))
        elif part.manifest_classes:
            found.append((part.manifest_classes, part.manifest))
        elif part.manifest and os.path.isfile(classes_path_for(part.manifest)):
            found.append((read_class_names(classes_path_for(part.manifest)), classes_path_for(part.manifest)))
    check_same_class_lists(found)
    return found[0] if found else ((), '')


def reader_path(parts):
    """The ``path_imgrec`` MXNet's reader takes for ``parts``: their paths joined by ``;``."""
    for part in parts:
        if ';' in part.rec:
            raise UserError('%s: MXNet reads several record files as one list separated by ";", so a path must '
                            'not hold one; rename it' % part.rec)
    return ';'.join(part.rec for part in parts)


def record_starts(parts):
    """Every record's first byte in the parts joined end to end, and the joined size.

    Returns
    -------
    starts : (R,) int64 array
        Sorted byte offsets (from the ``.idx`` files), file ``i``'s shifted by the sizes of files ``0..i-1``.
    total : int
        Bytes of all files together.
    """
    starts, base = [], 0
    for part in parts:
        offsets = np.array([offset for _, offset in read_index(idx_path_for(part.rec))], dtype=np.int64)
        starts.append(np.sort(offsets) + base)
        base += os.path.getsize(part.rec)
    return np.concatenate(starts) if starts else np.zeros(0, np.int64), base


def worker_shares(parts, num_parts):
    """Records each of ``num_parts`` workers reads from ``parts`` (MXNet's ``num_parts``/``part_index``).

    Parameters
    ----------
    parts : list of Part
    num_parts : int
        Workers sharing the set.

    Returns
    -------
    (num_parts,) int64 array
        Records of worker ``k`` at position ``k`` (see the module notes for the rule); they sum to all records.
    """
    starts, total = record_starts(parts)
    step = -(-total // num_parts)
    step = -(-step // SPLIT_ALIGN) * SPLIT_ALIGN
    edges = np.minimum(np.arange(num_parts + 1, dtype=np.int64) * step, total)
    return np.diff(np.searchsorted(starts, edges, side='left'))
