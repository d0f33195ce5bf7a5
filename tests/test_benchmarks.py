"""Dry-run the speed benchmark, so the table of docs/RESULTS.md cannot rot (no timing asserted)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Every test here starts processes or trains for seconds: left out of make test-fast.
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speed.py"


def test_bench_speed_quick_prints_every_section():
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-torch"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for line in ("machine:", "MXNet's defaults", "scratch RNN (6.4)", "d2lzh (book's cells)",
                 "lyricnn (lyricnn.rnn)",
                 "lyricnn (book's cells)", "FLOP floor", "Gluon RNNModel", "issue 11 targets"):
        assert line in out.stdout, line


def test_bench_word_quick_prints_the_table():
    bench = BENCH.with_name("bench_word.py")
    out = subprocess.run([sys.executable, str(bench), "--quick", "--no-torch"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for line in ("machine:", "tokens/s", "small", "large-tied", "lyricnn (run_epoch)",
                 "FLOP floor", "MFLOP/token", "peak RSS"):
        assert line in out.stdout, line
    assert "PyTorch" not in out.stdout.split("tokens/s", 1)[1].split("vs torch:")[0]


def test_bench_parallel_quick_prints_every_setting():
    bench = BENCH.with_name("bench_parallel.py")
    out = subprocess.run([sys.executable, str(bench), "--quick", "--models", "char"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    table = out.stdout.split("comm ms/step", 1)[1].strip().splitlines()
    assert [" ".join(line.split()[:2]) for line in table] == [
        "1 device", "2 devices", "1 worker", "2 workers"]
    for line in table:
        assert float(line.split()[2].replace(",", "")) > 0   # tokens/s were measured


def test_bench_batch_copies_quick_prints_every_mode():
    bench = BENCH.with_name("bench_batch_copies.py")
    out = subprocess.run([sys.executable, str(bench), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for line in ("machine:", "zero-copy per batch", "per-batch ", "per-epoch", "per-batch + ballast",
                 "ms/minibatch"):
        assert line in out.stdout, line


def test_bench_openmp_team_quick_shows_the_python_threads_team():
    bench = BENCH.with_name("bench_openmp_team.py")
    out = subprocess.run([sys.executable, str(bench), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if "ms/minibatch" in line]
    assert len(rows) == 4
    threads = {(" ".join(r[:3]), r[3]): int(r[r.index("threads") - 1]) for r in rows}
    # MXNet's threshold gives the Python thread an OpenMP team: one thread more
    assert threads[("book RNN cell", "MXNet's")] == threads[("book RNN cell", "lyricnn")] + 1


def test_bench_decoding_runs_both_ways():
    bench = BENCH.with_name("bench_decoding.py")
    out = subprocess.run([sys.executable, str(bench), "--n", "3", "--length", "5",
                          "--rounds", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for line in ("machine:", "one batch", "sequential", "batch speed-up"):
        assert line in out.stdout, line


def test_bench_serve_loads_a_server_and_reports(tmp_path):
    from lyricnn.cli import main as cli
    run = tmp_path / "run"
    assert cli.main(["train", "--num-chars", "1200", "--num-hiddens", "16", "--epochs", "1",
                     "--no-progress", "--out", str(run)]) == 0
    bench = BENCH.with_name("bench_serve.py")
    out = subprocess.run([sys.executable, str(bench), "--checkpoint", str(run), "--clients", "1",
                          "2", "--requests", "1", "--max-tokens", "5"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for line in ("machine:", "tokens/s", "p95", "2 clients:"):
        assert line in out.stdout, line


def test_bench_originality_reports_build_and_query():
    bench = BENCH.with_name("bench_originality.py")
    out = subprocess.run([sys.executable, str(bench), "--repeats", "1"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for line in ("machine:", "Jay Chou lyrics", "PTB train", "build", "human baseline"):
        assert line in out.stdout, line


def test_probe_memory_reports_every_phase():
    bench = BENCH.with_name("probe_memory.py")
    out = subprocess.run([sys.executable, str(bench), "--minibatches", "1", "--every", "1",
                          "--variants", "no-regularisers"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "machine:" in out.stdout
    row = out.stdout.splitlines()[-1]
    for phase in ("no-regularisers:", "model", "1 minibatches", "validation", "more minibatches"):
        assert phase in row, phase


def test_bench_flat_params_times_both_layouts():
    bench = BENCH.with_name("bench_flat_params.py")
    out = subprocess.run([sys.executable, str(bench), "16", "1"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "machine:" in out.stdout
    for line in ("four Parameters + concat: best", "one flat Parameter: best", "saved per call"):
        assert line in out.stdout, line


@pytest.mark.parametrize("recipe", ["awd-450", "adaptive-650"])
def test_bench_recipe_step_quick_times_each_checkout(recipe):
    bench = BENCH.with_name("bench_recipe_step.py")
    root = str(BENCH.parents[1])
    out = subprocess.run([sys.executable, str(bench), "--quick", "--recipe", recipe,
                          "--trees", f"{root},{root}"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "machine:" in out.stdout and f"tiny {recipe} model" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith(root + ":")]
    assert len(rows) == 2 and "tokens/s" in rows[0] and rows[0].endswith("1.00x the first")


def test_bench_dynamic_quick_times_each_part():
    bench = BENCH.with_name("bench_dynamic.py")
    out = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for line in ("machine:", "forward + backward, 5 tokens", "forward + backward, 20 tokens",
                 "update, each term a new array", "update, in place"):
        assert line in out.stdout, line


# ------------------------------------------------- PyTorch's BLAS on a non-Intel CPU

sys.path.insert(0, str(BENCH.parents[1]))
from benchmarks import machine  # noqa: E402  (standard library only)


def test_torch_mkl_env_shipped_inherits_the_environment(tmp_path):
    env, note = machine.torch_mkl_env("shipped", str(tmp_path))
    assert env is None and "as shipped" in note
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("vendor, preloads", [("AuthenticAMD", True), ("GenuineIntel", False),
                                              ("", False)])
def test_torch_mkl_env_auto_forces_intel_paths_only_off_intel(monkeypatch, tmp_path, vendor,
                                                               preloads):
    monkeypatch.setattr(machine, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(machine.shutil, "which", lambda name: "/usr/bin/cc"
                        if name == "cc" else None)
    calls = []
    monkeypatch.setattr(machine.subprocess, "run", lambda cmd, check: calls.append(cmd))
    env, _ = machine.torch_mkl_env("auto", str(tmp_path))
    assert (env is not None) == preloads
    assert bool(calls) == preloads


def test_torch_mkl_env_intel_preloads_a_library_that_says_intel(monkeypatch, tmp_path):
    import ctypes
    import shutil
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine")   # CI's machines have one
    monkeypatch.setenv("LD_PRELOAD", "/already/there.so")
    env, note = machine.torch_mkl_env("intel", str(tmp_path))
    library, previous = env["LD_PRELOAD"].split(" ")
    assert previous == "/already/there.so" and "Intel code paths" in note
    assert ctypes.CDLL(library).mkl_serv_intel_cpu_true() == 1
    assert {k: v for k, v in env.items() if k != "LD_PRELOAD"} == {
        k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def test_torch_mkl_env_without_a_compiler_says_pytorch_runs_as_shipped(monkeypatch, tmp_path):
    monkeypatch.setattr(machine.shutil, "which", lambda name: None)
    env, note = machine.torch_mkl_env("intel", str(tmp_path))
    assert env is None and "no C compiler" in note and "below its best" in note


def test_torch_mkl_env_refuses_an_unknown_mode(tmp_path):
    with pytest.raises(ValueError, match="one of"):
        machine.torch_mkl_env("fast", str(tmp_path))


def test_bench_word_refuses_more_minibatches_than_penn_treebank_holds():
    bench = BENCH.with_name("bench_word.py")
    from benchmarks.bench_word import CONFIGS, ptb_minibatches
    most = ptb_minibatches(CONFIGS["large-tied-adaptive"])
    assert most == 1327                       # 929,589 tokens / 20 streams, 35 steps
    out = subprocess.run([sys.executable, str(bench), "--configs", "large-tied-adaptive",
                          "--minibatches", str(most + 1), "--no-torch"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"--minibatches and --warmup must be at most {most}" in out.stderr
    out = subprocess.run([sys.executable, str(bench), "--minibatches", "0", "--no-torch"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--minibatches must be at least 1, got 0" in out.stderr
