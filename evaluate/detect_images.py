"""Detect objects with a trained SSD in pictures and camera frames, draw them and list them: demo.py's library.

- :func:`load_detection_model`: the checkpoint (epoch given, else the best validated, else the last saved), its
  input scaling overrides and, with ``deploy``, deploy.py's graph;
- :class:`Detector`: the bound graph run on lists of BGR images, ``batch_size`` at a time;
- :func:`detect_paths` / :func:`run_images`: every image of a list detected, drawn to ``<out>/name_det.ext``
  and listed in ``<out>/detections.json`` (boxes in pixels of the ORIGINAL image, class name, score); an image
  that cannot be read is skipped with a warning naming it;
- :func:`detect_camera` / :func:`run_camera`: frames of ``cv2.VideoCapture`` shown in a window (``q`` stops) or,
  without a display, every N-th saved to ``<out>``.

MXNet (and everything importing it) is imported inside the functions that need it, so that demo.py can set the
thread count first.
"""
import dataclasses
import os
import sys
import time

from config.defaults import DETECT
from config.errors import UserError

READABLE_EXTENSIONS = ('.jpg', '.jpeg', '.jpe', '.png', '.bmp', '.tif', '.tiff', '.webp')   # --dir lists these
RESULTS_NAME = 'detections.json'
WINDOW_TITLE = 'demo.py (q to quit)'


@dataclasses.dataclass(frozen=True)
class DetectOptions:
    """What the image and camera loops do (demo.py's flags of the same names).

    Attributes
    ----------
    out : str
        Folder of the drawn pictures and ``detections.json``.
    thresh : float
        Lowest score drawn and listed.
    batch_size : int
        Images per forward pass.
    timer : bool
        Print the detection time.
    camera : int or str or None
        ``cv2.VideoCapture`` source: a device number or a video file.
    max_frames : int
        The camera loop stops after this many frames.
    save_every : int
        Without a window, every N-th frame is saved.
    show : bool or None
        Show frames in a window; None: when a display exists.
    frame_resize : (int, int) or float or None
        Each frame resized to (W, H) pixels or by a factor before detection; None: unchanged.
    """
    out: str = DETECT['out']
    thresh: float = DETECT['thresh']
    batch_size: int = DETECT['batch_size']
    timer: bool = DETECT['timer']
    camera: object = None
    max_frames: int = DETECT['max_frames']
    save_every: int = DETECT['save_every']
    show: object = None
    frame_resize: object = None

    @classmethod
    def from_values(cls, values):
        """The options named in ``values`` (a mapping, e.g. ``vars(args)``), other entries ignored."""
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls) if field.name in values})


# ------------------------------------------------------------------------------------------------ inputs
def resize_frame(frame, size):
    """``frame`` (H, W, 3) resized to ``size``: (W, H) pixels, a scale factor, or None for unchanged."""
    import cv2
    if size is None:
        return frame
    if isinstance(size, float):
        size = (max(1, round(frame.shape[1] * size)), max(1, round(frame.shape[0] * size)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def normalized_extension(ext):
    """An extension as a lower-case ``.ext`` (``'jpg'`` and ``'.JPG'`` -> ``'.jpg'``), or None for none."""
    if not ext:
        return None
    return '.' + ext.lower().lstrip('.')


def image_paths(images=None, directory=None, ext=None):
    """The input images: ``images`` (inside ``directory`` when given, ``ext`` appended to names without it),
    else the files of ``directory`` with ``ext`` (default: every readable format), sorted.

    Parameters
    ----------
    images : list of str, optional
        demo.py's ``--images``.
    directory : str, optional
        ``--dir``.
    ext : str, optional
        ``--ext``, with or without the dot.

    Returns
    -------
    list of str
    """
    wanted_ext = normalized_extension(ext)
    if images is not None:
        if not images:
            raise UserError('--images is empty; give comma-separated image files')
        names = [name if not wanted_ext or name.lower().endswith(wanted_ext) else name + wanted_ext
                 for name in images]
        return [os.path.join(directory, name) if directory else name for name in names]
    if not os.path.isdir(directory):
        raise UserError('--dir %s is not a folder' % directory)
    wanted = (wanted_ext,) if wanted_ext else READABLE_EXTENSIONS
    paths = [os.path.join(directory, name) for name in sorted(os.listdir(directory))
             if os.path.splitext(name)[1].lower() in wanted and os.path.isfile(os.path.join(directory, name))]
    if not paths:
        raise UserError('--dir %s holds no %s images%s' % (directory, '/'.join(wanted),
                                                           ' (--ext %s)' % ext if wanted_ext else ''))
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


# ---------------------------------------------------------------------------------------------- the model
def load_detection_model(prefix, epoch=None, deploy=False, mean_pixels=None, std_pixels=None, **model_args):
    """The model of ``prefix`` to detect with, and the graph to run.

    Parameters
    ----------
    prefix : str
        Exactly the prefix train.py saved under (``core.run_dir.prefix_for`` of the flags).
    epoch : int, optional
        None: the best validated epoch of ``<prefix>-best.json``, else the last saved
        (``core.run_dir.choose_epoch``).
    deploy : bool
        Run deploy.py's graph (``deploy_<name>-symbol.json`` and ``-NNNN.params`` beside the prefix).
    mean_pixels, std_pixels : (3,) of float or None, optional
        Per-channel overrides of the trained input scaling (None entries keep the trained value).
    **model_args :
        ``network``, ``data_shape``, ``num_class``, ``class_names``, ``nms_thresh``, ``force_suppress`` of
        :func:`evaluate.model.load_model`.

    Returns
    -------
    model : evaluate.model.TrainedModel
    symbol : mx.sym.Symbol or None
        deploy.py's graph with ``deploy`` (the model then holds its weights), else None (rebuilt).
    why : str
        Why this epoch: ``'given'``, ``'best validated, <prefix>-best.json'`` or ``'last saved'``.
    """
    from core.run_dir import RunDir, choose_epoch
    from evaluate.evaluate_net import load_graph_model
    epoch, why = choose_epoch(RunDir(prefix), epoch)
    model, symbol = load_graph_model(prefix, epoch, deploy=deploy, mean_pixels=mean_pixels, std_pixels=std_pixels,
                                     **model_args)
    return model, symbol, why


def model_line(model, why, symbol=None):
    """The line saying which model runs: prefix, epoch and why, network, side, classes."""
    return 'model %s epoch %d (%s): %s at %d px, classes %s%s' % (
        model.prefix, model.epoch, why, model.network, model.data_shape, ', '.join(model.class_names),
        '; deploy graph' if symbol is not None else '')


def describe(model, symbol=None):
    """The model's settings recorded in ``detections.json`` (NMS settings: those of ``symbol`` when given)."""
    from evaluate.evaluate_net import graph_nms_settings
    nms_thresh, force_suppress = graph_nms_settings(symbol, model) if symbol is not None else (
        model.nms_thresh, model.force_suppress)
    return dict(prefix=model.prefix, epoch=model.epoch, network=model.network, data_shape=model.data_shape,
                classes=list(model.class_names), nms_thresh=nms_thresh, force_suppress=force_suppress,
                mean_pixels=list(model.mean_pixels), std_pixels=list(model.std_pixels),
                graph='deploy' if symbol is not None else 'checkpoint')


class Detector:
    """Runs the deploy graph on lists of BGR images, ``batch_size`` at a time.

    Parameters
    ----------
    model : evaluate.model.TrainedModel
    ctx : list of mx.Context
    batch_size : int
        Images per forward pass; a shorter list is padded with zeros, whose detections are dropped.
    symbol : mx.sym.Symbol, optional
        The graph to run (deploy.py's); default the one rebuilt from the model's settings.
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

        from evaluate import model as model_io  # looked up per call: tests replace preprocess_image
        if not 0 < len(images_bgr) <= self.batch_size:
            raise ValueError('%d images for a batch of %d' % (len(images_bgr), self.batch_size))
        started = time.perf_counter()
        data = np.zeros((self.batch_size, 3, self.model.data_shape, self.model.data_shape), np.float32)
        for number, image in enumerate(images_bgr):
            data[number] = model_io.preprocess_image(image, self.model)[0]
        self.module.forward(mx.io.DataBatch([mx.nd.array(data)]), is_train=False)
        detections = self.module.get_outputs()[self.detection_index].asnumpy()
        self.seconds += time.perf_counter() - started
        return list(detections[:len(images_bgr)])


# ------------------------------------------------------------------------------------------- the images
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
    """``(picture, records)``: the image with the kept detections drawn, and those in the image's pixels.

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8 array
    detections : (A, 6) array
        ``[cls, score, xmin, ymin, xmax, ymax]`` normalized.
    class_names : sequence of str
    thresh : float
    """
    from evaluate.draw_detections import detections_in_pixels, draw_detections
    height, width = image_bgr.shape[:2]
    records = detections_in_pixels(detections, width, height, thresh, class_names)
    return draw_detections(image_bgr, records, class_names), records


def write_results(out, results):
    """``<out>/detections.json``, written atomically; returns its path."""
    from core.atomic import write_json
    return write_json(os.path.join(out, RESULTS_NAME), results, indent=1)


def run_images(options, paths, class_names, detect, about):
    """Detect, draw and save every image of ``paths``; write ``detections.json``.

    Parameters
    ----------
    options : DetectOptions
        ``out``, ``thresh``, ``batch_size`` and ``timer`` are used (an ``argparse.Namespace`` of demo.py's
        flags has them too).
    paths : list of str
        The images (:func:`image_paths`).
    class_names : sequence of str
    detect : callable
        List of at most ``options.batch_size`` BGR images -> list of (A, 6) normalized detections.
    about : dict
        The model's description (:func:`describe`), copied into ``detections.json``.

    Returns
    -------
    dict
        What was written to ``detections.json``, plus ``results_path``.
    """
    from tqdm import tqdm

    from evaluate.draw_detections import output_names, save_picture
    outputs = dict(zip(paths, output_names(paths)))   # a repeated path keeps one output (it is the same image)
    entries, skipped = [], []
    started = time.perf_counter()
    with tqdm(total=len(paths), unit='img', desc='demo', dynamic_ncols=True, file=sys.stderr) as progress:
        for batch in in_batches(readable_images(paths, skipped, progress), options.batch_size):
            for (path, image), detections in zip(batch, detect([image for _, image in batch])):
                picture, records = annotate(image, detections, class_names, options.thresh)
                output = os.path.join(options.out, outputs[path])
                save_picture(picture, output)
                entries.append({'image': path, 'output': output, 'width': image.shape[1],
                                'height': image.shape[0], 'detections': records})
                progress.update()
    if not entries:
        raise UserError('none of the %d images could be read (named above); nothing was written' % len(paths))
    results = dict(about, thresh=options.thresh, images=entries, skipped=skipped,
                   seconds=round(time.perf_counter() - started, 3))
    results_path = write_results(options.out, results)
    if options.timer:
        print(timer_line(len(entries), detect))
    print('wrote %d pictures and %s (%d boxes with score >= %g)%s'
          % (len(entries), results_path, sum(len(entry['detections']) for entry in entries), options.thresh,
             '; skipped %d unreadable images' % len(skipped) if skipped else ''))
    return dict(results, results_path=results_path)


def timer_line(count, detect):
    """``detection time ...``: the seconds ``detect`` spent (kept by a :class:`Detector`; any other callable
    is said not to be measured)."""
    seconds = getattr(detect, 'seconds', None)
    if seconds is None:
        return 'detection time: not measured for %d images (not an evaluate.detect_images.Detector)' % count
    return 'detection time: %.3f s for %d images (%.1f images/s: input preparation, network and NMS)' % (
        seconds, count, count / max(seconds, 1e-9))


def detect_paths(model, ctx, paths, options, symbol=None):
    """:func:`run_images` with a :class:`Detector` of ``model`` on ``ctx``.

    The batch is ``options.batch_size`` images, fewer when there are fewer images, and at least one per device.
    """
    batch_size = max(min(options.batch_size, len(paths)), len(ctx))   # every device gets at least one image
    return run_images(dataclasses.replace(options, batch_size=batch_size), paths, model.class_names,
                      Detector(model, ctx, batch_size, symbol), describe(model, symbol))


# --------------------------------------------------------------------------------------------- the camera
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


def run_camera(options, class_names, detect, about):
    """Detect and draw on the frames of ``options.camera``: show them in a window, or save every N-th to
    ``options.out``.

    Parameters
    ----------
    options : DetectOptions
        ``camera``, ``show``, ``max_frames``, ``save_every``, ``frame_resize``, ``thresh``, ``out``, ``timer``.
    class_names, about :
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

    from evaluate.draw_detections import save_picture
    show = display_available() if options.show is None else options.show
    capture = open_camera(options.camera)
    saved, frames = [], 0
    try:
        with tqdm(total=options.max_frames, unit='frame', desc='camera', dynamic_ncols=True,
                  file=sys.stderr) as bar:
            while frames < options.max_frames:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                frame = resize_frame(frame, options.frame_resize)
                picture, records = annotate(frame, detect([frame])[0], class_names, options.thresh)
                frames += 1
                bar.update()
                if show:
                    cv2.imshow(WINDOW_TITLE, picture)
                    if cv2.waitKey(1) & 0xFF == ord('q'):
                        break
                elif (frames - 1) % options.save_every == 0:
                    output = os.path.join(options.out, 'frame_%06d_det.jpg' % (frames - 1))
                    save_picture(picture, output)
                    saved.append({'frame': frames - 1, 'output': output, 'width': frame.shape[1],
                                  'height': frame.shape[0], 'detections': records})
    finally:
        capture.release()
        if show:
            cv2.destroyAllWindows()
    if not frames:
        raise UserError('--camera %s opened but gave no frame' % options.camera)
    results_path = write_results(options.out, dict(about, thresh=options.thresh, camera=options.camera,
                                                   frames=saved)) if saved else None
    print('read %d frames%s' % (frames, '; saved %d with %s' % (len(saved), results_path) if saved else ''))
    if options.timer:
        print(timer_line(frames, detect))
    return dict(frames=frames, saved=saved, results_path=results_path)


def detect_camera(model, ctx, options, symbol=None):
    """:func:`run_camera` with a :class:`Detector` of ``model`` on the first device of ``ctx``, one frame a batch."""
    return run_camera(options, model.class_names, Detector(model, ctx[:1], 1, symbol), describe(model, symbol))
