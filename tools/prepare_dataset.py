"""Turn a VOC / COCO / YOLO dataset into a detection ``.lst``, its ``.classes`` file, and a packed ``.rec``.

Example::

    python tools/prepare_dataset.py --dataset pascal --year 2007,2012 --set trainval \\
        --root DATA/VOCdevkit --target data/train.lst
"""
import argparse
import itertools
import os

from config.defaults import PACK
from config.errors import UserError, run_cli
from config.runtime import configure_threads
from dataset.coco import load_coco
from dataset.imdb import classes_path_for, concat_imdbs, read_class_names
from dataset.pascal_voc import load_pascal_voc
from dataset.yolo import load_yolo

YOLO_CLASSES_FILE = 'classes.txt'  # looked for in --root when --class-names is not given for YOLO


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', required=True, choices=('pascal', 'coco', 'yolo'), help='annotation format')
    parser.add_argument('--year', help='VOC years, comma-separated, e.g. 2007,2012 (pascal only)')
    parser.add_argument('--set', dest='image_set', required=True,
                        help='image sets, comma-separated, e.g. trainval or train2017')
    parser.add_argument('--root', required=True, help='dataset directory (for pascal: the one holding VOC<year>/)')
    parser.add_argument('--target', required=True, help='output .lst; .classes, .rec and .idx go next to it')
    parser.add_argument('--shuffle', action=argparse.BooleanOptionalAction, default=PACK['shuffle'],
                        help='shuffle the .lst lines (use --no-shuffle for validation sets)')
    parser.add_argument('--shuffle-seed', type=int, default=PACK['seed'], help='seed of the shuffle')
    parser.add_argument('--class-names', help='class names: a file with one per line, or a comma-separated list')
    parser.add_argument('--exclude-difficult', action='store_true',
                        help='leave out VOC difficult objects / COCO crowd regions')
    parser.add_argument('--pack', action=argparse.BooleanOptionalAction, default=True,
                        help='pack the .rec/.idx after writing the .lst (--no-pack: only the .lst and .classes)')
    parser.add_argument('--num-thread', type=int, help='packing worker threads (default: all cores)')
    parser.add_argument('--pass-through', action='store_true',
                        help='store the image bytes unchanged instead of re-encoding them')
    parser.add_argument('--quality', type=int, help='JPEG quality when re-encoding (default %d)' % PACK['quality'])
    return parser.parse_args(argv)


def main(args):
    """Load, write ``<target>``, ``<target>.classes``, pack, print the summary; returns the joined Imdb."""
    configure_threads()
    check_args(args)
    imdb = load_dataset(args)
    if imdb.num_images == 0:
        raise UserError('%s holds no images; check --root and --set' % imdb.name)
    imdb.write_lst(args.target, shuffle=args.shuffle, seed=args.shuffle_seed)
    imdb.write_classes(classes_path_for(args.target))
    packed = pack(args, imdb.root) if args.pack else None
    print(imdb.summary())
    print('wrote %s and %s' % (args.target, classes_path_for(args.target)))
    if packed:
        print('packed %d images (%d skipped) into %s.rec + .idx: %.1f MB in %.1f s' % (
            packed['images'], packed['skipped'], os.path.splitext(args.target)[0], packed['bytes'] / 1e6,
            packed['seconds']))
    return imdb


def check_args(args):
    """Reject flag combinations that would be silently ignored."""
    if os.path.splitext(args.target)[1] != '.lst':
        raise UserError('--target %s must end in .lst' % args.target)
    if args.dataset == 'pascal' and not args.year:
        raise UserError('--year is required with --dataset pascal, e.g. --year 2007 or --year 2007,2012')
    if args.dataset != 'pascal' and args.year:
        raise UserError('--year applies only to --dataset pascal; name %s sets in full with --set, '
                        'e.g. --set train2017' % args.dataset)
    if args.dataset == 'yolo' and args.exclude_difficult:
        raise UserError('--exclude-difficult: YOLO labels have no difficult flag')
    if not args.pack and (args.num_thread is not None or args.pass_through or args.quality is not None):
        raise UserError('--num-thread, --pass-through and --quality only affect packing; drop them or --no-pack')
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise UserError('--quality %d must be between 1 and 100' % args.quality)
    if args.num_thread is not None and args.num_thread < 1:
        raise UserError('--num-thread %d must be at least 1' % args.num_thread)


def split_list(text):
    """``'2007, 2012'`` -> ``['2007', '2012']``."""
    return [item.strip() for item in text.split(',') if item.strip()]


def load_dataset(args):
    """Every (year, set) pair loaded and joined into one :class:`Imdb`."""
    if not os.path.isdir(args.root):
        raise UserError('--root %s does not exist' % args.root)
    classes = read_class_names(args.class_names) if args.class_names else None
    sets = split_list(args.image_set)
    if args.dataset == 'pascal':
        imdbs = [load_pascal_voc(args.root, year, image_set, classes=classes,
                                 use_difficult=not args.exclude_difficult, progress=True)
                 for year, image_set in itertools.product(split_list(args.year), sets)]
    elif args.dataset == 'coco':
        imdbs = [load_coco(args.root, image_set, classes=classes, use_crowd=not args.exclude_difficult,
                           progress=True) for image_set in sets]
    else:
        classes_file = args.class_names or yolo_classes_file(args.root)
        imdbs = [load_yolo(args.root, image_set, classes_file, progress=True) for image_set in sets]
    return concat_imdbs(imdbs)


def yolo_classes_file(root):
    """``<root>/classes.txt``, the default class list of a YOLO dataset."""
    path = os.path.join(root, YOLO_CLASSES_FILE)
    if not os.path.isfile(path):
        raise UserError('no class list: give --class-names (a file or a comma-separated list) or write %s' % path)
    return path


def pack(args, root):
    """Pack ``<target>.rec`` + ``.idx`` from the written ``.lst``; returns pack_records' counts."""
    from tools.im2rec import pack_records  # loaded only when packing
    quality = PACK['quality'] if args.quality is None else args.quality
    return pack_records(args.target, root, num_thread=args.num_thread, quality=quality,
                        encoding=PACK['encoding'], resize=PACK['resize'], pass_through=args.pass_through,
                        progress=True)


if __name__ == '__main__':
    run_cli(main, parse_args())
