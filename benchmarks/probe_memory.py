"""Where a word-level run's resident memory goes: VmRSS after each phase of the real loop.

Each variant runs in a fresh process: the model is built, ``run_epoch`` (the library's
loop, which keeps Python at most one minibatch ahead of MXNet) trains it on the first
``--minibatches`` minibatches of Penn Treebank, then ``evaluate_perplexity`` reads the
validation split, as ``lyricnn train`` does at the end of an epoch. After each phase,
and every ``--every`` minibatches, the process's current and peak resident memory
(``/proc/self/status``: VmRSS, VmHWM) in MiB:

    .venv/bin/python benchmarks/probe_memory.py --minibatches 300
    .venv/bin/python benchmarks/probe_memory.py --variants recipe,no-regularisers

``--no-retain`` leaves glibc's defaults (``lyricnn train`` calls
``lyricnn.tuning.retain_freed_memory``, which keeps freed memory in the heap).
"""
import argparse
import itertools
import json
import os
import subprocess
import sys

RECIPE = dict(cutoffs=(2000, 6000), dropout_input=0.4, dropout_hidden=0.3,
              dropout_output=0.45, dropout_embed=0.1, weight_drop=0.4, ar=2.0, tar=1.0)
VARIANTS = {
    # the 120-minute recipe's model (examples/ptb_word_lm.py)
    "recipe": RECIPE,
    "no-regularisers": dict(cutoffs=(2000, 6000)),
    "full-softmax": {k: v for k, v in RECIPE.items() if k != "cutoffs"},
    "recipe-no-ar": {k: v for k, v in RECIPE.items() if k not in ("ar", "tar")},
}


def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}


def worker(name, minibatches, every, retain):
    import lyricnn  # noqa: F401  (OpenMP settings before MXNet loads)
    from mxnet import nd
    from lyricnn.data.sampling import streams
    from lyricnn.data.words import frequency_sorted, load_ptb_corpus
    from lyricnn.models.word import build_word_lm
    from lyricnn.training.evaluate import EVAL_BATCH_SIZE, evaluate_perplexity
    from lyricnn.training.loop import run_epoch
    from lyricnn.tuning import retain_freed_memory

    if retain:
        retain_freed_memory()
    report = []

    def mark(phase):
        nd.waitall()
        report.append({"phase": phase, **status()})

    mark("import")
    corpus = frequency_sorted(load_ptb_corpus())
    mark("corpus")
    lm = build_word_lm("lstm", len(corpus.vocab), 450, 450, 2, 0.0, True, **VARIANTS[name])
    mark("model")
    batches = streams(corpus.train, 20, 35, lm.ctx)     # one pass, read in chunks
    done = 0
    while done < minibatches:
        n = min(every, minibatches - done)
        run_epoch(lm, itertools.islice(batches, n), True, 20.0, 0.25)
        done += n
        mark(f"{done} minibatches")
    evaluate_perplexity(lm, corpus.valid, EVAL_BATCH_SIZE, 35)
    mark("validation")
    run_epoch(lm, itertools.islice(batches, every), True, 20.0, 0.25)
    mark(f"{every} more minibatches")
    print(json.dumps(report))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minibatches", type=int, default=300)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-retain", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.minibatches, args.every, not args.no_retain)
    for name in args.variants.split(","):
        if name not in VARIANTS:
            p.error(f"--variants: unknown {name!r}; choose from {', '.join(VARIANTS)}")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown CPU")
    print(f"machine: {cpu}, {os.cpu_count()} vCPUs; MiB, current/peak after each phase",
          flush=True)
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--worker", name, "--minibatches",
               str(args.minibatches), "--every", str(args.every)]
        if args.no_retain:
            cmd.append("--no-retain")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows = json.loads(out.strip().splitlines()[-1])
        print(f"{name}: " + ", ".join(f"{r['phase']} {r['VmRSS']}/{r['VmHWM']}" for r in rows),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
