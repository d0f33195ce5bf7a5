"""lyricnn.training.launch: a local ps-lite job (scheduler, servers, workers) and its failures.

Each job runs real MXNet processes (about 1 s of CPU each to import MXNet), so
the jobs are few and small, and every one has a ``timeout`` so a regression
fails instead of hanging.
"""
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from procs import children, running

from lyricnn.training.launch import LaunchError, launch, role_environment

#: Every test here starts processes: left out of make test-fast.
pytestmark = pytest.mark.slow

# A dist_sync worker: every worker pushes rank + 1 into one key and pulls the sum.
# ``mode`` picks how the worker with rank 1 fails after init (rank 0 then blocks
# in its pull, waiting for a push that never comes).
WORKER = """
import os, signal, sys
import mxnet as mx
from mxnet import nd
mode, pid_dir = sys.argv[1], sys.argv[2]
with open(os.path.join(pid_dir, str(os.getpid())), "w"):
    pass
kv = mx.kv.create("dist_sync")
assert kv.num_workers == 2, kv.num_workers
# "big": over MXNET_KVSTORE_BIGARRAY_BOUND (1e6), so the key is split across the servers.
shape = (1_100_000,) if mode == "big" else (4,)
kv.init(3, nd.zeros(shape))
print("omp", os.environ["OMP_NUM_THREADS"], flush=True)
if kv.rank == 1 and mode == "exit":
    # os._exit, not sys.exit: a normal exit runs KVStoreDist's destructor, which
    # waits in a ps-lite barrier for the other workers, forever (see the report).
    os._exit(3)
if kv.rank == 1 and mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
value = nd.ones(shape) * (kv.rank + 1)
kv.push(3, value)
kv.pull(3, out=value)  # into the pushed array: push aliases it to the result anyway
total = value.asnumpy()
assert (total == 3).all(), total
print("rank", kv.rank, "sum", int(total[0]), flush=True)
"""


@pytest.fixture
def job(tmp_path):
    """Run WORKER in a mode; return (code, output text, seconds, pids of the workers)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()

    def run(mode, **kwargs):
        out = io.StringIO()
        start = time.monotonic()
        code = launch([sys.executable, str(script), mode, str(pid_dir)], workers=2,
                      output=out, errors=out, **{"timeout": 30, "grace": 2.0, **kwargs})
        pids = [int(p.name) for p in pid_dir.iterdir()]
        return code, out.getvalue(), time.monotonic() - start, pids
    return run


def assert_dead(pids):
    assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("mode, servers", [("ok", 1), ("big", 2)])
def test_two_workers_sum_their_pushes(job, mode, servers):
    code, text, _, pids = job(mode, servers=servers)
    assert code == 0, text
    assert re.search(r"^\[worker 0\] rank [01] sum 3$", text, re.M), text
    assert re.search(r"^\[worker 1\] rank [01] sum 3$", text, re.M), text
    assert "rank 0 sum 3" in text and "rank 1 sum 3" in text
    # Unless the user chose, workers share the CPUs (conftest's lyricnn import set
    # OMP_NUM_THREADS to the CPU count, which the launcher treats as not chosen).
    cpus = len(os.sched_getaffinity(0))
    assert text.count(f"omp {max(1, cpus // 2)}\n") == 2, text
    assert_dead(pids)


def test_a_worker_exiting_with_an_error_stops_the_job(job):
    code, text, seconds, pids = job("exit")
    assert code == 3, text
    assert re.search(r"lyricnn launch: worker [01] \(pid \d+\) exited with code 3; "
                     r"stopping the other 3 processes", text), text
    assert seconds < 25
    assert_dead(pids)


def test_a_worker_killed_mid_run_stops_the_blocked_others(job):
    code, text, seconds, pids = job("kill")
    assert code == 128 + 9, text
    assert re.search(r"worker [01] \(pid \d+\) was killed by signal 9", text), text
    assert seconds < 25
    assert_dead(pids)


def test_timeout_stops_everything(tmp_path):
    script = tmp_path / "sleepy.py"
    script.write_text("import os, sys, time\n"
                      f"open(os.path.join({str(tmp_path)!r}, 'pid'), 'w').write(str(os.getpid()))\n"
                      "time.sleep(60)\n")
    out = io.StringIO()
    start = time.monotonic()
    code = launch([sys.executable, str(script)], workers=1, timeout=3, grace=1.0, output=out,
                  errors=out)
    assert code == 124
    assert time.monotonic() - start < 15
    assert "timeout of 3 s passed" in out.getvalue()
    assert_dead([int((tmp_path / "pid").read_text())])


def _sleepy_launcher(tmp_path, timeout):
    """A launcher of one worker that writes its pid to ``tmp_path/pid`` and sleeps; returns
    ``(launcher process, pid file)`` once the worker has written it (or 30 s passed)."""
    pid_file = tmp_path / "pid"
    script = tmp_path / "sleepy.py"
    script.write_text("import os, time\n"
                      f"open({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
                      f"os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\n"
                      f"time.sleep({2 * timeout})\n")
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lyricnn.training.launch import launch; "
         f"sys.exit(launch([sys.executable, {str(script)!r}], workers=1, timeout={timeout}, "
         "grace=1))"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return launcher, pid_file


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_launcher_stops_everything(tmp_path, signum, code):
    launcher, pid_file = _sleepy_launcher(tmp_path, timeout=30)
    try:
        launcher.send_signal(signum)
        text, _ = launcher.communicate(timeout=15)
    finally:
        launcher.kill()
    assert launcher.returncode == code, text
    assert f"lyricnn launch: interrupted by {signal.Signals(signum).name}" in text
    assert_dead([int(pid_file.read_text())])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP])
def test_no_process_outlives_a_killed_launcher(tmp_path, signum):
    """SIGKILL cannot be caught: the kernel's parent-death signal takes the scheduler,
    the server and the workers down with the launcher; SIGHUP (a closed terminal) is
    handled as SIGTERM."""
    launcher, _ = _sleepy_launcher(tmp_path, timeout=120)
    try:
        kids = children(launcher.pid)
        assert len(kids) == 3, kids          # scheduler, server, worker
        launcher.send_signal(signum)
        launcher.wait(timeout=15)
    finally:
        launcher.kill()
    # Orphans are reparented and reaped by whoever adopts them: within a few seconds each is
    # gone or, if its adopter has not reaped it yet, a zombie (dead, holding nothing).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(pid) for pid in kids):
        time.sleep(0.1)
    assert not [pid for pid in kids if running(pid)]


def test_workers_and_servers_are_bounded():
    with pytest.raises(LaunchError, match="workers must be an integer between 1 and 64"):
        launch([sys.executable, "-c", "pass"], workers=100000)
    with pytest.raises(LaunchError, match="servers must be an integer between 1 and 16"):
        launch([sys.executable, "-c", "pass"], workers=1, servers=1000)


def test_output_lines_are_prefixed_and_whole(tmp_path):
    # No KVStore: only the output plumbing (MXNet still loads in scheduler and server).
    # Both workers start writing at the same instant and a tiny GIL switch interval
    # makes the four reader threads preempt each other mid-write, so writes that
    # were not whole lines under one lock would interleave.
    script = tmp_path / "chatty.py"
    script.write_text("import os, sys, time\n"
                      "print('env', os.environ['DMLC_ROLE'], os.environ['OMP_NUM_THREADS'])\n"
                      "tag, go = sys.argv[1], float(sys.argv[2])\n"
                      "time.sleep(max(0.0, go - time.time()))\n"
                      "for i in range(1500):\n"
                      "    print(f'{tag} line {i:03d} ' + 'x' * 50)\n"
                      "    print(f'{tag} err {i:03d}', file=sys.stderr)\n")
    out = io.StringIO()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        assert launch([sys.executable, str(script), "T", str(time.time() + 1.0)], workers=2,
                      timeout=30, grace=1.0, output=out, env={"OMP_NUM_THREADS": "7"}) == 0
    finally:
        sys.setswitchinterval(old_interval)
    lines = out.getvalue().splitlines()
    assert "[worker 0] env worker 7" in lines and "[worker 1] env worker 7" in lines  # env= wins
    for line in lines:
        assert re.match(r"\[(scheduler|server 0|worker [01])\] ", line), line
    for worker in ("worker 0", "worker 1"):
        mine = [line for line in lines if line.startswith(f"[{worker}] T ")]
        assert [line for line in mine if " line " in line] == [
            f"[{worker}] T line {i:03d} " + "x" * 50 for i in range(1500)]
        assert [line for line in mine if " err " in line] == [
            f"[{worker}] T err {i:03d}" for i in range(1500)]


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    marker = tmp_path / "started"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LaunchError, match=rf"port {port} .*already in use.*--port"):
            launch([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], workers=1, port=port,
                   timeout=5, output=io.StringIO())
    time.sleep(0.5)
    assert not marker.exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(workers=0), "workers must be an integer between 1 and 64, got 0"),
    (dict(workers=1, servers=0), "servers must be an integer between 1 and 16, got 0"),
    (dict(workers=2.0), "workers must be an integer"),
    (dict(workers=1, timeout=-1), "timeout must be a finite number > 0, got -1"),
    (dict(workers=1, port=70000), "port must be an integer between 1 and 65535"),
    (dict(workers=1, grace=-1), "grace must be"),
    (dict(workers=1, env={"A": 1}), "env must map strings to strings"),
    (dict(workers=1, host=""), "host must be a non-empty string"),
    (dict(workers=1, host="192.0.2.1"), "cannot listen on 192.0.2.1 port 0"),
    (dict(workers=1, command=[]), "command must be a non-empty list"),
    (dict(workers=1, command="python x.py"), "command must be a non-empty list"),
    (dict(workers=1, command=["/no/such/program"]), "command\\[0\\] '/no/such/program'"),
])
def test_bad_input_is_a_launch_error(kwargs, message):
    kwargs = {"command": [sys.executable, "-c", "pass"], **kwargs}
    with pytest.raises(LaunchError, match=message):
        launch(kwargs.pop("command"), output=io.StringIO(), **kwargs)


def test_role_environment():
    env = role_environment("server", scheduler_host="10.0.0.1", port=9091, workers=3,
                           servers=2, node_host="10.0.0.2")
    assert env == {"DMLC_ROLE": "server", "DMLC_PS_ROOT_URI": "10.0.0.1",
                   "DMLC_PS_ROOT_PORT": "9091", "DMLC_NUM_WORKER": "3",
                   "DMLC_NUM_SERVER": "2", "DMLC_NODE_HOST": "10.0.0.2"}
    with pytest.raises(LaunchError, match="role must be one of"):
        role_environment("chief", scheduler_host="h", port=1, workers=1, servers=1,
                         node_host="h")
