"""The flags of MXNet's SSD example (apache/mxnet v1.x example/ssd: train.py, evaluate.py, demo.py, deploy.py,
benchmark_score.py) are accepted by our scripts, each with the example's meaning or a one-line note of what
happens instead, and each value reaches the code: a user's old command lines keep working.

One tiny model is trained through train.py with the example's ``--num-example`` and saved the example's way,
``<prefix>_<network>_<data_shape>``; evaluate.py, deploy.py and demo.py then find it from ``--prefix .../ssd_``.
"""
import contextlib
import io
import os
import types

import cv2
import mxnet as mx
import numpy as np
import pytest

from config.defaults import BENCHMARK
from config.errors import UserError
from core import devices
from core.run_dir import RunDir, resolve_prefix
from dataset.lst import format_lst_line, read_lst
from symbol import multibox
from tests.test_demo import FakeCapture
from tests.test_train import make_dataset
from tools.scripts import load_script

NETWORK, SHAPE = 'mobilenet0.25', 64
CLASSES = 'circle,square,triangle'
EXAMPLE_MEAN = ('--mean-r', '123', '--mean-g', '117', '--mean-b', '104')

# Every flag of the example's scripts (their add_argument calls), by script.
EXAMPLE_FLAGS = {
    'train.py': (
        '--train-path --train-list --val-path --val-list --network --batch-size --resume --finetune --pretrained '
        '--epoch --prefix --gpus --begin-epoch --end-epoch --frequent --data-shape --label-width --lr --momentum '
        '--wd --mean-r --mean-g --mean-b --lr-steps --lr-factor --freeze --log --monitor --pattern --num-class '
        '--num-example --class-names --nms --overlap --force --use-difficult --no-voc07 --kv-store').split(),
    'evaluate.py': (
        '--rec-path --list-path --network --num-batch --batch-size --num-class --class-names --epoch --prefix '
        '--gpus --cpu --data-shape --mean-r --mean-g --mean-b --nms --overlap --force --use-difficult --no-voc07 '
        '--deploy').split(),
    'demo.py': (
        '--network --images --dir --ext --epoch --batch-size --prefix --cpu --gpu --data-shape --mean-r --mean-g '
        '--mean-b --thresh --nms --no-force --no-timer --deploy --class-names --camera --frame-resize').split(),
    'deploy.py': '--network --epoch --prefix --data-shape --num-class --nms --no-force --topk'.split(),
    'benchmark_score.py': '--network -n --batch_size -b --shape -w --class_num -class --prefix --deploy'.split(),
}


@pytest.mark.parametrize('name', sorted(EXAMPLE_FLAGS))
def test_every_flag_of_the_example_exists(name):
    options = load_script(name).build_parser()._option_string_actions
    assert [flag for flag in EXAMPLE_FLAGS[name] if flag not in options] == []


# ------------------------------------------------------------------------------------------ parsing only
def test_train_takes_the_example_command_line(monkeypatch):
    script = load_script('train.py')
    monkeypatch.setattr(devices, 'cuda_available', lambda: True)
    args = script.parse_args([
        '--train-path', 'data/train.rec', '--val-path', 'data/val.rec', '--network', 'vgg16_reduced',
        '--batch-size', '32', '--resume', '-1', '--finetune', '-1', '--pretrained', 'model/vgg16_reduced',
        '--epoch', '1', '--prefix', 'model/ssd', '--gpus', '0', '--begin-epoch', '0', '--end-epoch', '240',
        '--frequent', '20', '--data-shape', '300', '--label-width', '350', '--lr', '0.002', '--momentum', '0.9',
        '--wd', '0.0005', *EXAMPLE_MEAN, '--lr-steps', '80, 160', '--lr-factor', '0.1', '--freeze',
        '^(conv1_|conv2_).*', '--log', 'train.log', '--monitor', '0', '--pattern', '.*', '--num-class', '20',
        '--num-example', '16551', '--class-names', 'aeroplane, bicycle', '--nms', '0.45', '--overlap', '0.5',
        '--force', '--use-difficult', '--no-voc07', '--kv-store', 'local'])
    config = script.config_from_args(args)
    assert config.data.num_example == 16551 and tuple(config.data.mean_pixels) == (123, 117, 104)
    assert list(config.solver.lr_steps) == [80, 160] and config.eval.voc07 is False
    assert config.model.force_suppress is True and list(config.data.class_names) == ['aeroplane', 'bicycle']
    assert devices.contexts_for(config.run.gpus) == [mx.gpu(0)]
    assert config.data.label_width == 350 and config.run.prefix == 'model/ssd'


def test_evaluate_flags_reach_evaluate_net():
    script = load_script('evaluate.py')
    args = script.parse_args(['--prefix', 'p', '--epoch', '3', '--cpu', '--list-path', 'val.lst', '--no-voc07',
                              *EXAMPLE_MEAN])
    kwargs = script.evaluate_kwargs(args)
    assert kwargs['list_path'] == 'val.lst' and kwargs['voc07'] is False
    assert kwargs['mean_pixels'] == (123, 117, 104)
    assert script.evaluate_kwargs(script.parse_args(['--prefix', 'p', '--epoch', '3', '--cpu']))['voc07'] is True


def test_benchmark_short_and_underscore_flags():
    script = load_script('benchmark_score.py')
    args = script.parse_args(['-n', NETWORK, '-b', '4', '-w', str(SHAPE), '-class', '2'])
    assert (args.network, args.batch_size, args.data_shape, args.num_class) == (NETWORK, (4,), SHAPE, 2)
    args = script.parse_args(['--network', NETWORK, '--batch_size', '0', '--shape', '128', '--class_num', '5'])
    assert (args.batch_size, args.data_shape, args.num_class) == ((0,), 128, 5)
    assert script.batch_sizes(args.batch_size) == tuple(BENCHMARK['batch_sizes'])     # 0: the example's sweep


def test_benchmark_runs_with_the_example_flags(capsys):
    script = load_script('benchmark_score.py')
    results = script.main(script.parse_args(['-n', NETWORK, '-w', str(SHAPE), '-b', '1', '-class', '2', '--cpu',
                                             '--num-batches', '1', '--warmup', '0']))
    assert [(result.network, result.data_shape, result.batch_size) for result in results] == [
        (NETWORK, (1, 3, SHAPE, SHAPE), 1)]


def test_demo_ext_filters_the_listing_and_completes_image_names(tmp_path):
    demo = load_script('demo.py')
    for name in ('a.jpg', 'b.png', 'c.JPG', 'd.txt'):
        (tmp_path / name).write_bytes(b'')
    listed = demo.image_paths(demo.parse_args(['--dir', str(tmp_path), '--ext', '.jpg']))
    assert listed == [str(tmp_path / 'a.jpg'), str(tmp_path / 'c.JPG')]
    assert demo.image_paths(demo.parse_args(['--dir', str(tmp_path), '--ext', 'png'])) == [str(tmp_path / 'b.png')]
    assert len(demo.image_paths(demo.parse_args(['--dir', str(tmp_path)]))) == 3        # every readable format
    # the example's way: names inside --dir, --ext appended
    named = demo.image_paths(demo.parse_args(['--images', 'a,b.png', '--dir', str(tmp_path), '--ext', '.png']))
    assert named == [str(tmp_path / 'a.png'), str(tmp_path / 'b.png')]
    with pytest.raises(UserError, match=r'holds no \.gif images \(--ext gif\)'):
        demo.image_paths(demo.parse_args(['--dir', str(tmp_path), '--ext', 'gif']))


def test_demo_frame_resize_values():
    demo = load_script('demo.py')
    assert demo.parse_args(['--camera', '--frame-resize', '40,30']).frame_resize == (40, 30)
    assert demo.parse_args(['--camera', '--frame-resize', '0.5']).frame_resize == 0.5
    frame = np.zeros((60, 80, 3), np.uint8)
    assert demo.resize_frame(frame, (40, 30)).shape == (30, 40, 3)
    assert demo.resize_frame(frame, 0.5).shape == (30, 40, 3) and demo.resize_frame(frame, None) is frame
    for bad in ('abc', '0', '1,2,3', '-2,4'):
        with pytest.raises(SystemExit):
            demo.parse_args(['--camera', '--frame-resize', bad])
    # never parsed and ignored: camera-only and image-only flags given with the other input are errors
    with pytest.raises(UserError, match='--frame-resize resizes --camera frames'):
        demo.check_args(demo.parse_args(['--images', 'a.jpg', '--frame-resize', '0.5']))
    with pytest.raises(UserError, match='--ext .jpg names image files; --camera reads frames'):
        demo.check_args(demo.parse_args(['--camera', '--ext', '.jpg']))


# ------------------------------------------------------------------------------------------ the prefix habit
def touch_checkpoint(prefix, epoch=1):
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    open('%s-%04d.params' % (prefix, epoch), 'w').close()


def test_prefix_ending_in_underscore_falls_back_to_network_and_shape(tmp_path, capsys):
    base = str(tmp_path / 'model' / 'ssd_')
    assert resolve_prefix(base, NETWORK, SHAPE) == base                 # nothing saved: as given
    touch_checkpoint(base + NETWORK + '_64')
    assert resolve_prefix(base, NETWORK, SHAPE) == base + NETWORK + '_64'
    assert capsys.readouterr().out.splitlines() == [
        "note: --prefix %s has no checkpoint; using %s%s_64 (MXNet's example appended <network>_<data-shape>)"
        % (base, base, NETWORK)]
    assert resolve_prefix(base, NETWORK, None) == base + NETWORK + '_64'   # the only side saved
    assert resolve_prefix(base, None, SHAPE) == base                      # network unknown: as given
    assert resolve_prefix(base, NETWORK, 128) == base                     # no such side saved
    touch_checkpoint(base + NETWORK)                                          # the example's evaluate.py name
    assert resolve_prefix(base, NETWORK, 128) == base + NETWORK
    touch_checkpoint(base + NETWORK + '_128')
    with pytest.raises(UserError, match='give --data-shape'):
        resolve_prefix(base, NETWORK, None)
    touch_checkpoint(base)                                                    # the prefix itself saved: kept
    assert resolve_prefix(base, NETWORK, SHAPE) == base
    plain = str(tmp_path / 'model' / 'ssd')
    assert resolve_prefix(plain, NETWORK, SHAPE) == plain                 # not ending in _: exactly as given


# ------------------------------------------------------------------------------------------ real runs
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """train.py with the example's --num-example and mean, saved as the example saved:
    ``<root>/model/ssd_mobilenet0.25_64``; 16 train and 8 val images of three classes (a few seconds)."""
    root = tmp_path_factory.mktemp('example_flags')
    train_rec, val_rec = make_dataset(root, 16, 8, classes=CLASSES)
    script = load_script('train.py')
    saved = str(root / 'model' / ('ssd_%s_%d' % (NETWORK, SHAPE)))
    log = str(root / 'train.log')
    script.main(script.parse_args([
        '--train-path', train_rec, '--val-path', '', '--network', NETWORK, '--data-shape', str(SHAPE),
        '--batch-size', '8', '--pretrained', '', '--end-epoch', '1', '--lr-steps', '', '--lr', '0.01',
        '--log', log, '--seed', '0', '--train-preset', 'val', '--frequent', '100', '--cpu', '--prefix', saved,
        '--num-example', '16551', *EXAMPLE_MEAN]))
    with open(log) as handle:
        log_text = handle.read()
    return types.SimpleNamespace(root=root, val_rec=val_rec, saved=saved, log=log_text,
                                 example_prefix=str(root / 'model' / 'ssd_'))


def test_train_notes_that_num_example_is_ignored(trained):
    assert ('note: --num-example 16551 is ignored: %s holds 16 images, the count the LR steps and epochs use'
            % (trained.root / 'train.rec')) in trained.log
    config = RunDir(trained.saved).read_config()
    assert config.data.num_example == 16551 and tuple(config.data.mean_pixels) == (123, 117, 104)
    assert RunDir(trained.saved).read_trainer_state(1)['num_train_records'] == 16


def printed(function, *args):
    """``(result, stdout lines)`` of ``function(*args)``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args)
    return result, out.getvalue().splitlines()


def first_object_only_lst(val_lst, path):
    """A copy of ``val_lst`` whose every image keeps only its first object."""
    with open(path, 'w') as handle:
        for index, objects, relative in read_lst(val_lst):
            handle.write(format_lst_line(index, objects[:1], relative) + '\n')
    return path


def test_evaluate_with_the_example_flags(trained, tmp_path):
    script = load_script('evaluate.py')
    lst = first_object_only_lst(str(trained.root / 'val.lst'), str(tmp_path / 'one_each.lst'))
    flags = ['--rec-path', trained.val_rec, '--prefix', trained.example_prefix, '--network', NETWORK,
             '--data-shape', str(SHAPE), '--epoch', '1', '--cpu', *EXAMPLE_MEAN, '--no-progress']
    summary, lines = printed(script.main, script.parse_args(flags + ['--list-path', lst, '--no-voc07',
                                                                     '--out', str(tmp_path / 'a')]))
    assert lines[0].startswith('note: --prefix %s has no checkpoint; using %s' % (trained.example_prefix,
                                                                                   trained.saved))
    assert summary['prefix'] == trained.saved and summary['list_path'] == lst
    assert summary['num_images'] == 8 and summary['num_ground_truth'] == 8          # one object per image
    assert summary['metric'] == 'all-point' and summary['mAP'] == summary['ap']['all-point']['mAP']
    assert 'mAP %.4f (all-point area, --no-voc07)' % summary['mAP'] in lines
    full, lines = printed(script.main, script.parse_args(flags + ['--out', str(tmp_path / 'b')]))
    assert full['num_ground_truth'] > 8 and full['metric'] == 'VOC07'             # the .rec's own labels
    assert full['mAP'] == full['ap']['VOC07']['mAP']
    with pytest.raises(UserError, match='--list-path .*missing.lst does not exist'):
        script.main(script.parse_args(flags + ['--list-path', str(tmp_path / 'missing.lst')]))


@pytest.fixture(scope='module')
def deployed(trained):
    """deploy.py --prefix .../ssd_ --network --data-shape --topk 5 --no-force --nms 0.5 (the example's flags)."""
    script = load_script('deploy.py')
    paths, lines = printed(script.main, script.parse_args([
        '--prefix', trained.example_prefix, '--network', NETWORK, '--data-shape', str(SHAPE), '--epoch', '1',
        '--topk', '5', '--no-force', '--nms', '0.5']))
    return paths, lines


def test_deploy_topk_reaches_the_graph(trained, deployed):
    paths, lines = deployed
    assert lines[0].startswith('note: --prefix %s has no checkpoint; using %s' % (trained.example_prefix,
                                                                                   trained.saved))
    assert paths.symbol == os.path.join(os.path.dirname(trained.saved), 'deploy_ssd_%s_%d-symbol.json'
                                        % (NETWORK, SHAPE))
    attrs = mx.sym.load(paths.symbol).attr_dict()[multibox.DETECTION]
    assert (attrs['nms_topk'], attrs['nms_threshold'], attrs['force_suppress']) == ('5', '0.5', 'False')


def jpegs(trained, tmp_path, count=2):
    """``count`` validation JPEGs copied to ``tmp_path/photos`` as a.jpg, b.jpg, ...; returns the folder."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    sources = sorted((trained.root / 'VOC' / 'VOC2007' / 'JPEGImages').glob('*.jpg'))[:count]
    for name, source in zip('abcdef', sources):
        (folder / (name + '.jpg')).write_bytes(source.read_bytes())
    (folder / 'c.png').write_bytes(b'')                 # not listed: --ext .jpg
    return folder


def test_demo_with_the_example_flags(trained, deployed, tmp_path, monkeypatch):
    """--images a,b --dir --ext .jpg --deploy --no-timer and the example's mean on the deploy graph of
    --topk 5: at most 5 boxes per image, the mean reaches the preprocessing, no timing line."""
    import evaluate.model
    demo = load_script('demo.py')
    folder = jpegs(trained, tmp_path)
    means = []
    original = evaluate.model.preprocess_image
    monkeypatch.setattr(evaluate.model, 'preprocess_image',
                        lambda image, model: (means.append(model.mean_pixels), original(image, model))[1])
    flags = ['--images', 'a,b', '--dir', str(folder), '--ext', '.jpg', '--prefix', trained.example_prefix,
             '--network', NETWORK, '--data-shape', str(SHAPE), '--epoch', '1', '--cpu', '--thresh', '0',
             '--mean-r', '1', '--mean-g', '2', '--mean-b', '3']
    result, lines = printed(demo.main, demo.parse_args(flags + ['--deploy', '--no-timer', '--out',
                                                                str(tmp_path / 'deploy')]))
    assert [entry['image'] for entry in result['images']] == [str(folder / 'a.jpg'), str(folder / 'b.jpg')]
    assert result['graph'] == 'deploy' and result['mean_pixels'] == [1, 2, 3] and result['force_suppress'] is False
    assert means == [(1.0, 2.0, 3.0)] * 2
    assert all(0 < len(entry['detections']) <= 5 for entry in result['images'])
    assert not [line for line in lines if line.startswith('detection time')]
    rebuilt, lines = printed(demo.main, demo.parse_args(flags + ['--out', str(tmp_path / 'rebuilt')]))
    assert rebuilt['graph'] == 'checkpoint' and max(len(entry['detections']) for entry in rebuilt['images']) > 5
    assert [line for line in lines if line.startswith('detection time: ') and 'for 2 images' in line]
    with pytest.raises(UserError, match='--nms / --force change the rebuilt graph'):
        demo.main(demo.parse_args(flags + ['--deploy', '--nms', '0.3']))


def test_demo_frame_resize_changes_the_frame_size(trained, tmp_path, monkeypatch):
    demo = load_script('demo.py')
    frame = cv2.imread(str(sorted((trained.root / 'VOC' / 'VOC2007' / 'JPEGImages').glob('*.jpg'))[0]))
    monkeypatch.setattr(cv2, 'VideoCapture', lambda source: FakeCapture([frame, frame]))
    sizes = {}
    for resize in ('40,30', '0.5'):
        result, _ = printed(demo.main, demo.parse_args([
            '--camera', '--no-show', '--save-every', '1', '--frame-resize', resize, '--prefix', trained.saved,
            '--cpu', '--thresh', '0', '--out', str(tmp_path / resize)]))
        sizes[resize] = [(saved['width'], saved['height']) for saved in result['saved']]
    assert sizes['40,30'] == [(40, 30)] * 2
    half = (round(frame.shape[1] * 0.5), round(frame.shape[0] * 0.5))
    assert sizes['0.5'] == [half] * 2 and cv2.imread(str(tmp_path / '0.5' / 'frame_000000_det.jpg')).shape[:2] == (
        half[1], half[0])
