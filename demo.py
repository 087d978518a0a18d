"""Detect objects with a trained SSD and draw the boxes, class names and scores onto the pictures.

Examples::

    python demo.py --images a.jpg,b.jpg --prefix model/demo/ssd_demo --epoch 16 --cpu
    python demo.py --dir photos/ --prefix model/demo/ssd_demo --thresh 0.3 --out output/photos_det --cpu
    python demo.py --camera 0 --prefix model/demo/ssd_demo --cpu          # q in the window stops

The network, input size, classes, input mean/std and NMS settings come from the checkpoint
(``<prefix>-config.json``, ``<prefix>.classes``); ``--network`` / ``--data-shape`` / ``--num-class`` /
``--class-names`` are needed only for checkpoints without them (e.g. from MXNet's old SSD example).
Without ``--epoch`` the best validated epoch (``<prefix>-best.json``) is used, else the last one saved.

Each input ``name.ext`` gives ``<out>/name_det.ext`` (a format OpenCV cannot write gives ``.png``), and
``<out>/detections.json`` lists per image the kept boxes in pixels of the ORIGINAL image, with class name and
score. An image that cannot be read is skipped with a warning naming it. ``--images a,b --dir D --ext .jpg``
reads ``D/a.jpg`` and ``D/b.jpg`` (MXNet's example); ``--dir D --ext .png`` only D's PNGs. ``--mean-r/g/b``,
``--std-r/g/b`` replace the trained input scaling; ``--deploy`` runs deploy.py's graph; ``--no-timer`` leaves out
the detection time line. A ``--prefix`` ending in ``_`` without a checkpoint falls back to
``<prefix><network>_<data-shape>`` (MXNet's example habit).

``--camera [ID]`` reads frames from ``cv2.VideoCapture(ID)`` (a device number, or a video file path) and
shows them with their boxes in a window when a display exists (``q`` stops); without a display (or with
``--no-show``) every ``--save-every``-th frame is saved to ``--out`` instead. Either way it stops after
``--max-frames`` frames or when the video ends. ``--frame-resize W,H`` (pixels) or ``--frame-resize 0.5`` (a
factor) resizes each frame before detection.
"""
import argparse
import json
import os
import sys
import time

from config.cli import (add_checkpoint_args, add_device_args, add_input_scaling_args, default_prefix,
                        input_scaling_from_args, resolve_prefix)
from config.defaults import DETECT
from config.schema import DEFAULTS
from config.errors import UserError, run_cli
from config.runtime import configure_threads

READABLE_EXTENSIONS = ('.jpg', '.jpeg', '.jpe', '.png', '.bmp', '.tif', '.tiff', '.webp')   # --dir lists these
RESULTS_NAME = 'detections.json'
WINDOW_TITLE = 'demo.py (q to quit)'


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


def resize_frame(frame, size):
    """``frame`` (H, W, 3) resized to ``size``: (W, H) pixels, a scale factor, or None for unchanged."""
    import cv2
    if size is None:
        return frame
    if isinstance(size, float):
        size = (max(1, round(frame.shape[1] * size)), max(1, round(frame.shape[0] * size)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


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


def prefix_from_args(args):
    """``--prefix`` (see :func:`config.cli.resolve_prefix`), else where train.py saves by default for
    ``--network`` / ``--data-shape``."""
    if args.prefix:
        return resolve_prefix(args.prefix, args.network, args.data_shape)
    return default_prefix(args.network or DEFAULTS.model.network, args.data_shape or DEFAULTS.model.data_shape)


def choose_epoch(prefix, epoch):
    """``epoch`` when given, else the best validated epoch of ``<prefix>-best.json``, else the last saved.

    Returns
    -------
    (int, str)
        The epoch and why it was chosen.
    """
    from evaluate.model import available_epochs
    if epoch is not None:
        return epoch, 'given'
    epochs = available_epochs(prefix)
    best_path = prefix + '-best.json'
    if os.path.isfile(best_path):
        try:
            with open(best_path) as handle:
                best = json.load(handle).get('epoch')
        except (ValueError, AttributeError):
            best = None
        if best in epochs:
            return best, 'best validated, %s' % best_path
    if not epochs:
        raise UserError('no checkpoint %s-NNNN.params exists; give the --prefix train.py saved under' % prefix)
    return epochs[-1], 'last saved'


def extension_from_args(args):
    """``--ext`` as a lower-case ``.ext`` (``'jpg'`` and ``'.JPG'`` -> ``'.jpg'``), or None."""
    if not args.ext:
        return None
    return '.' + args.ext.lower().lstrip('.')


def image_paths(args):
    """The input images: ``--images`` (inside ``--dir`` when given, ``--ext`` appended to names without it),
    else the files of ``--dir`` with ``--ext`` (default: every readable format), sorted."""
    ext = extension_from_args(args)
    if args.images is not None:
        if not args.images:
            raise UserError('--images is empty; give comma-separated image files')
        names = [name if not ext or name.lower().endswith(ext) else name + ext for name in args.images]
        return [os.path.join(args.dir, name) if args.dir else name for name in names]
    if not os.path.isdir(args.dir):
        raise UserError('--dir %s is not a folder' % args.dir)
    wanted = (ext,) if ext else READABLE_EXTENSIONS
    paths = [os.path.join(args.dir, name) for name in sorted(os.listdir(args.dir))
             if os.path.splitext(name)[1].lower() in wanted and os.path.isfile(os.path.join(args.dir, name))]
    if not paths:
        raise UserError('--dir %s holds no %s images%s' % (args.dir, '/'.join(wanted),
                                                           ' (--ext %s)' % args.ext if ext else ''))
    return paths


def warn(message):
    """A warning line on stderr that does not break the progress bar."""
    from tqdm import tqdm
    tqdm.write('warning: %s' % message, file=sys.stderr)


def read_image(path):
    """``(image, None)`` with a (H, W, 3) uint8 BGR image, or ``(None, reason)`` when it cannot be read."""
    import cv2
    if not os.path.isfile(path):
        return None, 'no such file'
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return None, 'OpenCV cannot decode it'
    return image, None


class Detector:
    """Runs the deploy graph on lists of BGR images, ``batch_size`` at a time.

    Parameters
    ----------
    model : evaluate.model.TrainedModel
    ctx : list of mx.Context
    batch_size : int
        Images per forward pass; a shorter list is padded with zeros, whose detections are dropped.
    symbol : mx.sym.Symbol, optional
        The graph to run (``--deploy``: deploy.py's); default the one rebuilt from the model's settings.
    """

    def __init__(self, model, ctx, batch_size, symbol=None):
        from evaluate.model import bind_detector
        from symbol import multibox
        self.model, self.batch_size = model, batch_size
        self.module = bind_detector(model, ctx, batch_size, symbol=symbol)
        self.seconds = 0.0                  # spent in __call__: input preparation, network and NMS
        self.detection_index = multibox.output_positions(self.module.symbol)[multibox.DETECTION]

    def __call__(self, images_bgr):
        """Detections of up to ``batch_size`` images.

        Parameters
        ----------
        images_bgr : list of (H_i, W_i, 3) uint8 arrays

        Returns
        -------
        list of (A, 6) float32 arrays
            ``[cls, score, xmin, ymin, xmax, ymax]`` normalized, ``cls`` -1 for suppressed rows; one per image.
        """
        import mxnet as mx
        import numpy as np
        from evaluate.model import preprocess_image
        if not 0 < len(images_bgr) <= self.batch_size:
            raise ValueError('%d images for a batch of %d' % (len(images_bgr), self.batch_size))
        started = time.perf_counter()
        data = np.zeros((self.batch_size, 3, self.model.data_shape, self.model.data_shape), np.float32)
        for number, image in enumerate(images_bgr):
            data[number] = preprocess_image(image, self.model)[0]
        self.module.forward(mx.io.DataBatch([mx.nd.array(data)]), is_train=False)
        detections = self.module.get_outputs()[self.detection_index].asnumpy()
        self.seconds += time.perf_counter() - started
        return list(detections[:len(images_bgr)])


def in_batches(items, size):
    """Consecutive lists of ``size`` items from an iterable (the last one shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def readable_images(paths, skipped, progress):
    """``(path, image)`` for each readable path; the others are warned about, recorded in ``skipped``."""
    for path in paths:
        image, reason = read_image(path)
        if image is None:
            warn('skipped %s: %s' % (path, reason))
            skipped.append({'image': path, 'reason': reason})
            progress.update()
            continue
        yield path, image


def annotate(image_bgr, detections, class_names, thresh):
    """``(picture, records)``: the kept detections in the image's pixels, and the image with them drawn."""
    from tools.draw_detections import detections_in_pixels, draw_detections
    height, width = image_bgr.shape[:2]
    records = detections_in_pixels(detections, width, height, thresh, class_names)
    return draw_detections(image_bgr, records, class_names), records


def write_results(out, results):
    """``<out>/detections.json``, written atomically; returns its path."""
    from core.atomic import write_json
    return write_json(os.path.join(out, RESULTS_NAME), results, indent=1)


def run_images(args, paths, class_names, detect, about):
    """Detect, draw and save every image of ``paths``; write ``detections.json``.

    Parameters
    ----------
    args : argparse.Namespace
        ``out``, ``thresh``, ``batch_size`` and ``timer`` are used.
    paths : list of str
        The images (:func:`image_paths`).
    class_names : sequence of str
    detect : callable
        List of at most ``args.batch_size`` BGR images -> list of (A, 6) normalized detections.
    about : dict
        The model's description, copied into ``detections.json``.

    Returns
    -------
    dict
        What was written to ``detections.json``, plus ``results_path``.
    """
    from tqdm import tqdm
    from tools.draw_detections import output_names, save_picture
    outputs = dict(zip(paths, output_names(paths)))   # a repeated path keeps one output (it is the same image)
    entries, skipped = [], []
    started = time.perf_counter()
    with tqdm(total=len(paths), unit='img', desc='demo', dynamic_ncols=True, file=sys.stderr) as progress:
        for batch in in_batches(readable_images(paths, skipped, progress), args.batch_size):
            for (path, image), detections in zip(batch, detect([image for _, image in batch])):
                picture, records = annotate(image, detections, class_names, args.thresh)
                output = os.path.join(args.out, outputs[path])
                save_picture(picture, output)
                entries.append({'image': path, 'output': output, 'width': image.shape[1],
                                'height': image.shape[0], 'detections': records})
                progress.update()
    if not entries:
        raise UserError('none of the %d images could be read (named above); nothing was written' % len(paths))
    results = dict(about, thresh=args.thresh, images=entries, skipped=skipped,
                   seconds=round(time.perf_counter() - started, 3))
    results_path = write_results(args.out, results)
    if args.timer:
        print(timer_line(len(entries), detect))
    print('wrote %d pictures and %s (%d boxes with score >= %g)%s'
          % (len(entries), results_path, sum(len(entry['detections']) for entry in entries), args.thresh,
             '; skipped %d unreadable images' % len(skipped) if skipped else ''))
    return dict(results, results_path=results_path)


def timer_line(count, detect):
    """``detection time ...``: the seconds ``detect`` spent (kept by a :class:`Detector`; any other callable
    is said not to be measured)."""
    seconds = getattr(detect, 'seconds', None)
    if seconds is None:
        return 'detection time: not measured for %d images (not a demo.Detector)' % count
    return 'detection time: %.3f s for %d images (%.1f images/s: input preparation, network and NMS)' % (
        seconds, count, count / max(seconds, 1e-9))


def display_available():
    """Whether a window can be opened: on Linux only with an X11 or Wayland display."""
    if sys.platform.startswith('linux'):
        return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))
    return True


def open_camera(source):
    """An opened ``cv2.VideoCapture``; a device or file that does not open is a one-line error."""
    import cv2
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        what = 'video device %d' % source if isinstance(source, int) else 'video file %s' % source
        raise UserError('--camera %s: OpenCV could not open %s; check the device number (0 is the first '
                        'camera) or the file path' % (source, what))
    return capture


def run_camera(args, class_names, detect, about):
    """Detect and draw on camera frames: show them in a window, or save every N-th to ``--out``.

    Parameters
    ----------
    args, class_names, about :
        As for :func:`run_images`.
    detect : callable
        A list of one BGR frame -> a list of one (A, 6) detections array.

    Returns
    -------
    dict
        ``frames`` read, ``saved`` (per saved frame: frame number, output, detections), ``results_path``
        (None when nothing was saved).
    """
    import cv2
    from tqdm import tqdm
    from tools.draw_detections import save_picture
    show = display_available() if args.show is None else args.show
    capture = open_camera(args.camera)
    saved, frames = [], 0
    try:
        with tqdm(total=args.max_frames, unit='frame', desc='camera', dynamic_ncols=True, file=sys.stderr) as bar:
            while frames < args.max_frames:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                frame = resize_frame(frame, args.frame_resize)
                picture, records = annotate(frame, detect([frame])[0], class_names, args.thresh)
                frames += 1
                bar.update()
                if show:
                    cv2.imshow(WINDOW_TITLE, picture)
                    if cv2.waitKey(1) & 0xFF == ord('q'):
                        break
                elif (frames - 1) % args.save_every == 0:
                    output = os.path.join(args.out, 'frame_%06d_det.jpg' % (frames - 1))
                    save_picture(picture, output)
                    saved.append({'frame': frames - 1, 'output': output, 'width': frame.shape[1],
                                  'height': frame.shape[0], 'detections': records})
    finally:
        capture.release()
        if show:
            cv2.destroyAllWindows()
    if not frames:
        raise UserError('--camera %s opened but gave no frame' % args.camera)
    results_path = write_results(args.out, dict(about, thresh=args.thresh, camera=args.camera, frames=saved)) \
        if saved else None
    print('read %d frames%s' % (frames, '; saved %d with %s' % (len(saved), results_path) if saved else ''))
    if args.timer:
        print(timer_line(frames, detect))
    return dict(frames=frames, saved=saved, results_path=results_path)


def describe(model, symbol=None):
    """The model's settings recorded in ``detections.json`` (NMS settings: those of ``symbol`` when given)."""
    from evaluate.evaluate_net import graph_nms_settings
    nms_thresh, force_suppress = graph_nms_settings(symbol, model) if symbol is not None else (
        model.nms_thresh, model.force_suppress)
    return dict(prefix=model.prefix, epoch=model.epoch, network=model.network, data_shape=model.data_shape,
                classes=list(model.class_names), nms_thresh=nms_thresh, force_suppress=force_suppress,
                mean_pixels=list(model.mean_pixels), std_pixels=list(model.std_pixels),
                graph='deploy' if symbol is not None else 'checkpoint')


def load_demo_model(args, prefix, epoch):
    """The model with ``--mean-*`` / ``--std-*`` applied, and the graph to run.

    Returns
    -------
    model : evaluate.model.TrainedModel
    symbol : mx.sym.Symbol or None
        deploy.py's graph with ``--deploy`` (the model then holds its weights), else None (rebuilt).
    """
    import dataclasses
    from evaluate.evaluate_net import read_deploy_checkpoint, with_input_scaling
    from evaluate.model import load_model
    model = load_model(prefix, epoch, network=args.network, data_shape=args.data_shape, num_class=args.num_class,
                       class_names=args.class_names, nms_thresh=args.nms_thresh, force_suppress=args.force_nms)
    model = with_input_scaling(model, *input_scaling_from_args(args))
    if not args.deploy:
        return model, None
    symbol, arg_params, aux_params = read_deploy_checkpoint(prefix, epoch)
    return dataclasses.replace(model, arg_params=arg_params, aux_params=aux_params), symbol


def main(args):
    configure_threads()
    from config.cli import contexts_from_args   # evaluate/ imports mxnet, which reads OMP_NUM_THREADS once

    check_args(args)
    paths = image_paths(args) if args.camera is None else None   # bad --images / --dir fail before loading
    prefix = prefix_from_args(args)
    epoch, why = choose_epoch(prefix, args.epoch)
    model, symbol = load_demo_model(args, prefix, epoch)
    ctx = contexts_from_args(args)
    print('model %s epoch %d (%s): %s at %d px, classes %s%s' % (
        prefix, epoch, why, model.network, model.data_shape, ', '.join(model.class_names),
        '; deploy graph' if symbol is not None else ''))
    if args.camera is not None:
        return run_camera(args, model.class_names, Detector(model, ctx[:1], 1, symbol), describe(model, symbol))
    batch_size = max(min(args.batch_size, len(paths)), len(ctx))   # every device gets at least one image
    args = argparse.Namespace(**dict(vars(args), batch_size=batch_size))
    return run_images(args, paths, model.class_names, Detector(model, ctx, batch_size, symbol),
                      describe(model, symbol))


if __name__ == '__main__':
    run_cli(main, parse_args())
