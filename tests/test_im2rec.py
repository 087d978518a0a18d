"""tools/im2rec.py on six tiny JPEGs with known boxes: read back by MXNet's and gluoncv's readers, record ids,
skipped images, resizing, the RecordIO framing, crash safety and the command line."""
import os
import shutil
import subprocess
import sys
import types

import cv2
import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from config.errors import UserError
from dataset.lst import format_lst_line, unflatten_label
from dataset.recordio import RECORD_MAGIC, frame_record, record_head
from tools import im2rec
from tools.im2rec import pack_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MXNET_IM2REC = os.path.join(os.path.dirname(mx.__file__), 'tools', 'im2rec.py')
SIZES = [(64, 48), (48, 64), (80, 60), (60, 80), (72, 72), (50, 40)]  # (width, height) of image i
SHUFFLED = [3, 0, 5, 1, 4, 2]                                          # .lst line order; index = 10 * i


def smooth_image(width, height, seed):
    """A BGR gradient with a filled rectangle: JPEG keeps it within a few grey levels."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, (x + y + 40 * seed) % 256], axis=-1).astype(np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (30 * seed, 200, 90), -1)
    return image


def objects_for(number):
    """One box for every image, a second (difficult) one for odd images: (N, 6)."""
    rows = [[number % 3, 0.1, 0.2, 0.5, 0.6, 0]]
    if number % 2:
        rows.append([4, 0.25, 0.3, 0.95, 0.9, 1])
    return np.array(rows, np.float32)


@pytest.fixture
def data(tmp_path):
    """Six JPEGs under ``root/images`` and ``lists/train.lst`` naming them in shuffled order."""
    root = tmp_path / 'root'
    (root / 'images').mkdir(parents=True)
    entries = {}
    for number, (width, height) in enumerate(SIZES):
        relative = 'images/%d.jpg' % number
        cv2.imwrite(str(root / relative), smooth_image(width, height, number), [cv2.IMWRITE_JPEG_QUALITY, 100])
        entries[10 * number] = (objects_for(number), relative)
    lst = tmp_path / 'lists' / 'train.lst'
    lst.parent.mkdir()
    order = [10 * number for number in SHUFFLED]
    lst.write_text(''.join(format_lst_line(index, *entries[index]) + '\n' for index in order))
    return types.SimpleNamespace(root=str(root), lst=str(lst), prefix=str(lst)[:-4], entries=entries, order=order)


def read_indexed(prefix, decode=True):
    """``{record id: (header, image)}`` in file order, read with ``mx.recordio.MXIndexedRecordIO``."""
    reader = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'r')
    unpack = mx.recordio.unpack_img if decode else mx.recordio.unpack
    records = {key: unpack(reader.read_idx(key)) for key in reader.keys}
    reader.close()
    return records


def original(data, index, flag=cv2.IMREAD_COLOR):
    return cv2.imread(os.path.join(data.root, data.entries[index][1]), flag)


def assert_labels_match(data, index, objects):
    np.testing.assert_allclose(objects, data.entries[index][0], atol=1e-4, err_msg='record %d' % index)


def run_mxnet_im2rec(data, work_dir, *flags):
    """Pack ``data.lst`` with MXNet's bundled tools/im2rec.py; returns its prefix."""
    work_dir.mkdir()
    shutil.copyfile(data.lst, work_dir / 'mx.lst')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run([sys.executable, MXNET_IM2REC, str(work_dir / 'mx'), data.root, '--pack-label',
                    '--num-thread', '1'] + list(flags), check=True, capture_output=True, env=env)
    return str(work_dir / 'mx')


def run_cli(*args):
    return subprocess.run([sys.executable, 'tools/im2rec.py'] + [str(arg) for arg in args], cwd=REPO,
                          capture_output=True, text=True)


# --- reading back ------------------------------------------------------------------------------------------------
def test_indexed_recordio_reads_ids_labels_and_images(data):
    result = pack_records(data.lst, data.root, num_thread=2, progress=False)
    assert (result['images'], result['skipped']) == (6, 0)
    assert result['bytes'] == os.path.getsize(data.prefix + '.rec') and result['seconds'] > 0
    records = read_indexed(data.prefix)
    assert list(records) == data.order  # file order = .lst order, record id = .lst index
    for index, (header, image) in records.items():
        objects = data.entries[index][0]
        assert header.id == index and header.id2 == 0 and header.flag == 2 + 6 * len(objects)
        assert_labels_match(data, index, unflatten_label(header.label))
        expected = original(data, index)
        assert image.shape == expected.shape
        assert np.abs(image.astype(int) - expected).mean() < 3


def test_image_det_record_iter_reads_the_labels(data):
    pack_records(data.lst, data.root, progress=False)
    iterator = mx.io.ImageDetRecordIter(path_imgrec=data.prefix + '.rec', path_imgidx=data.prefix + '.idx',
                                        data_shape=(3, 64, 64), batch_size=3, label_pad_width=20, shuffle=False)
    seen = []
    for batch in iterator:
        assert batch.pad == 0
        for raw, index in zip(batch.label[0].asnumpy(), batch.index):
            # raw = [channels, rows, cols, label length, the record's label..., -1 padding]
            length = int(raw[3])
            assert list(raw[:3]) == [3, 64, 64] and length == 2 + 6 * len(data.entries[index][0])
            assert_labels_match(data, index, unflatten_label(raw[4:4 + length]))
            assert np.all(raw[4 + length:] == -1)
            seen.append(int(index))
    assert seen == data.order


def test_gluoncv_record_file_detection_reads_the_labels(data):
    from gluoncv.data import RecordFileDetection

    pack_records(data.lst, data.root, progress=False)
    dataset = RecordFileDetection(data.prefix + '.rec')
    assert len(dataset) == 6
    for position, index in enumerate(data.order):
        image, label = dataset[position]
        width, height = SIZES[index // 10]
        assert image.shape == (height, width, 3)
        # gluoncv's layout: [xmin, ymin, xmax, ymax] in pixels, then cls, difficult
        scale = np.array([width, height, width, height], np.float32)
        objects = np.hstack([label[:, 4:5], label[:, :4] / scale, label[:, 5:6]])
        assert_labels_match(data, index, objects)


def test_det_record_iter_reads_the_labels(data):
    from dataset.iterator import DetRecordIter

    pack_records(data.lst, data.root, progress=False)
    iterator = DetRecordIter(data.prefix + '.rec', 3, 64)
    assert iterator.label_width == 2
    seen = []
    for batch in iterator:
        for labels, index in zip(batch.label[0].asnumpy(), batch.index):
            objects = data.entries[index][0]
            assert_labels_match(data, index, labels[:len(objects)])
            assert np.all(labels[len(objects):] == -1)
            seen.append(int(index))
    assert sorted(seen) == sorted(data.order)


def test_records_packed_by_mxnet_im2rec_read_back_equal(data, tmp_path):
    mx_prefix = run_mxnet_im2rec(data, tmp_path / 'mxnet')
    pack_records(data.lst, data.root, progress=False)
    theirs, ours = read_indexed(mx_prefix), read_indexed(data.prefix)
    assert list(theirs) == list(ours) == data.order
    for index, (header, image) in theirs.items():
        assert header.id == index
        assert_labels_match(data, index, unflatten_label(header.label))
        assert np.abs(image.astype(int) - ours[index][1]).mean() < 1  # both libjpeg-turbo at quality 95
    iterator = mx.io.ImageDetRecordIter(path_imgrec=mx_prefix + '.rec', data_shape=(3, 64, 64), batch_size=6,
                                        label_pad_width=20, shuffle=False)
    batch = iterator.next()
    for raw, index in zip(batch.label[0].asnumpy(), batch.index):
        assert_labels_match(data, index, unflatten_label(raw[4:4 + int(raw[3])]))


def test_pass_through_writes_the_same_files_as_mxnet_im2rec(data, tmp_path):
    mx_prefix = run_mxnet_im2rec(data, tmp_path / 'mxnet', '--pass-through')
    result = pack_records(data.lst, data.root, pass_through=True, progress=False)
    assert result['images'] == 6
    for suffix in ('.rec', '.idx'):
        with open(mx_prefix + suffix, 'rb') as theirs, open(data.prefix + suffix, 'rb') as ours:
            assert theirs.read() == ours.read(), suffix


def test_pass_through_keeps_the_file_bytes(data):
    pack_records(data.lst, data.root, pass_through=True, progress=False)
    for index, (header, payload) in read_indexed(data.prefix, decode=False).items():
        with open(os.path.join(data.root, data.entries[index][1]), 'rb') as handle:
            assert payload == handle.read()
        assert_labels_match(data, index, unflatten_label(header.label))


# --- image options -----------------------------------------------------------------------------------------------
def test_resize_scales_the_shorter_side_and_keeps_labels(data):
    pack_records(data.lst, data.root, resize=32, progress=False)
    # (width, height) -> shorter side 32, longer side scaled and rounded down: 64x48 -> 42x32, 50x40 -> 40x32
    expected_sizes = {(64, 48): (42, 32), (48, 64): (32, 42), (80, 60): (42, 32), (60, 80): (32, 42),
                      (72, 72): (32, 32), (50, 40): (40, 32)}
    for index, (header, image) in read_indexed(data.prefix).items():
        width, height = expected_sizes[SIZES[index // 10]]
        assert image.shape == (height, width, 3)
        assert_labels_match(data, index, unflatten_label(header.label))
        reference = cv2.resize(original(data, index), (width, height), interpolation=cv2.INTER_AREA)
        assert np.abs(image.astype(int) - reference).mean() < 6


def test_png_encoding_is_lossless_and_color_zero_is_grayscale(data, tmp_path):
    root = tmp_path / 'png'
    root.mkdir()
    image = smooth_image(40, 30, 2)
    cv2.imwrite(str(root / 'a.png'), image)
    lst = root / 'a.lst'
    lst.write_text(format_lst_line(5, objects_for(0), 'a.png') + '\n')
    pack_records(str(lst), str(root), encoding='.png', progress=False)
    (header, decoded), = read_indexed(str(root / 'a')).values()
    assert np.array_equal(decoded, image)
    pack_records(str(lst), str(root), color=0, progress=False)
    (_, payload), = read_indexed(str(root / 'a'), decode=False).values()
    gray = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (30, 40)  # one channel stored
    assert np.abs(gray.astype(int) - cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)).mean() < 3


def test_exif_orientation_is_applied_like_cv2_imread(tmp_path):
    pixels = smooth_image(60, 40, 1)[:, :, ::-1]  # RGB for Pillow
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / 'a.jpg', quality=100, exif=exif)
    lst = tmp_path / 'a.lst'
    lst.write_text(format_lst_line(0, objects_for(0), 'a.jpg') + '\n')
    pack_records(str(lst), str(tmp_path), progress=False)
    (_, decoded), = read_indexed(str(tmp_path / 'a')).values()
    shown = cv2.imread(str(tmp_path / 'a.jpg'))
    assert shown.shape == decoded.shape == (60, 40, 3)
    assert np.abs(decoded.astype(int) - shown).mean() < 3


def test_image_without_objects_is_readable_by_image_det_record_iter(data):
    first = data.order[0]
    data.entries[first] = (np.zeros((0, 6), np.float32), data.entries[first][1])
    with open(data.lst, 'w') as handle:
        handle.writelines(format_lst_line(index, *data.entries[index]) + '\n' for index in data.order)
    pack_records(data.lst, data.root, progress=False)
    header, _ = read_indexed(data.prefix)[first]
    assert unflatten_label(header.label).shape == (0, 6)
    iterator = mx.io.ImageDetRecordIter(path_imgrec=data.prefix + '.rec', data_shape=(3, 64, 64), batch_size=6,
                                        label_pad_width=20, shuffle=False)
    raw = iterator.next().label[0].asnumpy()
    assert raw[0, 3] == 2 and np.all(raw[0, 4:6] == [2, 6]) and np.all(raw[0, 6:] == -1)  # box-less image
    assert raw[1, 3] == 2 + 6 * len(data.entries[data.order[1]][0])


def test_a_progress_callable_hears_every_image_in_batches_and_no_bar_is_shown(data, capsys):
    with open(data.lst, 'a') as handle:  # 150 more lines naming the same six files
        handle.writelines(format_lst_line(100 + number, objects_for(number % 6), 'images/%d.jpg' % (number % 6))
                          + '\n' for number in range(150))
    counts = []
    result = pack_records(data.lst, data.root, num_thread=2, progress=counts.append)
    assert result['images'] == 156 and sum(counts) == 156
    assert len(counts) >= 3 and all(0 < count <= im2rec.PROGRESS_BATCH for count in counts)
    assert 'packing' not in capsys.readouterr().err


# --- ids and skipped images --------------------------------------------------------------------------------------
def test_missing_and_unreadable_images_are_skipped_without_shifting_ids(data, capsys):
    os.remove(os.path.join(data.root, 'images/2.jpg'))
    with open(os.path.join(data.root, 'images/4.jpg'), 'wb') as handle:
        handle.write(b'\xff\xd8\xff but not a JPEG')
    for pass_through in (False, True):
        result = pack_records(data.lst, data.root, pass_through=pass_through, progress=False)
        warnings = capsys.readouterr().err
        assert (result['images'], result['skipped']) == (4 + pass_through, 2 - pass_through)  # header checked only
        assert 'images/2.jpg (index 20): file not found' in warnings
        assert ('images/4.jpg (index 40)' in warnings) != pass_through
        records = read_indexed(data.prefix, decode=False)
        assert list(records) == [index for index in data.order if index != 20 and (pass_through or index != 40)]
        for index, (header, _) in records.items():
            assert header.id == index
            assert_labels_match(data, index, unflatten_label(header.label))


def test_pass_through_skips_a_file_that_is_not_an_image(data, capsys):
    with open(os.path.join(data.root, 'images/1.jpg'), 'wb') as handle:
        handle.write(b'GIF89a.....')
    result = pack_records(data.lst, data.root, pass_through=True, progress=False)
    assert result['skipped'] == 1 and 'images/1.jpg (index 10): not a JPEG/PNG/BMP file' in capsys.readouterr().err


def test_only_the_first_ten_skipped_images_are_named(data, capsys):
    with open(data.lst, 'a') as handle:
        handle.writelines(format_lst_line(100 + number, objects_for(0), 'gone/%d.jpg' % number) + '\n'
                          for number in range(12))
    result = pack_records(data.lst, data.root, progress=False)
    lines = capsys.readouterr().err.splitlines()
    assert (result['images'], result['skipped']) == (6, 12)
    assert lines[:10] == ['warning: skipped gone/%d.jpg (index %d): file not found' % (n, 100 + n) for n in range(10)]
    assert lines[10:] == ['warning: skipped 12 images in all; the first 10 are named above']


def test_no_readable_image_is_an_error_and_writes_nothing(data, tmp_path):
    empty_root = tmp_path / 'elsewhere'
    empty_root.mkdir()
    with pytest.raises(UserError, match='none of the 6 images .* check the root argument'):
        pack_records(data.lst, str(empty_root), progress=False)
    assert not os.path.exists(data.prefix + '.rec') and not os.path.exists(data.prefix + '.idx')


# --- the list ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('line, message', [
    ('7\t2\t6\t1\t12\t30\t200\t180\t0\ta.jpg', r'index 7 has the object \[1 12 30 200 180 0\]'),
    ('7\t2\t6\t1\t0.5\t0.2\t0.4\t0.6\t0\ta.jpg', 'index 7 has the object'),  # xmax < xmin
    ('7\t2\t6\t1\tnan\t0.2\t0.4\t0.6\t0\ta.jpg', r'index 7 has the object \[1 nan 0.2 0.4 0.6 0\]'),
    ('7\t3\ta.jpg', 'is a classification list'),
])
def test_bad_lists_are_one_line_errors(tmp_path, line, message):
    lst = tmp_path / 'a.lst'
    lst.write_text(line + '\n')
    with pytest.raises(UserError, match=message):
        pack_records(str(lst), str(tmp_path), progress=False)


def test_repeated_index_is_an_error(tmp_path):
    lst = tmp_path / 'a.lst'
    lst.write_text(format_lst_line(3, objects_for(0), 'a.jpg') + '\n' + format_lst_line(3, objects_for(1), 'b.jpg'))
    with pytest.raises(UserError, match='index 3 is used twice'):
        pack_records(str(lst), str(tmp_path), progress=False)


@pytest.mark.parametrize('options, flag', [
    (dict(quality=0), '--quality'), (dict(resize=-1), '--resize'), (dict(encoding='.gif'), '--encoding'),
    (dict(pass_through=True, resize=32), '--pass-through'), (dict(num_thread=0), '--num-thread'),
])
def test_bad_options_name_their_flag(data, options, flag):
    with pytest.raises(UserError, match=flag):
        pack_records(data.lst, data.root, progress=False, **options)


# --- the RecordIO framing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize('magic_offsets', [[], [0], [8, 13, 16], [20]])
def test_framing_equals_mxnet_recordio_writer(tmp_path, magic_offsets):
    """dmlc splits a record where its data holds the magic at a 4-aligned offset (13 is not aligned)."""
    head = record_head(9, objects_for(1))
    body = bytearray(np.random.RandomState(0).randint(0, 256, 23).astype(np.uint8).tobytes())
    for offset in magic_offsets:
        body[offset:offset + 4] = RECORD_MAGIC
    body = bytes(body[:23])
    writer = mx.recordio.MXRecordIO(str(tmp_path / 'mx.rec'), 'w')
    writer.write(head + body)
    writer.close()
    ours = b''.join(frame_record(head, body))
    assert ours == (tmp_path / 'mx.rec').read_bytes()
    (tmp_path / 'ours.rec').write_bytes(ours)
    reader = mx.recordio.MXRecordIO(str(tmp_path / 'ours.rec'), 'r')
    assert reader.read() == head + body
    header, payload = mx.recordio.unpack(head + body)
    assert header.id == 9 and header.flag == 14 and payload == body


# --- crash safety ------------------------------------------------------------------------------------------------
def test_interrupted_pack_keeps_the_previous_pair_and_leaves_no_files(data, monkeypatch):
    pack_records(data.lst, data.root, progress=False)
    before = {suffix: open(data.prefix + suffix, 'rb').read() for suffix in ('.rec', '.idx')}
    real_encode, calls = im2rec.encode_image, []

    def encode_then_fail(image, options):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError('killed while encoding')
        return real_encode(image, options)

    monkeypatch.setattr(im2rec, 'encode_image', encode_then_fail)
    with pytest.raises(RuntimeError, match='killed while encoding'):
        pack_records(data.lst, data.root, quality=50, num_thread=2, progress=False)
    after = {suffix: open(data.prefix + suffix, 'rb').read() for suffix in ('.rec', '.idx')}
    assert after == before
    assert sorted(os.listdir(os.path.dirname(data.lst))) == ['train.idx', 'train.lst', 'train.rec']
    os.remove(data.prefix + '.rec')
    os.remove(data.prefix + '.idx')
    calls.clear()
    with pytest.raises(RuntimeError):
        pack_records(data.lst, data.root, num_thread=1, progress=False)
    assert os.listdir(os.path.dirname(data.lst)) == ['train.lst']


# --- command line ------------------------------------------------------------------------------------------------
def test_cli_packs_with_the_lst_path_as_prefix(data):
    result = run_cli(data.lst, data.root, '--pack-label', '--num-thread', 2, '--quality', 90, '--no-progress')
    assert result.returncode == 0, result.stderr
    assert 'packed 6 images (0 skipped)' in result.stdout
    assert list(read_indexed(data.prefix)) == data.order


@pytest.mark.parametrize('arguments, message', [
    (['{tmp}/nothing', '{root}', '--pack-label'], 'list file {tmp}/nothing.lst does not exist'),
    (['{prefix}', '{tmp}/no_root', '--pack-label'], 'image root {tmp}/no_root is not a directory'),
    (['{prefix}', '{root}'], 'add --pack-label'),
])
def test_cli_errors_are_one_line(data, tmp_path, arguments, message):
    fill = dict(tmp=tmp_path, root=data.root, prefix=data.prefix)
    result = run_cli(*[argument.format(**fill) for argument in arguments])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith('error: ' + message.format(**fill))
    assert not os.path.exists(data.prefix + '.rec')
