"""tools/rec_info.py on a tiny synthetic VOC set: its numbers against the .lst and the source images (counted
here, independently), --verify on records damaged byte by byte and on stale indexes, --against, --show, and
bad paths as one-line errors."""
import collections
import json
import os
import shutil
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from config.errors import run_cli
from dataset.lst import format_lst_line, read_lst
from dataset.recordio import (
    FIRST,
    IR_HEADER,
    PART_HEADER,
    RECORD_MAGIC,
    IndexedRecordWriter,
    frame_record,
    read_index,
    record_head,
)
from tools import prepare_dataset, rec_info, synthetic_voc

CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """24 training and 8 validation images (64-96 px, 1-4 objects), packed; paths of the .rec/.lst pairs."""
    root = tmp_path_factory.mktemp('rec_info')
    voc = str(root / 'VOC')
    synthetic_voc.main(synthetic_voc.parse_args([
        '--root', voc, '--num-trainval', '24', '--num-test', '8', '--min-side', '64', '--max-side', '96',
        '--max-objects', '4', '--num-thread', '1']))
    for image_set, name in (('trainval', 'train'), ('test', 'val')):
        prepare_dataset.main(prepare_dataset.parse_args([
            '--dataset', 'pascal', '--year', '2007', '--set', image_set, '--root', voc,
            '--target', str(root / (name + '.lst')), '--num-thread', '1']))
    return dict(root=root, voc=voc, train=str(root / 'train.rec'), val=str(root / 'val.rec'),
                train_lst=str(root / 'train.lst'), val_lst=str(root / 'val.lst'))


def run(*argv):
    """rec_info.main on ``argv``: the numbers (its --json document)."""
    return rec_info.main(rec_info.parse_args([str(a) for a in argv] + ['--no-progress']))


def cli(capsys, *argv):
    """rec_info through run_cli, as from the command line: ``(exit status, stdout, stderr)``."""
    capsys.readouterr()
    status = 0
    try:
        run_cli(rec_info.main, rec_info.parse_args([str(a) for a in argv] + ['--no-progress']))
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def copy_set(data, tmp_path, name='copy'):
    """A copy of the training .rec/.idx/.classes under ``tmp_path``; the new .rec path."""
    for suffix in ('.rec', '.idx', '.classes'):
        shutil.copy(data['train'][:-4] + suffix, str(tmp_path / (name + suffix)))
    return str(tmp_path / (name + '.rec'))


def offsets_of(rec):
    return [offset for _, offset in read_index(rec[:-4] + '.idx')]


def label_count(buffer, offset):
    """The IRHeader's label count (flag) of the record at ``offset`` (after its 8-byte part header)."""
    return struct.unpack_from('<I', buffer, offset + PART_HEADER.size)[0]


# --- the numbers ---------------------------------------------------------------------------------------------------
def test_numbers_equal_the_list_and_the_images(data, capsys):
    entries = read_lst(data['train_lst'])
    info = run(data['train'])
    out = capsys.readouterr().out
    assert info['records'] == len(entries) == 24
    assert info['files'][0]['records'] == 24
    objects = collections.Counter(int(row[0]) for _, rows, _ in entries for row in rows)
    difficult = collections.Counter(int(row[0]) for _, rows, _ in entries for row in rows if row[5])
    images = collections.Counter(int(cls) for _, rows, _ in entries for cls in set(rows[:, 0].tolist()))
    assert [(item['name'], item['objects'], item['difficult'], item['images']) for item in info['classes']] == \
        [(name, objects[i], difficult[i], images[i]) for i, name in enumerate(CLASSES)]
    per_image = collections.Counter(len(rows) for _, rows, _ in entries)
    assert info['boxes_per_image']['histogram'] == {str(count): per_image[count] for count in sorted(per_image)}
    assert info['boxes_per_image']['max'] == max(per_image) == info['label_width']
    assert info['boxes_per_image']['mean'] == pytest.approx(sum(len(rows) for _, rows, _ in entries) / 24)
    sizes = collections.Counter(Image.open(os.path.join(data['voc'], path)).size for _, _, path in entries)
    assert info['image_sizes']['width']['min'] == min(width for width, _ in sizes)
    assert info['image_sizes']['height']['max'] == max(height for _, height in sizes)
    assert sum(item['count'] for item in info['image_sizes']['longer_side_histogram']) == 24
    assert [((item['width'], item['height']), item['images']) for item in info['image_sizes']['most_common']] == \
        sizes.most_common(5)
    assert info['image_sizes']['formats'] == {'JPEG': 24}
    assert info['classes_from'] == data['train'][:-4] + '.classes'
    assert '24 records in 1 file' in out and 'label width needed: %d' % max(per_image) in out
    for name in CLASSES:
        assert '  %s ' % name in out


def test_manifest_glob_and_several_files_agree(data, tmp_path, capsys):
    manifest = data['root'] / 'set.json'
    manifest.write_text(json.dumps({'parts': [{'rec': 'train.rec'}, {'rec': 'val.rec', 'records': 8}]}))
    by_manifest = run(manifest)
    by_glob = run(os.path.join(str(data['root']), '*.rec'))
    by_paths = run(data['train'], data['val'], data['train'])  # a file named twice is read once
    assert by_manifest['records'] == by_glob['records'] == by_paths['records'] == 32
    assert [item['records'] for item in by_manifest['files']] == [24, 8]
    assert by_manifest['classes'] == by_glob['classes'] == by_paths['classes']
    both = collections.Counter(int(row[0]) for lst in (data['train_lst'], data['val_lst'])
                               for _, rows, _ in read_lst(lst) for row in rows)
    assert [item['objects'] for item in by_manifest['classes']] == [both[i] for i in range(len(CLASSES))]
    assert 'images per file:' in capsys.readouterr().out


def test_verify_and_against_pass_on_good_files(data, tmp_path, capsys):
    status, out, err = cli(capsys, data['train'], data['val'], '--verify', '--against', data['train_lst'],
                           '--against', data['val_lst'], '--json', tmp_path / 'info.json')
    assert status == 0, err
    assert 'verify %s: all 24 records good' % data['train'] in out
    assert 'verify %s: all 8 records good' % data['val'] in out
    assert out.count('equals the list') == 2
    written = json.loads((tmp_path / 'info.json').read_text())
    assert written['verify']['ok'] and written['records'] == 32
    assert [item['count'] for item in written['against']] == [0, 0]


# --- --verify -------------------------------------------------------------------------------------------------------
def test_verify_names_each_damaged_record(data, tmp_path, capsys):
    rec = copy_set(data, tmp_path)
    offsets = offsets_of(rec)
    buffer = bytearray(open(rec, 'rb').read())
    image_at = offsets[3] + PART_HEADER.size + IR_HEADER.size + 4 * label_count(buffer, offsets[3])
    buffer[image_at] = 0                                                      # record 3: JPEG SOI byte
    struct.pack_into('<f', buffer, offsets[5] + PART_HEADER.size + IR_HEADER.size + 4 * 3, 2.5)  # 5: xmin
    buffer[offsets[7]] ^= 0xFF                                                # record 7: its record magic
    open(rec, 'wb').write(bytes(buffer))
    status, out, err = cli(capsys, rec, '--verify', '--json', tmp_path / 'bad.json')
    assert status == 1 and err.startswith('error: --verify found 3 bad records') and err.count('\n') == 1
    assert 'record 3 (byte %d' % offsets[3] in out and 'OpenCV cannot decode' in out
    assert 'record 5 (byte %d' % offsets[5] in out and 'box [2.5 ' in out and 'outside [0, 1]' in out
    assert 'record 7 (byte %d): no record magic at byte %d; bytes %d-%d' % (
        offsets[7], offsets[7], offsets[7], offsets[8]) in out
    bad = json.loads((tmp_path / 'bad.json').read_text())['files'][0]['verify']
    assert [item['number'] for item in bad['bad_records']] == [3, 5, 7]
    assert [item['offset'] for item in bad['bad_records']] == [offsets[3], offsets[5], offsets[7]]
    assert bad['index_problems'] == []
    # without --verify the reader's own check stops at the damaged framing and points at --verify
    status, _, err = cli(capsys, rec)
    assert status == 2 and 'no record magic at byte %d' % offsets[7] in err and '--verify' in err


def test_verify_finds_a_shifted_or_stale_index(data, tmp_path, capsys):
    rec = copy_set(data, tmp_path)
    entries = read_index(rec[:-4] + '.idx')
    idx = rec[:-4] + '.idx'
    with open(idx, 'w') as handle:  # every offset 4 bytes late
        handle.writelines('%d\t%d\n' % (key, offset + 4) for key, offset in entries)
    status, out, _ = cli(capsys, rec, '--verify', '--max-listed', '0')
    assert status == 1
    assert '.idx line 1 (key %d): byte 4 is not a record start' % entries[0][0] in out
    assert 'record 0 (byte 0, id %d) is not in the .idx' % entries[0][0] in out
    assert '24 .idx problems' not in out and '48 .idx problems' in out and '0 bad records' in out
    with open(idx, 'w') as handle:  # right offsets under the wrong keys: the lines one off
        keys = [key for key, _ in entries]
        handle.writelines('%d\t%d\n' % (key, offset) for key, (_, offset) in zip(keys, entries[1:] + entries[:1]))
    status, out, _ = cli(capsys, rec, '--verify')
    assert status == 1
    assert '.idx line 1: key %d points to record 1, whose id is %d' % (keys[0], keys[1]) in out
    with open(idx, 'w') as handle:  # the last record left out, a key twice
        handle.writelines('%d\t%d\n' % entry for entry in entries[:-1] + entries[:1])
    status, out, _ = cli(capsys, rec, '--verify')
    assert status == 1 and 'is not in the .idx' in out and 'both have key %d' % keys[0] in out


def test_verify_reads_split_records_and_five_wide_labels(tmp_path, capsys):
    """Image bytes holding the record magic are split into parts by the writer, and a 5-wide label (no difficult
    column) is MXNet's older layout: both are good records."""
    rows = [[number % 2, 0.1, 0.1, 0.5, 0.9, 0] for number in range(3)]
    for name, width in (('split', 6), ('five', 5)):
        rec = str(tmp_path / (name + '.rec'))
        writer = IndexedRecordWriter(rec)
        for number in range(3):
            ok, jpeg = cv2.imencode('.jpg', np.full((40 + 8 * number, 48, 3), 60 * number, np.uint8))
            image = jpeg.tobytes() + b'\0' * (-len(jpeg) % 4) + RECORD_MAGIC + b'tail'  # after the JPEG's end
            label = np.array([2, width] + rows[number][:width], '<f4')
            head = IR_HEADER.pack(len(label), 0.0, number, 0) + label.tobytes()
            if width == 6:
                assert head == record_head(number, [rows[number]])
            chunks = frame_record(head, image)
            assert PART_HEADER.unpack_from(chunks[0])[1] >> 29 == FIRST  # split where the image holds the magic
            writer.write(number, chunks, sum(len(chunk) for chunk in chunks))
        writer.close(rec[:-4] + '.idx')
        lst = _write_lst(tmp_path, [(number, [rows[number]]) for number in range(3)])
        status, out, err = cli(capsys, rec, '--verify', '--against', lst)
        assert status == 0, out + err
        assert 'all 3 records good' in out and 'height 40-56' in out and 'numbers only' in out


def _write_lst(tmp_path, entries, name='split.lst'):
    path = tmp_path / name
    path.write_text(''.join(format_lst_line(index, rows, 'x.jpg') + '\n' for index, rows in entries))
    return path


# --- --against -------------------------------------------------------------------------------------------------------
def test_against_names_the_first_mismatches(data, tmp_path, capsys):
    entries = read_lst(data['train_lst'])

    def against(changed):
        lst = _write_lst(tmp_path, [(index, rows) for index, rows, _ in changed], 'changed.lst')
        return cli(capsys, data['train'], '--against', lst)

    close = [(index, rows + (0.00005 if number == 2 else 0), path) for number, (index, rows, path) in
             enumerate(entries)]
    assert against(close)[0] == 0  # within 1e-4
    moved = [(index, rows.copy(), path) for index, rows, path in entries]
    moved[2][1][0, 1] += 0.01
    status, out, err = against(moved)
    assert status == 1 and 'found 1 mismatch' in err
    assert 'record 2 (byte %d, id %d): object 0 is [' % (offsets_of(data['train'])[2], entries[2][0]) in out
    assert 'entry 2 (index %d) has [' % entries[2][0] in out
    swapped = entries[:4] + [entries[5], entries[4]] + entries[6:]
    status, out, _ = against(swapped)
    assert status == 1 and '2 mismatches' in out and 'id %d, but' % entries[4][0] in out
    status, out, _ = against(entries[:-1])
    assert status == 1 and 'has only 23 entries' in out


# --- --show ----------------------------------------------------------------------------------------------------------
def test_show_draws_records_into_one_png(data, tmp_path, capsys):
    out = tmp_path / 'preview.png'
    info = run(data['train'], data['val'], '--show', 5, '--out', out, '--show-size', 64)
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * 64 + 2, 3 * 64 + 2 * 2, 3)  # 3 columns, 2 rows, 2-pixel gaps
    assert info['show'] == dict(path=str(out), records=5, cols=3, cell=64)
    assert not [name for name in os.listdir(str(tmp_path)) if '.tmp-' in name]
    assert 'wrote %s: 5 records' % out in capsys.readouterr().out


# --- bad input -------------------------------------------------------------------------------------------------------
def test_bad_paths_and_flags_are_one_line_errors(data, tmp_path, capsys):
    root = str(data['root'])
    (tmp_path / 'list.json').write_text('[1, 2]')
    (tmp_path / 'cut.json').write_text('{"parts": [')
    (tmp_path / 'norec.json').write_text('{"parts": [{"idx": "a.idx"}]}')
    (tmp_path / 'gone.json').write_text('{"parts": [{"rec": "gone.rec"}]}')
    shutil.copy(data['train'], str(tmp_path / 'lonely.rec'))
    (tmp_path / 'junk.rec').write_bytes(b'not a record file at all')
    (tmp_path / 'junk.idx').write_text('0\t0\n')
    cases = [
        ([tmp_path / 'missing.rec'], 'missing.rec does not exist'),
        ([data['train_lst']], 'give the .rec packed from it'),
        ([root], 'is a folder'),
        ([os.path.join(root, 'nothing-*.rec')], 'no file matches'),
        ([tmp_path / 'image.png'], 'neither a .rec file nor a manifest'),
        ([tmp_path / 'nowhere.json'], 'manifest %s does not exist' % (tmp_path / 'nowhere.json')),
        ([tmp_path / 'list.json'], 'has no "parts" list'),
        ([tmp_path / 'cut.json'], 'is not JSON'),
        ([tmp_path / 'norec.json'], 'part 0 has no "rec" path'),
        ([tmp_path / 'gone.json'], 'gone.rec does not exist'),
        ([tmp_path / 'lonely.rec'], 'lonely.idx does not exist'),
        ([tmp_path / 'junk.rec'], 'junk.rec is not a readable RecordIO file'),
        ([data['train'], '--show', 3], '--show 3 needs --out'),
        ([data['train'], '--show', 3, '--out', tmp_path / 'p.txt'], 'must end in one of'),
        ([data['train'], '--out', tmp_path / 'p.png'], 'is written by --show N'),
        ([data['train'], '--against', tmp_path / 'none.lst'], 'none.lst does not exist'),
        ([data['train'], data['val'], '--against', data['train_lst'], '--against', data['val_lst'],
          '--against', data['val_lst']], '--against is given 3 times for 2 .rec files'),
    ]
    for argv, expected in cases:
        status, out, err = cli(capsys, *argv)
        assert status == 2, (argv, out, err)
        assert err.startswith('error: ') and err.count('\n') == 1 and expected in err, (argv, err)
    status, out, err = cli(capsys, tmp_path / 'junk.rec', '--verify')  # --verify names what it found instead
    assert status == 1 and 'record 0 (byte 0): no record magic at byte 0; bytes 0-24 hold no readable record' in out


def test_verify_notices_a_cut_image(tmp_path, capsys, monkeypatch):
    """A JPEG cut short decodes in OpenCV (grey where the bytes are missing, as MXNet's iterator would show it)
    but not in Pillow: a damaged record, also after gluoncv.data (imported by other tests) has switched Pillow's
    process-wide LOAD_TRUNCATED_IMAGES on."""
    from PIL import ImageFile
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    rec = str(tmp_path / 'cut.rec')
    writer = IndexedRecordWriter(rec)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    jpeg = cv2.imencode('.jpg', noise)[1].tobytes()
    for number, image in enumerate([jpeg, jpeg[:len(jpeg) // 2]]):
        chunks = frame_record(record_head(number, [[0, 0.1, 0.1, 0.5, 0.5, 0]]), image)
        writer.write(number, chunks, sum(len(chunk) for chunk in chunks))
    writer.close(rec[:-4] + '.idx')
    status, out, _ = cli(capsys, rec, '--verify')
    assert status == 1 and '1 bad record,' in out
    assert 'record 1 (byte ' in out and 'image: damaged (Pillow: image file is truncated' in out


def test_verify_notices_every_cut_image_on_many_threads(tmp_path, capsys, monkeypatch):
    """Decoding threads must not hand Pillow's process-wide LOAD_TRUNCATED_IMAGES to each other: with 60 cut
    JPEGs decoded on 4 threads, after something has switched it on, every one of the 60 is a bad record and the
    switch is back on afterwards."""
    from PIL import ImageFile
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    rec = str(tmp_path / 'cut.rec')
    writer = IndexedRecordWriter(rec)
    rng = np.random.default_rng(1)
    for number in range(60):
        noise = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
        jpeg = cv2.imencode('.jpg', noise)[1].tobytes()
        chunks = frame_record(record_head(number, [[0, 0.1, 0.1, 0.5, 0.5, 0]]), jpeg[:len(jpeg) // 2])
        writer.write(number, chunks, sum(len(chunk) for chunk in chunks))
    writer.close(rec[:-4] + '.idx')
    status, out, _ = cli(capsys, rec, '--verify', '--num-thread', '4')
    assert status == 1 and '60 bad records,' in out
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
