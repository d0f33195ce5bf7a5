"""Devices (``ctx``) and reproducible seeding.

The book passes ``ctx`` everywhere: ``None`` means MXNet's current default
context (``mx.cpu()`` unless changed), otherwise an ``mx.Context``.
"""
import functools
import logging
import random

import mxnet as mx
import numpy as np
from mxnet import nd

from lyricnn.checks import check_int

# mx.random.seed passes the seed through ctypes.c_int, which keeps the low 32
# bits: 2**32 + 7 would seed MXNet exactly like 7.  Below 2**32 the mapping is
# one-to-one (2**31 + 7 becomes a distinct negative C int), and NumPy's
# legacy seed takes 0..2**32 - 1 too, so that is the range; larger seeds are
# refused rather than silently aliased.  (config.MAX_SEED is the same bound.)
MAX_SEED = 2**32 - 1

log = logging.getLogger(__name__)


def try_gpu():
    """Return ``mx.gpu()`` if MXNet can allocate on it, else ``mx.cpu()`` (d2lzh)."""
    try:
        ctx = mx.gpu()
        _ = nd.array([0], ctx=ctx)
    except mx.base.MXNetError:
        ctx = mx.cpu()
    return ctx


def try_all_gpus():
    """Return every usable GPU context, or ``[mx.cpu()]`` if there is none (d2lzh)."""
    ctxes = []
    try:
        for i in range(16):
            ctx = mx.gpu(i)
            _ = nd.array([0], ctx=ctx)
            ctxes.append(ctx)
    except mx.base.MXNetError:
        pass
    return ctxes or [mx.cpu()]


#: Device numbers an ``mx.Context`` can hold (a 32-bit id in MXNet; no machine has more
#: than a few devices, so a larger number is a typo).
MAX_DEVICE = 2**10


def resolve_ctx(ctx):
    """Turn ``None``, ``'cpu'``, ``'gpu'``, ``'cpu:N'``, ``'gpu:N'`` or an ``mx.Context``
    into an ``mx.Context``.

    ``'gpu'`` falls back to the CPU with a warning when MXNet sees no GPU, so a
    script written for a GPU machine still runs on a laptop.
    """
    if ctx is None:
        return mx.context.current_context()
    if isinstance(ctx, mx.Context):
        if ctx.device_type == "gpu":
            _check_gpu(ctx.device_id, f"mx.gpu({ctx.device_id})")
        return ctx
    if not isinstance(ctx, str):
        hint = "; pass one context, not a list" if isinstance(ctx, (list, tuple)) else ""
        raise ValueError(f"ctx must be None, 'cpu', 'gpu', 'cpu:N', 'gpu:N' or an mx.Context, "
                         f"got {ctx!r} ({type(ctx).__name__}){hint}")
    if ":" in ctx:
        return _indexed_ctx(ctx)
    if ctx == "cpu":
        return mx.cpu()
    if ctx == "gpu":
        found = try_gpu()
        if found.device_type != "gpu":
            log.warning("ctx='gpu' requested but MXNet sees no GPU; using the CPU")
        return found
    raise ValueError(f"ctx must be None, 'cpu', 'gpu', 'cpu:N', 'gpu:N' or an mx.Context, "
                     f"got {ctx!r}")


def resolve_ctx_list(ctx):
    """Turn one context or several into a non-empty list of ``mx.Context``.

    Accepts what ``resolve_ctx`` accepts, a list or tuple of those, and
    strings naming devices by index, alone or comma-separated:
    ``'cpu:0,cpu:1'``, ``'gpu:0,gpu:1'``. A CPU "device" other than 0 is the
    same processor under another name, which is how lyricnn tests its
    multi-device path without GPUs. A device listed twice is an error.
    """
    items = ctx.split(",") if isinstance(ctx, str) else ctx
    if not isinstance(items, (list, tuple)):
        items = [items]
    if not items:
        raise ValueError("ctx is an empty list; give at least one device, e.g. [mx.cpu()]")
    ctxs = [resolve_ctx(item.strip() if isinstance(item, str) else item) for item in items]
    if len(set(ctxs)) != len(ctxs):
        raise ValueError(f"ctx lists a device twice: {ctxs}; give each device once")
    return ctxs


def _indexed_ctx(ctx):
    """``'cpu:N'`` or ``'gpu:N'`` as an ``mx.Context``.

    An explicit GPU that MXNet cannot use is an error (``'gpu'`` alone falls back).
    """
    kind, _, index = ctx.partition(":")
    if kind not in ("cpu", "gpu") or not index.isdigit() or int(index) >= MAX_DEVICE:
        raise ValueError(f"ctx {ctx!r} is not a device: use cpu, gpu, cpu:N or gpu:N with N "
                         f"below {MAX_DEVICE}, comma-separated for several")
    device = mx.Context(kind, int(index))
    if kind == "gpu":
        _check_gpu(int(index), repr(ctx))
    return device


@functools.lru_cache(maxsize=None)
def _gpu_usable(index):
    try:
        nd.array([0], ctx=mx.gpu(index)).wait_to_read()
        return True
    except mx.base.MXNetError:
        return False


def _check_gpu(index, shown):
    """``ValueError`` unless MXNet can use ``gpu(index)`` (asked once per process)."""
    if not _gpu_usable(index):
        raise ValueError(f"ctx {shown}: MXNet cannot use gpu({index}) (no such GPU, or "
                         "this MXNet build has no CUDA); cpu:0,cpu:1 exercises the "
                         "multi-device path on a CPU")


def set_seed(seed):
    """Seed Python's ``random``, NumPy and MXNet so that a run can be repeated.

    The book's random sampler draws from Python's ``random``; parameter
    initialisation draws from MXNet; lyricnn's own sampling draws from NumPy.

    ``seed``: an integer in ``[0, MAX_SEED]`` (NumPy integers accepted).
    """
    seed = check_int("seed", seed, minimum=0, maximum=MAX_SEED, hint="e.g. set_seed(0)")
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)
