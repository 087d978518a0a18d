"""The benchmark results as one console table and as ``bench/RESULTS.md``, and the machine they ran on.

A row (one per measure, every ``bench/bench_*.py`` writes them) is a dict:

- ``name`` (str), ``part`` (str, added by bench/run.py: which script measured it);
- ``ours`` and ``peer`` (float, or None when a side failed), ``peer_name`` (str, optional), ``unit`` (optional);
- ``ratio`` (float or None): the project's advantage, higher is better (for seconds: peer / ours);
- ``target`` (float or None) and ``met`` (bool or None; computed from ratio and target when missing);
- optional: ``ours_value`` / ``peer_value`` / ``max_difference`` (the metric rows' mAPs),
  ``weights`` and ``detections_per_image`` (the inference rows), ``error`` (why a side gave no number),
  ``applicable`` (False: the measure cannot run on this machine, e.g. bf16 without AVX-512; ``error`` says why).
"""
import os
import platform
import time

CPU_FLAGS = ('avx512_bf16', 'avx512_vnni', 'avx512f', 'amx_bf16')   # flags that decide bf16 / int8 speed
THREAD_VARIABLE_PREFIXES = ('OMP_', 'MXNET_', 'KMP_', 'MKL_', 'DNNL_', 'MKLDNN_')   # thread settings recorded


def machine_description(environ=None):
    """What the results depend on: CPU and its flags, cores, load, thread settings, MXNet build, versions.

    Returns
    -------
    dict
        ``cpu``, ``cores``, ``cpu_flags`` ({flag: bool} for :data:`CPU_FLAGS`), ``load_average`` (1, 5 and
        15 minutes), ``threads`` ({variable: value} of the thread settings in the environment), ``mxnet``,
        ``mxnet_features`` (the enabled ``mx.runtime.Features()``), ``python``, ``numpy``, ``date``.
    """
    import mxnet as mx
    import numpy as np

    from config.runtime import available_cores, cpu_model_and_flags

    environ = os.environ if environ is None else environ
    model, flags = cpu_model_and_flags()
    return dict(
        cpu=model, cores=available_cores(), cpu_flags={flag: flag in flags for flag in CPU_FLAGS},
        load_average=[round(value, 2) for value in os.getloadavg()],
        threads={key: value for key, value in sorted(environ.items()) if key.startswith(THREAD_VARIABLE_PREFIXES)},
        mxnet=mx.__version__,
        mxnet_features=sorted(name for name, feature in mx.runtime.Features().items() if feature.enabled),
        python=platform.python_version(), numpy=np.__version__, date=time.strftime('%Y-%m-%d %H:%M'))


def is_met(row):
    """The row's ``met``, else whether its ratio reaches its target (None when there is no target)."""
    if row.get('met') is not None:
        return bool(row['met'])
    if row.get('target') is None or row.get('ratio') is None:
        return None
    return row['ratio'] >= row['target']


def number(value):
    """A measured figure for the tables: 4 significant digits below 1000, whole numbers above, '-' for None."""
    if value is None:
        return '-'
    if abs(value) >= 1000:
        return '%.0f' % value
    return '%.4g' % value


def ratio_text(row):
    return '-' if row.get('ratio') is None else '%.2f' % row['ratio']


def target_text(row):
    if row.get('target_note'):
        return row['target_note']
    return '-' if row.get('target') is None else '>= %g' % row['target']


def verdict(row):
    """'met', 'MISSED', 'n/a' (cannot run on this machine), 'failed' (a side gave no number) or '' (no target)."""
    if row.get('applicable') is False:
        return 'n/a'
    if row.get('ratio') is None and not (row.get('peer') is None and row.get('met') is not None):
        return 'failed'             # a side gave no number (a row without a peer judges its own figure)
    return {True: 'met', False: 'MISSED', None: ''}[is_met(row)]


def peer_text(row):
    """The peer's figure with its name in brackets when the row names it."""
    figure = number(row.get('peer'))
    return '%s (%s)' % (figure, row['peer_name']) if row.get('peer_name') else figure


def table_lines(rows):
    """The console table: part, measure, project, peer, ratio, target, verdict; peers named below it."""
    width = max([len('measure')] + [len(row['name']) for row in rows])
    layout = '%-10s %-' + str(width) + 's %10s %10s %7s %8s  %s'
    header = (layout % ('part', 'measure', 'project', 'peer', 'ratio', 'target', '')).rstrip()
    lines = [header, '-' * len(header)]
    for row in rows:
        lines.append((layout % (row.get('part', ''), row['name'], number(row.get('ours')), number(row.get('peer')),
                                ratio_text(row), target_text(row), verdict(row))).rstrip())
    return lines + ['  ' + line for line in note_lines(rows)]


def note_lines(rows, with_peer=True):
    """One line per row that carries facts beside its figures: peer, mAPs side by side, NMS load, errors."""
    notes = []
    for row in rows:
        facts = []
        if with_peer and row.get('peer_name'):
            facts.append('peer: %s' % row['peer_name'])
        if row.get('ours_value') is not None:
            facts.append('mAP project %.6f, peer %.6f (largest difference over the per-class APs and the mean: '
                         '%.1e)' % (row['ours_value'], row['peer_value'], row['max_difference']))
        if row.get('weights'):
            facts.append('%s weights' % row['weights'])
        if row.get('detections_per_image') is not None:
            facts.append('%g boxes per image reach NMS' % row['detections_per_image'])
        if row.get('rss_mib'):
            facts.append('the highest epoch-end RSS after the start epoch was %.2f %% above it; RSS per epoch (MiB): '
                         '%s' % (row['max_growth_percent'], ' '.join('%.1f' % value for value in row['rss_mib'])))
        if row.get('measured'):
            facts.append('measured %s' % row['measured'])
        if row.get('error'):
            facts.append('%s: %s' % ('error' if row.get('applicable', True) else 'not applicable',
                                     ' '.join(str(row['error']).split())))
        if facts:
            notes.append('%s: %s' % (row['name'], '; '.join(facts)))
    return notes


def machine_lines(machine):
    """The machine section of RESULTS.md, as markdown list items."""
    flags = machine.get('cpu_flags', {})
    load = machine.get('load_average') or []
    start_load = machine.get('load_average_start') or load
    threads = machine.get('threads') or {}
    return [
        '- CPU: %s, %s cores available; %s' % (machine.get('cpu'), machine.get('cores'), ', '.join(
            '%s %s' % (flag.upper(), 'yes' if present else 'no') for flag, present in flags.items())),
        '- load average (1 min) at start %s, at end %s: %s' % (
            number(start_load[0]) if start_load else '-', number(load[0]) if load else '-',
            'other work may share the machine; the ratios compare sides measured alternately under the same load'),
        '- thread settings: %s' % (', '.join('%s=%s' % item for item in threads.items()) or 'none set'),
        '- MXNet %s; build features enabled: %s' % (machine.get('mxnet'), ', '.join(
            machine.get('mxnet_features', ())) or 'none'),
        '- Python %s, NumPy %s' % (machine.get('python'), machine.get('numpy')),
    ]


def markdown_lines(rows, machine, quick, failures=(), earlier_parts=None):
    """RESULTS.md as lines.

    Parameters
    ----------
    rows : list of dict
        The rows of every part that ran (see the module notes), in order.
    machine : dict
        :func:`machine_description`, optionally with ``load_average_start``.
    quick : bool
        Whether this was ``make bench-quick``.
    failures : sequence of (str, str)
        ``(part, one line on why)`` of the parts that gave no rows.
    earlier_parts : dict, optional
        ``{part: machine}`` of the parts whose rows an earlier run measured (``run.py --only`` keeps them).

    Returns
    -------
    list of str
    """
    lines = ['# Benchmark results', '',
             '%s, %s. Each ratio compares two sides measured in the same run, alternating, as the median of '
             'several repetitions after a warm-up; higher is better (for times in seconds, the ratio is peer / '
             'project).' % ('`make bench-quick` (small sizes: the targets are judged on the full run)' if quick
                            else '`make bench`', machine.get('date')),
             '', '## Machine', ''] + machine_lines(machine)
    for part, earlier in sorted((earlier_parts or {}).items()):
        lines.append('- rows of part `%s` kept from an earlier run (`run.py --only`): %s, %s' % (
            part, earlier.get('date'), machine_lines(earlier)[0][len('- CPU: '):]))
    lines += ['', '## Results', '', '| part | measure | project | peer | ratio | target | |',
              '| --- | --- | --- | --- | --- | --- | --- |']
    for row in rows:
        lines.append('| %s | %s | %s | %s | %s | %s | %s |' % (
            row.get('part', ''), row['name'], number(row.get('ours')), peer_text(row), ratio_text(row),
            target_text(row), verdict(row)))
    notes = note_lines(rows, with_peer=False)
    if notes:
        lines += ['', '## Notes', ''] + ['- ' + line for line in notes]
    if failures:
        lines += ['', '## Parts that failed', ''] + ['- %s: %s' % (part, why) for part, why in failures]
    return lines

