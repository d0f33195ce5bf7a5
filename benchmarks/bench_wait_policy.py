"""OpenMP wait policies and thread counts, idle and under load: the table behind
``lyricnn/__init__.py``'s ``GOMP_SPINCOUNT=1000`` default (docs/RESULTS.md).

Each setting runs in a fresh process (the variables are read when MXNet
loads), settings alternate within each round, and the figure is the median of
the per-epoch seconds over rounds (the first epoch of each process dropped).
Workloads, book configuration, random sampling:

* ``a``: ``lyricnn.train_and_predict_rnn`` with ``lyricnn.rnn`` (few, large operators);
* ``b``: the same with the book's notebook cell (about 1,000 small operators a minibatch).

``--hogs N`` starts N busy-loop processes for the run (each ends by itself
after ``--budget`` x settings x rounds seconds at most, and is killed at the
end); a setting's process is killed after ``--budget`` seconds per epoch.

    .venv/bin/python benchmarks/bench_wait_policy.py                     # idle
    .venv/bin/python benchmarks/bench_wait_policy.py --hogs 2 --rounds 2  # loaded
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SETTINGS = {
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "GOMP_SPINCOUNT=1000 (default)": {"GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1", "GOMP_SPINCOUNT": "1000"},
}
CHILD = r"""
import json, sys, time, contextlib, io
import lyricnn as d2l
sys.path.insert(0, {root!r})
from tests.oracle import book_notebook as book
ci, c2i, i2c, V = d2l.load_data_jay_lyrics()
cell = (d2l.rnn, d2l.params_getter(V, 256), d2l.init_rnn_state) if {workload!r} == "a" \
    else (book.rnn, book.make_get_params(V, 256, None), book.init_rnn_state)
d2l.set_seed(0)
seconds = []
with contextlib.redirect_stdout(io.StringIO()):
    history = d2l.train_and_predict_rnn(*cell, 256, V, None, ci, i2c, c2i, True, {epochs},
                                        35, 1e2, 1e-2, 32, {epochs} + 1, 1, [])
print(json.dumps(history.seconds[1:]))
"""


def run_setting(workload, env_extra, epochs, budget):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(env_extra)
    code = CHILD.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        workload=workload, epochs=epochs)
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=budget * (epochs + 1) + 30, check=True)
    except subprocess.TimeoutExpired:
        return None  # slower than the budget: reported as "> budget"
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per process (first dropped)")
    parser.add_argument("--hogs", type=int, default=0, help="busy-loop processes to run beside")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per epoch at most")
    parser.add_argument("--workloads", default="a,b")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help="comma-separated names of SETTINGS")
    args = parser.parse_args(argv)
    names = args.settings.split(",")
    lifetime = int(args.budget * (args.epochs + 1) * len(names) * args.rounds * 2) + 60
    # Each busy loop ends by itself after `lifetime` seconds, and is killed below
    # (a process of its own: killing a `timeout` wrapper would orphan its child).
    hog = f"import time\nend = time.time() + {lifetime}\nwhile time.time() < end: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(args.hogs)]
    try:
        times = {(w, n): [] for w in args.workloads.split(",") for n in names}
        loads = []
        for _ in range(args.rounds):
            for (workload, name) in times:
                times[workload, name].append(
                    run_setting(workload, SETTINGS[name], args.epochs, args.budget))
                loads.append(os.getloadavg()[0])
    finally:
        for proc in hogs:
            proc.kill()
            proc.wait()
    print(f"machine: nproc {os.cpu_count()}, {args.hogs} busy loops beside, load average "
          f"{min(loads):.1f}-{max(loads):.1f}; s/epoch, medians over {args.rounds} rounds")
    for workload in args.workloads.split(","):
        print(f"workload {workload}:")
        for name in names:
            done = [t for t in times[workload, name] if t is not None]
            shown = f"{statistics.median(done):.3f}" if done else "-"
            late = len(times[workload, name]) - len(done)
            print(f"  {name:32s} {shown:>8}" + (f"  ({late} run(s) > {args.budget:g} s/epoch)"
                                                 if late else ""))


if __name__ == "__main__":
    main()
