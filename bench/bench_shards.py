"""Packing in parts at scale: ``tools/shards.py`` (``prepare_dataset.py --num-parts 8``) against MXNet's im2rec
on the same eight part lists, and our peak memory at two list sizes.

Rows:

1. pack ``--num-images`` (20,000) small synthetic JPEGs into 8 parts, re-encoding at JPEG quality 95 in colour,
   no resize, ``--num-thread`` workers on both sides: ``tools.shards.pack_parts`` vs MXNet's bundled
   ``mxnet/tools/im2rec.py --pack-label`` run once on the eight part lists (named ``mx_0.lst`` ..
   ``mx_7.lst``, the files its ``--chunks 8`` writes; it packs every ``.lst`` of a prefix in one run), each side
   a fresh process timed from start to exit, median of ``--repeats`` alternating runs, images/s; target:
   ratio >= 1.5. We decode and encode with
   Pillow on threads, MXNet's tool with OpenCV on worker processes; both at quality 95, colour, no resize.
2. peak RSS (``VmHWM`` of a fresh packing process) at a quarter of the images (5,000) vs all of them
   (20,000), medians over the repeats, growth in percent; target: under 10 %: the list is streamed, not held
   whole.

The images (about 200x150, cluttered shapes from tools/synthetic_voc.py) are generated once into
``<work dir>/shards/images`` and reused by later runs.

Usage: ``python bench/bench_shards.py [--quick]``. Prints one table and writes ``bench/shards_results.json``.
"""
import argparse
import functools
import importlib.util
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

from config.runtime import available_cores, configure_threads
from core.atomic import atomic_open, write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_PARTS = 8
QUALITY = 95
SEED = 7
TARGET_RATIO = 1.5                  # our images/s over MXNet's im2rec's
TARGET_GROWTH_PERCENT = 10.0        # peak RSS growth from a quarter of the images to all of them
IMAGE_SIDES = (150, 200)            # shorter / longer side range of the synthetic images, pixels
SOURCE_QUALITY = 90                 # JPEG quality of the generated images
CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')

# Run in a fresh interpreter (``python -c``, cwd = the repository): packs into parts, prints its peak RSS.
PACK_CHILD = """
import json, resource, sys, time
def peak_rss_kib():  # VmHWM: this process's own peak (ru_maxrss may keep the parent's across exec)
    try:
        with open('/proc/self/status') as status:
            return int(next(line for line in status if line.startswith('VmHWM:')).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from config.runtime import configure_threads
configure_threads()
from tools.shards import pack_parts
lst, root, num_parts, num_thread, quality = sys.argv[1:6]
start = time.perf_counter()
manifest = pack_parts(lst, root, int(num_parts), dict(quality=int(quality), encoding='.jpg', resize=0,
                      pass_through=False), progress=False, num_thread=int(num_thread))
print(json.dumps(dict(records=manifest['records'], seconds=time.perf_counter() - start,
                      max_rss_kib=peak_rss_kib())))
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='small sizes: runs in well under a minute')
    parser.add_argument('--num-images', type=int, default=None,
                        help='images packed (default 20000, 1200 with --quick); the memory row also packs a '
                             'quarter of them')
    parser.add_argument('--repeats', type=int, default=None,
                        help='alternating runs of each side (default 3, 1 with --quick); medians are reported')
    parser.add_argument('--num-thread', type=int, default=available_cores(), help='packing workers, both sides')
    parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'), help='scratch directory')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'shards_results.json'), help='results JSON')
    args = parser.parse_args()
    args.num_images = args.num_images or (1200 if args.quick else 20000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


# --- the images -----------------------------------------------------------------------------------------------
def synthetic_line(index, image_dir):
    """Generate image ``index``, write it as ``image_dir/<index>.jpg``; returns its ``.lst`` line."""
    import cv2

    from dataset.lst import format_lst_line
    from tools.synthetic_voc import SyntheticParams, generate_image

    params = SyntheticParams(min_side=IMAGE_SIDES[0], max_side=IMAGE_SIDES[1], max_objects=4)
    image, objects = generate_image(SEED, index, params)
    height, width = image.shape[:2]
    relative = 'images/%06d.jpg' % index
    ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, SOURCE_QUALITY])
    with open(os.path.join(image_dir, os.path.basename(relative)), 'wb') as handle:
        handle.write(encoded.tobytes())
    rows = [[CLASSES.index(obj.name), obj.box[0] / width, obj.box[1] / height, (obj.box[2] + 1) / width,
             (obj.box[3] + 1) / height, int(obj.difficult)] for obj in objects]
    return format_lst_line(index, np.array(rows, np.float32).reshape(-1, 6), relative)


def _init_generator():
    import cv2
    cv2.setNumThreads(1)


def generated_lines(folder, num_images, num_workers):
    """The ``.lst`` lines of ``num_images`` synthetic images under ``folder/images``, generated once: a later
    run reads the cached ``folder/all.lst`` when it holds at least that many."""
    cache = os.path.join(folder, 'all.lst')
    if os.path.isfile(cache):
        with open(cache) as handle:
            lines = handle.read().splitlines()
        if len(lines) >= num_images:
            return lines[:num_images]
    image_dir = os.path.join(folder, 'images')
    os.makedirs(image_dir, exist_ok=True)
    start = time.perf_counter()
    with multiprocessing.Pool(num_workers, initializer=_init_generator) as pool:
        lines = pool.map(functools.partial(synthetic_line, image_dir=image_dir), range(num_images), chunksize=64)
    with atomic_open(cache) as handle:
        handle.write(''.join(line + '\n' for line in lines))
    print('generated %d synthetic images in %.1f s' % (num_images, time.perf_counter() - start))
    return lines


def write_list(folder, name, lines):
    """``folder/name.lst`` (and its ``.classes``), in a folder of its own; returns the ``.lst`` path."""
    os.makedirs(folder, exist_ok=True)
    lst = os.path.join(folder, name + '.lst')
    with open(lst, 'w') as handle:
        handle.write(''.join(line + '\n' for line in lines))
    with open(os.path.join(folder, name + '.classes'), 'w') as handle:
        handle.write(''.join(name + '\n' for name in CLASSES))
    return lst


def read_all(folder):
    """Warm the page cache so that both sides read the images from memory."""
    for entry in os.scandir(folder):
        with open(entry.path, 'rb') as handle:
            handle.read()


# --- the two sides ----------------------------------------------------------------------------------------------
def run_checked(command, cwd=REPO, env=None):
    """Run to completion; returns ``(wall seconds, stdout)``; raises with the output when it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError('%s failed:\n%s' % (' '.join(command[:3]), done.stdout[-3000:]))
    return seconds, done.stdout


def pack_ours(folder, lines, root, num_thread):
    """Pack ``lines`` into parts in a fresh process (no parts kept from before).

    Returns
    -------
    dict
        ``seconds`` (wall, process start to exit), ``records``, ``max_rss_kib``, ``lst`` (the whole list).
    """
    shutil.rmtree(folder, ignore_errors=True)
    lst = write_list(folder, 'ours', lines)
    seconds, output = run_checked([sys.executable, '-c', PACK_CHILD, lst, root, str(NUM_PARTS), str(num_thread),
                                   str(QUALITY)])
    return dict(json.loads(output.strip().splitlines()[-1]), seconds=seconds, lst=lst)


def pack_mxnet(folder, part_lists, root, num_thread):
    """MXNet's im2rec on copies of our part lists named as its ``--chunks`` writes them; wall seconds."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for number, part_list in enumerate(part_lists):
        shutil.copyfile(part_list, os.path.join(folder, 'mx_%d.lst' % number))
    mxnet_im2rec = os.path.join(importlib.util.find_spec('mxnet').submodule_search_locations[0], 'tools',
                                'im2rec.py')                 # found, not imported: this process stays small
    seconds, _ = run_checked([sys.executable, mxnet_im2rec, os.path.join(folder, 'mx'), root, '--pack-label',
                              '--num-thread', str(num_thread), '--quality', str(QUALITY), '--encoding', '.jpg',
                              '--color', '1', '--resize', '0'])
    packed = [os.path.join(folder, 'mx_%d.%s' % (number, suffix)) for number in range(len(part_lists))
              for suffix in ('rec', 'idx')]
    missing = [path for path in packed if not os.path.isfile(path)]
    if missing:
        raise RuntimeError('MXNet im2rec did not write %s' % ', '.join(missing))
    return seconds


def part_lists_of(lst):
    """The part ``.lst`` files ``pack_parts`` wrote for ``lst``, in part order."""
    stem = lst[:-len('.lst')]
    return ['%s-%05d-of-%05d.lst' % (stem, index, NUM_PARTS) for index in range(NUM_PARTS)]


def median_run(runs):
    """The median of ``pack_ours`` results, key by key."""
    return dict(runs[0], **{key: statistics.median(run[key] for run in runs) for key in ('seconds', 'max_rss_kib')})


def measure(folder, lines, root, args):
    """``args.repeats`` rounds of: ours on a quarter of the images, ours on all, MXNet's im2rec on all.

    Returns
    -------
    small, large : dict
        Median :func:`pack_ours` results (seconds and peak RSS) on a quarter and on all of ``lines``.
    mxnet_seconds : float
        Median wall seconds of MXNet's im2rec on all of them.
    """
    smalls, larges, mxnet_seconds = [], [], []
    for _ in range(args.repeats):
        smalls.append(pack_ours(os.path.join(folder, 'ours_small'), lines[:len(lines) // 4], root, args.num_thread))
        larges.append(pack_ours(os.path.join(folder, 'ours'), lines, root, args.num_thread))
        mxnet_seconds.append(pack_mxnet(os.path.join(folder, 'mxnet'), part_lists_of(larges[-1]['lst']), root,
                                        args.num_thread))
        print('run %d: ours %d images %.1f s (peak RSS %.1f MiB), %d images %.1f s (%.1f MiB); mxnet im2rec %.1f s'
              % (len(larges), smalls[-1]['records'], smalls[-1]['seconds'], smalls[-1]['max_rss_kib'] / 1024,
                 larges[-1]['records'], larges[-1]['seconds'], larges[-1]['max_rss_kib'] / 1024,
                 mxnet_seconds[-1]), flush=True)
    return median_run(smalls), median_run(larges), statistics.median(mxnet_seconds)


# --- rows -------------------------------------------------------------------------------------------------------
def throughput_row(count, ours_seconds, mxnet_seconds, num_thread):
    ours, peer = count / ours_seconds, count / mxnet_seconds
    return dict(name='pack %d images into %d parts, q%d (img/s)' % (count, NUM_PARTS, QUALITY), unit='img/s',
                ours=round(ours, 1), peer=round(peer, 1), ratio=round(ours / peer, 3), target=TARGET_RATIO,
                met=bool(ours / peer >= TARGET_RATIO),
                peer_name='mxnet im2rec on the same %d part lists' % NUM_PARTS,
                settings=dict(ours='tools.shards.pack_parts: Pillow decode/encode on %d threads, JPEG q%d, '
                                   'color 1, resize 0' % (num_thread, QUALITY),
                              peer='mxnet/tools/im2rec.py --pack-label --num-thread %d --quality %d --encoding '
                                   '.jpg --color 1 --resize 0: OpenCV decode/encode in %d worker processes'
                                   % (num_thread, QUALITY, num_thread)))


def memory_row(small, large):
    """Peak RSS growth from ``small`` to ``large`` (``pack_ours`` results), percent."""
    growth = 100.0 * (large['max_rss_kib'] - small['max_rss_kib']) / small['max_rss_kib']
    return dict(name='peak RSS growth, %d -> %d images (%%)' % (small['records'], large['records']), unit='%',
                ours=round(growth, 2), peer=None, peer_name=None, ratio=None, target=None,
                target_note='< %g %%' % TARGET_GROWTH_PERCENT,
                met=bool(growth < TARGET_GROWTH_PERCENT), higher_is_better=False,
                peak_rss_mib={str(small['records']): round(small['max_rss_kib'] / 1024, 1),
                              str(large['records']): round(large['max_rss_kib'] / 1024, 1)})


def print_table(rows, quick):
    throughput, memory = rows
    print('%-44s %10s %10s %7s %9s' % ('measure', 'project', 'peer', 'ratio', 'target'))
    print('-' * 84)
    print('%-44s %10.1f %10.1f %7.2f %9s  %s' % (throughput['name'], throughput['ours'], throughput['peer'],
                                                throughput['ratio'], '>= %g' % TARGET_RATIO,
                                                'PASS' if throughput['met'] else 'FAIL'))
    print('%-44s %10.2f %10s %7s %9s  %s' % (memory['name'], memory['ours'], '-', '-', memory['target_note'],
                                            'PASS' if memory['met'] else 'FAIL'))
    print('  project: %s' % throughput['settings']['ours'])
    print('  peer:    %s' % throughput['settings']['peer'])
    print('  peak RSS (MiB): %s' % ', '.join('%s images %.1f' % item for item in memory['peak_rss_mib'].items()))
    if quick:
        print('quick run: start-up (MXNet\'s import above all) weighs on the ratio at this size; the targets are '
              'judged on the full run (20000 images)')


def main(args):
    from report import machine_description  # bench/report.py: this script's folder

    folder = os.path.join(args.work_dir, 'shards')
    root = folder                                  # the .lst paths are images/<index>.jpg
    lines = generated_lines(folder, args.num_images, available_cores())
    read_all(os.path.join(folder, 'images'))
    small, large, mxnet_seconds = measure(folder, lines, root, args)
    rows = [throughput_row(len(lines), large['seconds'], mxnet_seconds, args.num_thread), memory_row(small, large)]
    for name in ('ours_small', 'ours', 'mxnet'):                 # the packed copies: hundreds of MB
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    print_table(rows, args.quick)
    result = dict(machine=machine_description(), quick=args.quick, num_images=args.num_images,
                  num_parts=NUM_PARTS, num_thread=args.num_thread, repeats=args.repeats, rows=rows)
    print('wrote %s' % write_json(args.out, result, indent=2))


if __name__ == '__main__':
    configure_threads()
    main(parse_args())
