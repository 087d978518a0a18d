"""tools/launch.py: a parameter-server group over loopback (local and through a fake ssh) really syncs, a failed
or interrupted group stops every process within bounded time with the status that names who failed, --dry-run
prints the exact command lines, and bad arguments are one line with status 2."""
import io
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import types

import pytest

from config.errors import UserError, run_cli
from config.runtime import available_cores
from tools import launch
from tools.launch import Host, free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
TIMEOUT = 90            # seconds: the longest any launcher run may take before the test fails

PUSH_PULL = '''
import os
import mxnet as mx
kv = mx.kv.create('dist_sync')
kv.init('w', mx.nd.zeros(3))
kv.push('w', mx.nd.ones(3) * (kv.rank + 1))
out = mx.nd.zeros(3)
kv.pull('w', out=out)
print('rank %s of %s kv %d/%d sum %s' % (os.environ['SSD_WORKER_RANK'], os.environ['DMLC_NUM_WORKER'], kv.rank,
                                         kv.num_workers, ' '.join('%.1f' % value for value in out.asnumpy())))
print('threads %s' % os.environ['OMP_NUM_THREADS'])
print('cwd %s' % os.getcwd())
print('FOO %r' % os.environ.get('FOO'))
'''

# worker 1 dies (status 3) once both registered; worker 0 ignores SIGTERM and blocks in a pull that never ends
CRASH_WHILE_PULLING = '''
import os, signal
import mxnet as mx
kv = mx.kv.create('dist_sync')
kv.init('w', mx.nd.zeros(3))
print('pid %d' % os.getpid(), flush=True)
if os.environ['SSD_WORKER_RANK'] == '1':
    os._exit(3)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
kv.push('w', mx.nd.ones(3))
out = mx.nd.zeros(3)
kv.pull('w', out=out)
print('never %s' % out.asnumpy())
'''

# sleeps; says which signal stopped it; with an argument worker 1 exits with that status after a second
SLEEPER = '''
import os, signal, sys, time
def stop(signum, frame):
    print('got %s' % signal.Signals(signum).name, flush=True)
    sys.exit(5)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print('pid %d' % os.getpid(), flush=True)
if len(sys.argv) > 1 and os.environ['SSD_WORKER_RANK'] == '1':
    time.sleep(1)
    sys.exit(int(sys.argv[1]))
time.sleep(300)
'''

FAKE_SSH = '''#!/bin/sh
# fake ssh: skips the options, logs the host, runs the remote command here with sh -c
while [ $# -gt 0 ]; do
  case $1 in -o|-p) shift 2 ;; -*) shift ;; *) break ;; esac
done
printf '%s\\n' "$1" >> "$FAKE_SSH_LOG"
shift
exec sh -c "$*"
'''


def write(folder, name, text, mode=None):
    path = os.path.join(str(folder), name)
    with open(path, 'w') as handle:
        handle.write(text)
    if mode:
        os.chmod(path, mode)
    return path


def clean_env(**extra):
    """This environment without the variables the launcher reads (pytest's conftest sets OMP_NUM_THREADS)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(('MXNET_', 'PS_', 'DMLC_', 'SSD_')) and name not in ('OMP_NUM_THREADS', 'FOO')}
    env.update(extra)
    return env


def run_launcher(args, env=None, timeout=TIMEOUT):
    """``tools/launch.py args`` as a script from the repository; ``(completed process, seconds)``."""
    start = time.monotonic()
    result = subprocess.run([PYTHON, 'tools/launch.py'] + list(args), cwd=REPO, capture_output=True, text=True,
                            timeout=timeout, env=clean_env() if env is None else env)
    return result, time.monotonic() - start


def launch_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith('launch:')]


def worker_lines(stdout, index):
    prefix = '[worker %d] ' % index
    return [line[len(prefix):] for line in stdout.splitlines() if line.startswith(prefix)]


def printed_pids(stdout, num_workers):
    pids = {}
    for index in range(num_workers):
        found = [int(line.split()[1]) for line in worker_lines(stdout, index) if line.startswith('pid ')]
        assert len(found) == 1, stdout
        pids[index] = found[0]
    return pids


def assert_gone(pids):
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def assert_synced(stdout, num_workers):
    """Every worker pulled 1 + 2 + ... summed over the workers, once; ps-lite's ranks are a permutation."""
    expected = ' '.join(['%.1f' % sum(range(1, num_workers + 1))] * 3)
    kv_ranks = set()
    for index in range(num_workers):
        lines = [line for line in worker_lines(stdout, index) if line.startswith('rank ')]
        assert len(lines) == 1, stdout
        match = re.match(r'rank (\d+) of (\d+) kv (\d+)/(\d+) sum (.*)$', lines[0])
        assert match.group(1, 2, 4, 5) == (str(index), str(num_workers), str(num_workers), expected), lines[0]
        kv_ranks.add(int(match.group(3)))
    assert kv_ranks == set(range(num_workers))


def the_line(stdout, index, key):
    """The value after ``key`` in worker ``index``'s one line starting with ``key``."""
    lines = [line[len(key) + 1:] for line in worker_lines(stdout, index) if line.startswith(key + ' ')]
    assert len(lines) == 1, stdout
    return lines[0]


@pytest.fixture
def fake_ssh(tmp_path):
    """``(ssh command, hostfile, log of the hosts it was asked for)``: two fake hosts."""
    ssh = write(tmp_path, 'fake_ssh', FAKE_SSH, stat.S_IRWXU)
    hostfile = write(tmp_path, 'hosts', '# two fake hosts\nnode-a\n\nbob@node-b:2222   # the second\n')
    return ssh, hostfile, str(tmp_path / 'ssh.log')


# --- real groups over loopback ----------------------------------------------------------------------------------
def test_local_dist_sync_two_workers(tmp_path):
    script = write(tmp_path, 'worker.py', PUSH_PULL)
    result, seconds = run_launcher(['-n', '2', '--port', str(free_port()), '--', PYTHON, script],
                                   env=clean_env(PS_VERBOSE='1'))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_synced(result.stdout, 2)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    prefixes = ('[worker 0] ', '[worker 1] ', '[server 0] ', '[scheduler] ')
    assert all(line.startswith(prefixes) for line in lines), lines
    assert any(line.startswith('[scheduler] ') for line in lines)          # PS_VERBOSE's lines, prefixed too
    assert any(line.startswith('[server 0] ') for line in lines)
    for index in range(2):
        assert the_line(result.stdout, index, 'threads') == str(max(1, available_cores() // 2))
        assert the_line(result.stdout, index, 'cwd') == REPO
    assert launch_lines(result.stderr) == []
    print('local dist_sync group: %.1f s' % seconds)


def test_a_failed_worker_stops_the_group_and_names_it(tmp_path):
    script = write(tmp_path, 'crash.py', CRASH_WHILE_PULLING)
    grace = 2
    result, seconds = run_launcher(['-n', '2', '--port', str(free_port()), '--stop-grace', str(grace), '--',
                                    PYTHON, script], timeout=60)
    assert result.returncode == 11, result.stdout[-3000:] + result.stderr[-3000:]
    assert launch_lines(result.stderr) == ['launch: worker 1 exited with status 3; stopping the others']
    assert grace <= seconds < 60          # worker 0 ignored SIGTERM: it took the SIGKILL after the grace
    assert not any('never' in line for line in result.stdout.splitlines())
    assert_gone(printed_pids(result.stdout, 2).values())


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_launcher_stops_every_process(tmp_path, signum):
    script = write(tmp_path, 'sleeper.py', SLEEPER)
    stderr_path = tmp_path / 'stderr'
    with open(stderr_path, 'w') as stderr:
        process = subprocess.Popen([PYTHON, 'tools/launch.py', '-n', '2', '--port', str(free_port()),
                                    '--stop-grace', '5', '--', PYTHON, script], cwd=REPO, env=clean_env(),
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines, both_started = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if sum(line.startswith(('[worker 0] pid', '[worker 1] pid')) for line in lines) == 2:
                both_started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert both_started.wait(60), ''.join(lines)
        sent = time.monotonic()
        process.send_signal(signum)
        status = process.wait(30)
        seconds = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    reader.join(10)
    stdout = ''.join(lines)
    assert status == 130 and seconds < 5, (status, seconds)     # the workers end at SIGINT: no grace needed
    assert launch_lines(stderr_path.read_text()) == ['launch: interrupted; stopping every process']
    assert 'got SIGINT' in worker_lines(stdout, 0) and 'got SIGINT' in worker_lines(stdout, 1)
    assert_gone(printed_pids(stdout, 2).values())


def test_workers_done_but_group_still_running_is_stopped_and_ok(tmp_path, capsys, monkeypatch):
    """The workers never join a kvstore, so the scheduler and server wait forever: after the grace they are
    stopped, and the run still succeeded (the Python API, in this process)."""
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    output = io.StringIO()
    start = time.monotonic()
    status = launch.launch([PYTHON, '-c', 'import os; print("rank", os.environ["SSD_WORKER_RANK"])'], 2,
                           port=free_port(), stop_grace=1, output=output)
    seconds = time.monotonic() - start
    assert status == 0
    assert 1 <= seconds < 30
    text = output.getvalue()
    assert worker_lines(text, 0) == ['rank 0'] and worker_lines(text, 1) == ['rank 1']
    assert launch_lines(capsys.readouterr().err) == [
        'launch: the workers finished but scheduler, server 0 still ran after 1 s; stopping it']


def test_ssh_dist_sync_through_a_fake_ssh(tmp_path, fake_ssh):
    ssh, hostfile, log = fake_ssh
    script = write(tmp_path, 'worker.py', PUSH_PULL)
    workdir = tmp_path / 'work dir'
    workdir.mkdir()
    result, seconds = run_launcher(['-n', '2', '--launcher', 'ssh', '-H', hostfile, '--ssh-command', ssh,
                                    '--host-ip', '127.0.0.1', '--port', str(free_port()), '--chdir', str(workdir),
                                    '--env', 'FOO=two words', '--', PYTHON, script],
                                   env=clean_env(FAKE_SSH_LOG=log))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_synced(result.stdout, 2)
    for index in range(2):
        assert the_line(result.stdout, index, 'cwd') == str(workdir)
        assert the_line(result.stdout, index, 'FOO') == repr('two words')
        # one worker a host: the remote wrapper set OMP_NUM_THREADS to that host's cores
        assert the_line(result.stdout, index, 'threads') == str(available_cores())
    with open(log) as handle:
        assert sorted(handle.read().split()) == ['bob@node-b', 'node-a', 'node-a']   # server 0, workers 0, 1
    print('ssh dist_sync group: %.1f s' % seconds)


def test_ssh_failure_stops_the_remote_commands_through_their_stdin(tmp_path, fake_ssh):
    """Closing a remote process's ssh stdin makes its wrapper send SIGTERM there: worker 0 ends long before the
    30 s grace would have SIGKILLed its ssh."""
    ssh, hostfile, log = fake_ssh
    script = write(tmp_path, 'sleeper.py', SLEEPER)
    result, seconds = run_launcher(['-n', '2', '--launcher', 'ssh', '-H', hostfile, '--ssh-command', ssh,
                                    '--host-ip', '127.0.0.1', '--port', str(free_port()), '--stop-grace', '30',
                                    '--', PYTHON, script, '4'], env=clean_env(FAKE_SSH_LOG=log), timeout=60)
    assert result.returncode == 11, result.stdout[-3000:] + result.stderr[-3000:]
    assert launch_lines(result.stderr) == ['launch: worker 1 exited with status 4; stopping the others']
    assert seconds < 20
    assert 'got SIGTERM' in worker_lines(result.stdout, 0)
    assert_gone(printed_pids(result.stdout, 2).values())


# --- --dry-run -------------------------------------------------------------------------------------------------
def dry_run(capsys, argv):
    assert launch.main(['--dry-run'] + argv) == 0
    return capsys.readouterr().out.splitlines()


@pytest.fixture
def quiet_env(monkeypatch):
    """An environment whose launcher-read variables are known: none but BAR, MXNET_TEST_FORWARD, PYTHONPATH."""
    for name in list(os.environ):
        if name.startswith(('MXNET_', 'PS_', 'DMLC_')) or name in ('OMP_NUM_THREADS', 'PYTHONUNBUFFERED'):
            monkeypatch.delenv(name)
    monkeypatch.setenv('BAR', 'from here')
    monkeypatch.setenv('MXNET_TEST_FORWARD', 'yes')
    monkeypatch.setenv('PYTHONPATH', '/opt/lib')
    monkeypatch.setattr(launch, 'available_cores', lambda: 8)


def test_dry_run_local(capsys, quiet_env):
    python = shlex.quote(PYTHON)
    lines = dry_run(capsys, ['-n', '2', '--port', '9555', '--env', 'FOO=a b', '--env', 'BAR', '--',
                             PYTHON, 'train.py', '--name=my run'])
    group = 'DMLC_PS_ROOT_URI=127.0.0.1 DMLC_PS_ROOT_PORT=9555 DMLC_NUM_SERVER=1 DMLC_NUM_WORKER=2 ' \
            'DMLC_NODE_HOST=127.0.0.1'
    tail = "PYTHONUNBUFFERED=1 'FOO=a b' 'BAR=from here'"
    assert lines == [
        "scheduler on localhost: env DMLC_ROLE=scheduler %s OMP_NUM_THREADS=1 %s %s -c 'import mxnet'"
        % (group, tail, python),
        "server 0 on localhost: env DMLC_ROLE=server %s OMP_NUM_THREADS=1 %s %s -c 'import mxnet'"
        % (group, tail, python),
        "worker 0 on localhost: env DMLC_ROLE=worker %s SSD_WORKER_RANK=0 SSD_NUM_WORKERS=2 OMP_NUM_THREADS=4 %s "
        "%s train.py '--name=my run'" % (group, tail, python),
        "worker 1 on localhost: env DMLC_ROLE=worker %s SSD_WORKER_RANK=1 SSD_NUM_WORKERS=2 OMP_NUM_THREADS=4 %s "
        "%s train.py '--name=my run'" % (group, tail, python)]


def test_dry_run_local_keeps_the_users_thread_count(capsys, quiet_env, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    lines = dry_run(capsys, ['-n', '3', '-s', '2', '--', PYTHON, 'train.py'])
    assert [re.search(r'OMP_NUM_THREADS=(\d+)', line).group(1) for line in lines] == ['3'] * 6
    assert [line.split(':')[0] for line in lines] == [
        'scheduler on localhost', 'server 0 on localhost', 'server 1 on localhost', 'worker 0 on localhost',
        'worker 1 on localhost', 'worker 2 on localhost']


def test_dry_run_ssh(capsys, quiet_env, fake_ssh):
    _, hostfile, _ = fake_ssh
    lines = dry_run(capsys, ['-n', '3', '-s', '2', '--launcher', 'ssh', '-H', hostfile, '--host-ip', '10.0.0.5',
                             '--port', '9555', '--chdir', '/srv/ssd', '--stop-grace', '7', '--env', 'FOO=a b',
                             '--', 'python3.11', 'train.py', '--name=my run'])
    group = ['DMLC_PS_ROOT_URI=10.0.0.5', 'DMLC_PS_ROOT_PORT=9555', 'DMLC_NUM_SERVER=2', 'DMLC_NUM_WORKER=3']
    assert lines[0] == ("scheduler on localhost: env DMLC_ROLE=scheduler %s OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 "
                        "'FOO=a b' %s -c 'import mxnet'" % (' '.join(group), shlex.quote(PYTHON)))
    forwarded = ['PYTHONUNBUFFERED=1', 'MXNET_TEST_FORWARD=yes', 'PYTHONPATH=/opt/lib', 'FOO=a b']
    expected = [  # label, ssh target and port, its variables, command, OMP divisor of the remote wrapper
        ('server 0', ['node-a'], ['DMLC_ROLE=server'] + group + ['OMP_NUM_THREADS=1'], ['python3.11', '-c',
                                                                                        'import mxnet'], None),
        ('server 1', ['-p', '2222', 'bob@node-b'], ['DMLC_ROLE=server'] + group + ['OMP_NUM_THREADS=1'],
         ['python3.11', '-c', 'import mxnet'], None),
        ('worker 0', ['node-a'], ['DMLC_ROLE=worker'] + group + ['SSD_WORKER_RANK=0', 'SSD_NUM_WORKERS=3'],
         ['python3.11', 'train.py', '--name=my run'], 2),
        ('worker 1', ['-p', '2222', 'bob@node-b'],
         ['DMLC_ROLE=worker'] + group + ['SSD_WORKER_RANK=1', 'SSD_NUM_WORKERS=3'],
         ['python3.11', 'train.py', '--name=my run'], 1),
        ('worker 2', ['node-a'], ['DMLC_ROLE=worker'] + group + ['SSD_WORKER_RANK=2', 'SSD_NUM_WORKERS=3'],
         ['python3.11', 'train.py', '--name=my run'], 2)]
    assert len(lines) == 1 + len(expected)
    for line, (label, target, variables, command, divisor) in zip(lines[1:], expected):
        host = target[-1]
        assert line.startswith('%s on %s: ' % (label, host)), line
        words = shlex.split(line[len('%s on %s: ' % (label, host)):])
        assert words[:5 + len(target)] == ['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new'] \
            + target
        assert len(words) == 6 + len(target)
        remote = shlex.split(words[-1])
        assert remote[:6] == ['cd', '/srv/ssd', '&&', 'exec', 'sh', '-c']
        assert remote[6] == launch.remote_wrapper(7, divisor)
        assert remote[7:] == ['ssd-launch', 'env'] + variables + forwarded + command
        assert ('/ %d ))' % divisor in remote[6]) if divisor else ('OMP_NUM_THREADS' not in remote[6])
        assert 'sleep 7;' in remote[6]


def test_remote_wrapper_runs_its_command_and_keeps_the_status(tmp_path):
    """The wrapper as a remote shell would run it: the command's output and exit status come back, stdin open."""
    remote = launch.remote_shell_command(['sh', '-c', 'echo "$GREETING in $(pwd)"; exit 7'],
                                         {'GREETING': 'hello world'}, str(tmp_path), 1)
    process = subprocess.Popen(['sh', '-c', remote], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        status = process.wait(20)                # stdin still open: the command ends by itself
    finally:
        process.stdin.close()
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert (status, process.stdout.read()) == (7, 'hello world in %s\n' % tmp_path)


def test_remote_wrapper_stops_its_command_when_stdin_closes(tmp_path):
    remote = launch.remote_shell_command(['sh', '-c', 'echo $$; exec sleep 300'], {}, str(tmp_path), 1)
    process = subprocess.Popen(['sh', '-c', remote], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(process.stdout.readline())
        os.kill(pid, 0)                        # running while stdin is open
        process.stdin.close()
        assert process.wait(20) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert_gone([pid])


# --- small parts --------------------------------------------------------------------------------------------------
def test_hostfile_forms_and_comments(fake_ssh):
    _, hostfile, _ = fake_ssh
    assert launch.read_hostfile(hostfile) == [Host('node-a', None, None), Host('node-b', 'bob', 2222)]


def test_default_host_ip_is_the_source_address_towards_the_first_host():
    assert launch.default_host_ip([Host('127.0.0.1', None, None)]) == '127.0.0.1'


def test_statuses():
    def child(role, index):
        return types.SimpleNamespace(role=role, planned=types.SimpleNamespace(index=index))
    assert [launch.failure_status(child('worker', index)) for index in (0, 1, 99, 100, 150)] == [10, 11, 109, 109,
                                                                                                 109]
    assert launch.failure_status(child('server', 3)) == 9 and launch.failure_status(child('scheduler', 0)) == 9
    assert launch.describe_status(-9) == 'status -9 (killed by SIGKILL)'
    assert launch.describe_status(143, remote=True) == 'status 143 (killed by SIGTERM on its host)'
    assert launch.describe_status(3) == 'status 3'


def test_free_port_is_free():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', port))


# --- bad arguments: one line, status 2 ------------------------------------------------------------------------
def bad_argument_cases(tmp_path):
    empty = write(tmp_path, 'empty_hosts', '# nothing\n\n')
    bad = write(tmp_path, 'bad_hosts', 'node-a\nnode b slots=2\n')
    bad_port = write(tmp_path, 'bad_port_hosts', 'node-a:99999\n')
    missing = str(tmp_path / 'no_hosts')
    command = ['--', PYTHON, 'train.py']
    return [
        (['-n', '0'] + command, '-n/--num-workers must be at least 1, not 0'),
        (['-n', '1', '-s', '0'] + command, '-s/--num-servers must be at least 1, not 0'),
        (['-n', '1', '--port', '70000'] + command, '--port must be between 1 and 65535, not 70000'),
        (['-n', '1', '--port', '0'] + command, '--port must be between 1 and 65535, not 0'),
        (['-n', '1', '--launcher', 'ssh'] + command, '--launcher ssh needs -H/--hostfile'),
        (['-n', '1', '--launcher', 'ssh', '-H', missing] + command, 'hostfile %s does not exist' % missing),
        (['-n', '1', '--launcher', 'ssh', '-H', empty] + command, 'hostfile %s lists no hosts' % empty),
        (['-n', '1', '--launcher', 'ssh', '-H', bad] + command,
         "hostfile %s, line 2: 'node b slots=2' is not host" % bad),
        (['-n', '1', '--launcher', 'ssh', '-H', bad_port] + command,
         "hostfile %s, line 1: 'node-a:99999' is not host" % bad_port),
        (['-n', '1', '--env', '=x'] + command, '--env needs a name'),
        (['-n', '1', '--env', ''] + command, '--env needs a name'),
        (['-n', '1', '--env', 'NOT_SET_ANYWHERE_42'] + command, '--env NOT_SET_ANYWHERE_42: NOT_SET_ANYWHERE_42 is '
                                                               'not set here'),
        (['-n', '1', '--env', 'DMLC_ROLE=worker'] + command, '--env DMLC_ROLE: the launcher sets DMLC_ROLE'),
        (['-n', '2'], 'no command to run'),
        (['-n', '2', '--'], 'no command to run'),
        (command, 'the following arguments are required: -n/--num-workers'),
        (['-n', 'two'] + command, "argument -n/--num-workers: invalid int value: 'two'"),
        (['-n', '1', '-H', empty] + command, '-H/--hostfile is for --launcher ssh'),
        (['-n', '1', '--', 'no-such-command-42'], "the command 'no-such-command-42' is not an executable file"),
    ]


def test_bad_arguments_are_one_line_and_status_2(tmp_path, capsys):
    for argv, message in bad_argument_cases(tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(launch.main, argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, argv
        assert len(err.splitlines()) == 1 and err.startswith('error: ') and message in err, (argv, err)


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match='the scheduler cannot listen on 127.0.0.1:%d' % port):
            launch.launch([PYTHON, '-c', 'pass'], 1, port=port)


def test_the_script_prints_one_error_line(tmp_path):
    result, _ = run_launcher(['-n', '0', '--', PYTHON, 'train.py'], timeout=60)
    assert result.returncode == 2
    assert result.stderr == 'error: -n/--num-workers must be at least 1, not 0\n'
    assert result.stdout == ''
    help_result, _ = run_launcher(['--help'], timeout=60)
    assert help_result.returncode == 0 and '130 interrupted' in help_result.stdout
