"""Detect objects with a trained SSD and draw the boxes, class names and scores onto the pictures.

Examples::

    python demo.py --images a.jpg,b.jpg --prefix model/demo/ssd_demo --epoch 16 --cpu
    python demo.py --dir photos/ --prefix model/demo/ssd_demo --thresh 0.3 --out output/photos_det --cpu
    python demo.py --camera 0 --prefix model/demo/ssd_demo --cpu          # q in the window stops

The network, input size, classes, input mean/std and NMS settings come from the checkpoint
(``<prefix>-config.yaml`` or an older ``-config.json``, ``<prefix>.classes``); ``--network`` /
``--data-shape`` / ``--num-class`` / ``--class-names`` are needed only for checkpoints without them (e.g. from
MXNet's old SSD example).
Without ``--epoch`` the best validated epoch (``<prefix>-best.json``) is used, else the last one saved.

Each input ``name.ext`` gives ``<out>/name_det.ext`` (a format OpenCV cannot write gives ``.png``), and
``<out>/detections.json`` lists per image the kept boxes in pixels of the ORIGINAL image, with class name and
score. An image that cannot be read is skipped with a warning naming it. ``--images a,b --dir D --ext .jpg``
reads ``D/a.jpg`` and ``D/b.jpg`` (MXNet's example); ``--dir D --ext .png`` only D's PNGs. ``--mean-r/g/b``,
``--std-r/g/b`` replace the trained input scaling; ``--deploy`` runs deploy.py's graph; ``--no-timer`` leaves out
the detection time line. A ``--prefix`` ending in ``_`` without a checkpoint falls back to
``<prefix><network>_<data-shape>`` (MXNet's example habit). The detector, the image and camera loops and the
JSON writing are :mod:`evaluate.detect_images`; this script parses the flags and calls it.

``--camera [ID]`` reads frames from ``cv2.VideoCapture(ID)`` (a device number, or a video file path) and
shows them with their boxes in a window when a display exists (``q`` stops); without a display (or with
``--no-show``) every ``--save-every``-th frame is saved to ``--out`` instead. Either way it stops after
``--max-frames`` frames or when the video ends. ``--frame-resize W,H`` (pixels) or ``--frame-resize 0.5`` (a
factor) resizes each frame before detection.
"""
import argparse
import os

from config.defaults import DETECT
from config.errors import UserError, run_cli
from config.runtime import configure_threads
from config.schema import DEFAULTS
from evaluate import detect_images
from evaluate.detect_images import (
    READABLE_EXTENSIONS,
    DetectOptions,
    display_available,
    resize_frame,  # noqa: F401  (demo.resize_frame: what --frame-resize does, for callers of this script)
)
from tools.cli import add_checkpoint_args, add_device_args, add_input_scaling_args, input_scaling_from_args


def camera_source(text):
    """argparse type of ``--camera``: ``'0'`` -> device 0; anything else is a video file path."""
    return int(text) if text.strip().isdigit() else text


def frame_size(text):
    """argparse type of ``--frame-resize``: ``'640,480'`` -> ``(640, 480)`` pixels; ``'0.5'`` -> scale 0.5."""
    parts = text.split(',')
    try:
        size = tuple(int(part) for part in parts) if len(parts) == 2 else float(text)
    except ValueError:
        size = None
    if size is None or min(size if isinstance(size, tuple) else (size,)) <= 0:
        raise argparse.ArgumentTypeError('%r is neither W,H pixels (e.g. 640,480) nor a positive scale factor '
                                         '(e.g. 0.5)' % text)
    return size


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group('input: --images and/or --dir, or --camera')
    source.add_argument('--images', type=lambda text: [item for item in text.split(',') if item.strip()],
                        help='comma-separated image files (with --dir: names in that folder)')
    source.add_argument('--dir', help='every %s image in this folder (or the folder of the --images names)'
                        % '/'.join(READABLE_EXTENSIONS))
    source.add_argument('--ext', default=None,
                        help="image extension, e.g. .jpg: only those files of --dir, and appended to --images "
                             "names that lack it (MXNet's example)")
    source.add_argument('--camera', nargs='?', const=0, type=camera_source,
                        help='cv2.VideoCapture device number (default 0) or video file')
    model = add_checkpoint_args(parser, required=False, epoch_help='checkpoint epoch (default: the best in '
                                '<prefix>-best.json, else the last saved); --prefix defaults to '
                                'model/ssd_<network>_<data-shape>')
    model.add_argument('--deploy', action='store_true',
                       help='run the deploy graph deploy.py wrote (deploy_<name>-symbol.json and -NNNN.params '
                            'beside the prefix) instead of rebuilding it')
    add_input_scaling_args(parser.add_argument_group('input scaling'))
    add_device_args(parser)
    output = parser.add_argument_group('output')
    output.add_argument('--thresh', type=float, default=DETECT['thresh'],
                        help='lowest score drawn (default: %(default)s)')
    output.add_argument('--out', default=DETECT['out'], help='output folder (default: %(default)s)')
    output.add_argument('--batch-size', type=int, default=DETECT['batch_size'],
                        help='images per forward pass (default: %(default)s)')
    output.add_argument('--timer', action=argparse.BooleanOptionalAction, default=DETECT['timer'],
                        help='print the detection time (--no-timer: do not)')
    camera = parser.add_argument_group('camera')
    camera.add_argument('--max-frames', type=int, default=DETECT['max_frames'],
                        help='stop after this many frames (default: %(default)s)')
    camera.add_argument('--save-every', type=int, default=DETECT['save_every'],
                        help='without a window: save every N-th frame to --out (default: %(default)s)')
    camera.add_argument('--show', action=argparse.BooleanOptionalAction, default=None,
                        help='show frames in a window (default: when a display exists)')
    camera.add_argument('--frame-resize', type=frame_size, default=None,
                        help='resize each frame before detection: W,H pixels (e.g. 640,480) or a scale factor '
                             '(e.g. 0.5)')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def check_args(args):
    """One-line errors for values no run could use."""
    if not 0.0 <= args.thresh <= 1.0:
        raise UserError('--thresh %g must lie in [0, 1] (scores are probabilities)' % args.thresh)
    if args.nms_thresh is not None and not 0.0 < args.nms_thresh <= 1.0:
        raise UserError('--nms %g must lie in (0, 1] (an IoU)' % args.nms_thresh)
    for flag in ('batch_size', 'max_frames', 'save_every'):
        if getattr(args, flag) < 1:
            raise UserError('--%s %d must be at least 1' % (flag.replace('_', '-'), getattr(args, flag)))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError('--out %s is a file; give a folder for the pictures' % args.out)
    if args.camera is not None and (args.images is not None or args.dir):
        raise UserError('--camera reads frames; drop --images / --dir (or drop --camera)')
    if args.camera is None and args.images is None and not args.dir:
        raise UserError('nothing to detect on: give --images, --dir or --camera')
    if args.camera is not None and args.ext:
        raise UserError('--ext %s names image files; --camera reads frames: drop one of them' % args.ext)
    if args.camera is None and args.frame_resize is not None:
        raise UserError('--frame-resize resizes --camera frames; images are read at their own size: drop it')
    if args.deploy and (args.nms_thresh is not None or args.force_nms is not None):
        raise UserError('--nms / --force change the rebuilt graph; the --deploy graph keeps the NMS settings '
                        'deploy.py gave it: drop them, or run deploy.py again with them')
    if args.camera is not None and args.show and not display_available():
        raise UserError('--show needs a display (DISPLAY is not set); use --no-show to save frames to --out')


def image_paths(args):
    """The input images of ``--images`` / ``--dir`` / ``--ext`` (see :func:`evaluate.detect_images.image_paths`)."""
    return detect_images.image_paths(args.images, args.dir, args.ext)


def main(args):
    configure_threads()
    from core.run_dir import prefix_for
    from tools.cli import contexts_from_args  # evaluate/ imports mxnet, which reads OMP_NUM_THREADS once

    check_args(args)
    paths = image_paths(args) if args.camera is None else None   # bad --images / --dir fail before loading
    prefix = prefix_for(args.prefix, args.network, args.data_shape, DEFAULTS.model.network,
                        DEFAULTS.model.data_shape)
    mean_pixels, std_pixels = input_scaling_from_args(args)
    model, symbol, why = detect_images.load_detection_model(
        prefix, args.epoch, deploy=args.deploy, mean_pixels=mean_pixels, std_pixels=std_pixels,
        network=args.network, data_shape=args.data_shape, num_class=args.num_class, class_names=args.class_names,
        nms_thresh=args.nms_thresh, force_suppress=args.force_nms)
    ctx = contexts_from_args(args)
    print(detect_images.model_line(model, why, symbol))
    options = DetectOptions.from_values(vars(args))
    if args.camera is not None:
        return detect_images.detect_camera(model, ctx, options, symbol)
    return detect_images.detect_paths(model, ctx, paths, options, symbol)


if __name__ == '__main__':
    run_cli(main, parse_args())
