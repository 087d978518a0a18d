"""core/atomic.py: an output is complete or absent, never half-written; a failed write leaves the old file."""
import json
import os

import pytest

from core.atomic import atomic_open, atomic_paths, write_json


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'out.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_open(str(path)) as handle:
            handle.write('new, half')
            raise RuntimeError('killed mid-write')
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['out.txt']
    with atomic_open(str(path)) as handle:
        handle.write('new')
    assert path.read_text() == 'new' and os.listdir(tmp_path) == ['out.txt']


def test_paths_are_written_together_into_new_folders(tmp_path):
    rec, idx = tmp_path / 'a' / 'x.rec', tmp_path / 'a' / 'x.idx'
    with atomic_paths(str(rec), str(idx)) as (rec_temp, idx_temp):
        for temp in (rec_temp, idx_temp):
            with open(temp, 'w') as handle:
                handle.write(os.path.basename(temp))
        assert not rec.exists() and not idx.exists()               # nothing final before the block ends
    assert rec.read_text() == '.x.rec.tmp-%d' % os.getpid() and idx.exists()


def test_write_json_returns_the_path_and_keeps_the_old_file_on_unserialisable_values(tmp_path):
    path = str(tmp_path / 'r.json')
    assert write_json(path, {'a': [1, 2.5]}, indent=2) == path
    with open(path) as handle:
        assert json.load(handle) == {'a': [1, 2.5]}
    with pytest.raises(TypeError):
        write_json(path, {'a': object()})
    with open(path) as handle:
        assert json.load(handle) == {'a': [1, 2.5]}
    assert os.listdir(tmp_path) == ['r.json']


def test_replacing_a_set_keeps_every_other_good_file_until_its_replacement_is_in(tmp_path, monkeypatch):
    """A checkpoint save replaces the shared -symbol.json: killed between renames, the old symbol must still be
    there (it used to be deleted first), and only the commit marker (last path) may be missing."""
    symbol, params = tmp_path / 'm-symbol.json', tmp_path / 'm-0001.params'
    symbol.write_text('old graph')
    params.write_text('old weights')
    renames = []

    def replace_then_die(source, target):
        renames.append(target)
        if len(renames) == 2:                    # after the symbol, before the marker: the process dies
            raise KeyboardInterrupt
        os.rename(source, target)

    monkeypatch.setattr(os, 'replace', replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        with atomic_paths(str(symbol), str(params)) as (symbol_temp, params_temp):
            for temp, text in ((symbol_temp, 'new graph'), (params_temp, 'new weights')):
                with open(temp, 'w') as handle:
                    handle.write(text)
    assert symbol.read_text() == 'new graph'     # replaced in one step, never absent
    assert not params.exists()                    # the marker: the set is visibly incomplete


def test_every_file_is_synced_before_it_is_renamed(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, 'fsync', lambda fd: (synced.append(os.readlink('/proc/self/fd/%d' % fd)),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, 'replace', lambda a, b: (renamed.append((a, set(synced))), real_replace(a, b))[1])
    with atomic_open(str(tmp_path / 'x.txt')) as handle:
        handle.write('data')
    (temp, synced_before), = renamed
    assert temp in synced_before                  # the temporary's bytes were on disk before the rename
    assert str(tmp_path) in synced                # and the directory after it


def test_temporaries_of_killed_processes_are_removed_and_running_ones_kept(tmp_path):
    from core.atomic import remove_stale_temporaries
    dead = 2 ** 22 + 12345                        # above Linux's pid_max default: no such process
    names = ['.run-0001.params.tmp-%d' % dead, '.run-0001.params.tmp-%d' % os.getpid(),
             '.other.rec.tmp-%d' % dead, 'run-0001.params']
    for name in names:
        (tmp_path / name).write_text('x')
    assert remove_stale_temporaries(str(tmp_path), 'run') == ['.run-0001.params.tmp-%d' % dead]
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])
