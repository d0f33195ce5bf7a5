"""Word-level LSTM language-model training speed: lyricnn against PyTorch, and the FLOP floor.

Both frameworks train the same model, Embedding(V, h) -> LSTM(h, h, layers) ->
Linear(h, V) with V = 10,000 (Penn Treebank's vocabulary), on the same kind of
minibatches (``batch`` consecutive streams, ``steps`` tokens each, state
carried and detached), with mean cross-entropy, gradients clipped to a global
norm and plain SGD, on 2 threads:

* lyricnn: ``lyricnn.models.word.build_word_lm`` trained by
  ``lyricnn.training.loop.run_epoch`` (the library's own loop);
* PyTorch: ``nn.Embedding`` + ``nn.LSTM`` + ``nn.Linear`` (decoder weight =
  embedding weight when tied, dropout as ``word_language_model``),
  ``torch.set_num_threads(2)``, ``CrossEntropyLoss``, ``clip_grad_norm_``, then
  ``p -= lr * p.grad``.

Configurations: Zaremba et al.'s "small" (2 x 200, batch 20, 20 steps, no
dropout, untied), a large tied one (2 x 650, batch 20, 35 steps, dropout
0.5, decoder tied to the embedding) and the same large tied model with lyricnn's
adaptive softmax (``--cutoffs 2000,6000``), set against PyTorch's *full* softmax
(the issue's bar: 1.5x its tokens/s). That configuration reads Penn Treebank's
own training tokens (frequency-sorted vocabulary): an adaptive softmax's cost
depends on how many targets fall in its tail clusters, 13 % on PTB, 80 % on
uniform tokens.

Every measurement runs in its own process (so that each framework's peak RSS
is its own and neither inherits the other's threads), after a few untimed
minibatches; the frameworks alternate, the order rotating every round, since
the machine is shared and noisy, and the table shows the best round (the
median in brackets). The inputs are uniform random tokens: speed does not
depend on the text.

The FLOP floor: the GEMM FLOPs of forward + backward per token (three
products of every forward product; the embedding is a gather; the LSTM's
``4h x (in + h)`` per layer, the decoder's ``h x V``), divided by the best
rate that MXNet's ``FullyConnected`` or torch's ``matmul`` reaches on this
machine at the decoder's shape (measured in every round, best kept).

PyTorch's BLAS: its CPU wheel multiplies with Intel's MKL, which on a CPU that
is not Intel's takes slower code paths whatever the CPU supports (on an AMD EPYC
with AVX-512, half the rate on the decoder's product: docs/RESULTS.md). By
default (``--torch-mkl auto``) PyTorch's processes there preload a one-function
library that makes MKL take its Intel paths (``benchmarks.machine.torch_mkl_env``),
so lyricnn is measured against PyTorch at its best; ``--torch-mkl shipped``
measures PyTorch as pip installs it. The header says which.

A short window and a whole epoch. The default times 30 minibatches per process, and
the adaptive configuration's include one-time costs that a run amortises (oneDNN
compiles kernels for each new row count of a tail cluster); ``--minibatches 1300``
times nearly one epoch of Penn Treebank per process, which is what a training run's
tokens/s is (docs/RESULTS.md, issue 23's AMD EPYC section, "A whole epoch").

    .venv/bin/python benchmarks/bench_word.py                 # 3 rounds, both configs
    .venv/bin/python benchmarks/bench_word.py --configs large-tied-adaptive --rounds 2 \
        --minibatches 1300                                    # ~14 minutes
    .venv/bin/python benchmarks/bench_word.py --rounds 5 --configs small
    .venv/bin/python benchmarks/bench_word.py --quick --no-torch   # dry run, seconds
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.machine import (  # noqa: E402  (standard library only)
    TORCH_MKL_HELP, TORCH_MKL_MODES, cpu_model, torch_mkl_env)

VOCAB = 10_000
#: name -> hidden (= embedding) size, layers, batch, steps, dropout, tied, lr, clipping norm
CONFIGS = {
    "small": dict(hidden=200, layers=2, batch=20, steps=20, dropout=0.0, tied=False,
                  lr=1.0, clip=5.0),
    "large-tied": dict(hidden=650, layers=2, batch=20, steps=35, dropout=0.5, tied=True,
                       lr=20.0, clip=0.25),
}
CONFIGS["large-tied-adaptive"] = dict(CONFIGS["large-tied"], cutoffs=(2000, 6000), ptb=True)
QUICK_VOCAB = 50
QUICK = {
    "small": dict(CONFIGS["small"], hidden=8, batch=4, steps=5),
    "large-tied": dict(CONFIGS["large-tied"], hidden=8, batch=4, steps=7),
    "large-tied-adaptive": dict(CONFIGS["large-tied-adaptive"], hidden=8, batch=4, steps=7,
                                cutoffs=(10, 30), ptb=False),
}


def _rows(cfg, vocab, n, seed):
    """``(batch, steps * n + 1)`` token rows: uniform random, or (``cfg['ptb']``) Penn
    Treebank's training tokens in a frequency-sorted vocabulary, from offset ``seed``."""
    import numpy as np
    shape = (cfg["batch"], cfg["steps"] * n + 1)
    if not cfg.get("ptb"):
        return np.random.RandomState(seed).randint(0, vocab, size=shape)
    from lyricnn.data.words import frequency_sorted, load_ptb_corpus
    train = np.asarray(frequency_sorted(load_ptb_corpus()).train)
    size = shape[0] * shape[1]
    start = (seed * 100_003) % (len(train) - size)
    return train[start:start + size].reshape(shape)


#: Penn Treebank's training tokens (``ptb.train.txt`` with an ``<eos>`` per line).
PTB_TRAIN_TOKENS = 929_589


def ptb_minibatches(cfg):
    """The most minibatches ``_rows`` can cut from Penn Treebank's training tokens (its
    ``batch x (steps * n + 1)`` rows must leave at least one token over: it takes the
    offset modulo what is left)."""
    return ((PTB_TRAIN_TOKENS - 1) // cfg["batch"] - 1) // cfg["steps"]


# ----------------------------------------------------------------------------- workers

def _token_stream(cfg, rows):
    """``(X, Y)`` int64 arrays ``(batch, steps)``: consecutive chunks of the ``batch``
    streams ``rows`` (``_rows``)."""
    rows = rows.astype("int64")
    for i in range((rows.shape[1] - 1) // cfg["steps"]):
        start = i * cfg["steps"]
        yield rows[:, start:start + cfg["steps"]], rows[:, start + 1:start + 1 + cfg["steps"]]


def run_lyricnn(cfg, vocab, warmup, minibatches, seed):
    """Seconds of ``minibatches`` minibatches of ``run_epoch``, after ``warmup`` untimed."""
    import lyricnn  # noqa: F401  (before MXNet: it sets MXNet's OpenMP variables)
    import mxnet as mx
    import numpy as np

    from lyricnn.training.loop import run_epoch
    from lyricnn.models.word import build_word_lm
    from lyricnn.data.sampling import streams
    from lyricnn.tuning import retain_freed_memory
    retain_freed_memory()   # as lyricnn train does (230k page faults a run instead of 470k)
    mx.random.seed(seed)
    h = cfg["hidden"]
    lm = build_word_lm("lstm", vocab, h, h, cfg["layers"], cfg["dropout"], cfg["tied"],
                       cutoffs=cfg.get("cutoffs", ()))

    def batches(rows):
        """The library's own batching (``streams``) of ``_rows``' rows: the stream, cut
        into ``batch`` columns, gives those rows back."""
        return streams(np.asarray(rows).reshape(-1), cfg["batch"], cfg["steps"], lm.ctx)

    # The tokens are read before the clock starts (reading and sorting Penn Treebank took
    # 250 ms, 7 % of the timed minibatches); batching them is the loop's and is timed.
    warm, timed = _rows(cfg, vocab, warmup, seed), _rows(cfg, vocab, minibatches, seed + 1)
    run_epoch(lm, batches(warm), True, cfg["lr"], cfg["clip"])  # returns a float: synced
    start = time.perf_counter()
    loss = run_epoch(lm, batches(timed), True, cfg["lr"], cfg["clip"])
    return time.perf_counter() - start, loss


def run_torch(cfg, vocab, warmup, minibatches, seed, threads):
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    h, layers = cfg["hidden"], cfg["layers"]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(vocab, h)
            self.drop = nn.Dropout(cfg["dropout"])
            self.rnn = nn.LSTM(h, h, layers, dropout=cfg["dropout"])
            self.decoder = nn.Linear(h, vocab)
            if cfg["tied"]:
                self.decoder.weight = self.encoder.weight
            for name, p in self.named_parameters():  # as lyricnn: U(-0.1, 0.1), biases 0
                nn.init.zeros_(p) if "bias" in name else nn.init.uniform_(p, -0.1, 0.1)

        def forward(self, x, state):
            y, state = self.rnn(self.drop(self.encoder(x)), state)
            return self.decoder(self.drop(y)).view(-1, vocab), state

    model = Model()
    model.train()
    params = list(model.parameters())
    criterion = nn.CrossEntropyLoss()

    def epoch(rows):
        state = tuple(torch.zeros(layers, cfg["batch"], h) for _ in range(2))
        total, n = torch.zeros(()), 0
        for X, Y in _token_stream(cfg, rows):
            n += 1
            x, y = torch.from_numpy(X.T.copy()), torch.from_numpy(Y.T.copy())  # time-major
            state = tuple(s.detach() for s in state)
            model.zero_grad()
            logits, state = model(x, state)
            loss = criterion(logits, y.reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg["clip"])
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-cfg["lr"])
            total += loss.detach()
        return float(total) / n

    # As run_lyricnn: the tokens are read before the clock starts.
    warm, timed = _rows(cfg, vocab, warmup, seed), _rows(cfg, vocab, minibatches, seed + 1)
    epoch(warm)
    start = time.perf_counter()
    loss = epoch(timed)
    return time.perf_counter() - start, loss


def gemm_rates(cfg, vocab, repeats, torch_too, threads):
    """Best GF/s of the decoder's forward product ``(tokens, h) x (h, V)``:
    MXNet's FullyConnected and (``torch_too``) torch's matmul."""
    import lyricnn  # noqa: F401
    from mxnet import nd
    m, k, n = cfg["batch"] * cfg["steps"], cfg["hidden"], vocab
    flops = 2 * m * k * n
    X, W = nd.random.uniform(shape=(m, k)), nd.random.uniform(shape=(n, k))
    rates = {}
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        nd.FullyConnected(X, W, no_bias=True, num_hidden=n).wait_to_read()
        best = min(best, time.perf_counter() - start)
    rates["mxnet"] = flops / best / 1e9
    if torch_too:
        import torch
        torch.set_num_threads(threads)
        x, w = torch.rand(m, k), torch.rand(n, k)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            x @ w.T
            best = min(best, time.perf_counter() - start)
        rates["torch"] = flops / best / 1e9
    return rates


def worker(args):
    cfg = (QUICK if args.quick else CONFIGS)[args.config]
    vocab = QUICK_VOCAB if args.quick else VOCAB
    if args.worker == "gemm":
        out = {"rates": gemm_rates(cfg, vocab, 3 if args.quick else 20, not args.no_torch,
                                   args.torch_threads), "versions": versions(args.no_torch)}
    else:
        if args.worker == "lyricnn":
            seconds, loss = run_lyricnn(cfg, vocab, args.warmup, args.minibatches, args.seed)
        else:
            seconds, loss = run_torch(cfg, vocab, args.warmup, args.minibatches, args.seed,
                                      args.torch_threads)
        out = {"seconds": seconds, "loss": loss}
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


# ----------------------------------------------------------------------------- parent

def flops_per_token(cfg, vocab):
    """GEMM FLOPs of forward + backward per token (3 x the forward products), with the
    full softmax's decoder (the adaptive row's floor is then the full model's)."""
    h = cfg["hidden"]
    lstm = sum(2 * 4 * h * (h + h) for _ in range(cfg["layers"]))  # input size = h
    return 3 * (lstm + 2 * h * vocab)


def versions(no_torch):
    import lyricnn  # noqa: F401
    import mxnet as mx
    torch_version = "(skipped)"
    if not no_torch:
        import torch
        torch_version = torch.__version__
    return f"MXNet {mx.__version__}, torch {torch_version}"


def child(args, worker_name, config, env=None):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", worker_name,
           "--config", config, "--warmup", str(args.warmup), "--minibatches",
           str(args.minibatches), "--seed", str(args.seed), "--torch-threads",
           str(args.torch_threads)]
    cmd += ["--quick"] * args.quick + ["--no-torch"] * args.no_torch
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{worker_name} {config} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(args, configs, frameworks, vocab, torch_env, mkl_note):
    """The alternating rounds: ``(seconds, peak RSS, GEMM rates)`` per config and framework."""
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                   if k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "MXNET_")))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}, load avg {load} at the start; "
          f"{env}; {child(args, 'gemm', configs[0], torch_env)['versions']}; "
          f"torch threads {args.torch_threads}")
    if mkl_note:
        shipped = ""
        if torch_env is not None:
            rate = child(args, "gemm", configs[0])["rates"].get("torch", 0.0)
            shipped = f"; as shipped its decoder product ran at {rate:.0f} GF/s"
        print(mkl_note + shipped)
    print(f"{args.rounds} rounds x {args.minibatches} timed minibatches after {args.warmup} "
          f"untimed, vocabulary {vocab}; frameworks alternate, one process each")
    seconds = {(c, f): [] for c in configs for f in frameworks}
    rss, rates = {}, {c: {} for c in configs}
    for r in range(args.rounds):
        for config in configs:
            order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
            for fw in order:
                out = child(args, fw, config, torch_env if fw == "torch" else None)
                seconds[config, fw].append(out["seconds"])
                rss[config, fw] = max(rss.get((config, fw), 0), out["maxrss_kb"])
            for name, rate in child(args, "gemm", config, torch_env)["rates"].items():
                rates[config][name] = max(rates[config].get(name, 0.0), rate)
    return seconds, rss, rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed minibatches (default 5)")
    parser.add_argument("--minibatches", type=int, default=30,
                        help="timed minibatches per run (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    parser.add_argument("--torch-mkl", choices=TORCH_MKL_MODES, default="auto",
                        help=TORCH_MKL_HELP)
    parser.add_argument("--quick", action="store_true",
                        help="dry run: tiny model and vocabulary, 1 round of 3 minibatches")
    parser.add_argument("--worker", choices=("lyricnn", "torch", "gemm"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.minibatches = 1, 1, 3
    if args.worker:
        return worker(args)
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {sorted(CONFIGS)}")
    for name, value, least in (("--rounds", args.rounds, 1), ("--warmup", args.warmup, 1),
                               ("--minibatches", args.minibatches, 1)):
        if value < least:
            parser.error(f"{name} must be at least {least}, got {value}")
    for config in configs:
        cfg = (QUICK if args.quick else CONFIGS)[config]
        if cfg.get("ptb"):
            most = ptb_minibatches(cfg)
            if max(args.warmup, args.minibatches) > most:
                parser.error(f"--minibatches and --warmup must be at most {most} for "
                             f"{config}: Penn Treebank's training split holds {most} "
                             f"minibatches of {cfg['batch']} x {cfg['steps']} (one epoch); got "
                             f"--minibatches {args.minibatches}, --warmup {args.warmup}")
    # The parent imports neither framework: a child's peak RSS counts its parent's
    # resident set at the fork (Linux keeps ru_maxrss across exec).
    if not args.no_torch:
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            print("note: torch is not installed; its rows are skipped")
            args.no_torch = True
    frameworks = ["lyricnn"] + ([] if args.no_torch else ["torch"])
    vocab = QUICK_VOCAB if args.quick else VOCAB
    # Both frameworks' workers inherit the OpenMP settings ``import lyricnn`` makes
    # (it loads nothing else): 2 threads and a bounded spin. PyTorch's own default
    # (libgomp spinning 300,000 times at every barrier) collapses on a shared
    # machine: 184 tokens/s instead of 2,541 on the small config with one other
    # busy process on these 2 vCPUs.
    import lyricnn  # noqa: F401
    with tempfile.TemporaryDirectory() as tmp:
        # PyTorch's own processes (and the GEMM probe, which times both) get its BLAS
        # at its best unless --torch-mkl shipped; lyricnn's are unaffected either way.
        torch_env, mkl_note = (None, "") if args.no_torch else torch_mkl_env(args.torch_mkl,
                                                                             tmp)
        seconds, rss, rates = measure(args, configs, frameworks, vocab, torch_env, mkl_note)
    print()
    header = (f"{'config':<12} {'implementation':<22} {'tokens/s':>9} {'(median)':>9} "
              f"{'ms/minibatch':>12} {'vs torch':>8} {'peak RSS':>9}")
    print(header)
    print("-" * len(header))
    for config in configs:
        cfg = (QUICK if args.quick else CONFIGS)[config]
        tokens = cfg["batch"] * cfg["steps"] * args.minibatches
        best = {fw: min(seconds[config, fw]) for fw in frameworks}
        for fw in frameworks:
            med = statistics.median(seconds[config, fw])
            ratio = f"{best['torch'] / best[fw]:.2f}x" if "torch" in best else "-"
            name = {"lyricnn": "lyricnn (run_epoch)", "torch": "PyTorch"}[fw]
            if cfg.get("cutoffs"):
                name = {"lyricnn": "lyricnn adaptive", "torch": "PyTorch full softmax"}[fw]
            print(f"{config:<12} {name:<22} {tokens / best[fw]:9.0f} {tokens / med:9.0f} "
                  f"{best[fw] / args.minibatches * 1e3:12.1f} {ratio:>8} "
                  f"{rss[config, fw] / 1024:7.0f} MB")
        gflops = max(rates[config].values())
        per_token = flops_per_token(cfg, vocab)
        floor = per_token / (gflops * 1e9)
        source = max(rates[config], key=rates[config].get)
        print(f"{config:<12} {'FLOP floor':<22} {1 / floor:9.0f} {'':>9} "
              f"{floor * cfg['batch'] * cfg['steps'] * 1e3:12.1f} {'':>8} {'':>9}")
        print(f"{'':<12}   {per_token / 1e6:.1f} MFLOP/token fwd+bwd at {gflops:.0f} GF/s "
              f"({source}; "
              + ", ".join(f"{k} {v:.0f}" for k, v in sorted(rates[config].items()))
              + f" GF/s at ({cfg['batch'] * cfg['steps']}, {cfg['hidden']}) x "
              f"({cfg['hidden']}, {vocab}))")
    print()
    print("vs torch: PyTorch's best ms/minibatch over this row's (above 1 = faster than "
          "PyTorch). Peak RSS: each worker process's own maximum resident set.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
