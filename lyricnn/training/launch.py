"""Run MXNet's distributed KVStore on one machine (``lyricnn launch``).

MXNet's ``dist_sync`` KVStore is ps-lite, a parameter server built into the pip
wheel.  A job is 1 + M + N processes: a *scheduler* that every other process
contacts first, M *servers* that hold the parameters and N *workers* that run the
training script and push gradients / pull weights.  A process learns its role
only from ``DMLC_*`` environment variables read when MXNet is imported; for a
scheduler or a server, ``import mxnet`` runs that role's loop and returns only
when the workers are done.  MXNet's ``tools/launch.py`` is not in the wheel, so
this module does the local case: start them all over loopback, stream their
output prefixed by role and index, and stop all of them when one fails.  That
last part matters: ps-lite does not notice a dead peer by default, so a worker
killed mid-step can leave the others blocked in push/pull forever.

    from lyricnn.training.launch import launch
    code = launch([sys.executable, "train.py"], workers=2, timeout=600)

``[worker i]`` is the launch order, not ``kv.rank``: the scheduler assigns ranks
(sorted by host and port) and exports them as ``DMLC_RANK`` itself.  For several
machines, run the roles by hand with ``role_environment``.  No MXNet import here:
the launcher process never needs it.
"""
import errno
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from lyricnn.checks import check_choice, check_int, check_number

__all__ = ["LaunchError", "launch", "role_environment", "free_port", "check_port_free",
           "TIMEOUT_EXIT", "SIGNAL_EXIT"]

log = logging.getLogger(__name__)

TIMEOUT_EXIT = 124  # what timeout(1) returns
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143,  # as lyricnn.cli.main.EXIT_SIGNAL
               signal.SIGHUP: 129}
POLL_SECONDS = 0.1
# With DMLC_ROLE=scheduler or server, importing MXNet *is* the whole program.
SERVER_COMMAND = [sys.executable, "-c", "import mxnet"]


#: Processes one local job may start: a worker each for up to 64 devices' worth of
#: work on one machine, and servers to hold its keys. More is a typo (100000), and
#: each process costs an MXNet import (about a second of CPU and 200 MB).
MAX_WORKERS, MAX_SERVERS = 64, 16
#: prctl(2): the signal a child gets when the launcher's thread that started it dies.
_PR_SET_PDEATHSIG = 1


def _load_prctl():
    """libc's ``prctl``, loaded before any child is forked (``None`` off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_prctl = _load_prctl()


def _die_with_launcher(launcher_pid):
    """A child's ``preexec_fn``: SIGKILL when the launcher dies, however it dies (SIGKILL,
    a closed terminal), so that no scheduler, server or worker outlives it holding ports
    and the run's lock; and exit at once if the launcher is already gone. Only a libc
    call (loaded in the parent): safe between fork and exec with threads around."""
    def preexec():
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != launcher_pid:
            os._exit(1)
    return preexec


class LaunchError(ValueError):
    """Bad input to ``launch``, found before any process was started."""


def _checked(check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except ValueError as err:
        raise LaunchError(str(err)) from None


def role_environment(role, *, scheduler_host, port, workers, servers, node_host):
    """The ``DMLC_*`` variables one ps-lite process needs, as a dict of strings.

    ``role`` is ``"scheduler"``, ``"server"`` or ``"worker"``; ``scheduler_host``
    and ``port`` are where the scheduler listens, and with ``workers`` and
    ``servers`` they are the same for every process of a job; ``node_host`` is
    the address at which this process is reachable (ps-lite gives servers and
    workers random ports, so hosts must reach each other on any port).  There is
    no rank variable: the scheduler assigns ranks once everyone has connected.

    ``launch`` uses it on one machine.  Across machines, start each process by
    hand with the same variables, e.g. scheduler, a server and a worker on
    10.0.0.1 and a second worker on 10.0.0.2 (``" ".join(f"{k}={v}" for k, v in
    role_environment(...).items())`` prints such a line)::

        # on 10.0.0.1
        JOB="DMLC_PS_ROOT_URI=10.0.0.1 DMLC_PS_ROOT_PORT=9091 DMLC_NUM_WORKER=2 DMLC_NUM_SERVER=1"
        env $JOB DMLC_NODE_HOST=10.0.0.1 DMLC_ROLE=scheduler python -c "import mxnet" &
        env $JOB DMLC_NODE_HOST=10.0.0.1 DMLC_ROLE=server python -c "import mxnet" &
        env $JOB DMLC_NODE_HOST=10.0.0.1 DMLC_ROLE=worker python train.py
        # on 10.0.0.2 (same JOB)
        env $JOB DMLC_NODE_HOST=10.0.0.2 DMLC_ROLE=worker python train.py

    Nothing watches such a job: if one process dies, stop the others yourself.
    """
    _checked(check_choice, "role", role, ("scheduler", "server", "worker"))
    return {"DMLC_ROLE": role,
            "DMLC_PS_ROOT_URI": str(scheduler_host),
            "DMLC_PS_ROOT_PORT": str(_checked(check_int, "port", port, 1, 65535)),
            "DMLC_NUM_WORKER": str(_checked(check_int, "workers", workers, 1)),
            "DMLC_NUM_SERVER": str(_checked(check_int, "servers", servers, 1)),
            "DMLC_NODE_HOST": str(node_host)}


def _bind(host, port):
    # SO_REUSEADDR as ps-lite's ZeroMQ listener sets it: a port whose last job left
    # TIME_WAIT connections is free for the scheduler, so it is free here too.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        return sock.getsockname()[1]
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise LaunchError(f"port {port} on {host} is already in use; choose another with "
                              f"--port or omit --port to pick a free one") from None
        raise LaunchError(f"cannot listen on {host} port {port} ({err.strerror or err}); host "
                          f"must be an address of this machine and port one you may bind") from None
    finally:
        sock.close()


def free_port(host="127.0.0.1"):
    """A TCP port on ``host`` that was free a moment ago (bind port 0, read, close).

    Another process may take it before the scheduler binds it; the scheduler
    then exits with "bind failed" and ``launch`` reports that as a failure (the
    scheduler does not try another port).  ``LaunchError`` if ``host`` is not local.
    """
    return _bind(host, 0)


def check_port_free(port, host="127.0.0.1"):
    """Raise ``LaunchError`` if ``port`` on ``host`` cannot be bound right now."""
    _bind(host, port)


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _describe(code):
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


class _Job:
    """The children, their reader threads and the lock that keeps output lines whole."""

    def __init__(self, output, errors):
        self.output, self.errors = output, errors
        self.lock, self.children, self.threads = threading.Lock(), [], []

    def say(self, line, stream=None):
        stream = self.output if stream is None else stream
        with self.lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # a closed output must not stop the pipes draining
                pass

    def _pump(self, pipe, prefix):
        with pipe:
            for raw in iter(pipe.readline, b""):  # a last line without a newline gets one
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.say(f"{prefix} {line}")

    def start(self, name, argv, env):
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=_die_with_launcher(os.getpid()))
        self.children.append((name, proc))
        for pipe in (proc.stdout, proc.stderr):
            thread = threading.Thread(target=self._pump, args=(pipe, f"[{name}]"), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, grace, children=None):
        """SIGTERM each live child's process group, SIGKILL what is left after ``grace`` s."""
        children = self.children if children is None else children
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            live = [proc for _, proc in children if proc.poll() is None]
            for proc in live:
                try:  # the group, so threads and grandchildren go too (start_new_session)
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + wait
            while any(proc.poll() is None for proc in live) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS / 2)
        # Let the readers drain what the children wrote last; bounded, because a
        # grandchild that left the process group could hold a pipe open for ever.
        deadline = time.monotonic() + 5.0
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def launch(command, *, workers, servers=1, port=None, host="127.0.0.1", timeout=None,
           grace=5.0, env=None, output=None, errors=None):
    """Run ``command`` as ``workers`` KVStore workers with a scheduler and ``servers``
    servers on ``host``; return an exit code once every process has ended.

    Every child line goes to ``output`` (default ``sys.stdout``) as ``[scheduler] ...``,
    ``[server 0] ...`` or ``[worker 1] ...``; the launcher's own lines (why it stopped the
    job) go to ``errors`` (default ``sys.stderr``).  Children get ``os.environ``, then ``env``,
    then the ``DMLC_*`` variables.  ``port`` is the scheduler's (None: a free one).

    Returns, once no child is left running:

        0        every worker exited 0 (scheduler and servers then get ``grace``
                 seconds to end by themselves before they are killed)
        N        a child exited with code N (the first one seen; workers are
                 checked first), after one line on ``errors`` such as
                 ``lyricnn launch: worker 1 (pid 1234) exited with code 3;
                 stopping the other 3 processes``
        128 + S  a child was killed by signal S (``... was killed by signal 9``)
        124      ``timeout`` seconds passed (``lyricnn launch: timeout of 600 s passed``)
        130/143  SIGINT/SIGTERM reached the launcher (caught only when called
                 from the main thread; the previous handlers are restored after)

    Every failure stops the rest: SIGTERM to each child's process group, SIGKILL
    ``grace`` seconds later. If the launcher itself dies (even by SIGKILL), every
    child gets SIGKILL from the kernel (Linux's parent-death signal): nothing of
    the job outlives it. At most ``MAX_WORKERS`` workers and ``MAX_SERVERS`` servers.  Raises ``LaunchError`` before starting anything for
    a bad argument or an explicit ``port`` already in use.

    A worker that *exits* while the others are mid-step (an exception,
    ``sys.exit``) does not end: MXNet's KVStoreDist destructor waits in a ps-lite
    barrier for every worker.  Only ``timeout`` ends such a job, unless the
    worker script ends a failure with ``os._exit(code)`` after flushing output.
    """
    if (not isinstance(command, (list, tuple)) or not command
            or not all(isinstance(arg, str) for arg in command)):
        raise LaunchError(f"command must be a non-empty list of strings (the worker's argv), "
                          f"got {command!r}")
    if shutil.which(command[0]) is None:
        raise LaunchError(f"command[0] {command[0]!r} is not an executable file or a program on PATH")
    workers = _checked(check_int, "workers", workers, 1, MAX_WORKERS)
    servers = _checked(check_int, "servers", servers, 1, MAX_SERVERS)
    if timeout is not None:
        timeout = _checked(check_number, "timeout", timeout, 0, low_open=True,
                           hint="seconds for the whole job, or None for no limit")
    grace = _checked(check_number, "grace", grace, 0)
    env = dict(env or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise LaunchError(f"env must map strings to strings, got {env!r}")
    if not isinstance(host, str) or not host:
        raise LaunchError(f"host must be a non-empty string (an address of this machine), got {host!r}")
    if importlib.util.find_spec("mxnet") is None:
        raise LaunchError(f"mxnet is not importable by {sys.executable}, which runs the "
                          f"scheduler and servers; install mxnet there")
    if port is None:
        port = free_port(host)
    else:
        port = _checked(check_int, "port", port, 1, 65535)
        check_port_free(port, host)

    base = {**os.environ, **env}
    base.setdefault("PYTHONUNBUFFERED", "1")  # Python children: lines as they happen
    # N workers each running one OpenMP thread per CPU oversubscribe a small machine
    # N times over (and scheduler and servers barely compute).  A value in ``env``
    # or the user's environment is kept, except one equal to the CPU count in
    # os.environ: that is what lyricnn/__init__.py sets when nobody chose.
    threads = {}
    inherited = os.environ.get("OMP_NUM_THREADS")
    if "OMP_NUM_THREADS" not in env and inherited in (None, str(_cpus())):
        threads = {"scheduler": "1", "server": "1", "worker": str(max(1, _cpus() // workers))}

    def role_env(role):
        extra = {"OMP_NUM_THREADS": threads[role]} if threads else {}
        return {**base, **extra, **role_environment(role, scheduler_host=host, port=port,
                                                    workers=workers, servers=servers, node_host=host)}

    job = _Job(sys.stdout if output is None else output,
               sys.stderr if errors is None else errors)
    received = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Only a flag: the loop below notices it within POLL_SECONDS and stops everyone.
        for signum in SIGNAL_EXIT:
            previous[signum] = signal.signal(signum, lambda signum, frame: received.append(signum))
    start = time.monotonic()
    try:
        job.start("scheduler", SERVER_COMMAND, role_env("scheduler"))
        for i in range(servers):
            job.start(f"server {i}", SERVER_COMMAND, role_env("server"))
        for i in range(workers):
            job.start(f"worker {i}", list(command), role_env("worker"))
        return _watch(job, start, timeout, grace, received)
    finally:
        job.stop(grace)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch(job, start, timeout, grace, received):
    # Workers first: when a worker's death takes a server down with it, name the worker.
    order = sorted(job.children, key=lambda child: not child[0].startswith("worker"))
    while True:
        if received:
            return _fail(job, f"interrupted by {signal.Signals(received[0]).name}",
                         SIGNAL_EXIT[received[0]], "all")
        codes = [(name, proc, proc.poll()) for name, proc in order]
        for name, proc, code in codes:
            if code:  # non-zero or negative (signal); None is still running
                return _fail(job, f"{name} (pid {proc.pid}) {_describe(code)}",
                             code if code > 0 else 128 - code)
        if all(code == 0 for name, _, code in codes if name.startswith("worker")):
            servers = [(name, proc) for name, proc in job.children if not name.startswith("worker")]
            deadline = time.monotonic() + grace
            while any(proc.poll() is None for _, proc in servers) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
            late = [name for name, proc in servers if proc.poll() is None]
            if late:
                log.warning("workers done; %s still running after %g s, stopping them",
                            ", ".join(late), grace)
            job.stop(0.0, servers)
            return 0
        if timeout is not None and time.monotonic() - start > timeout:
            return _fail(job, f"timeout of {timeout:g} s passed (--timeout)", TIMEOUT_EXIT, "all")
        time.sleep(POLL_SECONDS)


def _fail(job, reason, code, which="the other"):
    live = sum(proc.poll() is None for _, proc in job.children)
    message = f"lyricnn launch: {reason}; stopping {which} {live} process{'es' * (live != 1)}"
    job.say(message, job.errors)
    log.info("%s", message)  # for programs that collect logs; the user already saw it
    return code
