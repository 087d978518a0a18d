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
