"""Turn a VOC / COCO / YOLO dataset into a detection ``.lst``, its ``.classes`` file, and a packed ``.rec``.

Example::

    python tools/prepare_dataset.py --dataset pascal --year 2007,2012 --set trainval \\
        --root DATA/VOCdevkit --target data/train.lst

Bad input:

- an unreadable item (a missing or undecodable image, an empty or malformed annotation file, a bad YOLO line,
  a malformed COCO entry) stops the job with one line naming the file and suggesting ``--skip-bad``, which
  skips each such item with a warning and counts them at the end; the ``.lst`` then lists only what was
  packed;
- an object whose class is not in the class list stops it with a line listing the known classes;
  ``--skip-unknown`` leaves such objects out, counted in the summary (with ``--class-names`` for VOC or COCO,
  the classes outside the list are left out without that flag: the list chooses a subset);
- boxes crossing the image border are clipped to it, and boxes without area (after clipping, or
  ``xmax <= xmin``) are dropped; both are counted in the summary. Images without objects are packed.

Many jobs at once: ``--jobs jobs.yaml [--max-procs K]`` runs a list of conversions, each in its own process, at
most K at a time (default: the smallest of 4, the cores and the jobs; each process holds one dataset's
annotations in memory), with one progress bar over all jobs' images (its total grows as each job writes its
list) and a table at the end: per job its status, images, parts, MB, seconds, images/s and, for a failed job,
its one-line error. A failed job does not stop the others; the exit status is 0 when every job succeeded, else
1. Each job's own output goes to ``<target without .lst>.log`` next to its target (rewritten by each run).
Jobs that pack share the cores: each gets ``--num-thread`` cores // K unless it sets ``num_thread``. A rerun of
a killed jobs file keeps the finished parts of every job with ``num_parts`` and packs the rest (other jobs are
redone). Ctrl-C stops every job; the packers never leave a half-written ``.rec``/``.idx``.

The jobs file: ``jobs:``, a list of mappings whose keys are this script's flags without the dashes (``-`` or
``_`` inside: ``num_parts`` or ``num-parts``), plus an optional ``name`` (default: the target without
``.lst``); a flag without a value is ``true`` (``skip_bad: true``), ``--no-shuffle`` is ``shuffle: false``,
``null`` leaves a flag out; ``year``, ``set`` and ``class_names`` may be YAML lists. An optional ``defaults:``
mapping is merged under every job. Relative ``root``, ``target`` and ``class_names`` paths are relative to the
jobs file's folder. The whole file is checked before any job starts (unknown keys, types, missing keys, two
jobs with one target), and Python tags (``!!python/...``) are refused: the file cannot run code. Example::

    defaults:
      root: DATA/VOCdevkit        # relative to this file's folder
      dataset: pascal
    jobs:
      - name: voc0712-trainval
        year: [2007, 2012]
        set: trainval
        target: data/train.lst
        num_parts: 8
      - name: voc07-test
        year: 2007
        set: test
        target: data/val.lst
        shuffle: false
      - name: coco-train2017
        dataset: coco
        root: DATA/coco           # holds train2017/ and annotations/instances_train2017.json
        set: train2017
        target: data/coco-train.lst
        num_parts: 16
        skip_bad: true
      - dataset: yolo             # named data/yolo-train (its target without .lst)
        root: DATA/my-yolo        # holds classes.txt, images/train/, labels/train/
        set: train
        target: data/yolo-train.lst
        pass_through: true

    python tools/prepare_dataset.py --jobs jobs.yaml --max-procs 3
"""
import argparse
import itertools
import os
import sys

from config.defaults import PACK
from config.errors import UserError, run_cli
from config.runtime import configure_threads
from core.atomic import atomic_open
from dataset.coco import load_coco
from dataset.imdb import SKIPPED_NOTE, BadItem, classes_path_for, concat_imdbs, read_class_names
from dataset.lst import LST_ENCODING
from dataset.pascal_voc import load_pascal_voc
from dataset.yolo import load_yolo

YOLO_CLASSES_FILE = 'classes.txt'  # looked for in --root when --class-names is not given for YOLO


SINGLE_JOB_REQUIRED = ('dataset', 'image_set', 'root', 'target')   # argparse dests required without --jobs
COMMAND_LINE_ONLY = ('help', 'jobs', 'max_procs')                    # dests that are no option of one job


def build_parser(parser_class=argparse.ArgumentParser):
    """The command line's parser (``parser_class``: tools/jobs.py's raises a UserError instead of exiting)."""
    parser = parser_class(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', choices=('pascal', 'coco', 'yolo'),
                        help='annotation format (required without --jobs)')
    parser.add_argument('--year', help='VOC years, comma-separated, e.g. 2007,2012 (pascal only)')
    parser.add_argument('--set', dest='image_set',
                        help='image sets, comma-separated, e.g. trainval or train2017 (required without --jobs)')
    parser.add_argument('--root',
                        help='dataset directory (for pascal: the one holding VOC<year>/) (required without --jobs)')
    parser.add_argument('--target',
                        help='output .lst; .classes, .rec and .idx go next to it (required without --jobs)')
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
    parser.add_argument('--skip-bad', action='store_true',
                        help='skip unreadable items (missing or undecodable images, malformed or empty annotation '
                             'files, bad label lines) with a warning each, instead of stopping at the first')
    parser.add_argument('--num-parts', '--chunks', type=int, default=None, dest='num_parts',
                        help='pack into N parts <target>-0000i-of-0000N.rec/.idx/.lst with a manifest <target>.json; '
                             'a rerun after a kill keeps the finished parts (MXNet\'s im2rec calls it --chunks)')
    parser.add_argument('--force', action='store_true',
                        help='with --num-parts: repack every part, also the finished ones')
    parser.add_argument('--skip-unknown', action='store_true',
                        help='leave out objects whose class is not in the class list (counted) instead of '
                             'stopping at the first')
    jobs = parser.add_argument_group('many jobs at once (instead of the flags above)')
    jobs.add_argument('--jobs', metavar='JOBS.yaml',
                      help='run the conversions listed in this YAML file (format above; relative root, target and '
                           'class_names paths are relative to its folder), each in its own process')
    jobs.add_argument('--max-procs', type=int, metavar='K',
                      help='with --jobs: at most K jobs at a time (default: the smallest of 4, the cores and the '
                           'number of jobs)')
    return parser


def job_actions(parser):
    """The parser's actions that are options of one conversion (all but --help, --jobs, --max-procs)."""
    return [action for action in parser._actions
            if action.option_strings and action.dest not in COMMAND_LINE_ONLY]


def parse_args(argv=None, parser_class=argparse.ArgumentParser):
    """The parsed command line; without ``--jobs``, --dataset, --set, --root and --target are required."""
    parser = build_parser(parser_class)
    args = parser.parse_args(argv)
    if args.jobs is None:
        missing = [action.option_strings[0] for action in job_actions(parser)
                   if action.dest in SINGLE_JOB_REQUIRED and getattr(args, action.dest) is None]
        if missing:
            parser.error('the following arguments are required: %s' % ', '.join(missing))
    return args


def main(args, progress=True, listed=None):
    """Load, write ``<target>``, ``<target>.classes``, pack, print the summary; returns the joined Imdb.

    With ``--jobs``: run the jobs file (tools/jobs.py) and return its results.

    Parameters
    ----------
    args : argparse.Namespace
        :func:`parse_args`'s.
    progress : bool or callable
        True: progress bars on stderr; False: none; a callable ``progress(count)``: no bars, called with the
        images packed since its previous call (a kept part reports its records at once).
    listed : callable, optional
        ``listed(num_images)``, called once the ``.lst`` is written.
    """
    configure_threads()
    check_args(args)
    if args.jobs:
        from tools.jobs import run_jobs_file
        return run_jobs_file(args.jobs, args.max_procs)
    try:
        imdb = load_dataset(args, progress=progress is True)
        if imdb.num_images == 0:
            raise UserError('%s holds no %simages; check --root and --set'
                            % (imdb.name, 'readable ' if imdb.skipped else ''))
        imdb.write_lst(args.target, shuffle=args.shuffle, seed=args.shuffle_seed)
        imdb.write_classes(classes_path_for(args.target))
        if listed is not None:
            listed(imdb.num_images)
        if args.pack and args.num_parts:
            return pack_in_parts(args, imdb, progress=progress)
        packed = pack(args, imdb.root, progress=progress) if args.pack else None
    except BadItem as err:
        raise UserError('%s; fix or remove it, or pass --skip-bad to skip unreadable items with a warning each'
                        % err) from None
    if packed and packed.get('skipped_indices'):
        drop_lst_lines(args.target, packed['skipped_indices'])
        imdb = imdb.without(packed['skipped_indices'])
    print(imdb.summary())
    print('wrote %s and %s' % (args.target, classes_path_for(args.target)))
    if packed:
        print('packed %d images (%d skipped) into %s.rec + .idx: %.1f MB in %.1f s' % (
            packed['images'], packed['skipped'], os.path.splitext(args.target)[0], packed['bytes'] / 1e6,
            packed['seconds']))
    if imdb.stats[SKIPPED_NOTE]:
        count = imdb.stats[SKIPPED_NOTE]
        print('warning: skipped %d unreadable item%s (--skip-bad), each named above; %s lists only the others'
              % (count, 's' if count > 1 else '', args.target), file=sys.stderr)
    return imdb


def drop_lst_lines(lst_path, indices):
    """Rewrite ``lst_path`` without the lines whose index is in ``indices`` (images packing had to skip), so
    that the list names exactly the packed records."""
    drop = set(indices)
    with open(lst_path, encoding=LST_ENCODING) as handle:
        lines = handle.read().splitlines(keepends=True)
    with atomic_open(lst_path, encoding=LST_ENCODING) as handle:
        handle.writelines(line for line in lines if int(line.split('\t', 1)[0]) not in drop)


def check_args(args):
    """Reject flag combinations that would be silently ignored."""
    if args.jobs or args.max_procs is not None:
        return check_jobs_args(args)
    if os.path.splitext(args.target)[1] != '.lst':
        raise UserError('--target %s must end in .lst' % args.target)
    if args.dataset == 'pascal' and not args.year:
        raise UserError('--year is required with --dataset pascal, e.g. --year 2007 or --year 2007,2012')
    if args.dataset != 'pascal' and args.year:
        raise UserError('--year applies only to --dataset pascal; name %s sets in full with --set, '
                        'e.g. --set train2017' % args.dataset)
    if args.dataset == 'yolo' and args.exclude_difficult:
        raise UserError('--exclude-difficult: YOLO labels have no difficult flag')
    if args.num_parts is not None and args.num_parts < 1:
        raise UserError('--num-parts %d must be at least 1' % args.num_parts)
    if args.force and not args.num_parts:
        raise UserError('--force applies to --num-parts (finished parts are kept without it)')
    if not args.pack and (args.num_thread is not None or args.pass_through or args.quality is not None):
        raise UserError('--num-thread, --pass-through and --quality only affect packing; drop them or --no-pack')
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise UserError('--quality %d must be between 1 and 100' % args.quality)
    if args.num_thread is not None and args.num_thread < 1:
        raise UserError('--num-thread %d must be at least 1' % args.num_thread)


def check_jobs_args(args):
    """``--jobs``: the conversions' flags belong in the jobs file, ``--max-procs`` needs ``--jobs``."""
    if not args.jobs:
        raise UserError('--max-procs applies to --jobs JOBS.yaml')
    if args.max_procs is not None and args.max_procs < 1:
        raise UserError('--max-procs %d must be at least 1' % args.max_procs)
    given = [action.option_strings[0] for action in job_actions(build_parser())
             if getattr(args, action.dest) != action.default]
    if given:
        raise UserError('--jobs %s: give %s in the jobs file (per job, or under defaults:), not on the command line'
                        % (args.jobs, ', '.join(given)))


def split_list(text):
    """``'2007, 2012'`` -> ``['2007', '2012']``."""
    return [item.strip() for item in text.split(',') if item.strip()]


def load_dataset(args, progress=True):
    """Every (year, set) pair loaded and joined into one :class:`Imdb` (``progress``: a bar per set)."""
    if not os.path.isdir(args.root):
        raise UserError('--root %s does not exist' % args.root)
    classes = read_class_names(args.class_names) if args.class_names else None
    sets = split_list(args.image_set)
    skips = dict(progress=progress, skip_bad=args.skip_bad, skip_unknown=args.skip_unknown)
    if args.dataset == 'pascal':
        # names outside an explicit --class-names are left out on purpose (a subset), not unknown
        skips['skip_unknown'] = args.skip_unknown or classes is not None
        imdbs = [load_pascal_voc(args.root, year, image_set, classes=classes,
                                 use_difficult=not args.exclude_difficult, **skips)
                 for year, image_set in itertools.product(split_list(args.year), sets)]
    elif args.dataset == 'coco':
        imdbs = [load_coco(args.root, image_set, classes=classes, use_crowd=not args.exclude_difficult, **skips)
                 for image_set in sets]
    else:
        classes_file = args.class_names or yolo_classes_file(args.root)
        imdbs = [load_yolo(args.root, image_set, classes_file, **skips) for image_set in sets]
    return concat_imdbs(imdbs)


def yolo_classes_file(root):
    """``<root>/classes.txt``, the default class list of a YOLO dataset."""
    path = os.path.join(root, YOLO_CLASSES_FILE)
    if not os.path.isfile(path):
        raise UserError('no class list: give --class-names (a file or a comma-separated list) or write %s' % path)
    return path


def pack_in_parts(args, imdb, progress=True):
    """``--num-parts``: the parts and their manifest (tools/shards.py); prints a line per part and the totals.
    ``progress``: a bar per part (True), none (False), or a ``progress(count)`` callable (see :func:`main`)."""
    from tools.shards import manifest_path, pack_parts
    quality = PACK['quality'] if args.quality is None else args.quality
    options = dict(quality=quality, encoding=PACK['encoding'], resize=PACK['resize'], pass_through=args.pass_through)
    source = dict(dataset=args.dataset, root=args.root, year=args.year, set=args.image_set,
                  shuffle=args.shuffle, shuffle_seed=args.shuffle_seed, exclude_difficult=args.exclude_difficult)
    manifest = pack_parts(args.target, imdb.root, args.num_parts, options, source=source, force=args.force,
                          progress=progress, num_thread=args.num_thread)
    print(imdb.summary())
    stem = os.path.splitext(args.target)[0]
    print('packed %d images into %d parts (%s): %.1f MB; manifest %s' % (
        manifest['records'], manifest['num_parts'], ', '.join('%d' % part['records'] for part in manifest['parts']),
        manifest['bytes'] / 1e6, manifest_path(stem)))
    return imdb


def pack(args, root, progress=True):
    """Pack ``<target>.rec`` + ``.idx`` from the written ``.lst``; returns pack_records' counts. ``progress``: a
    bar (True), none (False), or a ``progress(count)`` callable (see :func:`main`)."""
    from tools.im2rec import pack_records  # loaded only when packing
    quality = PACK['quality'] if args.quality is None else args.quality
    return pack_records(args.target, root, num_thread=args.num_thread, quality=quality,
                        encoding=PACK['encoding'], resize=PACK['resize'], pass_through=args.pass_through,
                        progress=progress, skip_bad=args.skip_bad)


if __name__ == '__main__':
    run_cli(main, parse_args())
