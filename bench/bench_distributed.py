"""Scaling out on this machine: training throughput of 2 workers against 1 (each worker one thread), and the
communication share of a 2-worker step, on MXNet's ps-lite parameter server over 127.0.0.1.

Rows:

1. ``train img/s, 2 workers dist_sync vs 1 worker (1 thread each)``: the group's images/s (the sum of its
   workers': every worker trains its own batch each step) over the single worker's; target: ratio >= 1.6.
   The ideal is 2.0. Two independent single-thread processes reach 1.75 to 1.95 of one on these 2 cores (the
   row's ``ceiling_ratio``: memory bandwidth and cache are shared); what the group loses beyond that is the parameter
   server's work, which has no spare core: the server receives, sums and sends back every worker's
   gradients each step (ZeroMQ copies them through loopback in both directions), the scheduler and each
   worker's decoding and engine threads run too, and both workers wait for the slower one at every
   synchronous step. A single worker leaves the second core to its server, so its own communication hides.
2. ``communication share of a 2-worker step (%)``: lower is better, no peer; target: under 25 %. The share of
   the 2-worker step's time that communicating adds: ``100 x (1 - group img/s / img/s of two processes that
   train the same way without communicating)``, the latter two independent processes on a local kvstore,
   one thread each, started together (a file barrier), each on the same images and steps as a worker of
   the group; the median over repeats (each repeat's pair measured back to back). This counts everything
   the communication costs on 2 shared cores (transfers, the server's sums, waiting for the other worker),
   not the contention of two training threads, which both sides have. Beside it, ``isolated_share_percent``:
   after its epoch each worker of the group times ``--comm-rounds`` rounds (after one untimed) of what a
   step sends and receives alone, ``kvstore.pushpull`` of every parameter's gradient in the module's order
   and priorities then ``waitall``, over its mean step: the transfers with both cores free and nothing to
   overlap, which understates the cost inside a step where the server competes with the training threads
   for the cores.

Every side runs ``train.train_net.train_net`` in processes running ``bench/distributed_worker.py`` with
``OMP_NUM_THREADS=1``, whose hook times each step after ``--warmup`` ones (``waitall`` at the end of every step)
and writes its JSON:

- ours: 2 workers, ``--kv-store dist_sync``, 1 server, under ``tools/launch.py -n 2 -s 1`` (a free scheduler
  port per run), on ``train.rec`` (``--num-images``): each reads its half;
- peer: 1 worker, also ``--kv-store dist_sync`` under ``tools/launch.py -n 1 -s 1``, on ``half.rec`` (the first
  half of the same list), so that each worker of both sides trains as many steps on as many images. The peer
  goes through the same framework path (gradients pushed to a server process and pulled back, rank 0's
  weights broadcast, BatchNorm statistics averaged through the kvstore), so the ratio measures what the
  second worker adds; a plain local kvstore would not pay the server path at all, mixing row 2's subject
  into row 1;
- alone (row 2 only): 2 independent processes, ``--kv-store local``, each on ``half.rec``.

Training settings: ``mobilenet`` at 256 (``--quick``: ``mobilenet0.25`` at 128), batch 8 per worker (quick 4),
SGD (lr 1e-3, momentum 0.9, wd 5e-4), random initialisation (``pretrained=''``), ``train_preset='val'`` (resize
only: no augmentation cost differences), one epoch, no validation, no log file. The data (synthetic VOC
shapes, 96-160 px, tools/synthetic_voc.py + tools/prepare_dataset.py) is generated once into
``<work dir>/data-<images>`` and reused. The sides alternate (peer, ours, alone in odd repeats, the reverse in
even ones); the figures are medians over ``--repeats``. Every launched group or process has a bounded wait
(``--timeout``) and is stopped on failure.

Usage: ``python bench/bench_distributed.py [--quick]``. Prints one table and writes
``bench/distributed_results.json``.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

from config.runtime import configure_threads
from core.atomic import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_RATIO = 1.6                  # images/s of 2 workers over 1 (the ideal is 2.0)
IDEAL_RATIO = 2.0
TARGET_COMM_PERCENT = 25.0          # communication share of a 2-worker step, percent
SIDES = (96, 160)                   # image sides of the synthetic data, pixels
SGD = dict(lr=1e-3, momentum=0.9, wd=5e-4)
ROW_NAMES = ('train img/s, 2 workers dist_sync vs 1 worker (1 thread each)',
             'communication share of a 2-worker step (%)')
PEER_NAME = '1 worker, dist_sync under tools/launch.py -n 1'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='mobilenet0.25 at 128, 96 images, batch 4, 1 repeat')
    parser.add_argument('--num-images', type=int, default=None, help='training images (default 512, quick 96)')
    parser.add_argument('--network', default=None, help='default mobilenet (quick: mobilenet0.25)')
    parser.add_argument('--data-shape', type=int, default=None, help='input side (default 256, quick 128)')
    parser.add_argument('--batch-size', type=int, default=None, help='images per worker and step (default 8, '
                                                                     'quick 4)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps first (default 3, quick 2)')
    parser.add_argument('--comm-rounds', type=int, default=None,
                        help='timed gradient push/pull rounds per worker after training (default 5, quick 3)')
    parser.add_argument('--repeats', type=int, default=None, help='alternating runs per side (default 3, quick 1)')
    parser.add_argument('--timeout', type=float, default=None,
                        help='seconds a launched group may run before it is stopped (default 600, quick 180)')
    parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work', 'distributed'),
                        help='scratch directory (the data is generated once there and reused)')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'distributed_results.json'),
                        help='results JSON')
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = dict(num_images=96 if quick else 512, network='mobilenet0.25' if quick else 'mobilenet',
                    data_shape=128 if quick else 256, batch_size=4 if quick else 8, warmup=2 if quick else 3,
                    comm_rounds=3 if quick else 5, repeats=1 if quick else 3, timeout=180.0 if quick else 600.0)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# --- the data -------------------------------------------------------------------------------------------------
def dataset(work_dir, num_images):
    """``(train.rec, half.rec)`` of ``num_images`` synthetic VOC images (the second: the first half of the
    first's shuffled list), generated once into ``work_dir/data-<num_images>`` and reused."""
    folder = os.path.join(work_dir, 'data-%d' % num_images)
    train, half = (os.path.join(folder, name + '.rec') for name in ('train', 'half'))
    done = os.path.join(folder, 'done')
    if os.path.isfile(done):
        return train, half
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    start = time.perf_counter()
    from tools import prepare_dataset, synthetic_voc
    from tools.im2rec import pack_records

    voc = os.path.join(folder, 'VOC')
    synthetic_voc.main(synthetic_voc.parse_args([
        '--root', voc, '--num-trainval', str(num_images), '--num-test', '0', '--min-side', str(SIDES[0]),
        '--max-side', str(SIDES[1]), '--max-objects', '4', '--seed', '7']))
    prepare_dataset.main(prepare_dataset.parse_args([
        '--dataset', 'pascal', '--year', '2007', '--set', 'trainval', '--root', voc,
        '--target', os.path.join(folder, 'train.lst'), '--shuffle']))
    with open(os.path.join(folder, 'train.lst')) as handle:
        lines = [line for line in handle if line.strip()]
    with open(os.path.join(folder, 'half.lst'), 'w') as handle:
        handle.write(''.join(lines[:len(lines) // 2]))
    shutil.copyfile(os.path.join(folder, 'train.classes'), os.path.join(folder, 'half.classes'))
    pack_records(os.path.join(folder, 'half.lst'), voc, progress=False)
    with open(done, 'w') as handle:
        handle.write('%d images\n' % len(lines))
    print('generated %d synthetic images in %.1f s' % (len(lines), time.perf_counter() - start), flush=True)
    return train, half


# --- one run of a side ----------------------------------------------------------------------------------------
SIDE_NAMES = {'ours': '2 workers, dist_sync', 'peer': PEER_NAME,
              'alone': '2 independent processes, local kvstore (no communication)'}


def stop(process):
    """Stop a process that ran out of time or whose partner failed: SIGTERM to its process group (a launcher
    then stops its own group: each of its processes has a session of its own), SIGKILL if it is still there
    after a bounded wait."""
    for signum, wait in ((signal.SIGTERM, 40), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def side_settings(side, args, train, half, run_dir, index=0):
    """What ``bench/distributed_worker.py`` reads: its warm-up, push/pull rounds, barrier and train_net flags."""
    distributed = side != 'alone'
    return dict(warmup=args.warmup, comm_rounds=args.comm_rounds if side == 'ours' else 0,
                barrier=None if distributed else [run_dir, 2], train=dict(
                    train_path=train if side == 'ours' else half, val_path='', network=args.network,
                    data_shape=args.data_shape, batch_size=args.batch_size, pretrained='', end_epoch=1, lr_steps=[],
                    log='', seed=0, train_preset='val', frequent=1000, optimizer='sgd',
                    prefix=os.path.join(run_dir, 'ssd-%d' % index), gpus='',
                    kv_store='dist_sync' if distributed else 'local', **SGD))


def run_side(side, args, train, half):
    """Train one epoch as ``side`` (``ours``, ``peer`` or ``alone``); returns the processes' JSON dicts in rank
    order. Raises RuntimeError (with the last output) when a process fails or runs past ``--timeout``."""
    from tools.launch import free_port

    run_dir = os.path.join(args.work_dir, 'run-' + side)
    shutil.rmtree(run_dir, ignore_errors=True)
    out = os.path.join(run_dir, 'out')
    os.makedirs(out)
    count = 1 if side == 'peer' else 2
    commands = []
    for index in range(1 if side != 'alone' else count):
        settings_path = os.path.join(run_dir, 'settings-%d.json' % index)
        with open(settings_path, 'w') as handle:
            json.dump(side_settings(side, args, train, half, run_dir, index), handle)
        worker = [sys.executable, '-m', 'bench.distributed_worker', settings_path, out]
        if side == 'alone':
            commands.append((worker, {'SSD_WORKER_RANK': str(index)}))
        else:
            commands.append(([sys.executable, os.path.join(REPO, 'tools', 'launch.py'), '-n', str(count), '-s', '1',
                              '--port', str(free_port()), '--stop-grace', '5', '--'] + worker, {}))
    processes = []
    try:
        for command, variables in commands:
            logs = open(os.path.join(run_dir, 'output-%d.log' % len(processes)), 'w+')
            processes.append((subprocess.Popen(command, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS='1',
                                                                            **variables),
                                               stdout=logs, stderr=subprocess.STDOUT, start_new_session=True), logs))
        deadline = time.monotonic() + args.timeout
        problem = None
        while problem is None and any(process.poll() is None for process, _ in processes):
            failed = [process for process, _ in processes if process.poll() not in (None, 0)]
            if failed:
                problem = 'exited with status %d' % failed[0].returncode
            elif time.monotonic() > deadline:
                problem = 'ran past --timeout %g s; stopped' % args.timeout
            time.sleep(0.1)
        if problem is None and any(process.returncode != 0 for process, _ in processes):
            problem = 'exited with status %d' % next(p.returncode for p, _ in processes if p.returncode != 0)
    finally:
        for process, _ in processes:
            if process.poll() is None:
                stop(process)
    output = ''
    for _, logs in processes:
        logs.seek(0)
        output += logs.read()
        logs.close()
    paths = [os.path.join(out, 'worker-%d.json' % rank) for rank in range(count)]
    missing = [os.path.basename(path) for path in paths if not os.path.isfile(path)]
    if problem or missing:
        raise RuntimeError('side %s (%s) %s. Its last output:\n%s' % (
            side, SIDE_NAMES[side], problem or 'wrote no %s' % ', '.join(missing), output[-3000:]))
    results = []
    for path in paths:
        with open(path) as handle:
            results.append(json.load(handle))
    shutil.rmtree(run_dir, ignore_errors=True)                     # the checkpoints: tens of MB
    return results


def measure(args, train, half):
    """``args.repeats`` alternating rounds of the three sides: ``{side: [run, ...]}``, a run being the list of its
    processes' dicts."""
    runs = {side: [] for side in SIDE_NAMES}
    for repeat in range(args.repeats):
        for side in ('peer', 'ours', 'alone')[::1 if repeat % 2 == 0 else -1]:
            started = time.perf_counter()
            runs[side].append(run_side(side, args, train, half))
            workers = runs[side][-1]
            print('repeat %d %-5s: %s img/s (%s steps, median step %s s)%s; %.1f s' % (
                repeat + 1, side, ' + '.join('%.2f' % w['img_s'] for w in workers),
                '/'.join(str(w['steps']) for w in workers),
                '/'.join('%.3f' % statistics.median(w['step_s']) for w in workers),
                ''.join('; rank %d push/pull alone %.3f s' % (w['rank'], statistics.mean(w['comm_s']))
                        for w in workers if w.get('comm_s')),
                time.perf_counter() - started), flush=True)
    return runs


# --- rows -------------------------------------------------------------------------------------------------------
def group_img_s(workers):
    """A run's images/s: the sum of its processes' (each trains its own batch every step)."""
    return sum(worker['img_s'] for worker in workers)


def isolated_percent(worker):
    """A worker's mean push/pull round (alone, after training) over its mean step, percent."""
    return 100.0 * statistics.mean(worker['comm_s']) / statistics.mean(worker['step_s'])


def median_step(runs):
    return round(statistics.median(s for run in runs for worker in run for s in worker['step_s']), 4)


def rows_of(runs, args):
    """The throughput row and the communication row of ``measure``'s runs."""
    img_s = {side: [group_img_s(run) for run in side_runs] for side, side_runs in runs.items()}
    ours, peer, alone = (statistics.median(img_s[side]) for side in ('ours', 'peer', 'alone'))
    ratio = ours / peer
    settings = dict(network=args.network, data_shape=args.data_shape, batch_size=args.batch_size,
                    num_images=args.num_images, warmup=args.warmup, repeats=args.repeats, optimizer='sgd',
                    omp_num_threads=1, **SGD)
    throughput = dict(
        name=ROW_NAMES[0], unit='img/s', ours=round(ours, 3), peer=round(peer, 3), peer_name=PEER_NAME,
        ratio=round(ratio, 3), target=TARGET_RATIO, met=bool(ratio >= TARGET_RATIO), ideal=IDEAL_RATIO,
        scaling_efficiency=round(ratio / IDEAL_RATIO, 3), ceiling_ratio=round(alone / peer, 3),
        runs_ours_img_s=[round(value, 3) for value in img_s['ours']],
        runs_peer_img_s=[round(value, 3) for value in img_s['peer']],
        median_step_s={side: median_step(side_runs) for side, side_runs in runs.items()}, settings=settings)
    shares = [100.0 * (1.0 - with_comm / without) for with_comm, without in zip(img_s['ours'], img_s['alone'])]
    share = statistics.median(shares)
    isolated = [isolated_percent(worker) for run in runs['ours'] for worker in run]
    communication = dict(
        name=ROW_NAMES[1], unit='%', ours=round(share, 2), peer=None, peer_name=None, ratio=None, target=None,
        target_note='< %g %%' % TARGET_COMM_PERCENT, met=bool(share < TARGET_COMM_PERCENT), higher_is_better=False,
        method='100 x (1 - img/s of the 2 dist_sync workers / img/s of %s), per repeat' % SIDE_NAMES['alone'],
        shares_percent=[round(value, 2) for value in shares],
        alone_img_s=round(alone, 3), runs_alone_img_s=[round(value, 3) for value in img_s['alone']],
        isolated_share_percent=round(statistics.median(isolated), 2),
        isolated_shares_percent=[round(value, 2) for value in isolated],
        push_pull_s=round(statistics.median(s for run in runs['ours'] for w in run for s in w['comm_s']), 4),
        gradient_mb=runs['ours'][0][0]['gradient_mb'], comm_rounds=args.comm_rounds, settings=settings)
    return [throughput, communication]


def print_table(rows, args, load_before):
    throughput, communication = rows
    print('%-62s %9s %9s %7s %9s' % ('measure', 'project', 'peer', 'ratio', 'target'))
    print('-' * 100)
    print('%-62s %9.2f %9.2f %7.2f %9s  %s' % (throughput['name'], throughput['ours'], throughput['peer'],
                                              throughput['ratio'], '>= %g' % TARGET_RATIO,
                                              'PASS' if throughput['met'] else 'FAIL'))
    print('%-62s %9.2f %9s %7s %9s  %s' % (communication['name'], communication['ours'], '-', '-',
                                          communication['target_note'], 'PASS' if communication['met'] else 'FAIL'))
    steps = throughput['median_step_s']
    print('  %s at %d, batch %d per worker, %d images, 1 thread per process; peer: %s' % (
        args.network, args.data_shape, args.batch_size, args.num_images, PEER_NAME))
    print('  ratio %.2f of the ideal %.1f; 2 processes without communication: %.2f img/s, %.2f x the peer' % (
        throughput['ratio'], IDEAL_RATIO, communication['alone_img_s'], throughput['ceiling_ratio']))
    print('  median step: 2 workers %.3f s, 1 worker %.3f s, 2 processes alone %.3f s; shares %s %%' % (
        steps['ours'], steps['peer'], steps['alone'],
        ', '.join('%.1f' % value for value in communication['shares_percent'])))
    print('  push/pull of all %.1f MB of gradients, timed alone after training: %.3f s, %.1f %% of a step' % (
        communication['gradient_mb'], communication['push_pull_s'], communication['isolated_share_percent']))
    print('  load average (1 min) before / after: %.2f / %.2f (other work on these cores slows the 2-process sides '
          'more than the single worker, which has a core to spare)' % (load_before[0], os.getloadavg()[0]))
    if args.quick:
        print('quick run: a tiny network, few steps; the targets are judged on the full run')


def main(args):
    from report import machine_description  # bench/report.py: this script's folder

    started = time.perf_counter()
    load_before = [round(value, 2) for value in os.getloadavg()]
    train, half = dataset(args.work_dir, args.num_images)
    runs = measure(args, train, half)
    rows = rows_of(runs, args)
    print_table(rows, args, load_before)
    machine = dict(machine_description(), load_average_start=load_before)
    result = dict(machine=machine, quick=args.quick, seconds=round(time.perf_counter() - started, 1), rows=rows,
                  runs=runs)
    print('wrote %s (%.0f s)' % (write_json(args.out, result, indent=2), result['seconds']))


if __name__ == '__main__':
    configure_threads()
    main(parse_args())
