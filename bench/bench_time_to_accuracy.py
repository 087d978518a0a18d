"""Time to accuracy: wall time of ``train.py --recipe demo`` until its validation VOC07 mAP first reaches 0.5,
0.6 and 0.7 on the synthetic test split, from scratch on the CPU.

The demo set is generated and packed under ``bench/work/demo`` (the user's ``data/`` is left alone), the recipe
trains into ``bench/work/demo/model`` and each epoch's record (seconds since training began, validation included,
and mAP; see train.train_net) gives the rows. There is no peer program: each row compares the time with the
10-minute budget issue 4 set for the whole demo (ratio = budget / time, target >= 1). A full run takes as long as
the demo's training (about 8 minutes on 2 cores); ``--quick`` writes no rows (it says so), because a scaled-down
run would not measure this.

One more row compares the final mAP of the recipe trained with ``--amp bf16`` against the float32 run (target:
within 0.01); on a CPU that cannot run bfloat16 convolutions (train/amp.py's probe) the row is marked not
applicable and the second training is not run.

Usage: ``python bench/bench_time_to_accuracy.py [--quick] [--out FILE]``.
"""
import argparse
import os
import subprocess
import sys

from config.runtime import configure_threads
from core.atomic import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THRESHOLDS = (0.5, 0.6, 0.7)     # the VOC07 mAP levels
BF16_MAP_TOLERANCE = 0.01        # the issue: --amp bf16 reaches the float32 run's mAP within 1 point
BUDGET_SECONDS = 600.0           # issue 4: the demo finishes within 10 minutes on 2 cores


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='write no rows (a full run is the measurement)')
    parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work', 'demo'), help='scratch folder')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'time_to_accuracy_results.json'))
    return parser.parse_args(argv)


def demo_data(work_dir):
    """Generate and pack the demo set (config.defaults.SYNTHETIC) once; returns (train_rec, val_rec)."""
    root, data = os.path.join(work_dir, 'VOCdevkit'), os.path.join(work_dir, 'data')
    train_rec, val_rec = os.path.join(data, 'train.rec'), os.path.join(data, 'val.rec')
    if os.path.isfile(train_rec) and os.path.isfile(val_rec):
        return train_rec, val_rec
    commands = [['tools/synthetic_voc.py', '--root', root],
                ['tools/prepare_dataset.py', '--dataset', 'pascal', '--year', '2007', '--set', 'trainval',
                 '--root', root, '--target', os.path.join(data, 'train.lst')],
                ['tools/prepare_dataset.py', '--dataset', 'pascal', '--year', '2007', '--set', 'test', '--root',
                 root, '--target', os.path.join(data, 'val.lst'), '--no-shuffle']]
    for command in commands:
        subprocess.run([sys.executable] + command, cwd=REPO, check=True)
    return train_rec, val_rec


def first_reached(history, threshold):
    """``(seconds, epoch)`` of the first epoch whose mAP is at least ``threshold``, or ``(None, None)``."""
    for record in history:
        if record.get('mAP') is not None and record['mAP'] >= threshold:
            return record['seconds'], record['epoch']
    return None, None


def rows_from_history(history, thresholds=THRESHOLDS, budget=BUDGET_SECONDS):
    """One row per threshold: seconds to reach it, compared with the budget."""
    rows = []
    for threshold in thresholds:
        seconds, epoch = first_reached(history, threshold)
        row = dict(name='time to VOC07 mAP %.1f (demo recipe, s)' % threshold, unit='s', ours=seconds,
                   peer=budget, peer_name='issue 4 budget for the whole demo', higher_is_better=False,
                   ratio=None if seconds is None else round(budget / seconds, 3), target=1.0, epoch=epoch)
        if seconds is None:
            row['error'] = 'not reached in %d epochs (best mAP %.3f)' % (
                len(history), max([record.get('mAP') or 0.0 for record in history] or [0.0]))
        rows.append(row)
    return rows


def train_demo(train_rec, val_rec, work_dir, amp='none'):
    """``train.py --recipe demo [--amp ...]`` on the bench's copy of the data; returns train_net's history."""
    from tools.scripts import load_script  # train.py's own argument handling, recipe included
    script = load_script('train.py')
    name = 'ssd_demo' if amp == 'none' else 'ssd_demo_' + amp
    args = script.parse_args(['--recipe', 'demo', '--train-path', train_rec, '--val-path', val_rec, '--prefix',
                              os.path.join(work_dir, 'model', name), '--overwrite', '--log', '', '--amp', amp])
    return script.main(args)['history']


def final_map(history):
    """The validation mAP of the last epoch that has one."""
    return [record['mAP'] for record in history if record.get('mAP') is not None][-1]


def bf16_row(float32_history, bf16_history=None, not_applicable=None):
    """Final mAP of the ``--amp bf16`` run against the float32 run's (met: at most 0.01 lower)."""
    row = dict(name='demo recipe final VOC07 mAP, --amp bf16 vs float32', unit='mAP', peer_name='float32 run',
               peer=round(final_map(float32_history), 4), target=None,
               target_note='within %g' % BF16_MAP_TOLERANCE)
    if not_applicable:
        return dict(row, ours=None, ratio=None, met=None, applicable=False, error=not_applicable)
    ours = final_map(bf16_history)
    return dict(row, ours=round(ours, 4), ratio=round(ours / row['peer'], 3),
                met=ours >= row['peer'] - BF16_MAP_TOLERANCE, applicable=True)


def main(args):
    rows, history = [], []
    if args.quick:
        print('time to accuracy: measured by the full run only (about 8 minutes of training)')
    else:
        train_rec, val_rec = demo_data(args.work_dir)
        history = train_demo(train_rec, val_rec, args.work_dir)
        rows = rows_from_history(history)
        from train import amp

        reason = amp.bf16_unavailable_reason()
        rows.append(bf16_row(history, not_applicable=reason) if reason
                    else bf16_row(history, train_demo(train_rec, val_rec, args.work_dir, amp='bf16')))
        for row in rows:
            print('%s: %s' % (row['name'], row['ours'] if row['ours'] is not None else row['error']))
    write_json(args.out, dict(rows=rows, history=history, quick=args.quick), indent=2)
    return rows


if __name__ == '__main__':
    configure_threads()
    main(parse_args())
