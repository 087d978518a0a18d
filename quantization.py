"""INT8 post-training quantization of a trained SSD on the CPU (MXNet's MKLDNN backend).

Example::

    python quantization.py --prefix model/ssd_mobilenet0.25_256 --epoch 60 --rec-path data/val.rec

The ranges of the int8 tensors are calibrated on the first ``--num-calib-batches`` batches of ``--rec-path``;
then the FP32 and the INT8 model are both evaluated on the whole ``.rec`` (VOC mAP, or ``--num-batch``
batches) and timed on one batch of ``--batch-size`` images (median of a few forwards after a warm-up).
Written, each complete or not at all: ``<out-prefix>-symbol.json`` and ``<out-prefix>-NNNN.params`` (the
INT8 model, ``mx.model.load_checkpoint(out_prefix, epoch)`` reads it back) and
``<out-prefix>-quantization.json`` (the summary also printed on the last line). ``--out-prefix`` defaults to
``<prefix>-int8``. Speed-ups depend on the CPU: without AVX512-VNNI they are small (the output says so).
"""
import argparse
import json

from config.defaults import QUANTIZE
from config.errors import UserError, run_cli
from config.runtime import configure_threads, cpu_model_and_flags
from config.schema import DEFAULTS
from tools.cli import add_eval_args

NUM_CALIB_BATCHES = QUANTIZE['num_calib_batches']    # see config/defaults.py
CALIB_MODE = QUANTIZE['calib_mode']
QUANTIZED_DTYPE = QUANTIZE['quantized_dtype']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group('model')
    model.add_argument('--prefix', required=True, help='checkpoint prefix train.py saved under')
    model.add_argument('--epoch', type=int, required=True, help='checkpoint epoch to quantize')
    model.add_argument('--out-prefix', default=None, help='prefix of the INT8 model files (default: <prefix>-int8)')
    data = parser.add_argument_group('data')
    data.add_argument('--rec-path', default=DEFAULTS.data.val_path, help='validation .rec: calibration and mAP')
    data.add_argument('--batch-size', type=int, default=DEFAULTS.data.batch_size,
                      help='images per batch for calibration, evaluation and timing')
    data.add_argument('--num-batch', type=int, default=None, help='batches evaluated (default: the whole .rec)')
    quant = parser.add_argument_group('quantization')
    quant.add_argument('--num-calib-batches', type=int, default=NUM_CALIB_BATCHES,
                       help='batches of --rec-path whose layer outputs set the int8 ranges')
    quant.add_argument('--calib-mode', default=CALIB_MODE,
                       help='naive (min/max of the outputs) or entropy (KL-divergence thresholds)')
    quant.add_argument('--quantized-dtype', default=QUANTIZED_DTYPE,
                       help='auto (uint8 after ReLU, int8 elsewhere), int8 or uint8')
    quant.add_argument('--exclude-first-conv', action='store_true',
                       help='keep the convolution reading the image in FP32')
    add_eval_args(parser)
    return parser.parse_args(argv)


def check_args(args):
    """One-line errors for flag values argparse cannot check."""
    from evaluate.quantize_net import check_options
    check_options(args.calib_mode, args.quantized_dtype, args.num_calib_batches, args.batch_size)
    if args.num_batch is not None and args.num_batch < 1:
        raise UserError('--num-batch %d must be at least 1 (leave it out to evaluate the whole .rec)'
                        % args.num_batch)
    if args.epoch < 0:
        raise UserError('--epoch %d must be a saved epoch number (0 or more)' % args.epoch)


def run(args):
    """Quantize, save, evaluate and time; returns the summary dict."""
    import mxnet as mx

    from core.atomic import write_json
    from evaluate import quantize_net
    from evaluate.model import bind_detector, load_model
    from evaluate.report import format_ap_table

    check_args(args)
    quantize_net.check_mkldnn()
    model = load_model(args.prefix, args.epoch)
    out_prefix = args.out_prefix or args.prefix + '-int8'
    calib_images = quantize_net.read_images(args.rec_path, model, args.batch_size, args.num_calib_batches)
    print('calibrating (%s) on %d images of %s' % (args.calib_mode, len(calib_images), args.rec_path))
    quantized = quantize_net.quantize(model, calib_images, args.batch_size, args.calib_mode, args.quantized_dtype,
                                      args.exclude_first_conv)
    symbol_path, params_path = quantize_net.save(quantized, out_prefix, args.epoch)
    print('wrote %s and %s' % (symbol_path, params_path))

    modules = {'FP32': bind_detector(model, [mx.cpu()], args.batch_size),
               'INT8': quantize_net.bind_quantized(quantized, model, args.batch_size)}
    agreement = quantize_net.DetectionAgreement('FP32', 'INT8')
    aps, num_images = quantize_net.evaluate_modules(
        modules, args.rec_path, model, args.batch_size, args.num_batch, consumers=[agreement],
        overlap=args.overlap, use_difficult=args.use_difficult, voc07=args.voc07)
    batch = quantize_net.timing_batch(calib_images, args.batch_size)
    rows = {title: {'mAP': aps[title]['mAP'],
                    'images_per_second': quantize_net.images_per_second(module, batch)}
            for title, module in modules.items()}

    cpu, flags = cpu_model_and_flags()
    summary = dict(
        prefix=args.prefix, epoch=args.epoch, out_prefix=out_prefix, symbol_file=symbol_path,
        params_file=params_path, rec_path=args.rec_path, batch_size=args.batch_size,
        calib_mode=args.calib_mode, quantized_dtype=args.quantized_dtype, calib_images=quantized.num_calib_images,
        evaluated_images=num_images, excluded_nodes=quantized.excluded_names,
        quantized_nodes=quantize_net.quantized_op_counts(quantized.symbol),
        fp32=rows['FP32'], int8=rows['INT8'], agreement=agreement.summary(),
        speedup=rows['INT8']['images_per_second'] / rows['FP32']['images_per_second'],
        map_change=rows['INT8']['mAP'] - rows['FP32']['mAP'],
        cpu=cpu, cpu_vnni=quantize_net.VNNI_FLAG in flags)
    write_json(quantize_net.summary_path(out_prefix), summary, indent=1, sort_keys=True)

    print('\n'.join(format_ap_table({title: aps[title] for title in modules})))
    print('%d images evaluated (the first %d also calibrated the INT8 ranges); speed: median of %d forwards of '
          '%d images on %s' % (num_images, quantized.num_calib_images, quantize_net.TIMED_BATCHES,
                               args.batch_size, summary['cpu']))
    print(agreement_line(summary['agreement']))
    print('\n'.join(quantize_net.comparison_lines(rows['FP32'], rows['INT8'])))
    note = quantize_net.vnni_note(flags)
    if note:
        print(note)
    print(json.dumps(summary, sort_keys=True))
    return summary


def agreement_line(agreement):
    """One line on how many confident FP32 detections the INT8 model reproduces."""
    return ('INT8 reproduces %d of the %d FP32 detections scored %.2f or more (same class, IoU >= %.2f); '
            'their scores differ by %.4f on average, %.4f at most'
            % (agreement['reproduced'], agreement['detections'], agreement['min_score'], agreement['min_iou'],
               agreement['mean_score_difference'], agreement['max_score_difference']))


def main(args):
    configure_threads()          # before MXNet is imported (inside run)
    return run(args)


if __name__ == '__main__':
    run_cli(main, parse_args())
