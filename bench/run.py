"""Run the benchmarks, print one table, write ``bench/results.json`` and ``bench/RESULTS.md``.

``--quick`` writes its own files instead (``bench/results-quick.json``, ``bench/RESULTS-quick.md``, parts in
``bench/quick/``; gitignored): the committed full-run figures stay.

Parts, each a script run as its own process (so that each starts with a fresh MXNet and its own thread pool)
that prints its own table and writes ``<parts dir>/<part>_results.json``:

- ``data``: bench/bench_data.py (packing and loading vs mxnet's im2rec, cat and gluoncv's DataLoader);
- ``shards``: bench/bench_shards.py (20,000 images packed into 8 parts vs mxnet's im2rec on the same part lists,
  and peak RSS at 5,000 vs 20,000 images: memory flat in the list's length);
- ``metric``: bench/bench_metric.py (VOC mAP vs gluoncv's metrics, values side by side);
- ``inference``: bench/bench_inference.py (deploy graph INT8 vs FP32 images/s at batch 1 and 8);
- ``train_step``: bench/bench_train_step.py --amp bf16 (training step vs gluoncv, float32 and bfloat16; the bf16 rows
  are marked not applicable on CPUs that cannot run bfloat16 convolutions), when that script exists;
- ``distributed``: bench/bench_distributed.py (training img/s of 2 dist_sync workers vs 1, one thread each, and the
  communication share of a 2-worker step);
- ``time_to_accuracy``: bench/bench_time_to_accuracy.py (our ``--time-budget`` runs against torchvision's SSDlite
  from scratch on two synthetic sets: mAP at 3/6/9/12 minutes, time to the peer's 12-minute mAP; ~70 minutes);
- ``soak``: bench/bench_soak.py (memory after every epoch of a tiny 32-epoch run: no leak).

Their rows are merged (each tagged with its part) into ``results.json`` with the machine description (CPU and
its AVX512_BF16 / VNNI flags, cores, load average, thread settings, MXNet build features, date) and rendered
into ``RESULTS.md``; both files are written together, complete or not at all. A part that fails is named in
both and the exit status is 1.

``--reuse-outputs`` takes each selected part's rows from the ``<part>_results.json`` its script already wrote
(a long part run by itself, e.g. ``python bench/bench_time_to_accuracy.py``) instead of running it again.

Usage: ``python bench/run.py [--quick] [--only metric,inference] [--reuse-outputs]``.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from config.errors import UserError, run_cli
from config.runtime import configure_threads
from core.atomic import atomic_paths

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
PARTS = {                                   # part name: script, in the order they run
    'data': 'bench_data.py',
    'shards': 'bench_shards.py',
    'metric': 'bench_metric.py',
    'inference': 'bench_inference.py',
    'train_step': 'bench_train_step.py',
    'distributed': 'bench_distributed.py',
    'time_to_accuracy': 'bench_time_to_accuracy.py',
    'soak': 'bench_soak.py',
}
OPTIONAL_PARTS = ('train_step',)            # skipped, not failed, while their script does not exist
PART_FLAGS = {'train_step': ['--amp', 'bf16']}   # the bf16 rows (marked not applicable where the CPU lacks it)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='every part at its small size (a few minutes)')
    parser.add_argument('--only', default=','.join(PARTS),
                        help='comma-separated parts to run, of %s (default: all)' % ', '.join(PARTS))
    parser.add_argument('--parts-dir', default=None,
                        help='where each part writes <part>_results.json (default: bench/; bench/quick/ with '
                             '--quick)')
    parser.add_argument('--work-dir', default=os.path.join(BENCH_DIR, 'work'),
                        help='scratch folder of the parts that generate data (data, time_to_accuracy)')
    parser.add_argument('--results', default=None,
                        help='merged rows, JSON (default: bench/results.json; --quick: bench/results-quick.json)')
    parser.add_argument('--reuse-outputs', action='store_true',
                        help="read each selected part's rows from its existing <part>_results.json instead of "
                             'running it')
    parser.add_argument('--markdown', default=None,
                        help='the report (default: bench/RESULTS.md; --quick: bench/RESULTS-quick.md)')
    return with_output_paths(parser.parse_args(argv))


def default_output_paths(quick):
    """``{'parts_dir', 'results', 'markdown'}`` of a full run (the committed files) or of a quick run (its own
    gitignored files, so that ``make bench-quick`` never overwrites the full run's figures)."""
    if quick:
        return dict(parts_dir=os.path.join(BENCH_DIR, 'quick'),
                    results=os.path.join(BENCH_DIR, 'results-quick.json'),
                    markdown=os.path.join(BENCH_DIR, 'RESULTS-quick.md'))
    return dict(parts_dir=BENCH_DIR, results=os.path.join(BENCH_DIR, 'results.json'),
                markdown=os.path.join(BENCH_DIR, 'RESULTS.md'))


def with_output_paths(args):
    """``args`` with the output paths not given filled in by :func:`default_output_paths`."""
    for key, path in default_output_paths(args.quick).items():
        if getattr(args, key) is None:
            setattr(args, key, path)
    return args


def selected_parts(only):
    """The part names in ``--only``, in running order; a UserError names an unknown one."""
    wanted = [name.strip() for name in only.split(',') if name.strip()]
    unknown = [name for name in wanted if name not in PARTS]
    if unknown or not wanted:
        raise UserError('--only %r: choose among %s (comma-separated)' % (only, ', '.join(PARTS)))
    return [name for name in PARTS if name in wanted]


def part_output(parts_dir, part):
    return os.path.join(parts_dir, '%s_results.json' % part)


def part_flags(part, work_dir):
    """The flags ``run.py`` adds to a part's command: its bf16 rows, its scratch folder."""
    work = {'data': ['--work-dir', work_dir], 'time_to_accuracy': ['--work-dir', work_dir],
            'soak': ['--work-dir', work_dir], 'distributed': ['--work-dir', os.path.join(work_dir, 'distributed')]}
    return PART_FLAGS.get(part, []) + work.get(part, [])


def part_rows(part, out):
    """The rows of part ``part``'s output file ``out``, each tagged with ``part``."""
    with open(out) as handle:
        rows = json.load(handle).get('rows', [])
    return [dict(row, part=part) for row in rows]


def reused_part(part, parts_dir):
    """``(rows, problem)`` of :func:`run_part`, read from the output an earlier run of the part's script left."""
    out = part_output(parts_dir, part)
    if not os.path.isfile(out):
        return None, 'failed: --reuse-outputs: %s does not exist (run bench/%s first)' % (out, PARTS[part])
    print('== %s: rows read from %s (--reuse-outputs)' % (part, out), flush=True)
    return part_rows(part, out), None


def run_part(part, quick, parts_dir, work_dir):
    """Run one part's script; its output goes straight to the console.

    Returns
    -------
    rows : list of dict or None
        The part's rows, each tagged with ``part``; None when it failed or was skipped.
    problem : str or None
        Why there are no rows.
    """
    script = os.path.join(BENCH_DIR, PARTS[part])
    if not os.path.isfile(script):
        return None, 'skipped: %s does not exist' % os.path.relpath(script, REPO)
    out = part_output(parts_dir, part)
    command = [sys.executable, script, '--out', out] + (['--quick'] if quick else []) + part_flags(part, work_dir)
    print('== %s: %s' % (part, ' '.join(command[1:])), flush=True)
    started = time.time()
    status = subprocess.call(command, cwd=REPO)
    if status != 0:
        return None, 'failed: %s exited with status %d (its output is above)' % (PARTS[part], status)
    if not os.path.isfile(out) or os.path.getmtime(out) < started - 1:
        return None, 'failed: %s exited normally but did not write %s' % (PARTS[part], out)
    return part_rows(part, out), None


def write_results(results_path, markdown_path, result, markdown):
    """Both files or neither (core/atomic)."""
    with atomic_paths(results_path, markdown_path) as (results_temp, markdown_temp):
        with open(results_temp, 'w') as handle:
            json.dump(result, handle, indent=2)
        with open(markdown_temp, 'w') as handle:
            handle.write('\n'.join(markdown) + '\n')


def read_results(path):
    """An earlier ``results.json`` as a dict, or None when there is none or it cannot be read."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def merged_with_earlier(result, earlier):
    """``result`` with the rows of the parts it did not run (``--only``) kept from ``earlier``, so that a partial
    run never drops the figures of the others; ``earlier_parts`` names, per kept part, the machine (CPU, date)
    that measured it.

    Parameters
    ----------
    result : dict
        This run: ``machine``, ``parts``, ``rows``...
    earlier : dict or None
        The results file this run replaces.

    Returns
    -------
    dict
        ``result`` with ``rows`` in :data:`PARTS` order and ``earlier_parts`` (``{part: machine}``).
    """
    merged = dict(result, earlier_parts={})
    if not earlier or bool(earlier.get('quick')) != bool(result['quick']):
        return merged
    earlier_machines = dict(earlier.get('earlier_parts') or {})
    kept = [row for row in earlier.get('rows', []) if row.get('part') in PARTS and row['part'] not in result['parts']]
    for row in kept:
        merged['earlier_parts'][row['part']] = earlier_machines.get(row['part'], earlier.get('machine'))
    order = list(PARTS)
    merged['rows'] = sorted(kept + result['rows'], key=lambda row: order.index(row['part']))   # stable
    return merged


def main(args):
    parts = selected_parts(args.only)
    from report import machine_description, markdown_lines, table_lines  # bench/ is this script's folder

    load_start = [round(value, 2) for value in os.getloadavg()]
    rows, failures, skipped = [], [], []
    for part in parts:
        if args.reuse_outputs:
            found, problem = reused_part(part, args.parts_dir)
        else:
            found, problem = run_part(part, args.quick, args.parts_dir, args.work_dir)
        if found is not None:
            rows += found
        elif problem.startswith('skipped') and part in OPTIONAL_PARTS:
            skipped.append((part, problem))
        else:
            failures.append((part, problem))
    machine = dict(machine_description(), load_average_start=load_start)
    result = dict(machine=machine, quick=args.quick, parts=parts, skipped=skipped, failures=failures, rows=rows)
    result = merged_with_earlier(result, read_results(args.results))
    write_results(args.results, args.markdown, result,
                  markdown_lines(result['rows'], machine, args.quick, failures, result['earlier_parts']))
    print('\n'.join(table_lines(rows)))
    for part, problem in skipped + failures:
        print('%s: %s' % (part, problem))
    print('wrote %s and %s' % (args.results, args.markdown))
    if failures:
        sys.exit(1)
    return result


if __name__ == '__main__':
    configure_threads()
    run_cli(main, parse_args())
