"""Seconds per training epoch of the GRU and LSTM, d2lzh against lyricnn: now in ``bench_speed.py``.

Kept so that older commands still work: maps ``--cells``/``--impls`` onto
``bench_speed.py``'s sections (scratch ``gru``/``lstm``, Gluon
``gluon-gru``/``gluon-lstm``) and runs it.

    .venv/bin/python benchmarks/bench_gated.py
    .venv/bin/python benchmarks/bench_gated.py --cells lstm --impls scratch --rounds 5
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import bench_speed  # noqa: E402  (imports lyricnn before MXNet)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="gru,lstm", help="comma-separated: gru, lstm")
    parser.add_argument("--impls", default="scratch,gluon", help="comma-separated: scratch, gluon")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--quick", action="store_true", help="dry run (1 round x 1 epoch)")
    args = parser.parse_args(argv)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    if not cells or set(cells) - {"gru", "lstm"}:
        parser.error(f"--cells must name some of gru, lstm, got {args.cells!r}")
    if not impls or set(impls) - {"scratch", "gluon"}:
        parser.error(f"--impls must name some of scratch, gluon, got {args.impls!r}")
    sections = [cell if impl == "scratch" else f"gluon-{cell}" for impl in impls for cell in cells]
    forwarded = ["--sections", ",".join(sections),
                 "--epochs", str(args.epochs), "--rounds", str(args.rounds)]
    bench_speed.main(forwarded + (["--quick"] if args.quick else []))


if __name__ == "__main__":
    main()
