"""quantization.py and evaluate/quantize_net.py: INT8 quantization of a small trained SSD on the CPU.

The model: mobilenet0.25 at 64 px trained by train_net for 4 epochs on 8 synthetic images, each packed 20
times into the training .rec (80 Adam updates; about 7 s on 2 cores), and validated on those 8 images, where
it reaches VOC07 mAP 0.55: a detector that really responds to its input, which a couple of epochs over
distinct images do not give (they output nearly the same boxes for every image). Calibration and evaluation
use the same 8 images.
"""
import json
import os
import shutil

import mxnet as mx
import numpy as np
import pytest

from config.errors import run_cli
from config.runtime import cpu_model_and_flags
from evaluate import quantize_net
from evaluate.model import bind_detector, load_model
from tests.test_train import BATCH, make_dataset, tiny_run
from tools import im2rec
from tools.scripts import load_script

EPOCHS = 4
REPEATS = 20                 # copies of each training image per epoch
STD_PIXELS = (58.395, 57.12, 57.375)
# Tolerances, from what this model measured (naive calibration on the 8 images) on an AVX2-only AMD EPYC and
# on an AVX-512 VNNI AMD EPYC, whose oneDNN runs other INT8 kernels. The FP32 detections a user sees (score
# >= demo.py's --thresh 0.5, quantize_net.AGREEMENT_SCORE): 14 of 14 reappeared in INT8 with their class
# and IoU >= 0.96 on VNNI (all of them on AVX2 too), scores 0.009 apart on average (0.026 at most). Below
# that, on VNNI 8 of 28 detections scored >= 0.1 moved: all at the ~0.11 score floor of a class absent from
# the image, a tie among hundreds of anchors that rounding breaks either way. So: at least one judged
# detection per image, at least 90 % of them reproduced, an average score difference under 0.03 (3x the
# measured one).
MIN_JUDGED_PER_IMAGE = 1
MIN_REPRODUCED = 0.9
MAX_MEAN_SCORE_DIFFERENCE = 0.03
MAX_MAP_CHANGE = 0.2


def repeated_records(root, times):
    """``root/repeat.rec``: the images of ``root/train.lst``, the whole list ``times`` times over."""
    lines = (root / 'train.lst').read_text().splitlines()
    with open(root / 'repeat.lst', 'w') as handle:
        for index in range(times * len(lines)):
            handle.write('%d\t%s\n' % (index, lines[index % len(lines)].split('\t', 1)[1]))
    im2rec.main(im2rec.parse_args([str(root / 'repeat.lst'), str(root / 'VOC'), '--pack-label', '--num-thread',
                                   '1', '--no-progress']))
    shutil.copy(root / 'train.classes', root / 'repeat.classes')
    return str(root / 'repeat.rec')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(prefix, rec of the 8 images, validation mAP per epoch)."""
    root = tmp_path_factory.mktemp('quantization')
    images_rec, _ = make_dataset(root, BATCH, 4)
    prefix = str(root / 'm' / 'ssd')
    result = tiny_run(repeated_records(root, REPEATS), prefix, val_path=images_rec, end_epoch=EPOCHS,
                      optimizer='adam', lr=0.01, std_pixels=STD_PIXELS)
    return prefix, images_rec, [record['mAP'] for record in result['history']]


@pytest.fixture(scope='module')
def quantized(trained):
    """The model, its 8 images prepared, and the model quantized with them as the calibration batch."""
    prefix, images_rec, _ = trained
    model = load_model(prefix, EPOCHS)
    images = quantize_net.read_images(images_rec, model, BATCH, 1)
    return model, images, quantize_net.quantize(model, images, BATCH, 'naive')


def op_count(symbol, op):
    return sum(node['op'] == op for node in quantize_net.graph_nodes(symbol))


def test_every_convolution_runs_in_int8_and_the_head_stays_fp32(quantized):
    model, _, result = quantized
    convolutions = op_count(model.deploy_symbol(), 'Convolution')
    counts = quantize_net.quantized_op_counts(result.symbol)
    assert counts == {'_sg_mkldnn_conv': convolutions, '_contrib_quantize_v2': 1}
    inner = quantize_net.quantized_inner_names(result.symbol)
    assert {'conv0', 'bn0', 'relu0', 'conv26', 'relu26_cls_pred_conv'} <= inner
    assert op_count(result.symbol, 'Convolution') == 0          # none left in FP32 ...
    for op in ('_contrib_MultiBoxDetection', 'softmax', 'Concat'):  # ... and the decoding untouched
        assert op_count(result.symbol, op) == op_count(model.deploy_symbol(), op) >= 1


def test_first_convolution_can_stay_fp32(quantized):
    model, images, _ = quantized
    result = quantize_net.quantize(model, images[:BATCH], BATCH, 'naive', exclude_first_conv=True)
    assert result.excluded_names == ['conv0']
    inner = quantize_net.quantized_inner_names(result.symbol)
    assert 'conv0' not in inner and 'conv1' in inner
    convolutions = op_count(model.deploy_symbol(), 'Convolution')
    assert quantize_net.quantized_op_counts(result.symbol)['_sg_mkldnn_conv'] == convolutions - 1


def test_int8_detections_are_close_to_fp32(quantized):
    model, images, result = quantized
    assert len(images) == BATCH
    int8 = quantize_net.detections_of(quantize_net.bind_quantized(result, model, BATCH), images)
    fp32 = quantize_net.detections_of(bind_detector(model, [mx.cpu()], BATCH), images)
    found, differences = quantize_net.match_detections(fp32, int8)
    assert len(found) >= MIN_JUDGED_PER_IMAGE * BATCH           # enough confident detections to judge
    assert found.mean() >= MIN_REPRODUCED
    assert 0 < differences.mean() < MAX_MEAN_SCORE_DIFFERENCE   # int8 really ran, and stayed close


def test_match_detections_counts_class_overlap_and_score():
    reference = np.array([[[0, 0.9, 0.1, 0.1, 0.5, 0.5],      # found: same class, same box
                           [1, 0.5, 0.5, 0.5, 0.9, 0.9],      # not found: other's box is shifted (IoU 0.39)
                           [2, 0.05, 0.0, 0.0, 1.0, 1.0],     # below min_score: not counted
                           [-1, 0.8, 0.0, 0.0, 1.0, 1.0]],    # suppressed: not counted
                          [[1, 0.4, 0.2, 0.2, 0.6, 0.6],      # found in other's class-1 box, not its class-0 one
                           [-1, 0, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0]]])
    other = np.array([[[0, 0.7, 0.1, 0.1, 0.5, 0.5], [1, 0.5, 0.6, 0.6, 1.0, 1.0],
                       [-1, 0.9, 0.5, 0.5, 0.9, 0.9], [-1, 0, 0, 0, 0, 0]],
                      [[0, 0.4, 0.2, 0.2, 0.6, 0.6], [1, 0.45, 0.2, 0.2, 0.6, 0.6],
                       [-1, 0, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0]]])
    found, differences = quantize_net.match_detections(reference, other, min_score=0.1, min_iou=0.9)
    np.testing.assert_array_equal(found, [True, False, True])
    np.testing.assert_allclose(differences, [0.2, 0.05])
    found, _ = quantize_net.match_detections(reference, other, min_score=0.1, min_iou=0.35)
    np.testing.assert_array_equal(found, [True, True, True])   # 0.3^2 / (2 * 0.4^2 - 0.3^2) = 0.39 >= 0.35


def test_saved_files_reload_to_the_same_detections(quantized, tmp_path):
    model, images, result = quantized
    symbol_path, params_path = quantize_net.save(result, str(tmp_path / 'q' / 'ssd-int8'), EPOCHS)
    assert (symbol_path, params_path) == (str(tmp_path / 'q' / 'ssd-int8-symbol.json'),
                                          str(tmp_path / 'q' / 'ssd-int8-0004.params'))
    assert sorted(os.listdir(tmp_path / 'q')) == ['ssd-int8-0004.params', 'ssd-int8-symbol.json']
    symbol, arg_params, aux_params = mx.model.load_checkpoint(str(tmp_path / 'q' / 'ssd-int8'), EPOCHS)
    reloaded = quantize_net.QuantizedModel(symbol, arg_params, aux_params, 'naive', 'auto', 0, [])
    batch = images[:BATCH]
    np.testing.assert_array_equal(
        quantize_net.detections_of(quantize_net.bind_quantized(reloaded, model, BATCH), batch),
        quantize_net.detections_of(quantize_net.bind_quantized(result, model, BATCH), batch))


def test_cli_writes_the_model_and_reports_both_maps(trained, tmp_path, capsys):
    prefix, images_rec, maps = trained
    script = load_script('quantization.py')
    out_prefix = str(tmp_path / 'int8' / 'ssd')
    summary = run_cli(script.main, script.parse_args([
        '--prefix', prefix, '--epoch', str(EPOCHS), '--rec-path', images_rec, '--batch-size', str(BATCH),
        '--num-calib-batches', '1', '--out-prefix', out_prefix]))
    lines = capsys.readouterr().out.splitlines()
    assert sorted(os.listdir(tmp_path / 'int8')) == ['ssd-0004.params', 'ssd-quantization.json', 'ssd-symbol.json']
    assert json.loads(lines[-1]) == summary
    with open(out_prefix + '-quantization.json') as handle:
        assert json.load(handle) == summary
    assert summary['calib_images'] == BATCH and summary['evaluated_images'] == BATCH
    assert summary['quantized_nodes']['_sg_mkldnn_conv'] >= 40
    # the FP32 mAP is the one training's validation measured on the same images for the same epoch
    assert summary['fp32']['mAP'] == pytest.approx(maps[-1], abs=1e-6) and maps[-1] > 0.3
    assert abs(summary['int8']['mAP'] - summary['fp32']['mAP']) <= MAX_MAP_CHANGE
    agreement = summary['agreement']
    assert agreement['detections'] >= MIN_JUDGED_PER_IMAGE * BATCH
    assert agreement['reproduced'] >= MIN_REPRODUCED * agreement['detections']
    assert 0 < agreement['mean_score_difference'] < MAX_MEAN_SCORE_DIFFERENCE
    assert summary['speedup'] == pytest.approx(
        summary['int8']['images_per_second'] / summary['fp32']['images_per_second'])
    table = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1] in (['FP32'], ['INT8'],
                                                                                        ['ratio'])}
    assert float(table['FP32'][0]) == pytest.approx(summary['fp32']['mAP'], abs=1e-4)
    assert float(table['INT8'][0]) == pytest.approx(summary['int8']['mAP'], abs=1e-4)
    assert table['ratio'][1] == '%.2fx' % summary['speedup']
    assert any(line.startswith('mAP ') for line in lines)                 # the per-class AP table's last row
    assert any(line.startswith('INT8 reproduces %d of the %d FP32 detections'
                               % (agreement['reproduced'], agreement['detections'])) for line in lines)
    assert summary['cpu_vnni'] == ('avx512_vnni' in cpu_model_and_flags()[1])
    assert any(line.startswith('note: this CPU lacks VNNI') for line in lines) != summary['cpu_vnni']


@pytest.mark.parametrize('flags, words', [
    (['--calib-mode', 'minmax'], "error: --calib-mode 'minmax' is not a calibration mode; use naive or entropy"),
    (['--epoch', '7'], 'ssd-0007.params does not exist; epochs saved under this prefix: 1, 2, 3, 4'),
    (['--num-calib-batches', '0'], 'error: --num-calib-batches 0 must be at least 1'),
    (['--rec-path', 'nowhere/val.rec'], 'error: record file nowhere/val.rec does not exist'),
])
def test_bad_input_is_one_line(trained, flags, words, capsys):
    prefix, images_rec, _ = trained
    script = load_script('quantization.py')
    argv = ['--prefix', prefix, '--epoch', str(EPOCHS), '--rec-path', images_rec, '--batch-size', str(BATCH)]
    with pytest.raises(SystemExit) as stop:
        run_cli(script.main, script.parse_args(argv + flags))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_cpu_flags_and_the_vnni_note(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse avx2 avx512f\n\n'
                       'processor\t: 1\nflags\t\t: fpu avx512_vnni\n')
    model, flags = cpu_model_and_flags(str(cpuinfo))
    assert flags == {'fpu', 'sse', 'avx2', 'avx512f'}                  # the first CPU's line
    assert model == 'Test CPU'
    assert 'it has avx2, avx512f' in quantize_net.vnni_note(flags)
    assert quantize_net.vnni_note(flags | {'avx512_vnni'}) is None
    assert cpu_model_and_flags(str(tmp_path / 'missing'))[1] == set()


def test_comparison_table_ratios():
    lines = quantize_net.comparison_lines({'mAP': 0.5, 'images_per_second': 100.0},
                                          {'mAP': 0.45, 'images_per_second': 150.0})
    assert [line.split() for line in lines] == [['mAP', 'images/s'], ['FP32', '0.5000', '100.0'],
                                                ['INT8', '0.4500', '150.0'], ['ratio', '0.900', '1.50x']]
