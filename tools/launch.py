"""``tools/launch.py -n 2 [-s 1] -- python train.py ...``: start an MXNet parameter-server group and watch it.

A ``dist_sync``/``dist_async`` kvstore needs one scheduler, ``-s`` servers and ``-n`` workers, each told its
role through the DMLC environment (``DMLC_ROLE``, ``DMLC_PS_ROOT_URI``/``DMLC_PS_ROOT_PORT``: the scheduler's
address, ``DMLC_NUM_SERVER``, ``DMLC_NUM_WORKER``). The scheduler and the servers are ``<python> -c "import
mxnet"``: importing mxnet with ``DMLC_ROLE=server`` or ``scheduler`` runs ps-lite's loop, which returns when the
workers finish. The workers run the given command; each also gets ``SSD_WORKER_RANK`` (its launch index, 0 to
n-1: the trainer's rank; ps-lite's own ``kv.rank`` follows the order in which the workers register with the
scheduler and is not the launch index) and ``SSD_NUM_WORKERS``. ``OMP_NUM_THREADS``, when not set here, is
``max(1, cores // workers on that host)`` for a worker and 1 for the scheduler and the servers; every process
gets ``PYTHONUNBUFFERED=1`` (unless set here) so that its lines arrive as they are printed.

``--launcher local`` (the default) runs everything on this machine over 127.0.0.1 (``DMLC_NODE_HOST`` too).
``--launcher ssh -H hostfile`` runs the scheduler here and worker i on host ``i % len(hosts)``, server j on host
``j % len(hosts)``, each through ``ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new [-p port] host
'cd DIR && env NAME=VALUE ... command'`` (``--chdir DIR``, default this directory; the forwarded variables are
the ones above, every ``--env NAME[=VALUE]``, and the ``MXNET_*``, ``PS_*`` and ``PYTHONPATH`` set here). The
hostfile has one ``host``, ``user@host`` or ``host:sshport`` a line (``#`` comments). Killing an ssh client
does not stop its remote command (there is no tty), so the remote shell runs the command in the background
and sends it SIGTERM, then SIGKILL after ``--stop-grace`` seconds, when its stdin (a pipe held open here)
reaches end of file: closing that pipe, or the connection dropping, stops the remote process.

Every line a process prints (stdout and stderr merged) is copied to this stdout with a prefix: ``[worker 0]``,
``[server 0]``, ``[scheduler]``. Each process runs in its own session, so only this launcher signals it:

- all workers exit 0: the scheduler and servers get ``--stop-grace`` seconds to exit by themselves, then are
  stopped; exit status 0;
- a process exits non-zero or is killed, or the scheduler/a server ends while workers still run (after a
  grace: it may end a moment before the last worker): one line names it, the others get SIGTERM and, still
  running ``--stop-grace`` seconds later, SIGKILL (a worker blocked in a ps-lite push/pull never returns by
  itself, and the trainer's SIGTERM handler waits for its batch to end);
- Ctrl-C or SIGTERM to the launcher: SIGINT to every process; once the workers ended (or ``--stop-grace``
  seconds later) SIGTERM to those left, then SIGKILL after ``--stop-grace`` seconds; a second Ctrl-C sends
  SIGKILL at once.

Exit statuses: 0 all workers succeeded; 2 bad arguments (one ``error:`` line, nothing started); 9 the scheduler
or a server failed; 10 + k worker k failed first (capped at 109); 130 interrupted. ``--dry-run`` prints each
process's host, role and exact command line and starts nothing. Python use: :func:`launch` (returns the exit
status) and :func:`free_port`.
"""
import argparse
import collections
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from config.errors import UserError, run_cli
from config.runtime import available_cores

DEFAULT_PORT = 9091
DEFAULT_STOP_GRACE = 10.0       # seconds between SIGTERM and SIGKILL (and the group's wait after the workers)
LOOPBACK = '127.0.0.1'
LOCAL_HOST_NAME = 'localhost'   # the host column of --dry-run for processes on this machine
SERVER_CODE = 'import mxnet'
REMOTE_PYTHON = 'python3'       # remote scheduler/server interpreter when the command does not start with one
PYTHON_NAME = re.compile(r'python[0-9.]*$')
SSH_OPTIONS = ('-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new')
FORWARDED_PREFIXES = ('MXNET_', 'PS_')
FORWARDED_NAMES = ('PYTHONPATH',)
GROUP_NAMES = ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER', 'DMLC_NUM_WORKER',
               'SSD_WORKER_RANK', 'SSD_NUM_WORKERS')   # set per process from the flags; --env may not set them
ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*$')
HOST_LINE = re.compile(r'(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+)(?::(?P<port>[0-9]+))?$')
POLL_SECONDS = 0.1
REAP_SECONDS = 5.0              # the longest wait for a SIGKILLed process to be reaped
READER_JOIN_SECONDS = 2.0       # the longest wait for a process's last output lines after it ended

STATUS_OK = 0
STATUS_BAD_ARGUMENTS = 2
STATUS_GROUP_FAILED = 9
STATUS_WORKER_BASE = 10
STATUS_WORKER_MAX = 109
STATUS_INTERRUPTED = 130

EPILOG = ('exit status: 0 all workers succeeded; 2 bad arguments; 9 the scheduler or a server failed; 10 + k '
          'worker k failed first (at most 109); 130 interrupted (Ctrl-C or SIGTERM)')

Host = collections.namedtuple('Host', 'name user port')   # user and port: None when the line has none
Planned = collections.namedtuple('Planned', 'label role index host argv variables cwd remote')
"""One process to start: ``label`` (``worker 0``), ``role``, ``index`` (0 for the scheduler), ``host`` (shown by
--dry-run), ``argv`` (what runs here: the command, or the ssh client), ``variables`` (the environment this
launcher sets for it), ``cwd`` (a local process's folder, or None) and ``remote`` (started through ssh)."""


class RaisingParser(argparse.ArgumentParser):
    """An argparse parser whose errors are a :class:`UserError` instead of a usage text and ``exit(2)``."""

    def error(self, message):
        raise UserError(message)


# --- the plan: which process runs where, with what --------------------------------------------------------------
def free_port(host=LOOPBACK):
    """A TCP port nothing listens on at ``host`` now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port_free(host, port):
    """A UserError when the scheduler could not listen on ``host:port`` (in use, or not this machine's address);
    ps-lite would only say ``bind failed``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as ZeroMQ does: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError('the scheduler cannot listen on %s:%d (%s); pass another --port%s' % (
                host, port, err.strerror or err, '' if host == LOOPBACK else ' or --host-ip')) from None


def parse_host_line(text, path, number):
    """The :class:`Host` of one hostfile line (comment and blanks already removed)."""
    match = HOST_LINE.match(text)
    port = match and match.group('port')
    if not match or (port is not None and not 1 <= int(port) <= 65535):
        raise UserError('hostfile %s, line %d: %r is not host, user@host or host:sshport (port 1-65535)'
                        % (path, number, text))
    return Host(match.group('host'), match.group('user'), int(port) if port else None)


def read_hostfile(path):
    """The hosts of ``path``, in order: one ``host``, ``user@host`` or ``host:sshport`` a line; ``#`` starts a
    comment, blank lines are skipped. A missing, unreadable or empty file or a bad line is a UserError."""
    try:
        with open(path, encoding='utf-8') as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise UserError('hostfile %s does not exist' % path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError('hostfile %s cannot be read: %s' % (path, getattr(err, 'strerror', None) or err)) from None
    hosts = [parse_host_line(line.split('#', 1)[0].strip(), path, number)
             for number, line in enumerate(lines, 1) if line.split('#', 1)[0].strip()]
    if not hosts:
        raise UserError('hostfile %s lists no hosts (one host, user@host or host:sshport a line)' % path)
    return hosts


def ssh_target(host):
    return host.name if host.user is None else '%s@%s' % (host.user, host.name)


def default_host_ip(hosts):
    """This machine's address as ``hosts[0]`` would reach it: the source address of a UDP socket "connected" to
    it (nothing is sent); else the address of this machine's name."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((hosts[0].name, hosts[0].port or 22))
            return probe.getsockname()[0]
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        raise UserError('cannot find the address by which the hosts reach this machine; pass --host-ip') from None


def looks_like_python(word):
    return bool(PYTHON_NAME.match(os.path.basename(word)))


def omp_threads(cores, workers_here):
    """``OMP_NUM_THREADS`` of a worker sharing ``cores`` with ``workers_here`` workers."""
    return max(1, cores // max(1, workers_here))


def split_env_item(item):
    """``(name, value)`` of ``NAME=VALUE``; ``(name, None)`` of ``NAME``."""
    name, equals, value = item.partition('=')
    return name, value if equals else None


def env_overrides(env, environ):
    """``{name: value}`` of ``--env`` items: ``NAME=VALUE``, or ``NAME`` for its value in ``environ``; ``env``
    may also be a mapping (a None value: from ``environ``)."""
    items = env.items() if isinstance(env, dict) else [split_env_item(item) for item in env or ()]
    overrides = {}
    for name, value in items:
        if not name:
            raise UserError('--env needs a name: NAME=VALUE, or NAME to pass on its value here')
        if not ENV_NAME.match(name):
            raise UserError('--env %s: %r is not a variable name (letters, digits, _)' % (name, name))
        if name in GROUP_NAMES:
            raise UserError('--env %s: the launcher sets %s for each process (use -n, -s, --port, --host-ip)'
                            % (name, name))
        if value is None and name not in environ:
            raise UserError('--env %s: %s is not set here; give its value as --env %s=VALUE' % (name, name, name))
        overrides[name] = environ[name] if value is None else value
    return overrides


def forwarded_variables(environ):
    """The ``MXNET_*``, ``PS_*`` and ``PYTHONPATH`` variables set here, which ssh processes get too."""
    return {name: environ[name] for name in sorted(environ)
            if name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES}


def group_variables(role, root_uri, port, num_servers, num_workers):
    """The DMLC variables every process of the group gets (``role``: scheduler, server or worker)."""
    return {'DMLC_ROLE': role, 'DMLC_PS_ROOT_URI': root_uri, 'DMLC_PS_ROOT_PORT': str(port),
            'DMLC_NUM_SERVER': str(num_servers), 'DMLC_NUM_WORKER': str(num_workers)}


def process_variables(role, index, threads, group, environ, extra):
    """The environment this launcher sets for one process: ``group`` (DMLC), then a worker's
    ``SSD_WORKER_RANK``/``SSD_NUM_WORKERS``, ``OMP_NUM_THREADS`` (``threads`` unless set here; None: left to
    the remote host), ``PYTHONUNBUFFERED`` and ``extra`` (forwarded and ``--env`` variables, last: they win)."""
    variables = dict(group)
    variables['DMLC_ROLE'] = role
    if role == 'worker':
        variables.update(SSD_WORKER_RANK=str(index), SSD_NUM_WORKERS=group['DMLC_NUM_WORKER'])
    if 'OMP_NUM_THREADS' in environ or threads is not None:
        variables['OMP_NUM_THREADS'] = environ.get('OMP_NUM_THREADS', str(threads))
    variables['PYTHONUNBUFFERED'] = environ.get('PYTHONUNBUFFERED', '1')
    variables.update(extra)
    return variables


def label_of(role, index):
    return 'scheduler' if role == 'scheduler' else '%s %d' % (role, index)


def roles(num_workers, num_servers):
    """``(role, index)`` of every process, in start order: the scheduler, the servers, the workers."""
    return ([('scheduler', 0)] + [('server', index) for index in range(num_servers)]
            + [('worker', index) for index in range(num_workers)])


def plan_local(command, num_workers, num_servers, port, environ, overrides, chdir):
    """The :class:`Planned` processes of ``--launcher local``: all here, over 127.0.0.1."""
    group = group_variables(None, LOOPBACK, port, num_servers, num_workers)
    group['DMLC_NODE_HOST'] = LOOPBACK
    python = command[0] if looks_like_python(command[0]) else sys.executable
    worker_threads = omp_threads(available_cores(), num_workers)
    planned = []
    for role, index in roles(num_workers, num_servers):
        threads = worker_threads if role == 'worker' else 1
        argv = list(command) if role == 'worker' else [python, '-c', SERVER_CODE]
        planned.append(Planned(label_of(role, index), role, index, LOCAL_HOST_NAME, argv,
                               process_variables(role, index, threads, group, environ, overrides), chdir, False))
    return planned


def remote_wrapper(grace, threads_divisor):
    """The ``sh -c`` script that runs ``"$@"`` on a remote host and stops it when its stdin (the ssh channel)
    ends: SIGTERM, then SIGKILL ``grace`` seconds later. ``threads_divisor``: when not None and the remote
    environment has no ``OMP_NUM_THREADS``, it becomes ``max(1, cores there // threads_divisor)``."""
    threads = ''
    if threads_divisor is not None:
        threads = ('if [ -z "${OMP_NUM_THREADS:-}" ]; then t=$(( $(nproc 2>/dev/null || echo 1) / %d )); '
                   '[ "$t" -ge 1 ] || t=1; OMP_NUM_THREADS=$t; export OMP_NUM_THREADS; fi; ' % threads_divisor)
    return ('exec 3<&0 </dev/null; %s"$@" 3<&- & pid=$!; '
            '{ while read -r _; do :; done <&3; kill -TERM $pid; sleep %s; kill -KILL $pid; } >/dev/null 2>&1 & '
            'watcher=$!; exec 3<&-; wait $pid; status=$?; kill $watcher 2>/dev/null; exit $status'
            % (threads, format_seconds(grace)))


def format_seconds(seconds):
    return ('%.3f' % seconds).rstrip('0').rstrip('.')


def remote_shell_command(argv, variables, chdir, grace, threads_divisor=None):
    """What the remote login shell runs: ``cd DIR && exec sh -c WRAPPER launch env NAME=VALUE ... argv``,
    every word shell-quoted."""
    words = ['env'] + ['%s=%s' % item for item in variables.items()] + list(argv)
    return 'cd %s && exec sh -c %s ssd-launch %s' % (
        shlex.quote(chdir), shlex.quote(remote_wrapper(grace, threads_divisor)), shlex.join(words))


def ssh_argv(ssh_command, host, remote_command):
    """The local ssh client's command line for one remote process."""
    port = ['-p', str(host.port)] if host.port is not None else []
    return shlex.split(ssh_command) + list(SSH_OPTIONS) + port + [ssh_target(host), remote_command]


def plan_ssh(command, num_workers, num_servers, port, environ, overrides, chdir, hosts, host_ip, ssh_command,
             stop_grace):
    """The :class:`Planned` processes of ``--launcher ssh``: the scheduler here, servers and workers
    round-robin over ``hosts`` through ``ssh_command``."""
    group = group_variables(None, host_ip, port, num_servers, num_workers)
    extra = dict(forwarded_variables(environ), **overrides)
    python = command[0] if looks_like_python(command[0]) else REMOTE_PYTHON
    workers_on = collections.Counter(index % len(hosts) for index in range(num_workers))
    planned = [Planned('scheduler', 'scheduler', 0, LOCAL_HOST_NAME, [sys.executable, '-c', SERVER_CODE],
                       process_variables('scheduler', 0, 1, group, environ, overrides), None, False)]
    for role, index in roles(num_workers, num_servers)[1:]:
        host = hosts[index % len(hosts)]
        argv = list(command) if role == 'worker' else [python, '-c', SERVER_CODE]
        variables = process_variables(role, index, None if role == 'worker' else 1, group, environ, extra)
        divisor = workers_on[index % len(hosts)] if role == 'worker' and 'OMP_NUM_THREADS' not in variables \
            else None
        remote = remote_shell_command(argv, variables, chdir, stop_grace, divisor)
        planned.append(Planned(label_of(role, index), role, index, ssh_target(host),
                               ssh_argv(ssh_command, host, remote), variables, None, True))
    return planned


def check_counts(num_workers, num_servers, port, stop_grace):
    if num_workers < 1:
        raise UserError('-n/--num-workers must be at least 1, not %d' % num_workers)
    if num_servers < 1:
        raise UserError('-s/--num-servers must be at least 1, not %d' % num_servers)
    if not 1 <= port <= 65535:
        raise UserError('--port must be between 1 and 65535, not %d' % port)
    if stop_grace < 0:
        raise UserError('--stop-grace must be 0 or more seconds, not %s' % stop_grace)


def check_local_command(command, chdir):
    """A UserError when the worker command cannot be found here (before anything starts)."""
    word = command[0]
    found = (os.access(os.path.join(chdir or '', word), os.X_OK) if os.sep in word else shutil.which(word))
    if not found:
        raise UserError('the command %r is not an executable file or on PATH%s' % (
            word, ' (relative to --chdir %s)' % chdir if chdir and os.sep in word else ''))


def plan(command, num_workers, num_servers=1, launcher='local', hostfile=None, port=DEFAULT_PORT, host_ip=None,
         env=None, chdir=None, ssh_command='ssh', stop_grace=DEFAULT_STOP_GRACE, environ=None):
    """Check the arguments and return the :class:`Planned` processes (see :func:`launch` for the parameters;
    ``environ``: the environment to read, default ``os.environ``). Raises a one-line :class:`UserError`."""
    environ = os.environ if environ is None else environ
    command = list(command or [])
    if not command:
        raise UserError('no command to run: give it after the options, e.g. -n 2 -- python train.py ...')
    check_counts(num_workers, num_servers, port, stop_grace)
    overrides = env_overrides(env, environ)
    if launcher == 'local':
        if hostfile is not None:
            raise UserError('-H/--hostfile is for --launcher ssh; add --launcher ssh or leave -H out')
        if host_ip is not None:
            raise UserError('--host-ip is for --launcher ssh; the local launcher uses %s' % LOOPBACK)
        if chdir is not None and not os.path.isdir(chdir):
            raise UserError('--chdir %s is not a folder' % chdir)
        check_local_command(command, chdir)
        return plan_local(command, num_workers, num_servers, port, environ, overrides, chdir)
    if launcher != 'ssh':
        raise UserError('--launcher must be local or ssh, not %r' % launcher)
    if hostfile is None:
        raise UserError('--launcher ssh needs -H/--hostfile: a file with one host, user@host or host:port a line')
    hosts = read_hostfile(hostfile)
    if not shlex.split(ssh_command or ''):
        raise UserError('--ssh-command is empty')
    return plan_ssh(command, num_workers, num_servers, port, environ, overrides, chdir or os.getcwd(), hosts,
                    host_ip or default_host_ip(hosts), ssh_command, stop_grace)


def command_line(planned):
    """The exact command line of a planned process, shell-quoted: the ssh command, or ``[cd DIR &&] env
    NAME=VALUE ... command`` for a local one."""
    if planned.remote:
        return shlex.join(planned.argv)
    line = shlex.join(['env'] + ['%s=%s' % item for item in planned.variables.items()] + planned.argv)
    return 'cd %s && %s' % (shlex.quote(planned.cwd), line) if planned.cwd else line


def dry_run_lines(planned):
    """``<label> on <host>: <command line>``, one per process."""
    return ['%s on %s: %s' % (process.label, process.host, command_line(process)) for process in planned]


# --- running: children, their output, supervision ---------------------------------------------------------------
class LineWriter:
    """Writes whole prefixed lines from several reader threads to one text stream, flushed; a closed stream
    (``| head``) is ignored so that the children never block on a full pipe."""

    def __init__(self, stream):
        self.stream, self.lock = stream, threading.Lock()

    def write(self, prefix, data):
        text = data.decode('utf-8', errors='replace').rstrip('\r\n')
        with self.lock:
            try:
                self.stream.write('%s%s\n' % (prefix, text))
                self.stream.flush()
            except (OSError, ValueError):
                pass


class Child:
    """One started process: its :class:`Planned`, Popen, output reader and exit status."""

    def __init__(self, planned, popen, writer):
        self.planned, self.popen, self.status = planned, popen, None
        self.reader = threading.Thread(target=self.copy_output, args=(writer,), daemon=True,
                                       name='launch-' + planned.label.replace(' ', '-'))
        self.reader.start()

    @property
    def label(self):
        return self.planned.label

    @property
    def role(self):
        return self.planned.role

    def copy_output(self, writer):
        prefix = '[%s] ' % self.label
        for line in iter(self.popen.stdout.readline, b''):
            writer.write(prefix, line)
        self.popen.stdout.close()

    def poll(self):
        if self.status is None:
            self.status = self.popen.poll()
        return self.status

    def running(self):
        return self.poll() is None

    def signal(self, signum):
        """Send ``signum`` to the process's group; a remote process is stopped by closing its ssh stdin instead
        (its wrapper sends SIGTERM there), except for SIGKILL, which ends the local ssh client."""
        if self.planned.remote and signum != signal.SIGKILL:
            self.close_stdin()
            return
        try:
            os.killpg(self.popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def close_stdin(self):
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            try:
                self.popen.stdin.close()
            except OSError:
                pass

    def reap(self):
        """Wait (bounded) for the killed process and its last output."""
        try:
            self.popen.wait(REAP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        self.poll()
        self.close_stdin()
        self.reader.join(READER_JOIN_SECONDS)


def start_child(planned, writer, environ):
    """Start one :class:`Planned` process in its own session, its output piped to ``writer``."""
    remote = planned.remote
    env = dict(environ) if remote else dict(environ, **planned.variables)
    popen = subprocess.Popen(planned.argv, stdin=subprocess.PIPE if remote else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=planned.cwd,
                             start_new_session=True)
    return Child(planned, popen, writer)


def describe_status(status, remote=False):
    """``status -9 (killed by SIGKILL)``; for an ssh process 255 is ssh's own failure and 128 + n a signal."""
    text = 'status %d' % status
    if status < 0:
        return '%s (killed by %s)' % (text, signal_name(-status))
    if remote and status == 255:
        return text + ' (ssh failed to connect, or the command exited 255)'
    if remote and 128 < status < 128 + signal.NSIG:
        return '%s (killed by %s on its host)' % (text, signal_name(status - 128))
    return text


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return 'signal %d' % number


def failure_status(child):
    """The launcher's exit status when ``child`` failed first."""
    if child.role == 'worker':
        return min(STATUS_WORKER_BASE + child.planned.index, STATUS_WORKER_MAX)
    return STATUS_GROUP_FAILED


def say(message):
    print('launch: %s' % message, file=sys.stderr, flush=True)


class Interrupts:
    """Counts SIGINT/SIGTERM to the launcher while installed (main thread only) instead of raising."""

    def __init__(self):
        self.count, self.previous = 0, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum, frame):
        self.count += 1

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class Group:
    """The started processes and the rules that stop them (see the module docstring)."""

    def __init__(self, children, stop_grace, interrupts):
        self.children, self.stop_grace, self.interrupts = children, stop_grace, interrupts
        self.workers = [child for child in children if child.role == 'worker']
        self.others = [child for child in children if child.role != 'worker']

    def supervise(self):
        """Watch until the group is done; returns the exit status."""
        early_end = None    # (child, time) of a scheduler/server that exited 0 while workers still run
        while True:
            if self.interrupts.count:
                return self.interrupted()
            for child in self.children:
                child.poll()
            if all(worker.status == 0 for worker in self.workers):
                return self.finish()
            failed = next((child for child in self.children if child.status not in (None, 0)), None)
            if failed is not None:
                say('%s exited with %s; stopping the others' % (failed.label, describe_status(
                    failed.status, failed.planned.remote)))
                self.stop(signal.SIGTERM)
                return failure_status(failed)
            ended = next((child for child in self.others if child.status == 0), None)
            if ended is not None and early_end is None:
                early_end = (ended, time.monotonic())
            if early_end is not None and time.monotonic() - early_end[1] > self.stop_grace:
                running = ', '.join(worker.label for worker in self.workers if worker.running())
                say('%s exited while %s still ran; stopping the others' % (early_end[0].label, running))
                self.stop(signal.SIGTERM)
                return STATUS_GROUP_FAILED
            time.sleep(POLL_SECONDS)

    def interrupted(self):
        say('interrupted; stopping every process')
        self.stop(signal.SIGINT)
        return STATUS_INTERRUPTED

    def finish(self):
        """All workers succeeded: the scheduler and servers get the grace to end by themselves."""
        ended = self.wait(self.others, self.stop_grace, self.interrupts.count)
        if self.interrupts.count:
            return self.interrupted()
        if not ended:
            say('the workers finished but %s still ran after %s s; stopping it' % (
                ', '.join(child.label for child in self.others if child.running()), format_seconds(self.stop_grace)))
            self.stop(signal.SIGTERM)
        for child in self.others if ended else ():
            if child.status != 0:
                say('note: %s exited with %s after the workers finished' % (
                    child.label, describe_status(child.status, child.planned.remote)))
        self.stop(None)
        return STATUS_OK

    def wait(self, children, seconds, interrupts_seen=None):
        """Poll until ``children`` all ended (True) or ``seconds`` passed or a new interrupt came (False)."""
        deadline = time.monotonic() + seconds
        while any(child.running() for child in children):
            if time.monotonic() >= deadline:
                return False
            if interrupts_seen is not None and self.interrupts.count > interrupts_seen:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def stop(self, first_signal):
        """Stop the group: with ``first_signal`` SIGINT, SIGINT to every process and up to ``--stop-grace``
        seconds for the workers to end (the scheduler and servers cannot end before them); with SIGINT or
        SIGTERM, SIGTERM to every process still running and up to ``--stop-grace`` seconds for all to end; then
        (also with None) SIGKILL to every process group, finished ones too (their own children), and reap them.
        A new interrupt meanwhile skips to SIGKILL."""
        seen = self.interrupts.count
        if first_signal == signal.SIGINT:
            self.send(signal.SIGINT)
            self.wait(self.workers, self.stop_grace, seen)
        if first_signal is not None and self.interrupts.count == seen:
            self.send(signal.SIGTERM)
            self.wait(self.children, self.stop_grace, seen)
        for child in self.children:
            child.signal(signal.SIGKILL)
        for child in self.children:
            child.reap()

    def send(self, signum):
        for child in self.children:
            if child.running():
                child.signal(signum)


def start_all(planned, writer, environ, interrupts):
    """Start every planned process in order; a process that cannot start stops those already running and is a
    UserError. Returns the :class:`Child` list."""
    children = []
    for process in planned:
        if interrupts.count:
            break
        try:
            children.append(start_child(process, writer, environ))
        except OSError as err:
            Group(children, 0, interrupts).stop(signal.SIGTERM)
            raise UserError('cannot start %s (%s): %s' % (process.label, process.argv[0],
                                                         err.strerror or err)) from None
    return children


def launch(command, num_workers, num_servers=1, launcher='local', hostfile=None, port=DEFAULT_PORT, host_ip=None,
           env=None, chdir=None, ssh_command='ssh', stop_grace=DEFAULT_STOP_GRACE, dry_run=False, output=None):
    """Run ``command`` as ``num_workers`` workers of a parameter-server group and return the exit status.

    Parameters
    ----------
    command : list of str
        The worker command line.
    num_workers, num_servers : int
        ``-n`` and ``-s``.
    launcher : {'local', 'ssh'}
        Everything here over 127.0.0.1, or servers and workers round-robin over ``hostfile``'s hosts.
    hostfile : str, optional
        ``-H``, needed with ``launcher='ssh'``.
    port : int
        The scheduler's port.
    host_ip : str, optional
        ssh only: this machine's address as the hosts reach it (default :func:`default_host_ip`).
    env : list of str or dict, optional
        ``--env`` items, ``NAME=VALUE`` or ``NAME`` (its value here); or ``{name: value or None}``.
    chdir : str, optional
        The processes' folder (ssh: on the hosts; default this folder).
    ssh_command : str
        The ssh client, split like a shell would (``ssh -i key``).
    stop_grace : float
        Seconds between SIGTERM and SIGKILL, and the group's wait after the workers.
    dry_run : bool
        Print each process's host, role and command line; start nothing; return 0.
    output : text stream, optional
        Where the prefixed lines (and --dry-run's) go; default ``sys.stdout``.

    Returns
    -------
    int
        0, 9, 10 + k or 130 (see the module docstring).

    Raises
    ------
    UserError
        A bad argument, found before anything starts (or a process that cannot start).
    """
    output = sys.stdout if output is None else output
    planned = plan(command, num_workers, num_servers, launcher, hostfile, port, host_ip, env, chdir, ssh_command,
                   stop_grace)
    if dry_run:
        for line in dry_run_lines(planned):
            print(line, file=output, flush=True)
        return STATUS_OK
    check_port_free(planned[0].variables['DMLC_PS_ROOT_URI'], port)
    with Interrupts() as interrupts:
        children = start_all(planned, LineWriter(output), os.environ, interrupts)
        group = Group(children, stop_grace, interrupts)
        if len(children) < len(planned):     # interrupted while starting
            group.stop(signal.SIGINT)
            return STATUS_INTERRUPTED
        return group.supervise()


# --- the command line ----------------------------------------------------------------------------------------
def build_parser():
    parser = RaisingParser(prog='tools/launch.py', description=__doc__, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           usage='%(prog)s -n N [-s S] [--launcher local|ssh] [-H hostfile] [options] -- command ...')
    parser.add_argument('-n', '--num-workers', type=int, required=True, help='workers (each runs the command)')
    parser.add_argument('-s', '--num-servers', type=int, default=1, help='parameter servers (default 1)')
    parser.add_argument('--launcher', choices=('local', 'ssh'), default='local',
                        help='local: all on this machine over 127.0.0.1 (default); ssh: over -H\'s hosts')
    parser.add_argument('-H', '--hostfile', help='ssh: one host, user@host or host:sshport a line')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT,
                        help='the scheduler\'s port (default %d)' % DEFAULT_PORT)
    parser.add_argument('--host-ip', help='ssh: this machine\'s address as the hosts reach it (default: the '
                                          'source address towards the first host)')
    parser.add_argument('--env', action='append', default=[], metavar='NAME[=VALUE]',
                        help='also set NAME (its value here, or VALUE) for every process; repeatable')
    parser.add_argument('--chdir', help='the processes\' folder (ssh: on the hosts; default this folder)')
    parser.add_argument('--ssh-command', default='ssh', help='the ssh client (default ssh)')
    parser.add_argument('--stop-grace', type=float, default=DEFAULT_STOP_GRACE,
                        help='seconds between SIGTERM and SIGKILL (default %g)' % DEFAULT_STOP_GRACE)
    parser.add_argument('--dry-run', action='store_true', help='print each process\'s command line; run nothing')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='the worker command (after an optional --)')
    return parser


def parse_args(argv=None):
    """The parsed command line; ``command`` without the leading ``--``."""
    args = build_parser().parse_args(argv)
    if args.command[:1] == ['--']:
        args.command = args.command[1:]
    return args


def main(argv=None):
    """Parse ``argv`` and :func:`launch`; returns the exit status."""
    args = parse_args(argv)
    return launch(args.command, args.num_workers, args.num_servers, args.launcher, args.hostfile, args.port,
                  args.host_ip, args.env, args.chdir, args.ssh_command, args.stop_grace, args.dry_run)


if __name__ == '__main__':
    sys.exit(run_cli(main, sys.argv[1:]))
