"""Time to accuracy against torchvision's SSDlite320-MobileNetV3, from scratch on the CPU, on synthetic sets.

For each set (``demo``: tools/synthetic_voc.py, the set the demo recipe was tuned on; ``clutter-moderate``:
tools/synthetic_clutter.py, a set it was not tuned on, with at most 4 distractors, no objects under 10 % of the
shorter side and images at most 1.6:1, which both sides learn within 12 minutes; ``clutter``: that generator's
defaults, which neither side leaves the background plateau on within 12 minutes, ``--sets clutter``),
generated and packed once under ``bench/work/<set>``:

- the peer: ``bench/ssdlite_peer.py`` in its own venv (``bench/.torch-venv``, made on first use by
  bench/torch_peer.py, never in requirements.txt): ``ssdlite320_mobilenet_v3_large(weights=None)``, SGD 0.02,
  200-iteration warm-up, batch 16, horizontal flip only, on the same JPEGs; its clock is the training loop only
  (data loading included, its evaluations at the marks left out), and it predicts the test split at
  :data:`MARKS` minutes;
- ours: ``train.py --recipe RECIPE --time-budget M`` for every M of :data:`BUDGETS` on the packed records; the
  clock starts when the budget's epoch measurement starts (after the graph is bound) and includes every
  validation pass; the run's last validation is its result at M minutes, and the longest run's validation after
  every epoch gives the mAP at the other marks (a run cut there, not one fitted to that time).

Both sides are scored with the same VOC07 11-point metric (evaluate/eval_metric.py; our validation uses it, the
peer's detections go through bench.torch_peer.score_detections) on the same test images. Rows per set: the mAP
at each mark (ratio ours / peer), our M-minute run against the peer's 12-minute mAP (the issue's goals: the
6-minute run at least equal, the 12-minute run 10 % above), and the time each side needs to reach the peer's
12-minute mAP (ratio peer / ours, goal 2: half the time).

A full run takes about 2 x (12 + 6 + 12 minutes of training + the peer's predictions + startup): ~70 minutes on
2 cores. ``--quick`` writes no rows (a scaled-down run would not measure this). ``--bf16`` adds the earlier row
comparing the final mAP of ``--amp bf16`` with float32 on the demo set (one more 12-minute run).

A run of some sets (``--sets``) keeps the rows and curves the output file already holds for the others, each row
with the date and CPU that measured it (``measured``), so one set can be measured again without the others.

Usage: ``python bench/bench_time_to_accuracy.py [--quick] [--sets demo,clutter] [--budgets 6,12] [--out FILE]``.
"""
import argparse
import os
import re
import subprocess
import sys
import time

from config.runtime import configure_threads
from core.atomic import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKS = (3, 6, 9, 12)                  # minutes of training the issue reads both sides at
BUDGETS = (6, 12)                      # our --time-budget runs: the two goals
RECIPE = 'demo'                        # the recipe users pick for a new dataset (make demo trains it too)
PEER_GOAL_MINUTES = 12                 # the peer's mark whose mAP both goals are stated against
GOAL_RATIOS = {6: 1.0, 12: 1.1}        # our M-minute mAP / the peer's 12-minute mAP: equal at 6, "well above" at 12
TIME_RATIO_GOAL = 2.0                  # the peer's time to its 12-minute mAP / ours: reach it in half the time
BF16_MAP_TOLERANCE = 0.01              # --amp bf16 reaches the float32 run's mAP within 1 point
GENERATORS = {                         # set name -> the command that writes it (a VOCdevkit under --root)
    'demo': ['tools/synthetic_voc.py'],
    'clutter': ['tools/synthetic_clutter.py'],   # its defaults: neither side learns it within 12 minutes
    'clutter-moderate': ['tools/synthetic_clutter.py', '--object-size', '0.10,0.60', '--distractors', '1,4',
                         '--shorter-side', '240,400', '--max-aspect', '1.6'],   # the same shapes, fewer tiny ones
}
DEFAULT_SETS = ('demo', 'clutter-moderate')   # the held-out set both sides learn in 12 minutes tells recipes apart


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='write no rows (a full run is the measurement)')
    parser.add_argument('--sets', default=','.join(DEFAULT_SETS),
                        help='comma-separated sets, of %s' % ', '.join(GENERATORS))
    parser.add_argument('--budgets', default=','.join(map(str, BUDGETS)), help='our --time-budget runs, minutes')
    parser.add_argument('--recipe', default=RECIPE, help='the recipe our runs start from')
    parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'), help='scratch folder')
    parser.add_argument('--bf16', action='store_true', help='also the --amp bf16 vs float32 row (demo set)')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'time_to_accuracy_results.json'))
    args = parser.parse_args(argv)
    args.sets = [name for name in args.sets.split(',') if name]
    unknown = [name for name in args.sets if name not in GENERATORS]
    if unknown:
        parser.error('--sets: unknown %s (choose from %s)' % (', '.join(unknown), ', '.join(GENERATORS)))
    args.budgets = sorted(float(value) for value in args.budgets.split(','))
    return args


# ------------------------------------------------------------------------------------------------ data
def set_paths(work_dir, name):
    """``(voc_dir, train_rec, val_rec)`` of set ``name`` under ``work_dir``."""
    root = os.path.join(work_dir, name)
    data = os.path.join(root, 'data')
    return (os.path.join(root, 'VOCdevkit', 'VOC2007'), os.path.join(data, 'train.rec'),
            os.path.join(data, 'val.rec'))


def make_set(work_dir, name):
    """Generate set ``name`` (its generator's defaults) and pack it once; returns :func:`set_paths`."""
    voc_dir, train_rec, val_rec = set_paths(work_dir, name)
    if os.path.isfile(train_rec) and os.path.isfile(val_rec):
        return voc_dir, train_rec, val_rec
    root, data = os.path.dirname(voc_dir), os.path.dirname(train_rec)
    commands = [GENERATORS[name] + ['--root', root],
                ['tools/prepare_dataset.py', '--dataset', 'pascal', '--year', '2007', '--set', 'trainval',
                 '--root', root, '--target', os.path.join(data, 'train.lst')],
                ['tools/prepare_dataset.py', '--dataset', 'pascal', '--year', '2007', '--set', 'test', '--root',
                 root, '--target', os.path.join(data, 'val.lst'), '--no-shuffle']]
    for command in commands:
        subprocess.run([sys.executable] + command, cwd=REPO, check=True)
    return voc_dir, train_rec, val_rec


def demo_data(work_dir):
    """The demo set's records ``(train_rec, val_rec)`` under ``work_dir`` (generated once)."""
    return make_set(work_dir, 'demo')[1:]


# ------------------------------------------------------------------------------------------ both sides
def peer_curve(voc_dir, out_dir, marks=MARKS):
    """Train the peer to the last mark; returns ``[{'minutes', 'mAP'}, ...]`` in mark order."""
    from tools.scripts import load_script  # run as ``python bench/...py``, ``bench`` is no importable package

    torch_peer = load_script('bench/torch_peer.py')
    files = torch_peer.run_peer(voc_dir, out_dir, marks, python=torch_peer.ensure_torch_venv())
    return [dict(minutes=mark, mAP=round(float(torch_peer.score_detections(files[mark], voc_dir)), 4))
            for mark in marks]


def train_ours(train_rec, val_rec, prefix, recipe, budget_minutes, amp='none'):
    """``train.py --recipe RECIPE --time-budget M`` on the bench's records; returns train_net's result."""
    from tools.scripts import load_script  # train.py's own argument handling, recipe included
    script = load_script('train.py')
    args = script.parse_args(['--recipe', recipe, '--train-path', train_rec, '--val-path', val_rec, '--prefix',
                              prefix, '--overwrite', '--log', prefix + '-train.log', '--amp', amp,
                              '--time-budget', '%g' % budget_minutes])
    return script.main(args)


def validated(history):
    """The records of ``history`` that have a validation mAP."""
    return [record for record in history if record.get('mAP') is not None]


def map_by(history, seconds):
    """mAP of the last validation finished within ``seconds`` of the run's clock (None before the first)."""
    done = [record['mAP'] for record in validated(history) if record['seconds'] <= seconds]
    return done[-1] if done else None


def first_reaching(history, level):
    """Seconds of the first validation with mAP >= ``level``, or None."""
    return next((record['seconds'] for record in validated(history) if record['mAP'] >= level), None)


# ------------------------------------------------------------------------------------------------ rows
def ours_at(runs, minutes):
    """Our mAP at ``minutes``: the run fitted to that budget if there is one (its last validation, and the
    minutes it took), else the longest run's latest validation by then."""
    if minutes in runs:
        final = validated(runs[minutes])[-1]
        return final['mAP'], final['seconds'], 'the %g-min --time-budget run' % minutes
    longest = runs[max(runs)]
    return map_by(longest, minutes * 60.0), minutes * 60.0, 'the %g-min run by then' % max(runs)


def mark_rows(set_name, peer, runs):
    """One row per peer mark: our mAP at that time against the peer's (ratio ours / peer)."""
    rows = []
    for point in peer:
        ours, seconds, source = ours_at(runs, point['minutes'])
        rows.append(dict(name='VOC07 mAP after %g min, %s set' % (point['minutes'], set_name), unit='mAP',
                         ours=None if ours is None else round(ours, 4), peer=point['mAP'],
                         peer_name='torchvision SSDlite320 at %g min' % point['minutes'],
                         ratio=None if not ours or not point['mAP'] else round(ours / point['mAP'], 3),
                         target=None, ours_seconds=round(seconds, 1), ours_source=source))
    return rows


def peer_goal_map(peer):
    """The peer's mAP at :data:`PEER_GOAL_MINUTES`, the level both goals are stated against."""
    return next(point['mAP'] for point in peer if point['minutes'] == PEER_GOAL_MINUTES)


def goal_rows(set_name, peer, runs):
    """Our M-minute runs against the peer's 12-minute mAP (targets :data:`GOAL_RATIOS`)."""
    level = peer_goal_map(peer)
    rows = []
    for minutes in sorted(runs):
        final = validated(runs[minutes])[-1]
        rows.append(dict(name='ours in %g min vs SSDlite in %g min, VOC07 mAP, %s set' % (
            minutes, PEER_GOAL_MINUTES, set_name), unit='mAP', ours=round(final['mAP'], 4), peer=level,
            peer_name='torchvision SSDlite320 at %g min' % PEER_GOAL_MINUTES,
            ratio=round(final['mAP'] / level, 3) if level else None, target=GOAL_RATIOS.get(minutes),
            ours_seconds=final['seconds'], epochs=final['epoch']))
    return rows


def time_row(set_name, peer, runs):
    """Seconds each side needs to reach the peer's 12-minute mAP (ratio peer / ours, target 2)."""
    level = peer_goal_map(peer)
    peer_seconds = next(point['minutes'] * 60.0 for point in peer if point['mAP'] >= level)
    reached = [seconds for seconds in (first_reaching(history, level) for history in runs.values())
               if seconds is not None]
    ours = min(reached) if reached else None
    row = dict(name="time to SSDlite's %g-min mAP (%.3f), %s set (s)" % (PEER_GOAL_MINUTES, level, set_name),
               unit='s', ours=ours, peer=peer_seconds, peer_name='torchvision SSDlite320 (its marks)',
               higher_is_better=False, ratio=None if ours is None else round(peer_seconds / ours, 3),
               target=TIME_RATIO_GOAL)
    if ours is None:
        row['error'] = 'not reached by any of our runs (best mAP %.3f)' % max(
            record['mAP'] for history in runs.values() for record in validated(history))
    return row


def final_map(history):
    """The validation mAP of the last epoch that has one."""
    return validated(history)[-1]['mAP']


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


def row_set(row):
    """The set a row is about: its ``set``, else the ``, NAME set`` in its name (rows written before ``set``
    existed); None for rows of no set (the bf16 row)."""
    if row.get('set'):
        return row['set']
    found = re.search(r', ([\w-]+) set\b', row['name'])
    return found.group(1) if found else None


def kept_from_earlier(earlier, measured_sets, bf16_measured):
    """``(rows, curves)`` of an earlier output for the sets this run did not measure (and its bf16 row unless
    this run made one); nothing from a ``--quick`` output."""
    if not earlier or earlier.get('quick'):
        return [], {}
    def measured_again(row):
        return row_set(row) in measured_sets if row_set(row) else bf16_measured

    rows = [row for row in earlier.get('rows', []) if not measured_again(row)]
    curves = {name: curve for name, curve in (earlier.get('curves') or {}).items() if name not in measured_sets}
    return rows, curves


def in_set_order(rows):
    """``rows`` sorted by their set's place in :data:`GENERATORS` (rows of no set, and unknown sets, last)."""
    order = list(GENERATORS)
    return sorted(rows, key=lambda row: order.index(row_set(row)) if row_set(row) in order else len(order))


def measured_stamp():
    """``'YYYY-MM-DD HH:MM, <CPU model>'``: when and where this run's rows were measured."""
    from config.runtime import cpu_model_and_flags
    return '%s, %s' % (time.strftime('%Y-%m-%d %H:%M'), cpu_model_and_flags()[0])


def measure_set(args, name):
    """Both sides on set ``name``: its rows and the raw curves."""
    voc_dir, train_rec, val_rec = make_set(args.work_dir, name)
    out = os.path.join(args.work_dir, name)
    peer = peer_curve(voc_dir, os.path.join(out, 'ssdlite'))
    runs = {}
    for minutes in args.budgets:
        result = train_ours(train_rec, val_rec, os.path.join(out, 'model', 'ssd_%gmin' % minutes), args.recipe,
                            minutes)
        runs[minutes] = result['history']
    rows = mark_rows(name, peer, runs) + goal_rows(name, peer, runs) + [time_row(name, peer, runs)]
    curves = dict(peer=peer, ours={'%g' % minutes: history for minutes, history in runs.items()})
    return [dict(row, set=name) for row in rows], curves


def main(args):
    rows, curves = [], {}
    if args.quick:
        print('time to accuracy: measured by the full run only (about 70 minutes of training)')
    for name in [] if args.quick else args.sets:
        set_rows, curves[name] = measure_set(args, name)
        rows += set_rows
    if args.bf16 and not args.quick:
        from train import amp
        reason = amp.bf16_unavailable_reason()
        train_rec, val_rec = demo_data(args.work_dir)
        prefix = os.path.join(args.work_dir, 'demo', 'model', 'ssd_%s' % '%g')
        float32 = curves.get('demo', {}).get('ours', {}).get('12')      # the demo set's 12-min run, when measured
        if float32 is None:
            float32 = train_ours(train_rec, val_rec, prefix % 12, args.recipe, 12)['history']
        rows.append(bf16_row(float32, not_applicable=reason) if reason else bf16_row(
            float32, train_ours(train_rec, val_rec, prefix % 12 + '_bf16', args.recipe, 12, amp='bf16')['history']))
    stamp = measured_stamp()
    rows = [dict(row, measured=stamp) for row in rows]
    for row in rows:
        print('%s: ours %s, peer %s' % (row['name'], row['ours'] if row['ours'] is not None else row.get('error'),
                                        row['peer']))
    if not args.quick:
        from tools.scripts import load_script  # bench/run.py reads an earlier output the same way
        read_results = load_script('bench/run.py').read_results
        kept_rows, kept_curves = kept_from_earlier(read_results(args.out), set(curves), args.bf16)
        rows, curves = in_set_order(kept_rows + rows), dict(kept_curves, **curves)
    write_json(args.out, dict(rows=rows, curves=curves, quick=args.quick, recipe=args.recipe,
                              budgets=args.budgets), indent=2)
    return rows


if __name__ == '__main__':
    configure_threads()
    main(parse_args())
