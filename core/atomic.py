"""Crash-safe outputs: write under a temporary name, rename into place only when complete.

A killed job leaves at most ``.*.tmp-<pid>`` files behind, never a file that looks finished; a power loss
cannot leave a renamed but empty file (the bytes are fsync'ed before the rename, the directory after).
"""
import contextlib
import json
import os
import re


def temporary_name(path):
    """The temporary sibling of ``path`` used while it is being written."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, '.%s.tmp-%d' % (name, os.getpid()))


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def fsync_file(path):
    """Flush ``path``'s bytes to the disk (a rename of an unsynced file can survive a power loss empty)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(directory):
    """Flush ``directory``'s entries (the renames into it) to the disk; a no-op where directories cannot be
    opened (not POSIX)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_paths(*paths):
    """Yield temporary paths for ``paths``; on success put them all into place, on error remove them.

    Each file is written, fsync'ed, then renamed over its final path (``os.replace``: the old file stays
    readable until the new one takes its name), and the directories are fsync'ed after the renames. The LAST
    path is the commit marker of the set (the ``.idx`` of a ``.rec``, the ``.params`` of a checkpoint): when a
    set of several files is replaced, the old marker is removed first and the new one renamed in last, so an
    interruption in between leaves a set without its marker (visibly incomplete), never a new file paired with
    a stale one. No other good file is ever deleted before its replacement is in place.

    Parameters
    ----------
    *paths : str
        Final output paths; their directories are created when missing.

    Yields
    ------
    list of str
        Temporary paths, one per final path, in the same order.
    """
    finals = [os.path.abspath(p) for p in paths]
    for final in finals:
        os.makedirs(os.path.dirname(final), exist_ok=True)
    temps = [temporary_name(p) for p in finals]
    try:
        yield temps
        for temp in temps:
            fsync_file(temp)
    except BaseException:
        for temp in temps:
            _remove_quietly(temp)
        raise
    if len(finals) > 1:
        _remove_quietly(finals[-1])
    for temp, final in zip(temps, finals):
        os.replace(temp, final)
    for directory in sorted({os.path.dirname(final) for final in finals}):
        fsync_directory(directory)


@contextlib.contextmanager
def atomic_open(path, mode='w', **kwargs):
    """``open()`` for writing that renames into ``path`` only when the ``with`` block completes."""
    with atomic_paths(path) as (temp,):
        with open(temp, mode, **kwargs) as handle:
            yield handle


def write_json(path, value, **dump_options):
    """``value`` as JSON in ``path`` (``json.dump`` options, e.g. ``indent``), complete or not at all; returns
    ``path``."""
    with atomic_open(path) as handle:
        json.dump(value, handle, **dump_options)
    return path


TEMPORARY = re.compile(r'^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$')


def process_alive(pid):
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory, stem=''):
    """Remove the temporaries (``.<name>.tmp-<pid>``) that killed processes left in ``directory`` for outputs
    whose name starts with ``stem``; those of running processes stay. Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        match = TEMPORARY.match(name)
        if match and match.group('name').startswith(stem) and not process_alive(int(match.group('pid'))):
            _remove_quietly(os.path.join(directory, name))
            removed.append(name)
    return removed
