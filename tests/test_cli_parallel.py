"""lyricnn train --ctx with several devices, and lyricnn launch (dist_sync workers on loopback)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from procs import children, running

from lyricnn.cli import main as cli
from lyricnn.cli.common import PLOT_NAME
from lyricnn.run.checkpoint import load_checkpoint

#: Every test here starts processes or trains for seconds: left out of make test-fast.
pytestmark = pytest.mark.slow

from float_error import assert_within, cli_step_reference

SMALL = ["--num-chars", "1500", "--num-hiddens", "16", "--num-steps", "6", "--batch-size", "8",
         "--no-progress", "--period", "100", "--seed", "3"]
#: 100 characters in 8 rows of 12: (12 - 1) // 6 = 1 minibatch per epoch (consecutive
#: sampling, lyricnn/sampling.py), so that every epoch is exactly one clipped SGD step.
#: Several steps of clipped SGD at lr 100 amplify rounding without a bound anyone can
#: derive; one step from the same weights has one (tests/float_error.py, docs/TOLERANCES.md).
ONE_STEP = ["--num-chars", "100", *SMALL[2:]]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def params(run_dir):
    ckpt = load_checkpoint(run_dir)
    return {k: v.asnumpy() for k, v in ckpt.lm.named_parameters().items()}, ckpt


def assert_exact_step(run_dir, before=None, devices=2):
    """The run's last epoch (one minibatch) is the exact float64 step from ``before``
    (default: the initial weights) to within float32 rounding, and so is its perplexity.

    The bound is derived from float32's unit roundoff for any summation order (how many
    devices or workers split the batch, which kernels a CPU picks): float_error.py."""
    w1, bound, ppl, ppl_rtol = cli_step_reference(run_dir, before, devices)
    got, ckpt = params(run_dir)
    assert_within(got, w1, bound, f"{run_dir.name}: ")
    assert abs(ckpt.history.perplexity[-1] / ppl - 1) <= ppl_rtol, \
        (ckpt.history.perplexity[-1], ppl, ppl_rtol)
    return got, ckpt


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The reference: one epoch (one step) of the Gluon RNN on one device."""
    out = tmp_path_factory.mktemp("one") / "run"
    assert cli.main(["train", "--model", "rnn", *ONE_STEP, "--epochs", "1",
                     "--out", str(out)]) == 0
    return out


def test_two_devices_train_the_same_model_and_resume_bit_identically(tmp_path, capsys, single):
    # One device and two: each within float32 rounding of the exact step, hence of each other.
    assert_exact_step(single, devices=1)
    two = tmp_path / "two"
    code, _, err = run(capsys, "train", "--model", "rnn", *ONE_STEP, "--epochs", 1, "--out", two,
                       "--ctx", "cpu:0,cpu:1")
    assert code == 0, err
    assert "on 2 device(s) (cpu(0),cpu(1)) x 1 worker(s)" in err
    assert_exact_step(two, devices=2)
    # Stopped after 1 epoch and resumed on the same devices: the bits of an uninterrupted
    # run (the same operations in the same order: exact equality is the right test).
    full = tmp_path / "full"
    assert run(capsys, "train", "--model", "rnn", *ONE_STEP, "--epochs", 3, "--out", full,
               "--ctx", "cpu:0,cpu:1")[0] == 0
    assert run(capsys, "train", "--resume", two, "--epochs", 3, "--ctx", "cpu:0,cpu:1")[0] == 0
    (b, uninterrupted), (c, resumed) = params(full), params(two)
    assert resumed.history.epoch == [1, 2, 3]
    for k in b:
        np.testing.assert_array_equal(b[k], c[k])
    assert resumed.history.perplexity == uninterrupted.history.perplexity


def test_a_batch_the_devices_cannot_share_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", *SMALL, "--batch-size", 7, "--ctx", "cpu:0,cpu:1",
                            "--out", out)
    assert code == 2
    assert err.strip().splitlines() == [
        "lyricnn train: error: --batch-size 7 cannot be split evenly over 2 device(s) x 1 "
        "worker(s) = 2 shards; use a multiple of 2, e.g. 6"]
    assert not out.exists()


@pytest.mark.parametrize("ctx, message", [
    ("cpu:0,tpu:1", "ctx 'tpu:1' is not a device"),
    ("cpu:0,cpu:0", "ctx lists a device twice"),
    ("gpu:3", r"MXNet cannot use gpu(3)")])
def test_bad_device_lists_are_one_line(tmp_path, capsys, ctx, message):
    code, _, err = run(capsys, "train", *SMALL, "--epochs", 1, "--ctx", ctx, "--out",
                       tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_a_checkpoint_of_two_workers_is_not_resumed_by_one(tmp_path, capsys):
    import dataclasses
    from lyricnn.run.checkpoint import save_checkpoint
    out = tmp_path / "run"
    assert run(capsys, "train", *SMALL, "--epochs", 1, "--out", out)[0] == 0
    ckpt = load_checkpoint(out)
    save_checkpoint(out / "checkpoint", dataclasses.replace(ckpt.config, workers=2), ckpt.vocab,
                    ckpt.lm, ckpt.history, ckpt.corpus_text, ckpt.rng_state)
    code, _, err = run(capsys, "train", "--resume", out, "--epochs", 2)
    assert code == 2
    assert "was trained by 2 worker process(es) and this run has 1: resume it with the same " \
           "number (lyricnn launch --workers 2 -- train --kvstore dist_sync --resume ...)" in err
    assert load_checkpoint(out).history.epoch == [1]


# -------------------------------------------------------------------- lyricnn launch

def launch(cwd, *argv, timeout=240):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "lyricnn.cli", "launch", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def test_two_workers_equal_one_process_and_resume_with_two(tmp_path):
    out = tmp_path / "dist"
    proc = launch(tmp_path, "--workers", 2, "--", "train", "--model", "rnn", *ONE_STEP,
                  "--epochs", 1, "--out", out, "--plot")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert sum("lyricnn: training" in l for l in lines) == 1   # worker 0 alone reports
    assert any(l.startswith("[worker ") and "x 2 worker(s)" in l for l in lines)
    # The step of one process on the whole batch (test above), to float32 rounding: each
    # worker has 1 OpenMP thread and sums its half of the batch, the server adds the
    # halves; the bound holds for any such order.
    first, _ = assert_exact_step(out, devices=2)
    # Resumed by two workers for a second epoch: again the exact step, from where the
    # first left the weights.
    proc = launch(tmp_path, "--workers", 2, "--", "train", "--resume", out, "--epochs", 2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _, ckpt = assert_exact_step(out, before=first, devices=2)
    assert ckpt.config.workers == 2 and ckpt.history.epoch == [1, 2]
    # Only worker 0 writes: the run directory holds its checkpoint and its plot.
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["checkpoint", PLOT_NAME]


def test_a_failing_worker_stops_the_job_with_its_code(tmp_path):
    """The corpus is read by the workers (the launcher checks flags, not files): worker 0
    fails with code 2; the launcher says why on stderr and stops the rest."""
    proc = launch(tmp_path, "--workers", 2, "--timeout", 120, "--", "train", *SMALL,
                  "--corpus", tmp_path / "missing.txt", "--out", tmp_path / "run", timeout=150)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "missing.txt" in proc.stdout                # the worker's own line, prefixed
    assert re.search(r"^lyricnn launch: worker [01] \(pid \d+\) exited with code 2",
                     proc.stderr, re.M), proc.stderr


def test_what_worker_0_would_refuse_is_refused_before_any_process_starts(tmp_path):
    proc = launch(tmp_path, "--workers", 2, "--", "train", *SMALL, "--batch-size", 7,
                  "--out", tmp_path / "run", timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.strip() == ("lyricnn launch: error: --batch-size 7 cannot be split evenly "
                                   "over 1 device(s) x 2 worker(s) = 2 shards; use a multiple "
                                   "of 2, e.g. 6")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--workers", 2, "--", "generate", "--checkpoint", "x"], "launch runs 'lyricnn train'"),
    (["--workers", 2, "--", "train", "--kvstore", "local"], "--kvstore local under launch"),
    (["--workers", 0, "--", "train"], "workers must be an integer between 1 and 64, got 0"),
    (["--workers", 2, "--", "train", "--bogus"], "the worker command: lyricnn: error: "
                                                 "unrecognized arguments: --bogus")])
def test_launch_usage_errors_are_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "launch", *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_worker_killed_mid_run_ends_the_job_and_keeps_the_last_checkpoint(tmp_path):
    import signal
    import time
    out = tmp_path / "run"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-m", "lyricnn.cli", "launch", "--workers", "2",
                             "--", "train", *SMALL, "--epochs", "10000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / "manifest.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint saved"
            time.sleep(0.2)
        kids = children(proc.pid)   # scheduler, server, 2 workers
        workers = [p for p in kids if " train " in _cmdline(p)]
        assert len(kids) == 4 and len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=60)   # bounded: never a hang
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGKILL, stdout
    assert "was killed by signal 9" in stdout and "lyricnn launch: worker" in stdout
    time.sleep(0.5)   # orphans are reaped by init
    assert not [p for p in kids if running(p)]
    assert load_checkpoint(out).history.epoch   # the last saved epoch still loads


def test_an_interrupted_launch_says_the_launch_command_that_resumes_it(tmp_path):
    import signal
    import time
    out = tmp_path / "run"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-m", "lyricnn.cli", "launch", "--workers", "2",
                             "--", "train", *SMALL, "--epochs", "10000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / "manifest.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint saved"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    advice = f"continue with: lyricnn launch --workers 2 -- train --resume {out} --epochs 10000"
    assert stderr.strip().splitlines()[-1].endswith(advice), stderr
    # ... and it works.
    resumed = launch(tmp_path, "--workers", 2, "--", "train", "--resume", out, "--epochs",
                     load_checkpoint(out).history.epoch[-1] + 1)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
