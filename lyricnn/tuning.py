"""TODO docstring (tuning, from training.py)."""
import ctypes
import os
import sys




# ------------------------------------------------------------------------ loop

# mallopt(3) parameters: glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_",
               "GLIBC_TUNABLES")
_malloc_settings = []


def retain_freed_memory():
    """Make glibc's ``malloc`` keep freed memory for reuse (once per process); ``True``
    if the settings are in force.

    MXNet's CPU storage has no pool: every NDArray an operator outputs is
    ``malloc``-ed and every dropped one ``free``-d, tens of megabytes per
    minibatch (the logits, their softmax, their gradient). glibc returns such
    memory to the kernel (``munmap``, heap trimming) and takes it back on the
    next minibatch, page by page: in one process out of two or three the 2x200
    word LM took 11,700-12,800 page faults per minibatch, and 13,700 at 2x650
    tied, costing 30-40 ms per minibatch of ~130 (AMD EPYC 2 vCPU VM, MXNet
    1.9.1). With large blocks taken from the heap (mmap threshold 1 GiB), the
    heap never trimmed (trim threshold 2 GiB) and 256 MiB of headroom kept at
    its top (which also keeps the worker threads' heaps from shrinking), every
    process took 0-2 faults per minibatch. Freed memory then stays with the
    process; its peak resident size did not grow (329-339 MB against 314-338
    at 2x200, 738-740 against 719-743 at 2x650). Skipped (``False``) off
    glibc, or when the user has chosen malloc settings through the
    environment (``MALLOC_*_`` or ``GLIBC_TUNABLES``).
    """
    if not _malloc_settings:
        _malloc_settings.append(_set_malloc_options())
    return _malloc_settings[0]


def _set_malloc_options():
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _MALLOC_ENV):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    options = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1),
               (_M_TOP_PAD, 1 << 28))
    return all([mallopt(option, value) == 1 for option, value in options])
