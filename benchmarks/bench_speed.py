"""Seconds per training epoch, side by side: d2lzh, lyricnn, PyTorch and the FLOP floor.

The table issue 11 asks for, in one run: every implementation trains the
book's model (hidden 256, 35 steps, batch 32, lr 1e2, gradients clipped to
global norm 1e-2, plain SGD, the lyrics' first 10,000 characters) from fresh
parameters on a fresh data iterator, **each run in a process of its own**; the
implementations alternate round by round (the order rotates every round) so
that machine noise hits them alike, and each figure is the median over the
rounds of (run time / epochs). Every process runs one untimed epoch first
(oneDNN primitive creation, torch's first-call costs).

Why one process per run: in one shared process MXNet's engine threads and
PyTorch's OpenMP pool slow each other down. The first version of this
benchmark ran everything in one process and measured the best PyTorch version
at 0.340 s/epoch and ``lyricnn.rnn`` at 0.34; each alone takes about 0.19 and
0.24 (AMD EPYC 2 vCPU, 2026-11-28): the shared process had made a 0.8x
comparison look like parity.

Sections (``--sections``):

* ``rnn``: the scratch RNN of 6.4 with random sampling: d2lzh running the
  book's notebook cells (``tests/oracle/book_notebook.py``), once under lyricnn's OpenMP
  settings and once under MXNet's defaults (as a reader who imports only
  d2lzh runs it), lyricnn with ``lyricnn.rnn``,
  lyricnn running the book's notebook cells, PyTorch written by hand with a
  gather for the input product, the same with the gather and the output
  layer hoisted out of the time loop, and the FLOP floor;
* ``gluon``: ``RNNModel(rnn.RNN(256))`` of 6.5 (ReLU), consecutive sampling:
  d2lzh, lyricnn, PyTorch ``nn.RNN(nonlinearity='relu')`` + ``nn.Linear``;
* ``gru``, ``lstm``: the scratch cells of 6.7/6.8, consecutive sampling as
  the chapters train them: d2lzh with the notebook's cells, lyricnn with
  ``lyricnn.gru``/``lstm``, lyricnn with the notebook's cells.

The FLOP floor is the model's GEMM FLOPs per epoch, forward and backward
(two products per forward product), with the input product counted as a
gather (no FLOPs), divided by the best GEMM rate that MXNet's
``FullyConnected`` (oneDNN) reaches in this run at the shapes those GEMMs have
(measured before the first section and again before each report; the best
time per shape is kept).
A second figure charges every GEMM at the rate measured at its own shape,
which for the small per-step products includes MXNet's per-operator cost.

PyTorch (optional, ``pip install -e '.[bench]'``) computes the book's model
with the same initialisation (weights N(0, 0.01²), biases zero), loss (mean
cross-entropy), clipping (``min(1, theta / ||g||)``, no epsilon) and SGD, on
minibatches drawn by the book's samplers (a NumPy copy here), with
``torch.set_num_threads(2)`` (``--torch-threads``). Its rows are skipped with
a note when torch is missing. Every process except the "MXNet's defaults" one
inherits the OpenMP variables that ``import lyricnn`` sets (the machine line
shows them), PyTorch's too: its own default (libgomp spinning at every
barrier) collapses on a shared machine (``bench_word.py``).

    .venv/bin/python benchmarks/bench_speed.py                  # 3 rounds x 4 epochs
    .venv/bin/python benchmarks/bench_speed.py --rounds 5 --epochs 8
    .venv/bin/python benchmarks/bench_speed.py --sections rnn,gluon
    .venv/bin/python benchmarks/bench_speed.py --quick          # dry run, < 60 s
"""
import argparse
import contextlib
import functools
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# What a reader who never imports lyricnn runs under: taken before anything here
# imports lyricnn (which sets MXNet's OpenMP variables when it loads).
READER_ENV = dict(os.environ)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.machine import (  # noqa: E402  (standard library only)
    TORCH_MKL_HELP, TORCH_MKL_MODES, cpu_model, torch_mkl_env)

HIDDEN, STEPS, BATCH, LR, CLIP = 256, 35, 32, 1e2, 1e-2
SECTIONS = ("rnn", "gluon", "gru", "lstm", "gluon-gru", "gluon-lstm")
DEFAULT_SECTIONS = ("rnn", "gluon", "gru", "lstm")
GATES = {"rnn": 1, "gluon": 1, "gru": 3, "lstm": 4, "gluon-gru": 3, "gluon-lstm": 4}
# Gluon layer (in mxnet.gluon.rnn), its PyTorch counterpart (both the cuDNN formulas: the GRU's reset gate
# multiplies the hidden product) and the counterpart's keyword arguments.
GLUON_LAYERS = {
    "gluon": ("RNN", "RNN", {"nonlinearity": "relu"}),
    "gluon-gru": ("GRU", "GRU", {}),
    "gluon-lstm": ("LSTM", "LSTM", {}),
}


# ----------------------------------------------------------------------------- rows

def rows(section, torch_too):
    """``[(name, package, env)]`` of ``section``: each row runs ``package`` ("d2lzh",
    "lyricnn" or "torch") in its own process, under lyricnn's OpenMP settings
    (env "lyricnn") or under the environment this script started with ("reader")."""
    if section in GLUON_LAYERS:
        out = [("d2lzh", "d2lzh", "lyricnn"), ("d2lzh, MXNet's defaults", "d2lzh", "reader"),
               ("lyricnn", "lyricnn", "lyricnn")]
        name = {"RNN": "nn.RNN(relu)"}.get(GLUON_LAYERS[section][1],
                                           f"nn.{GLUON_LAYERS[section][1]}")
        torch_rows = [f"PyTorch {name} + Linear"]
    else:
        out = [("d2lzh (book's cells)", "d2lzh", "lyricnn"),
               ("d2lzh (book's cells), MXNet's defaults", "d2lzh", "reader"),
               (f"lyricnn (lyricnn.{section})", "lyricnn", "lyricnn"),
               # lyricnn's own form run as written, not replayed (lyricnn.models.tracing)
               (f"lyricnn (lyricnn.{section}, trace=False)", "lyricnn", "lyricnn"),
               ("lyricnn (book's cells)", "lyricnn", "lyricnn"),
               # the same run as written every step (CSR one-hot inputs), the default before
               # lyricnn.models.tracing
               ("lyricnn (book's cells, trace=False)", "lyricnn", "lyricnn")]
        torch_rows = (["PyTorch, gather in the loop", "PyTorch, gather + output hoisted"]
                      if section == "rnn" else [])
    return out + [(name, "torch", "lyricnn") for name in torch_rows if torch_too]


# ----------------------------------------------------------------------------- timing

def timed(run, epochs, sync):
    """Seconds per epoch of ``run(epochs)``, its printing swallowed."""
    sync()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run(epochs)
    sync()
    return (time.perf_counter() - start) / epochs


# ----------------------------------------------------------------------------- MXNet runners

def mx_runner(section, row, data):
    """``row``'s ``run(epochs)`` for an MXNet package; imports only that package."""
    import importlib
    package = importlib.import_module("lyricnn" if row.startswith("lyricnn") else "d2lzh")
    import mxnet as mx
    ctx = mx.cpu()
    ci, c2i, i2c, V = data
    if section in GLUON_LAYERS:
        from mxnet.gluon import rnn as gluon_rnn
        layer = getattr(gluon_rnn, GLUON_LAYERS[section][0])

        def run(epochs):
            package.train_and_predict_rnn_gluon(
                package.RNNModel(layer(HIDDEN), V), HIDDEN, V, ctx, ci, i2c, c2i,
                epochs, STEPS, LR, CLIP, BATCH, epochs + 1, 1, ["分开"])
        return run
    from tests.oracle import book_notebook as book
    from tests.oracle import book_notebook_gated as book_gated
    if "book's cells" not in row:                  # lyricnn's own cells
        getters = {"rnn": lambda: package.params_getter(V, HIDDEN, ctx),
                   "gru": lambda: functools.partial(package.get_gru_params, V, HIDDEN, ctx),
                   "lstm": lambda: functools.partial(package.get_lstm_params, V, HIDDEN, ctx)}
        cell = (getattr(package, section), getters[section](),
                getattr(package, f"init_{section}_state"))
    elif section == "rnn":
        cell = (book.rnn, book.make_get_params(V, HIDDEN, ctx), book.init_rnn_state)
    elif section == "gru":
        cell = (book_gated.gru, book_gated.make_gru_get_params(V, HIDDEN, ctx),
                book_gated.init_gru_state)
    else:
        cell = (book_gated.lstm, book_gated.make_lstm_get_params(V, HIDDEN, ctx),
                book_gated.init_lstm_state)
    options = {"trace": False} if row.endswith("trace=False)") else {}

    def run(epochs):
        package.train_and_predict_rnn(*cell, HIDDEN, V, ctx, ci, i2c, c2i, section == "rnn",
                                      epochs, STEPS, LR, CLIP, BATCH, epochs + 1, 1, ["分开"],
                                      **options)
    return run


# ----------------------------------------------------------------------------- PyTorch runners

def numpy_random_batches(corpus, batch_size, num_steps):
    """The book's random sampler (6.3.2) on a NumPy int64 corpus."""
    num_examples = (len(corpus) - 1) // num_steps
    example_indices = list(range(num_examples))
    random.shuffle(example_indices)
    offsets = np.arange(num_steps)
    for i in range(num_examples // batch_size):
        starts = np.asarray(example_indices[i * batch_size:(i + 1) * batch_size])[:, None]
        starts = starts * num_steps + offsets
        yield corpus[starts], corpus[starts + 1]


def numpy_consecutive_batches(corpus, batch_size, num_steps):
    """The book's consecutive sampler (6.3.3) on a NumPy int64 corpus."""
    batch_len = len(corpus) // batch_size
    rows = corpus[:batch_size * batch_len].reshape((batch_size, batch_len))
    for i in range((batch_len - 1) // num_steps):
        i *= num_steps
        yield rows[:, i:i + num_steps], rows[:, i + 1:i + num_steps + 1]


def torch_runners(section, data, threads):
    """PyTorch versions of ``section``'s model, or ``{}`` when torch is not installed."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    F = torch.nn.functional
    corpus = np.asarray(data[0], dtype=np.int64)
    V = data[3]

    def normal(*shape):
        return (torch.randn(*shape) * 0.01).requires_grad_()

    def zeros(*shape):
        return torch.zeros(*shape, requires_grad=True)

    @torch.no_grad()
    def clipped_sgd(params):
        """The book's grad_clipping (min(1, theta/||g||), no epsilon) then sgd(lr, 1)."""
        grads = [p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, torch.clamp(CLIP / norm, max=1.0))
        torch._foreach_add_(params, grads, alpha=-LR)

    def train(forward, params, begin_state, random_iter, epochs):
        """The book's loop: state made per minibatch (random) or carried and detached."""
        losses = []
        for _ in range(epochs):
            state = None
            batches = (numpy_random_batches if random_iter else numpy_consecutive_batches)(
                corpus, BATCH, STEPS)                            # fresh iterator per epoch
            for X, Y in batches:
                X, Y = torch.from_numpy(X), torch.from_numpy(Y)   # (batch, steps) int64
                if state is None or random_iter:
                    state = begin_state()
                elif isinstance(state, tuple):                    # LSTM: (h, c)
                    state = tuple(s.detach() for s in state)
                else:
                    state = state.detach()
                logits, state = forward(X, state)                 # (steps*batch, V)
                loss = F.cross_entropy(logits, Y.T.reshape(-1))
                for p in params:
                    p.grad = None
                loss.backward()
                clipped_sgd(params)
                losses.append(loss.detach())
            float(torch.stack(losses).mean())   # one synchronisation per epoch, as lyricnn

    if section == "rnn":
        def scratch_params():
            return [normal(V, HIDDEN), normal(HIDDEN, HIDDEN), zeros(HIDDEN),
                    normal(HIDDEN, V), zeros(V)]

        def per_step(X, state, params):
            """The book's rnn with the one-hot product as a gather, output layer per step."""
            W_xh, W_hh, b_h, W_hq, b_q = params
            H, outputs = state, []
            for x in X.T:                                         # x: (batch,)
                H = torch.tanh(F.embedding(x, W_xh) + H @ W_hh + b_h)
                outputs.append(H @ W_hq + b_q)                    # (batch, V)
            return torch.cat(outputs), H

        def hoisted(X, state, params):
            """One gather for all steps before the loop, one output GEMM after it."""
            W_xh, W_hh, b_h, W_hq, b_q = params
            XW = F.embedding(X.T, W_xh)                           # (steps, batch, h)
            H, hiddens = state, []
            for XW_t in XW:
                H = torch.tanh(XW_t + torch.addmm(b_h, H, W_hh))
                hiddens.append(H)
            return torch.addmm(b_q, torch.cat(hiddens), W_hq), H  # (steps*batch, V)

        def runner(forward):
            def run(epochs):
                params = scratch_params()
                train(lambda X, H: forward(X, H, params), params,
                      lambda: torch.zeros(BATCH, HIDDEN), True, epochs)
            return run
        return {"PyTorch, gather in the loop": runner(per_step),
                "PyTorch, gather + output hoisted": runner(hoisted)}

    if section in GLUON_LAYERS:
        _, torch_layer, kwargs = GLUON_LAYERS[section]

        class TorchRNNModel(torch.nn.Module):
            """The book's RNNModel in PyTorch: one-hot inputs, the recurrent layer, Linear."""

            def __init__(self):
                super().__init__()
                self.rnn = getattr(torch.nn, torch_layer)(V, HIDDEN, **kwargs)
                self.dense = torch.nn.Linear(HIDDEN, V)
                for name, p in self.named_parameters():   # Gluon: Normal(0.01), biases zero
                    with torch.no_grad():
                        p.normal_(0, 0.01) if "weight" in name else p.zero_()

            def forward(self, X, state):                   # X: (batch, steps) int64
                Y, state = self.rnn(F.one_hot(X.T, V).float(), state)
                return self.dense(Y.reshape(-1, HIDDEN)), state

        def begin_state():
            h = torch.zeros(1, BATCH, HIDDEN)
            return (h, torch.zeros_like(h)) if torch_layer == "LSTM" else h

        def run(epochs):
            model = TorchRNNModel()
            train(model, list(model.parameters()), begin_state, False, epochs)
        name = {"RNN": "nn.RNN(relu)"}.get(torch_layer, f"nn.{torch_layer}")
        return {f"PyTorch {name} + Linear": run}
    return {}


# ----------------------------------------------------------------------------- FLOP floor

def gemm_seconds(M, K, N, repeats, trials=3):
    """Best seconds of one ``(M, K) x (K, N)`` FullyConnected over ``trials`` of ``repeats``."""
    import lyricnn  # noqa: F401  (its OpenMP settings, as the lyricnn rows)
    from mxnet import nd
    X = nd.random.normal(shape=(M, K))
    W = nd.random.normal(shape=(N, K))   # FullyConnected wants the weight transposed
    nd.FullyConnected(X, W, no_bias=True, num_hidden=N).wait_to_read()  # oneDNN set-up
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            out = nd.FullyConnected(X, W, no_bias=True, num_hidden=N)
        out.wait_to_read()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


class GemmTimes:
    """Best seconds per GEMM shape seen so far in this run.

    The rates are measured in a process of their own in every round of every
    section, and the best is kept: a GEMM never runs faster than the machine
    allows, so a slow measurement only means the machine was busy.
    """

    def __init__(self, repeats):
        self.repeats, self.best = repeats, {}

    def measure(self, shapes):
        out = child(["--worker", "gemm", "--shapes", json.dumps([list(s) for s in shapes]),
                     "--repeats", str(self.repeats)])
        for shape, sec in zip(shapes, out["seconds"]):
            self.best[shape] = min(sec, self.best.get(shape, float("inf")))


def model_gemms(section, vocab_size, num_batches):
    """``{(M, K, N): count}`` of the GEMMs one epoch computes, forward and backward.

    A forward product ``(M, K) x (K, N)`` has two backward ones, ``(M, N) x (N, K)``
    for the input gradient and ``(K, M) x (M, N)`` for the weight gradient. The
    input product ``one_hot(x) W_x*`` is a gather (no FLOPs); the gates' hidden
    products are one GEMM of width ``gates * h``.
    """
    gh = GATES[section] * HIDDEN
    hidden = (BATCH, HIDDEN, gh)                       # per step
    output = (STEPS * BATCH, HIDDEN, vocab_size)       # all steps at once
    gemms = {}
    for (M, K, N), count in ((hidden, STEPS * num_batches), (output, num_batches)):
        for shape in ((M, K, N), (M, N, K), (K, M, N)):
            gemms[shape] = gemms.get(shape, 0) + count
    return gemms


def flop_floor(section, vocab_size, num_batches, gemm_times):
    """(GFLOP per epoch, best GFLOP/s, floor at best rate, floor at per-shape rates)."""
    gemms = model_gemms(section, vocab_size, num_batches)
    gemm_times.measure(gemms)
    flops = {s: 2 * s[0] * s[1] * s[2] for s in gemms}
    secs = {s: gemm_times.best[s] for s in gemms}
    total = sum(flops[s] * c for s, c in gemms.items())
    best = max(flops[s] / secs[s] for s in gemms)
    shaped = sum(secs[s] * c for s, c in gemms.items())
    return total / 1e9, best / 1e9, total / best, shaped


def batches_per_epoch(section, num_tokens):
    if section == "rnn":
        return ((num_tokens - 1) // STEPS) // BATCH
    return (num_tokens // BATCH - 1) // STEPS


# ----------------------------------------------------------------------------- report

TITLES = {
    "rnn": "scratch RNN (6.4), random sampling",
    "gluon": "Gluon RNNModel(rnn.RNN(256)) (6.5, ReLU), consecutive sampling",
    "gru": "scratch GRU (6.7), consecutive sampling",
    "lstm": "scratch LSTM (6.8), consecutive sampling",
    "gluon-gru": "Gluon RNNModel(rnn.GRU(256)) (6.7), consecutive sampling",
    "gluon-lstm": "Gluon RNNModel(rnn.LSTM(256)) (6.8), consecutive sampling",
}


def report(section, med, floor, torch_note):
    gflop, rate, floor_s, shaped_s = floor
    base = next(v for k, v in med.items() if k.startswith("d2lzh"))
    torch_rows = {k: v for k, v in med.items() if k.startswith("PyTorch")}
    best_torch = min(torch_rows.values()) if torch_rows else None
    print(f"\n{TITLES[section]}")
    print(f"  {'implementation':<40}{'s/epoch':>9}{'vs d2lzh':>9}{'vs torch':>9}{'floor/t':>9}")
    for name, sec in med.items():
        vs_torch = f"{best_torch / sec:>8.2f}x" if best_torch else f"{'-':>9}"
        print(f"  {name:<40}{sec:>9.3f}{base / sec:>8.2f}x{vs_torch}{floor_s / sec:>8.0%} ")
    print(f"  {'FLOP floor':<40}{floor_s:>9.3f}   = {gflop:.1f} GFLOP/epoch at {rate:.0f} GFLOP/s"
          f" (FullyConnected, best shape); {shaped_s:.3f} at per-shape rates")
    if torch_note and (section == "rnn" or section in GLUON_LAYERS):
        print(f"  ({torch_note})")


def print_targets(results):
    """Issue 11's speed targets, as ratios of the medians above (> 1: lyricnn faster)."""
    lines = []

    def ratio(section, slower, faster):
        med = results.get(section, {})
        slow = [v for k, v in med.items() if k.startswith(slower)]
        fast = [v for k, v in med.items() if k.startswith(faster)]
        return min(slow) / min(fast) if slow and fast else None

    checks = [("rnn", "PyTorch", "lyricnn (lyricnn.rnn)", 1.0, 1.5,
               "scratch RNN: lyricnn.rnn vs best PyTorch"),
              ("gluon", "PyTorch", "lyricnn", 1.0, 1.5, "Gluon RNN: lyricnn vs PyTorch nn.RNN")]
    checks += [(cell, "d2lzh", "lyricnn (book's cells)", 2.0, 2.0,
                f"book's {cell} cells: lyricnn vs d2lzh") for cell in ("rnn", "gru", "lstm")]
    checks += [(cell, "d2lzh", f"lyricnn (lyricnn.{cell})", 1.0, 1.0,
                f"scratch {cell.upper()}: lyricnn vs d2lzh (kept or improved)")
               for cell in ("gru", "lstm")]
    for section, slower, faster, need, aim, label in checks:
        r = ratio(section, slower, faster)
        if r is not None:
            verdict = "met" if r >= need else "NOT met"
            goal = f">= {need:g}x" + (f", aim {aim:g}x" if aim != need else "")
            lines.append(f"  {label:<52}{r:>6.2f}x  ({goal}: {verdict})")
    if lines:
        print("\nissue 11 targets (speed-up = slower's s/epoch / lyricnn's)")
        print("\n".join(lines))


# ----------------------------------------------------------------------------- processes

def child(arguments, env=None):
    """Run this script with ``arguments`` in a fresh process; its last stdout line, parsed."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve())] + arguments,
                         capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[:4])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(args):
    """One measurement in this process: a row's seconds per epoch, or GEMM times."""
    if args.worker == "gemm":
        shapes = json.loads(args.shapes)
        print(json.dumps({"seconds": [gemm_seconds(*s, args.repeats) for s in shapes]}))
        return 0
    with open(args.data, encoding="utf-8") as f:
        saved = json.load(f)
    i2c = saved["idx_to_char"]
    data = (saved["corpus_indices"], {c: i for i, c in enumerate(i2c)}, i2c, len(i2c))
    if args.row.startswith("PyTorch"):
        run, sync = torch_runners(args.worker, data, args.torch_threads)[args.row], lambda: None
    else:
        run = mx_runner(args.worker, args.row, data)
        from mxnet import nd
        sync = nd.waitall
    if not args.quick:
        timed(run, 1, sync)
    print(json.dumps({"seconds": timed(run, args.epochs, sync)}))
    return 0


def machine_line(torch_version):
    import mxnet as mx   # the parent runs nothing on it; lyricnn is loaded already
    threads = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count())
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                   if k.startswith(("OMP_", "OPENBLAS_", "GOMP_", "KMP_", "MXNET_", "MKL_")))
    reader = " ".join(f"{k}={v}" for k, v in sorted(READER_ENV.items())
                      if k.startswith(("OMP_", "OPENBLAS_", "GOMP_", "KMP_", "MXNET_", "MKL_")))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {cpu_model()}, nproc {threads}, load avg {load}; lyricnn's env: "
            f"{env or '(none)'}; MXNet's defaults: {reader or '(no OMP env)'}; "
            f"MXNet {mx.__version__}, torch {torch_version or '(not installed)'}; "
            f"Python {platform.python_version()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated, from {', '.join(SECTIONS)} "
                             f"(default: {','.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timed run (default 4)")
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="torch.set_num_threads (default 2)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    parser.add_argument("--torch-mkl", choices=TORCH_MKL_MODES, default="auto",
                        help=TORCH_MKL_HELP)
    parser.add_argument("--quick", action="store_true",
                        help="dry run: 1 round x 1 epoch, no warm-up, short GEMM timing")
    for hidden in ("--worker", "--row", "--data", "--shapes", "--repeats"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.repeats = int(args.repeats or 0)
        return worker(args)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        parser.error(f"--sections must name some of {', '.join(SECTIONS)}, got {args.sections!r}")
    for flag in ("rounds", "epochs", "torch_threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.quick:
        args.rounds, args.epochs = 1, 1
    import importlib.metadata
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    torch_note = None
    if args.no_torch or torch_version is None:
        torch_note = ("PyTorch rows skipped: --no-torch" if args.no_torch else
                      "PyTorch rows skipped: torch not installed (pip install -e '.[bench]')")
    # lyricnn's OpenMP settings go into os.environ here, and so to every child
    # but the "MXNet's defaults" ones, which get READER_ENV.
    import lyricnn
    corpus_indices, _, idx_to_char, vocab_size = lyricnn.load_data_jay_lyrics()
    print(machine_line(torch_version))
    print(f"book config: hidden {HIDDEN}, steps {STEPS}, batch {BATCH}, lr {LR:g}, clip {CLIP:g}, "
          f"{len(corpus_indices)} characters, vocab {vocab_size}; medians of {args.rounds} rounds x "
          f"{args.epochs} epochs, alternating, every run a fresh process; 'vs X' = X's s/epoch / "
          f"this row's (> 1: faster than X), 'floor/t' = FLOP floor / this row's s/epoch")
    results = {}
    gemm_times = GemmTimes(repeats=3 if args.quick else 20)
    with tempfile.TemporaryDirectory() as tmp:
        torch_env = None
        if torch_note is None:
            torch_env, mkl_note = torch_mkl_env(args.torch_mkl, tmp)
            print(mkl_note)
        data_file = os.path.join(tmp, "data.json")
        with open(data_file, "w", encoding="utf-8") as f:
            json.dump({"corpus_indices": corpus_indices, "idx_to_char": idx_to_char}, f)
        common = ["--data", data_file, "--epochs", str(args.epochs),
                  "--torch-threads", str(args.torch_threads)] + ["--quick"] * args.quick
        for section in sections:
            section_rows = rows(section, torch_note is None)
            times = {name: [] for name, _, _ in section_rows}
            for r in range(args.rounds):
                gemm_times.measure(model_gemms(section, vocab_size, 1))
                order = section_rows[r % len(section_rows):] + section_rows[:r % len(section_rows)]
                for name, impl, env in order:
                    out = child(["--worker", section, "--row", name] + common,
                                env=READER_ENV if env == "reader" else
                                torch_env if impl == "torch" else None)
                    times[name].append(out["seconds"])
            med = {name: statistics.median(v) for name, v in times.items()}
            floor = flop_floor(section, vocab_size,
                               batches_per_epoch(section, len(corpus_indices)), gemm_times)
            report(section, med, floor, torch_note)
            results[section] = med
    print_targets(results)
    print(f"\nload avg at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
