"""Save a picture of augmented batches with their boxes and class names drawn: what the network will see.

Usage::

    python tools/preview_batches.py --rec data/train.rec --preset ssd_train \\
        --out output/demo/train_batches.png [--batch-size 8] [--num-batches 2] [--data-shape 300]

Each row of the picture is one batch. Class names come from the ``.classes`` file next to the ``.rec``
(``data/train.classes``) unless ``--class-names`` is given.
"""
import argparse
import os

import numpy as np

from config.augmentation import PRESETS
from config.errors import UserError, run_cli
from config.runtime import configure_threads
from config.schema import DEFAULTS
from dataset.imdb import read_class_names
from dataset.record_set import class_names_for as record_class_names
from dataset.record_set import resolve_inputs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rec', required=True, help='.rec file to read (its .idx next to it)')
    parser.add_argument('--preset', default='ssd_train', choices=sorted(PRESETS),
                        help='augmentation preset from config/augmentation.py (default: ssd_train)')
    parser.add_argument('--out', required=True, help='picture to write (.png or .jpg)')
    parser.add_argument('--batch-size', type=int, default=8, help='images per batch, one row each (default: 8)')
    parser.add_argument('--num-batches', type=int, default=2, help='batches shown, one per row (default: 2)')
    parser.add_argument('--data-shape', type=int, default=DEFAULTS.model.data_shape,
                        help='network input side in pixels (default: %d)' % DEFAULTS.model.data_shape)
    parser.add_argument('--class-names', default=None,
                        help='class names file or comma-separated list (default: the .classes file next to --rec)')
    return parser.parse_args(argv)


def class_names_for(path_imgrec, spec=None):
    """Names from ``spec`` (file or comma list), else from the ``.classes`` of the records, else ()."""
    if spec:
        return read_class_names(spec)
    names, _ = record_class_names(resolve_inputs(path_imgrec))
    if names:
        return tuple(names)
    print('note: %s has no .classes file and no --class-names was given; boxes are labelled with class numbers'
          % path_imgrec)
    return ()


def batch_images(batch, mean_pixels):
    """A batch's images back to pixels, all ``B`` of them (filler images at the end included: the network
    sees them too).

    Parameters
    ----------
    batch : mx.io.DataBatch
        ``data[0]`` is ``(B, 3, H, W)`` float32, RGB minus ``mean_pixels``.
    mean_pixels : (3,) floats

    Returns
    -------
    list of (H, W, 3) uint8 RGB arrays
    """
    from evaluate.visualize import denormalise  # imports cv2 (only when drawing)
    return list(denormalise(batch.data[0].asnumpy(), mean_pixels, (1.0, 1.0, 1.0)))


def collect_batches(iterator, num_batches):
    """The next ``num_batches`` batches as ``(images, labels)`` pairs, restarting the epoch when needed.

    Returns
    -------
    list of (list of B (H, W, 3) uint8 arrays, (B, label_width, 6) float32 array)
    """
    batches = []
    while len(batches) < num_batches:
        try:
            batch = iterator.next()
        except StopIteration:
            iterator.reset()
            continue
        batches.append((batch_images(batch, DEFAULTS.data.mean_pixels), batch.label[0].asnumpy()))
    return batches


def main(args):
    configure_threads()
    from dataset.iterator import DetRecordIter  # imports mxnet, which reads OMP_NUM_THREADS once
    from evaluate.visualize import IMAGE_EXTENSIONS, draw_boxes, save_image_grid

    if args.batch_size < 1 or args.num_batches < 1:
        raise UserError('--batch-size and --num-batches must be at least 1')
    if os.path.splitext(args.out)[1].lower() not in IMAGE_EXTENSIONS:
        raise UserError('--out %s must end in one of %s' % (args.out, ', '.join(IMAGE_EXTENSIONS)))
    names = class_names_for(args.rec, args.class_names)
    iterator = DetRecordIter(args.rec, args.batch_size, args.data_shape, DEFAULTS.data.mean_pixels, preset=args.preset)
    pictures, num_boxes = [], 0
    for images, labels in collect_batches(iterator, args.num_batches):
        pictures += [draw_boxes(image, label, names) for image, label in zip(images, labels)]
        num_boxes += int(np.sum(labels[:, :, 0] >= 0))
    save_image_grid(pictures, args.out, cols=args.batch_size)
    print('wrote %s: %d batches of %d images (%s preset, %d boxes)'
          % (args.out, args.num_batches, args.batch_size, args.preset, num_boxes))
    return args.out


if __name__ == '__main__':
    run_cli(main, parse_args())
