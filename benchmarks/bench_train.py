"""Seconds per training epoch, d2lzh against lyricnn: now part of ``bench_speed.py``.

Kept so that ``make bench`` and older commands still work: maps its flags onto
``bench_speed.py`` (``--models scratch,gluon`` -> ``--sections rnn,gluon``) and
runs it; ``bench_speed.py`` prints the full side-by-side table (d2lzh, lyricnn,
the book's notebook cells through lyricnn, PyTorch, the FLOP floor).

    .venv/bin/python benchmarks/bench_train.py                 # scratch RNN + Gluon RNN
    .venv/bin/python benchmarks/bench_train.py --models scratch --rounds 5
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import bench_speed  # noqa: E402  (imports lyricnn before MXNet)

MODELS = {"scratch": "rnn", "gluon": "gluon"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="scratch,gluon",
                        help="comma-separated: scratch, gluon (default: both)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--quick", action="store_true", help="dry run (1 round x 1 epoch)")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        parser.error(f"--models must name some of scratch, gluon, got {args.models!r}")
    forwarded = ["--sections", ",".join(MODELS[m] for m in models),
                 "--epochs", str(args.epochs), "--rounds", str(args.rounds)]
    bench_speed.main(forwarded + (["--quick"] if args.quick else []))


if __name__ == "__main__":
    main()
