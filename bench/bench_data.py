"""Data-path speed, measured side by side with the tools users would otherwise run, in one run.

Rows (each a ratio project / peer, median of ``--repeats`` alternating runs after a warm-up):

1. packing, re-encode at quality 95: ``tools/im2rec.py`` vs MXNet's bundled ``mxnet/tools/im2rec.py`` on the
   same ``.lst`` (both as subprocesses with the same ``--num-thread``), images/s and MB/s;
2. packing, pass-through: ``tools/im2rec.py --pass-through`` vs ``cat``-ing the same image files into one file
   (the read-plus-write ceiling);
3. loading: ``DetRecordIter`` with the ``ssd_train`` preset vs gluoncv's Python pipeline
   (``RecordFileDetection`` + ``SSDDefaultTrainTransform`` + ``DataLoader``) with the same worker count, on the
   same ``.rec``, images/s.

Usage: ``python bench/bench_data.py [--quick]``. Prints one table and writes ``bench/data_results.json``.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from config.runtime import available_cores, configure_threads
from core.atomic import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {'pack_reencode': 1.2, 'pack_pass_through': 0.5, 'loading': 2.0}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='small sizes: runs in about a minute')
    parser.add_argument('--num-images', type=int, default=None,
                        help='images in the packing list (default 5000, 300 with --quick)')
    parser.add_argument('--repeats', type=int, default=None, help='timed runs per side (default 3, 1 with --quick)')
    parser.add_argument('--num-thread', type=int, default=available_cores(), help='packing/loading workers')
    parser.add_argument('--batches', type=int, default=None, help='batches timed per loading run')
    parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'), help='scratch directory')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'data_results.json'), help='results JSON')
    args = parser.parse_args()
    args.num_images = args.num_images or (300 if args.quick else 5000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.batches = args.batches or (5 if args.quick else 40)
    return args


def run_quiet(command):
    """Run a command to completion; raise with its output when it fails. Returns wall seconds."""
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError('%s failed:\n%s' % (' '.join(command), result.stdout[-2000:]))
    return seconds


def make_dataset(work_dir, num_images):
    """Synthetic VOC images + a .lst of them (not packed). Returns ``(lst_path, root)``."""
    root = os.path.join(work_dir, 'VOCdevkit')
    lst = os.path.join(work_dir, 'bench_%d.lst' % num_images)
    if not os.path.exists(lst):
        run_quiet([sys.executable, 'tools/synthetic_voc.py', '--root', root, '--num-trainval', str(num_images),
                   '--num-test', '0', '--seed', '1'])
        run_quiet([sys.executable, 'tools/prepare_dataset.py', '--dataset', 'pascal', '--year', '2007',
                   '--set', 'trainval', '--root', root, '--target', lst, '--no-pack'])
    return lst, root


def image_files(lst, root):
    with open(lst) as handle:
        return [os.path.join(root, line.rstrip('\n').split('\t')[-1]) for line in handle if line.strip()]


def read_all(paths):
    """Warm the page cache so that both sides read from memory."""
    for path in paths:
        with open(path, 'rb') as handle:
            while handle.read(1 << 20):
                pass


def alternate(sides, repeats):
    """Time each side ``repeats`` times, alternating, after one warm-up run each. Returns median seconds."""
    for run in sides.values():
        run()
    times = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            times[name].append(run())
    return {name: statistics.median(values) for name, values in times.items()}


def packing_commands(lst, root, out_dir, num_thread):
    """Commands for the three packing sides, each returning seconds when called."""
    mxnet_im2rec = os.path.join(os.path.dirname(__import__('mxnet').__file__), 'tools', 'im2rec.py')
    ours_prefix, peer_prefix = os.path.join(out_dir, 'ours'), os.path.join(out_dir, 'mxnet')
    for prefix in (ours_prefix, peer_prefix):
        shutil.copyfile(lst, prefix + '.lst')
    common = ['--pack-label', '--num-thread', str(num_thread), '--quality', '95']
    files = image_files(lst, root)

    def cat_files():
        start = time.perf_counter()
        with open(os.path.join(out_dir, 'cat.bin'), 'wb') as out:
            for path in files:
                with open(path, 'rb') as handle:
                    shutil.copyfileobj(handle, out)
        return time.perf_counter() - start

    return {
        'ours': lambda: run_quiet([sys.executable, 'tools/im2rec.py', ours_prefix, root] + common),
        'mxnet': lambda: run_quiet([sys.executable, mxnet_im2rec, peer_prefix, root] + common),
        'ours_pass': lambda: run_quiet([sys.executable, 'tools/im2rec.py', ours_prefix, root,
                                        '--pass-through'] + common),
        'cat': cat_files,
    }, files


def bench_packing(lst, root, args):
    out_dir = os.path.join(args.work_dir, 'pack')
    os.makedirs(out_dir, exist_ok=True)
    sides, files = packing_commands(lst, root, out_dir, args.num_thread)
    read_all(files)
    megabytes = sum(os.path.getsize(path) for path in files) / 1e6
    reencode = alternate({'ours': sides['ours'], 'mxnet': sides['mxnet']}, args.repeats)
    passthrough = alternate({'ours_pass': sides['ours_pass'], 'cat': sides['cat']}, args.repeats)
    count = len(files)
    rows = [
        row('pack re-encode q95 (img/s)', count / reencode['ours'], count / reencode['mxnet'],
            'mxnet im2rec', 'pack_reencode'),
        row('pack pass-through (MB/s)', megabytes / passthrough['ours_pass'], megabytes / passthrough['cat'],
            'cat into one file', 'pack_pass_through'),
    ]
    return rows, os.path.join(out_dir, 'ours.rec')


def time_batches(iterator, batches, batch_size):
    """Images/s over ``batches`` batches after one warm-up batch; restarts the iterator when exhausted."""
    iterator = iter(iterator)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def ours_loader(rec, batch_size, num_workers):
    from dataset.iterator import DetRecordIter

    loader = DetRecordIter(rec, batch_size, 300, preset='ssd_train', preprocess_threads=num_workers)

    def endless():
        while True:
            for batch in loader:
                batch.data[0].wait_to_read()
                yield batch
            loader.reset()
    return endless()


def gluoncv_loader(rec, batch_size, num_workers):
    from gluoncv.data import RecordFileDetection
    from gluoncv.data.batchify import Pad, Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    from mxnet import gluon

    dataset = RecordFileDetection(rec).transform(SSDDefaultTrainTransform(300, 300))
    loader = gluon.data.DataLoader(dataset, batch_size, shuffle=True, last_batch='rollover',
                                   batchify_fn=Tuple(Stack(), Pad(pad_val=-1)), num_workers=num_workers)

    def endless():
        while True:
            for data, label in loader:
                data.wait_to_read()
                yield data, label
    return endless()


def bench_loading(rec, args):
    batch_size = 32
    rates = {}
    for _ in range(args.repeats):
        for name, make in (('ours', ours_loader), ('gluoncv', gluoncv_loader)):
            rates.setdefault(name, []).append(
                time_batches(make(rec, batch_size, args.num_thread), args.batches, batch_size))
    return [row('loading ssd_train 300 (img/s)', statistics.median(rates['ours']),
                statistics.median(rates['gluoncv']), 'gluoncv DataLoader', 'loading')]


def row(name, ours, peer, peer_name, target_key):
    ratio = ours / peer
    target = TARGETS[target_key]
    unit = name[name.rindex('(') + 1:name.rindex(')')]          # 'pack ... (img/s)' -> 'img/s'
    return dict(name=name, unit=unit, ours=round(ours, 2), peer=round(peer, 2), peer_name=peer_name,
                ratio=round(ratio, 3), target=target, met=ratio >= target)


def print_table(rows, quick):
    header = '%-32s %10s %10s %7s %7s  %s' % ('measure', 'project', 'peer', 'ratio', 'target', 'peer')
    print(header)
    print('-' * len(header))
    for r in rows:
        print('%-32s %10.1f %10.1f %7.2f %6.1fx  %s%s' % (r['name'], r['ours'], r['peer'], r['ratio'],
                                                         r['target'], r['peer_name'],
                                                         '' if r['met'] else '  (MISSED)'))
    if quick:
        print('quick run: interpreter start-up (about 0.3 s a packing run) dominates at this size; the targets '
              'are judged on the full run (5000 images)')


def main(args):
    from report import machine_description  # bench/report.py: this script's folder

    os.makedirs(args.work_dir, exist_ok=True)
    lst, root = make_dataset(args.work_dir, args.num_images)
    rows, rec = bench_packing(lst, root, args)
    rows += bench_loading(rec, args)
    print_table(rows, args.quick)
    result = dict(machine=machine_description(), quick=args.quick, num_images=args.num_images, repeats=args.repeats,
                  num_thread=args.num_thread, rows=rows)
    print('wrote %s' % write_json(args.out, result, indent=2))


if __name__ == '__main__':
    configure_threads()
    main(parse_args())
