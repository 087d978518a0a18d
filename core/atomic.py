"""Crash-safe outputs: write under a temporary name, rename into place only when complete.

A killed job leaves at most ``*.tmp-<pid>`` files behind, never a file that looks finished.
"""
import contextlib
import json
import os


def temporary_name(path):
    """The temporary sibling of ``path`` used while it is being written."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, '.%s.tmp-%d' % (name, os.getpid()))


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def atomic_paths(*paths):
    """Yield temporary paths for ``paths``; on success rename them all into place, on error remove them.

    The renames run in the order given, after every final path has been removed first, so that an
    interruption between renames leaves an incomplete set (e.g. a ``.rec`` without its ``.idx``), never a
    new file paired with a stale one. Put the file that marks completion (the ``.idx``) last.

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
    except BaseException:
        for temp in temps:
            _remove_quietly(temp)
        raise
    for final in reversed(finals):
        _remove_quietly(final)
    for temp, final in zip(temps, finals):
        os.replace(temp, final)


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
