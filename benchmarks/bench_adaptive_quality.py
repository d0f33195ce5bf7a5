"""The adaptive softmax's cost in perplexity: the same model, two epochs, each decoder.

Trains the large tied LSTM of ``bench_word.py`` (2 x 650, batch 20, 35 steps,
dropout 0.5, lr 20, clipping 0.25, the decoder tied to the embedding) on Penn
Treebank for ``--epochs`` epochs twice through ``lyricnn train``, once with the full
softmax and once with ``--cutoffs`` (default 2000,6000), one process after the
other on the same seed, and prints each epoch's validation perplexity, the
training seconds per epoch (the log's ``time``) and the relative difference of the
last validation perplexities. The issue's bar: within 2 %.

    .venv/bin/python benchmarks/bench_adaptive_quality.py                # 2 epochs each
    .venv/bin/python benchmarks/bench_adaptive_quality.py --hidden 200 --epochs 1   # quicker
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.machine import cpu_model  # noqa: E402  (standard library only)


def train(out, hidden, epochs, extra):
    cmd = [sys.executable, "-m", "lyricnn.cli", "train", "--tokens", "word", "--corpus", "ptb",
           "--model", "lstm", "--num-layers", "2", "--num-hiddens", str(hidden), "--embed",
           str(hidden), "--tied", "--dropout", "0.5", "--num-steps", "35", "--batch-size", "20",
           "--lr", "20", "--clipping-theta", "0.25", "--epochs", str(epochs), "--seed", "0",
           "--no-progress", "--out", str(out), *extra]
    print("$ lyricnn " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return json.loads((out / "checkpoint" / "history.json").read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=650)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cutoffs", default="2000,6000")
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}, load avg {load} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        full = train(Path(tmp) / "full", args.hidden, args.epochs, [])
        adaptive = train(Path(tmp) / "adaptive", args.hidden, args.epochs,
                         ["--cutoffs", args.cutoffs])
    print()
    print(f"{'epoch':>5} {'full valid':>11} {'adaptive valid':>15} {'full s':>8} "
          f"{'adaptive s':>11}")
    for i, epoch in enumerate(full["epoch"]):
        print(f"{epoch:5d} {full['valid_perplexity'][i]:11.2f} "
              f"{adaptive['valid_perplexity'][i]:15.2f} {full['seconds'][i]:8.0f} "
              f"{adaptive['seconds'][i]:11.0f}")
    a, f = adaptive["valid_perplexity"][-1], full["valid_perplexity"][-1]
    speed = sum(full["seconds"]) / sum(adaptive["seconds"])
    print(f"after {args.epochs} epochs: adaptive {a:.2f} against full {f:.2f}, "
          f"{100 * (a - f) / f:+.1f} %; training passes {speed:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
