"""Fault injection for checkpoints (slow; not part of ``make test``).

Trains a tiny run, then again and again resumes it in a new process and
kills that process at a random moment: SIGKILL during a save (after the
temp folder appears, at a random delay into the file writes, the manifest
or the renames), SIGKILL at any moment, or SIGINT/SIGTERM at any moment.
After every fault it checks, in this process:

* a reader loads a complete checkpoint, never older than the last one seen;
* a SIGINT/SIGTERM exits 130/143 with one line on stderr and no traceback;
* every few faults, a normal resume recovers: leftovers (``.checkpoint.old``,
  ``.checkpoint.tmp-*``) are gone and training continues.

    .venv/bin/python benchmarks/fault_injection.py --faults 200 --seed 1

The suite runs the same SIGKILL-during-save check a few times
(tests/test_catalogue.py); this script is the long version.  Prints one
line per fault and a summary; exits 1 on the first violation.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lyricnn.run import checkpoint as ck

TINY = ["--num-chars", "1200", "--num-hiddens", "16", "--num-steps", "5", "--batch-size", "4",
        "--no-progress", "--period", "1000"]
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


def lyricnn(*argv, **popen):
    return subprocess.Popen([sys.executable, "-m", "lyricnn.cli", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, **popen)


def wait(predicate, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the run ended or hung before the fault: {proc.stderr.read()}")
        time.sleep(0.0005)


def leftovers(run_dir):
    return sorted(n for n in os.listdir(run_dir) if n.startswith(".checkpoint.")
                  and not n.endswith(".lock"))


def fault(run_dir, kind, rng):
    """Resume ``run_dir`` and inject ``kind``; return (exit code, stderr)."""
    stale = set(os.listdir(run_dir))  # a crashed save's folder is not this run's save
    proc = lyricnn("train", "--resume", run_dir, "--epochs", 10**6, "--no-progress")
    if kind == "kill-in-save":
        wait(lambda: any(n.startswith(".checkpoint.tmp-") and n not in stale
                         for n in os.listdir(run_dir)), proc)
        time.sleep(rng.uniform(0, 0.05))
        proc.kill()
    else:
        time.sleep(rng.uniform(0.2, 6.0))
        proc.send_signal({"kill": signal.SIGKILL, "sigint": signal.SIGINT,
                          "sigterm": signal.SIGTERM}[kind])
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recover-every", type=int, default=10,
                        help="run a normal resume after every N faults (checks cleanup)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="lyricnn-faults-"))
    run_dir = work / "run"
    try:
        setup = lyricnn("train", *TINY, "--epochs", 1, "--out", run_dir)
        if setup.wait() != 0:
            raise SystemExit(setup.stderr.read())
        last, seen = 1, Counter()
        for i in range(1, args.faults + 1):
            kind = rng.choice(["kill-in-save", "kill-in-save", "kill", "sigint", "sigterm"])
            code, err = fault(run_dir, kind, rng)
            seen[kind] += 1
            found = leftovers(run_dir)
            epoch = ck.load_checkpoint(run_dir).epoch
            problem = None
            if epoch < last:
                problem = f"checkpoint went back from epoch {last} to {epoch}"
            elif kind in ("sigint", "sigterm"):
                want = 130 if kind == "sigint" else 143
                lines = [ln for ln in err.strip().splitlines()  # recovery warnings aside
                         if not ln.startswith(("lyricnn: training model=", "lyricnn: WARNING"))]
                if code != want or len(lines) != 1 or "Traceback" in err:
                    problem = f"exit {code} (want {want}), stderr {err!r}"
            elif code != -signal.SIGKILL and code != 0:
                problem = f"exit {code}: {err!r}"
            print(f"{i:4d} {kind:12s} exit {code:4d} epoch {epoch:4d} leftovers {found}",
                  flush=True)
            if problem:
                raise SystemExit(f"fault {i} ({kind}): {problem}")
            last = epoch
            if i % args.recover_every == 0:
                proc = lyricnn("train", "--resume", run_dir, "--epochs", last + 1,
                               "--no-progress")
                _, err = proc.communicate(timeout=300)
                if proc.returncode != 0 or leftovers(run_dir):
                    raise SystemExit(f"recovery failed: {err!r} {leftovers(run_dir)}")
                last = ck.load_checkpoint(run_dir).epoch
        print(f"{args.faults} faults ({dict(seen)}): every checkpoint loaded, none went back, "
              f"every interrupt was one line; last epoch {last}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
