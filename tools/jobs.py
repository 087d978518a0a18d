"""``tools/prepare_dataset.py --jobs jobs.yaml [--max-procs K]``: many conversions, each in its own process.

The jobs file (read by :func:`config.schema.read_yaml`, a ``yaml.SafeLoader``: ``!!python/...`` tags are a
one-line error, so the file cannot run code)::

    defaults:                     # optional, merged under every job
      dataset: pascal
      root: DATA/VOCdevkit
    jobs:
      - name: voc0712-trainval    # optional; default: the target without .lst
        year: [2007, 2012]
        set: trainval
        target: data/train.lst
        num_parts: 8
      - {year: 2007, set: test, target: data/val.lst, shuffle: false}

A job's keys are prepare_dataset's flags without the dashes, with ``_`` or ``-`` inside (``num_parts``,
``num-parts``, ``chunks``); a switch is ``true``/``false`` (``skip_bad: true``, ``shuffle: false`` for
``--no-shuffle``); ``null`` leaves a flag out (also one set under ``defaults:``); ``year``, ``set`` and
``class_names`` may be YAML lists. Relative ``root``, ``target`` and ``class_names`` paths are relative to the
jobs file's folder (a ``class_names`` string is a path when such a file exists there, or when it has a file
extension and no comma; otherwise it is the comma-separated names).

Every job is checked before any starts: unknown keys (with a did-you-mean), types, missing keys, two jobs with
one target or one name, and then prepare_dataset's own :func:`~tools.prepare_dataset.check_args` on the job's
command line, so one set of rules serves both; each problem is a one-line error naming the jobs file and the
job. The jobs then run in 'spawn' processes (a fresh interpreter each; nothing forked from this one), at most
``--max-procs`` at a time; each writes its own output to ``<target without .lst>.log`` next to its target and
reports its image count and packing progress to this process, which draws one bar over all jobs (its total
grows as each job writes its list: counting images up front would mean parsing every annotation file twice) and
prints a table at the end. A failed job does not stop the others; :class:`JobsFailed` (exit status 1) says
that some failed (a bad jobs file: exit status 2, nothing run). Ctrl-C reaches the children too (the
terminal's process group; a SIGINT sent to this process alone is passed on after a second): each stops
cleanly, the packers drop their temporary files, the table shows them as interrupted, and the exit status is
130; a rerun keeps every part already committed.
"""
import argparse
import collections
import difflib
import multiprocessing
import multiprocessing.connection
import os
import shlex
import signal
import sys
import threading
import time
import traceback

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from config.errors import UserError
from config.runtime import available_cores

DEFAULT_MAX_PROCS = 4          # default --max-procs cap: each process holds one dataset's annotations in memory
TOP_LEVEL_KEYS = ('jobs', 'defaults')
PATH_KEYS = ('root', 'target')                 # argparse dests resolved against the jobs file's folder
LIST_KEYS = ('year', 'image_set', 'class_names')   # comma-separated flags that may be YAML lists
POLL_SECONDS = 0.2             # the parent waits this long for messages before starting the next jobs
STOP_GRACE_SECONDS = 1.0       # after Ctrl-C: children still running then get a SIGINT of their own
STOP_SECONDS = 15.0            # ... and are terminated if still running after this
LOG_SUFFIX = '.log'

Job = collections.namedtuple('Job', 'number name argv target log')


class JobsFailed(UserError):
    """Some jobs failed (each named with its error in the table above the one-line error): exit status 1."""
    exit_status = 1


class RaisingParser(argparse.ArgumentParser):
    """An argparse parser whose errors are a :class:`UserError` instead of a usage text and ``exit(2)``."""

    def error(self, message):
        raise UserError(message)


# --- the jobs file -----------------------------------------------------------------------------------------------
def read_jobs_file(path):
    """The jobs file as plain Python containers (``${...}`` interpolations resolved), or a UserError."""
    from config.schema import read_yaml
    loaded = read_yaml(path, 'jobs file', shape='be a mapping with a "jobs:" list (and optionally "defaults:")')
    try:
        return OmegaConf.to_container(loaded, resolve=True)
    except OmegaConfBaseException as err:
        raise UserError('jobs file %s: %s' % (path, str(err).splitlines()[0])) from None


def did_you_mean(key, known):
    """``"; did you mean 'num_parts'?"`` for the closest of ``known``, or ``''``."""
    close = difflib.get_close_matches(str(key), known, n=1)
    return "; did you mean '%s'?" % close[0] if close else ''


def job_options(parser):
    """``{key with underscores: argparse action}`` of every option a job may set (``set``, ``num_parts``,
    ``chunks``, ...)."""
    from tools.prepare_dataset import job_actions
    options = {}
    for action in job_actions(parser):
        for flag in action.option_strings:
            if not flag.startswith('--no-'):
                options[flag.lstrip('-').replace('-', '_')] = action
    return options


def is_switch(action):
    return isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction))


def checked_value(action, key, value, where):
    """``value`` of option ``key`` checked against its argparse ``action``: a bool for a switch, a whole number,
    one of the choices, a string (or a list joined with commas for :data:`LIST_KEYS`)."""
    if is_switch(action):
        if not isinstance(value, bool):
            raise UserError('%s: %s must be true or false, not %r' % (where, key, value))
        return value
    if action.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError('%s: %s must be a whole number, not %r' % (where, key, value))
        return value
    if action.dest in LIST_KEYS and isinstance(value, list):
        if not value or not all(isinstance(item, (str, int)) and not isinstance(item, bool) for item in value):
            raise UserError('%s: %s must be a non-empty list of names, not %r' % (where, key, value))
        return ','.join(str(item) for item in value)
    if action.dest == 'year' and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise UserError('%s: %s must be a%s string, not %r' % (
            where, key, ' path' if action.dest in PATH_KEYS else '', value))
    if action.choices and value not in action.choices:
        raise UserError('%s: %s must be one of %s, not %r' % (where, key, ', '.join(action.choices), value))
    return value


def checked_options(mapping, options, where):
    """``{argparse dest: (key, value)}`` of one job's (or the defaults') mapping, each key and value checked;
    ``name`` is left to the caller."""
    if not isinstance(mapping, dict):
        raise UserError('%s must be a mapping of flag names to values, not %r' % (where, mapping))
    checked = {}
    for key, value in mapping.items():
        normal = str(key).replace('-', '_')
        if normal == 'name':
            continue
        if normal not in options:
            raise UserError('%s: unknown key %r%s (keys are prepare_dataset.py\'s flags without the dashes)'
                            % (where, key, did_you_mean(normal, sorted(options) + ['name'])))
        action = options[normal]
        if action.dest in checked:
            raise UserError('%s: %r and %r set the same flag %s; keep one' % (
                where, checked[action.dest][0], key, action.option_strings[0]))
        checked[action.dest] = (key, None if value is None else checked_value(action, key, value, where))
    return checked


def job_name(mapping, where):
    """The job's explicit ``name`` (checked), or None."""
    name = mapping.get('name') if isinstance(mapping, dict) else None
    if name is None:
        return None
    if isinstance(name, bool) or not isinstance(name, (str, int)) or not str(name).strip():
        raise UserError('%s: name must be a non-empty string, not %r' % (where, name))
    return str(name).strip()


def resolved_path(value, folder):
    """``value`` (``~`` expanded) joined to ``folder`` unless absolute, normalized (no ``..``)."""
    return os.path.abspath(os.path.join(folder, os.path.expanduser(value)))


def resolved_class_names(value, folder):
    """A ``class_names`` string: a path relative to ``folder`` when it names a file there or looks like one
    (an extension, no comma), else the comma-separated names unchanged."""
    path = resolved_path(value, folder)
    if os.path.isfile(path) or (',' not in value and os.path.splitext(value)[1]):
        return path
    return value


def job_argv(values, options_by_dest, folder, num_thread):
    """prepare_dataset's command line for one job's checked ``{dest: value}`` (None values left out); relative
    paths resolved against ``folder``; ``--num-thread num_thread`` added when the job packs and sets none."""
    values = dict(values)
    for dest in PATH_KEYS:
        if values.get(dest) is not None:
            values[dest] = resolved_path(values[dest], folder)
    if values.get('class_names') is not None:
        values['class_names'] = resolved_class_names(values['class_names'], folder)
    if values.get('num_thread') is None and values.get('pack') is not False:
        values['num_thread'] = num_thread
    argv = []
    for dest, value in values.items():
        action = options_by_dest[dest]
        flag = action.option_strings[0]
        if value is None or (value is False and not isinstance(action, argparse.BooleanOptionalAction)):
            continue
        if is_switch(action):
            argv.append(flag if value else '--no-' + flag[2:])
        else:
            argv.append('%s=%s' % (flag, value))   # --flag=value: a value starting with '-' stays a value
    return argv


def default_max_procs(num_jobs):
    """``--max-procs`` when not given: the smallest of :data:`DEFAULT_MAX_PROCS`, the cores and the jobs."""
    return max(1, min(DEFAULT_MAX_PROCS, available_cores(), num_jobs))


def load_jobs(path, max_procs=None):
    """Read and check a jobs file; returns ``(jobs, max_procs)``, the :class:`Job` list and the processes to
    run at once. Raises a one-line :class:`UserError` naming the file and the job at the first problem.

    Parameters
    ----------
    path : str
        The jobs YAML file (see the module docstring).
    max_procs : int, optional
        ``--max-procs``; default :func:`default_max_procs`. Jobs that set no ``num_thread`` get
        ``max(1, cores // min(max_procs, jobs))`` packing threads.
    """
    from tools.prepare_dataset import build_parser
    data = read_jobs_file(path)
    entries, defaults = top_level_parts(data, path)
    max_procs = min(max_procs or default_max_procs(len(entries)), len(entries))
    options = job_options(build_parser())
    if 'name' in defaults:
        raise UserError('jobs file %s, defaults: name is per job; give each job its own' % path)
    defaults = checked_options(defaults, options, 'jobs file %s, defaults:' % path)
    context = dict(options=options, defaults=defaults, folder=os.path.dirname(os.path.abspath(path)),
                   num_thread=max(1, available_cores() // max_procs))
    jobs = [job_of_entry(entry, number, 'jobs file %s, job %d' % (path, number), **context)
            for number, entry in enumerate(entries, 1)]
    check_unique(jobs, path)
    return jobs, max_procs


def job_of_entry(entry, number, where, options, defaults, folder, num_thread):
    """The checked :class:`Job` of the ``number``-th entry of the file's ``jobs:`` list.

    Parameters
    ----------
    entry : dict
        The job's mapping as read.
    where : str
        ``jobs file <path>, job <number>``, the start of every error.
    options : dict
        :func:`job_options`.
    defaults : dict
        The file's checked ``defaults:`` (:func:`checked_options`).
    folder : str
        The jobs file's folder, for relative paths.
    num_thread : int
        Packing threads of a job that sets none.
    """
    from tools.prepare_dataset import SINGLE_JOB_REQUIRED
    name = job_name(entry, where)
    where += ' (%s)' % name if name else ''
    values = {dest: value for dest, (_, value) in dict(defaults, **checked_options(entry, options, where)).items()}
    options_by_dest = {action.dest: action for action in options.values()}
    missing = [options_by_dest[dest].option_strings[0][2:] for dest in SINGLE_JOB_REQUIRED if values.get(dest) is None]
    if missing:
        raise UserError('%s: missing %s (each job needs dataset, set, root and target, in it or under defaults:)'
                        % (where, ', '.join(missing)))
    argv = job_argv(values, options_by_dest, folder, num_thread)
    return checked_job(number, name or os.path.splitext(values['target'])[0], argv, where)


def top_level_parts(data, path):
    """``(jobs list, defaults mapping)`` of the file's top level, checked."""
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise UserError('jobs file %s: unknown top-level key %r%s (a file holds "jobs:" and optionally '
                        '"defaults:")' % (path, unknown[0], did_you_mean(unknown[0], TOP_LEVEL_KEYS)))
    entries, defaults = data.get('jobs'), data.get('defaults') or {}
    if not isinstance(entries, list) or not entries:
        raise UserError('jobs file %s needs a non-empty "jobs:" list of mappings, one per conversion' % path)
    if not isinstance(defaults, dict):
        raise UserError('jobs file %s: defaults: must be a mapping of flag names to values' % path)
    return entries, defaults


def checked_job(number, name, argv, where):
    """The :class:`Job` once prepare_dataset's own parser and :func:`check_args` accept its command line."""
    from tools.prepare_dataset import check_args, parse_args
    try:
        args = parse_args(argv, parser_class=RaisingParser)
        check_args(args)
    except UserError as err:
        raise UserError('%s: %s' % (where, err)) from None
    return Job(number, name, argv, args.target, os.path.splitext(args.target)[0] + LOG_SUFFIX)


def check_unique(jobs, path):
    """No two jobs may write one target, or share a name (the table would not tell them apart)."""
    seen_targets, seen_names = {}, {}
    for job in jobs:
        target = os.path.normcase(os.path.realpath(job.target))
        if target in seen_targets:
            raise UserError('jobs file %s: jobs %d and %d both write %s; give each job its own target'
                            % (path, seen_targets[target], job.number, job.target))
        if job.name in seen_names:
            raise UserError('jobs file %s: jobs %d and %d are both named %r; give each its own name'
                            % (path, seen_names[job.name], job.number, job.name))
        seen_targets[target], seen_names[job.name] = job.number, job.number


# --- one job, in its own process ---------------------------------------------------------------------------------
class ChildReporter:
    """What a job's process tells the parent through its own pipe: its image count once listed, then the images
    packed (batched by the packers, tools/im2rec.py)."""

    def __init__(self, connection):
        self.connection = connection

    def __call__(self, count):
        self.connection.send(('packed', count))

    def listed(self, count):
        self.connection.send(('listed', count))


def redirect_output(log_path):
    """Send this process's stdout and stderr (file descriptors 1 and 2, so C-level output too) to
    ``log_path``, rewritten."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    log = open(log_path, 'w', buffering=1, encoding='utf-8')
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log


def one_line(text):
    return ' '.join(str(text).split())


def job_outcome(status, start, error=None, **counts):
    """The result a child sends: status, error, images, parts, bytes, seconds."""
    outcome = dict(status=status, error=error, images=None, parts=None, bytes=None)
    outcome.update(counts, seconds=time.perf_counter() - start)
    return outcome


def packed_counts(args, imdb):
    """``images``, ``parts`` and ``bytes`` a finished job wrote (no parts or bytes with ``pack: false``)."""
    from tools.shards import manifest_path, read_manifest
    stem = os.path.splitext(args.target)[0]
    if not args.pack:
        return dict(images=imdb.num_images, parts=None, bytes=None)
    if args.num_parts:
        manifest = read_manifest(manifest_path(stem)) or {}
        return dict(images=manifest.get('records'), parts=manifest.get('num_parts'), bytes=manifest.get('bytes'))
    return dict(images=imdb.num_images, parts=1, bytes=os.path.getsize(stem + '.rec'))


def run_job(job, reporter):
    """Run one job in this process; its outcome (an error becomes a failed outcome, written to the log)."""
    from tools.prepare_dataset import main, parse_args
    start = time.perf_counter()
    try:
        print('$ python tools/prepare_dataset.py %s' % ' '.join(shlex.quote(arg) for arg in job.argv), flush=True)
        args = parse_args(job.argv, parser_class=RaisingParser)
        imdb = main(args, progress=reporter, listed=reporter.listed)
        return job_outcome('ok', start, **packed_counts(args, imdb))
    except UserError as err:
        print('error: %s' % one_line(err), file=sys.stderr)
        return job_outcome('failed', start, one_line(err))
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return job_outcome('interrupted', start)
    except (Exception, SystemExit) as err:
        traceback.print_exc()
        last_line = one_line(''.join(traceback.format_exception_only(type(err), err)))
        return job_outcome('failed', start, '%s (traceback in %s)' % (last_line, job.log))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def child_main(job, connection):
    """The entry of a job's process: output to the job's log, messages and the outcome to the parent through
    ``connection`` (the write end of the job's pipe; its end of file tells the parent that the job ended)."""
    start = time.perf_counter()
    tqdm.set_lock(threading.RLock())   # not tqdm's default multiprocessing lock: a killed job would leak it
    try:
        redirect_output(job.log)
    except OSError as err:
        outcome = job_outcome('failed', start, 'cannot write the log %s: %s' % (job.log, err.strerror or err))
    else:
        outcome = run_job(job, ChildReporter(connection))
    connection.send(('done', outcome))
    connection.close()


# --- the parent: processes, the bar, the table -------------------------------------------------------------------
class OverallProgress:
    """One tqdm bar (img, images/s, ETA) over all jobs: each job's images join the total once it has listed
    them; a job that ends early takes its unpacked rest off the total, a finished one fills its rest in."""

    def __init__(self, num_jobs):
        self.num_jobs, self.done = num_jobs, 0
        self.listed, self.packed = {}, collections.Counter()
        self.bar = tqdm(total=0, unit='img', desc=self.description(), file=sys.stderr, dynamic_ncols=True,
                        smoothing=0.1)

    def description(self):
        return 'jobs %d/%d done' % (self.done, self.num_jobs)

    def job_listed(self, number, count):
        self.listed[number] = count
        self.bar.total += count
        self.bar.refresh()

    def job_packed(self, number, count):
        self.packed[number] += count
        self.bar.update(count)

    def job_finished(self, number, succeeded):
        rest = self.listed.get(number, 0) - self.packed[number]
        if rest > 0 and succeeded:
            self.bar.update(rest)
        elif rest > 0:
            self.bar.total -= rest
        self.done += 1
        self.bar.set_description_str(self.description())

    def close(self):
        self.bar.close()


class JobPool:
    """Runs :class:`Job` s in 'spawn' processes, at most ``max_procs`` at a time, collecting their outcomes; each
    child has its own pipe (so a killed child cannot garble another's messages, and its pipe's end of file says
    at once that it ended)."""

    def __init__(self, jobs, max_procs):
        self.context = multiprocessing.get_context('spawn')
        self.waiting = collections.deque(jobs)
        self.jobs = {job.number: job for job in jobs}
        self.max_procs = max_procs
        self.running, self.outcomes = {}, {}          # number -> (process, read end of its pipe); -> outcome
        self.stopping = False                          # after Ctrl-C
        self.progress = OverallProgress(len(jobs))

    def run(self):
        """Run every job; returns ``{job number: outcome}``. Ctrl-C stops the children, records the rest as
        interrupted or not started, and raises KeyboardInterrupt once they are gone."""
        try:
            while self.waiting or self.running:
                self.start_waiting()
                self.wait_for_messages()
        except KeyboardInterrupt:
            self.stop_all()
            raise
        finally:
            self.progress.close()
        return self.outcomes

    def start_waiting(self):
        while self.waiting and len(self.running) < self.max_procs:
            job = self.waiting.popleft()
            reader, writer = self.context.Pipe(duplex=False)
            process = self.context.Process(target=child_main, args=(job, writer), name='prepare-%d' % job.number)
            process.start()
            writer.close()                              # the child's copy stays open until it ends
            self.running[job.number] = (process, reader)

    def wait_for_messages(self, timeout=POLL_SECONDS):
        """Handle one message from each child that sends within ``timeout``; reap those whose pipe closed."""
        readers = {reader: number for number, (_, reader) in self.running.items()}
        for reader in multiprocessing.connection.wait(list(readers), timeout):
            number = readers[reader]
            try:
                kind, value = reader.recv()
            except Exception:   # EOFError: the child ended; anything else: a message cut by Ctrl-C here
                self.reap(number)
                continue
            self.handle(kind, number, value)

    def handle(self, kind, number, value):
        if kind == 'listed':
            self.progress.job_listed(number, value)
        elif kind == 'packed':
            self.progress.job_packed(number, value)
        elif kind == 'done':
            self.finish(number, value)

    def finish(self, number, outcome):
        self.outcomes[number] = outcome
        if outcome['status'] != 'interrupted':   # the bar stays where Ctrl-C left it
            self.progress.job_finished(number, outcome['status'] == 'ok')
        tqdm.write(finished_line(self.jobs[number], outcome), file=sys.stdout)

    def reap(self, number):
        """Join a child whose pipe closed; one that ended without its outcome (killed, crashed) has failed."""
        process, reader = self.running.pop(number)
        reader.close()
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join()
        if number not in self.outcomes and self.stopping:
            self.finish(number, dict(status='interrupted', error=None, images=None, parts=None, bytes=None,
                                     seconds=None))
        elif number not in self.outcomes:
            self.finish(number, dict(status='failed', error=died_message(process.exitcode, self.jobs[number]),
                                     images=None, parts=None, bytes=None, seconds=None))

    def stop_all(self):
        """After Ctrl-C: the children (which had the terminal's SIGINT too) get a moment to stop cleanly, then a
        SIGINT of their own, then SIGTERM; the jobs not started are recorded as such."""
        self.stopping = True
        for job in self.waiting:
            self.outcomes[job.number] = dict(status='not started', error=None, images=None, parts=None,
                                             bytes=None, seconds=None)
        self.waiting.clear()
        try:
            self.wait_until_stopped(STOP_GRACE_SECONDS)
            for process, _ in self.running.values():
                if process.is_alive():
                    os.kill(process.pid, signal.SIGINT)
            self.wait_until_stopped(STOP_SECONDS)
        except KeyboardInterrupt:
            pass
        for number, (process, reader) in list(self.running.items()):
            if process.is_alive():
                process.terminate()
            process.join(5)
            reader.close()
            self.outcomes.setdefault(number, dict(status='interrupted', error=None, images=None, parts=None,
                                                  bytes=None, seconds=None))
        self.running.clear()

    def wait_until_stopped(self, seconds):
        deadline = time.monotonic() + seconds
        while self.running and time.monotonic() < deadline:
            self.wait_for_messages()


def died_message(exitcode, job):
    """The error of a job whose process ended without an outcome."""
    if exitcode is not None and exitcode < 0:
        how = 'was killed by signal %d' % -exitcode
    else:
        how = 'ended with exit status %s' % exitcode
    return 'its process %s before it finished; its output is in %s' % (how, job.log)


def finished_line(job, outcome):
    """``job 2/4 voc07-test: ok, 4952 images in 31.0 s`` (or its error), printed as each job ends."""
    if outcome['status'] == 'ok':
        return 'job %d %s: ok, %s images in %.1f s' % (job.number, job.name, outcome['images'], outcome['seconds'])
    return 'job %d %s: %s%s' % (job.number, job.name, outcome['status'],
                                ': %s' % outcome['error'] if outcome['error'] else '')


TABLE_COLUMNS = ('job', 'status', 'images', 'parts', 'MB', 'seconds', 'img/s', 'error')


def table_row(job, outcome):
    """One row of :func:`summary_table` (``-`` where a number is unknown)."""
    images, seconds = outcome.get('images'), outcome.get('seconds')
    megabytes = outcome.get('bytes')
    return [job.name, outcome['status'], '-' if images is None else '%d' % images,
            '-' if outcome.get('parts') is None else '%d' % outcome['parts'],
            '-' if megabytes is None else '%.1f' % (megabytes / 1e6),
            '-' if seconds is None else '%.1f' % seconds,
            '%.0f' % (images / seconds) if images is not None and seconds else '-',
            outcome.get('error') or '']


def summary_table(jobs, outcomes):
    """The per-job table printed at the end, one row per job in file order; numbers right-aligned, the error
    (one line) last."""
    rows = [list(TABLE_COLUMNS)] + [table_row(job, outcomes[job.number]) for job in jobs]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) if column < 2 else cell.rjust(width)
                 for column, (cell, width) in enumerate(zip(row, widths))]
        lines.append('  '.join(cells + [row[-1]]).rstrip())
    return '\n'.join(lines)


def run_jobs_file(path, max_procs=None):
    """``--jobs``: check the whole file, run the jobs, print the table; returns ``{job number: outcome}``.

    Raises
    ------
    JobsFailed
        When a job did not succeed (exit status 1); a problem in the file is a :class:`UserError` before any
        job starts.
    KeyboardInterrupt
        On Ctrl-C, after the children stopped and the table was printed.
    """
    jobs, max_procs = load_jobs(path, max_procs)
    print('%d jobs from %s, %d at a time; each job\'s output goes to the .log next to its target'
          % (len(jobs), path, max_procs), flush=True)
    pool = JobPool(jobs, max_procs)
    try:
        outcomes = pool.run()
    except KeyboardInterrupt:
        print(summary_table(jobs, pool.outcomes))
        raise
    print(summary_table(jobs, outcomes))
    failed = [job.name for job in jobs if outcomes[job.number]['status'] != 'ok']
    if failed:
        raise JobsFailed('%d of %d jobs failed (%s), each with its error in the table above and its output in the '
                         '.log next to its target; fix them and run the same command again'
                         % (len(failed), len(jobs), ', '.join(failed)))
    return outcomes
