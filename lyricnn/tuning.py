"""Process tuning: every process-wide setting lyricnn makes, in one place, with one opt-out.

MXNet 1.x on a small CPU runs fastest with a few settings of the process it
runs in. Each is measured; the figures, commands and machines are in
``docs/RESULTS.md`` ("Process tuning"). The settings:

============================  =========================  ================================
setting                        value                      why (short)
============================  =========================  ================================
``OMP_NUM_THREADS``            the CPUs this process      MXNet sizes its OpenMP pool at
                               may run on                 half the CPUs (it assumes
                                                          hyper-threads): one thread on 2
``GOMP_SPINCOUNT``             ``1000``                   libgomp's default spin collapses
                                                          on a loaded shared machine
``MXNET_CPU_PARALLEL_SIZE``    ``2**31 - 1``              a large copy on the Python thread
                                                          starts a second OpenMP team that
                                                          slows every later operator
``MXNET_STORAGE_FALLBACK_``    ``0``                      a reader's cell on CSR one-hot
``LOG_VERBOSE``                                           inputs falls back to dense on
                                                          purpose; MXNet logs it each time
glibc ``mallopt``              mmap threshold 1 GiB,      MXNet's CPU storage has no pool:
                               trim 2 GiB, top pad        without this the heap is trimmed
                               256 MiB                    and refaulted every minibatch
============================  =========================  ================================

Who applies them. The environment variables are read by MXNet and libgomp
when MXNet loads (``MXNET_CPU_PARALLEL_SIZE``: at the first large copy), so
they must be in place before it: ``import lyricnn`` applies them
(``apply_environment``), because the book's chapters run ``import lyricnn as
d2l`` and then ``from mxnet import nd``. The allocator setting is applied by
the entry points that train: the ``lyricnn`` command and the book-compatible
trainers (``retain_freed_memory``). Nothing else in lyricnn changes the process.

Opting out. With ``LYRICNN_NO_TUNING=1`` in the environment, importing and
training change no environment variable, no allocator setting and no log
level. A value the user has set (``OMP_NUM_THREADS=…``, ``OMP_WAIT_POLICY``,
``MALLOC_*_``, ``GLIBC_TUNABLES``) is never overridden either. None of the
settings changes a result, only speed.
"""
import ctypes
import logging
import os
import sys

#: ``LYRICNN_NO_TUNING=1``: lyricnn changes nothing of the process (see the module docstring).
OPT_OUT = "LYRICNN_NO_TUNING"
#: An int as MXNet parses it: copies on the caller's thread never use OpenMP.
NO_PARALLEL_COPY = str(2**31 - 1)
#: mallopt(3) parameters (glibc's malloc.h) and lyricnn's values for them.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MALLOC_OPTIONS = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1),
                  (_M_TOP_PAD, 1 << 28))
#: Environment variables through which a user chooses malloc settings: theirs win.
MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_",
              "GLIBC_TUNABLES")
_malloc_settings = []


def enabled(environ=None):
    """``False`` when the user opted out with ``LYRICNN_NO_TUNING=1``."""
    return (os.environ if environ is None else environ).get(OPT_OUT, "") != "1"


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def environment(environ=None, mxnet_loaded=None):
    """``{variable: value}`` that ``apply_environment`` would set now (nothing already set).

    The variables MXNet reads when it loads are left out once it is loaded:
    setting them then would change nothing but the environment.
    """
    env = os.environ if environ is None else environ
    loaded = "mxnet" in sys.modules if mxnet_loaded is None else mxnet_loaded
    if not enabled(env):
        return {}
    wanted = {}
    if not loaded:
        if "OMP_NUM_THREADS" not in env:
            wanted["OMP_NUM_THREADS"] = str(_cpus())
        if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
            wanted["GOMP_SPINCOUNT"] = "1000"
        if "MXNET_STORAGE_FALLBACK_LOG_VERBOSE" not in env:
            wanted["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"
    if "MXNET_CPU_PARALLEL_SIZE" not in env:   # read at the first large copy
        wanted["MXNET_CPU_PARALLEL_SIZE"] = NO_PARALLEL_COPY
    return wanted


#: The user's ``OMP_NUM_THREADS`` when it was not a number (``apply_environment`` replaced
#: it: MXNet aborts on such a value with a C++ ``terminate``); ``None`` otherwise.
INVALID_THREADS = None


def apply_environment():
    """Set ``environment()`` in ``os.environ``; return what was set. Called by ``import lyricnn``.

    An ``OMP_NUM_THREADS`` that is not a positive whole number would abort the process
    when MXNet loads (a C++ ``terminate``, no Python error): the library replaces it by
    the CPU count (logged at INFO; the library prints nothing), and the ``lyricnn``
    command refuses it with one line naming it (``INVALID_THREADS``)."""
    global INVALID_THREADS
    value = os.environ.get("OMP_NUM_THREADS")
    if value is not None and not (value.strip().isdigit() and int(value) > 0):
        INVALID_THREADS = value
        del os.environ["OMP_NUM_THREADS"]
        logging.getLogger(__name__).info("OMP_NUM_THREADS=%r is not a number of threads "
                                         "(MXNet would abort on it); using %d", value, _cpus())
    wanted = environment()
    os.environ.update(wanted)
    late = late_import(os.environ)
    if late:
        logging.getLogger(__name__).warning(late)
    return wanted


def late_import(environ, mxnet_loaded=None, cpus=None):
    """What to tell a user who imported MXNet before lyricnn (``None``: nothing).

    MXNet reads ``OMP_NUM_THREADS`` when it loads; without it (or its own
    ``MXNET_OMP_MAX_THREADS``) MXNet 1.x on x86 sizes its OpenMP pool at half the CPUs,
    and nothing after the load changes that (MXNet's
    ``MXSetNumOMPThreads`` sets only the calling thread's count; its operators run on
    the engine's threads: measured, docs/RESULTS.md "Process tuning"). So the import
    order costs speed silently, about half on 2 vCPUs: a warning, not an error, since
    every result is the same."""
    loaded = "mxnet" in sys.modules if mxnet_loaded is None else mxnet_loaded
    cpus = _cpus() if cpus is None else cpus
    chosen = "OMP_NUM_THREADS" in environ or "MXNET_OMP_MAX_THREADS" in environ
    if not loaded or not enabled(environ) or chosen or cpus < 2:
        return None
    return (f"MXNet was imported before lyricnn, so lyricnn could not set OMP_NUM_THREADS: "
            f"MXNet computes on {max(1, cpus // 2)} of this machine's {cpus} CPUs (on x86). Import "
            f"lyricnn first (import lyricnn as d2l, then from mxnet import ...), or set "
            f"OMP_NUM_THREADS={cpus} before Python starts")


def retain_freed_memory():
    """Make glibc's ``malloc`` keep freed memory for reuse (once per process); ``True``
    if the settings are in force.

    MXNet's CPU storage has no pool: every NDArray an operator outputs is
    ``malloc``-ed and every dropped one ``free``-d, tens of megabytes per
    minibatch (the logits, their softmax, their gradient). glibc returns such
    memory to the kernel (``munmap``, heap trimming) and takes it back on the
    next minibatch, page by page: thousands of page faults per minibatch.
    With large blocks taken from the heap, the heap never trimmed and headroom
    kept at its top, freed memory stays with the process and its peak
    resident size does not grow (measured: docs/RESULTS.md, "Process
    tuning"). Skipped (``False``) off glibc, under ``LYRICNN_NO_TUNING=1``, or
    when the user has chosen malloc settings (``MALLOC_*_``, ``GLIBC_TUNABLES``).
    """
    if not _malloc_settings:
        _malloc_settings.append(_set_malloc_options())
    return _malloc_settings[0]


def _set_malloc_options():
    if (not enabled() or not sys.platform.startswith("linux")
            or any(k in os.environ for k in MALLOC_ENV)):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all([mallopt(option, value) == 1 for option, value in MALLOC_OPTIONS])
