"""lyricnn.tuning: every process-wide setting in one place, and one opt-out that turns all off."""
import ctypes.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lyricnn import tuning

ROOT = Path(__file__).resolve().parents[1]
TUNED = ("OMP_", "GOMP_", "MXNET_CPU_PARALLEL", "MXNET_STORAGE_FALLBACK", "MALLOC_",
         "GLIBC_TUNABLES", "LYRICNN_NO_TUNING")


def run(code, **env):
    """Run ``code`` in a fresh interpreter whose environment has none of the tuned
    variables (plus ``env``); return its stdout parsed as JSON."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(TUNED)}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full_env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_omp_threads_set_at_import_unless_the_user_chose():
    code = "import json, os, lyricnn; print(json.dumps(os.environ.get('OMP_NUM_THREADS')))"
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert run(code) == str(threads)
    assert run(code, OMP_NUM_THREADS="3") == "3"
    wait = ("import json, os, lyricnn; print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), "
            "os.environ.get('GOMP_SPINCOUNT')]))")
    assert run(wait) == [None, "1000"]
    assert run(wait, OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", None]
    assert run(wait, GOMP_SPINCOUNT="5") == [None, "5"]


def test_copies_on_the_python_thread_stay_single_threaded_unless_the_user_chose():
    code = ("import json, os, lyricnn; "
            "print(json.dumps(os.environ.get('MXNET_CPU_PARALLEL_SIZE')))")
    assert run(code) == str(2**31 - 1)
    assert run(code, MXNET_CPU_PARALLEL_SIZE="500") == "500"


def test_variables_mxnet_reads_at_load_are_left_alone_once_it_is_loaded():
    assert tuning.environment({}, mxnet_loaded=True) == {
        "MXNET_CPU_PARALLEL_SIZE": tuning.NO_PARALLEL_COPY}
    assert set(tuning.environment({}, mxnet_loaded=False)) == {
        "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "MXNET_STORAGE_FALLBACK_LOG_VERBOSE",
        "MXNET_CPU_PARALLEL_SIZE"}
    assert tuning.environment({tuning.OPT_OUT: "1"}, mxnet_loaded=False) == {}


def test_importing_mxnet_first_is_named_with_the_fix():
    """MXNet loaded first cannot be given its threads any more: one warning on stderr
    (logging), naming the import order and OMP_NUM_THREADS; none in the book's order."""
    message = tuning.late_import({}, mxnet_loaded=True, cpus=2)
    assert "1 of this machine's 2 CPUs" in message and "OMP_NUM_THREADS=2" in message
    assert tuning.late_import({}, mxnet_loaded=False, cpus=2) is None
    assert tuning.late_import({"OMP_NUM_THREADS": "2"}, mxnet_loaded=True, cpus=2) is None
    assert tuning.late_import({tuning.OPT_OUT: "1"}, mxnet_loaded=True, cpus=2) is None
    assert tuning.late_import({"MXNET_OMP_MAX_THREADS": "2"}, mxnet_loaded=True, cpus=2) is None
    assert tuning.late_import({}, mxnet_loaded=True, cpus=1) is None
    env = {k: v for k, v in os.environ.items() if not k.startswith(TUNED)}
    late, book = (subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env=env, cwd=ROOT)
                  for code in ("import mxnet, lyricnn", "import lyricnn, mxnet"))
    assert late.returncode == book.returncode == 0, (late.stderr, book.stderr)
    if tuning._cpus() > 1:
        assert late.stderr.count("MXNet was imported before lyricnn") == 1, late.stderr
    assert "imported before lyricnn" not in book.stderr, book.stderr


def test_retain_freed_memory_sets_glibc_malloc_once_unless_the_user_chose():
    glibc = sys.platform.startswith("linux") and "libc.so" in (ctypes.util.find_library("c") or "")
    code = ("import json; from lyricnn.tuning import retain_freed_memory as r; "
            "print(json.dumps([r(), r()]))")
    assert run(code) == [glibc, glibc]
    assert run(code, MALLOC_TOP_PAD_="0") == [False, False]
    assert run(code, LYRICNN_NO_TUNING="1") == [False, False]


def _results_listed_variables():
    """The environment variables docs/RESULTS.md's "Process tuning" table lists."""
    text = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    section = text[text.index("## Process tuning"):]
    section = section[:section.index("\n## ", 1)]
    return set(re.findall(r"^\| `([A-Z_]+)`", section, flags=re.M))


def test_importing_changes_only_what_results_lists():
    listed = _results_listed_variables()
    assert listed >= set(tuning.environment({}, mxnet_loaded=False)), listed
    code = ("import json, os; before = dict(os.environ); import lyricnn; "
            "print(json.dumps(sorted(k for k in os.environ if os.environ.get(k) != "
            "before.get(k))))")
    changed = set(run(code))
    assert changed and changed <= listed


# A fresh interpreter that records every ctypes library load (mallopt is called through
# ctypes), every environment variable and every logger level, trains through the book's
# trainer and through the CLI, and prints what changed.
OPT_OUT_PROBE = r'''
import ctypes, json, logging, os, sys
loads = []
real_cdll = ctypes.CDLL
class Recording(real_cdll):
    def __init__(self, name, *args, **kwargs):
        loads.append(str(name))
        super().__init__(name, *args, **kwargs)
ctypes.CDLL = Recording
env_before = dict(os.environ)
def levels():
    return {name: logging.getLogger(name).level
            for name in [""] + sorted(logging.root.manager.loggerDict)}
import lyricnn as d2l
from lyricnn.cli.main import main
levels_before = levels()
ci, c2i, i2c, V = d2l.load_data_jay_lyrics(num_chars=600)
d2l.set_seed(0)
get_params = d2l.params_getter(V, 8, d2l.try_gpu())
d2l.train_and_predict_rnn(d2l.rnn, get_params, d2l.init_rnn_state, 8, V, d2l.try_gpu(), ci, i2c,
                          c2i, True, 1, 5, 1.0, 0.1, 4, 1, 3, ["分开"])
code = main(["train", "--num-chars", "600", "--num-hiddens", "8", "--num-steps", "5",
             "--batch-size", "4", "--epochs", "1", "--no-progress", "--out", sys.argv[1]])
after = levels()
print(json.dumps({
    "code": code,
    "env": sorted(k for k in set(os.environ) | set(env_before)
                  if os.environ.get(k) != env_before.get(k)),
    "libc": [name for name in loads if "libc" in name],
    "levels": sorted(k for k in levels_before if after.get(k) != levels_before[k]),
}))
'''


@pytest.mark.slow
def test_the_opt_out_leaves_environment_allocator_and_log_levels_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(TUNED)}
    opted = subprocess.run([sys.executable, "-c", OPT_OUT_PROBE, str(tmp_path / "a")],
                           capture_output=True, text=True, cwd=ROOT,
                           env={**env, "LYRICNN_NO_TUNING": "1"})
    assert opted.returncode == 0, opted.stderr
    result = json.loads(opted.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "env": [], "libc": [], "levels": []}, result
    # The same probe without the opt-out does tune: the test can tell the difference.
    tuned = subprocess.run([sys.executable, "-c", OPT_OUT_PROBE, str(tmp_path / "b")],
                           capture_output=True, text=True, cwd=ROOT, env=env)
    assert tuned.returncode == 0, tuned.stderr
    result = json.loads(tuned.stdout.strip().splitlines()[-1])
    glibc = sys.platform.startswith("linux") and "libc.so" in (ctypes.util.find_library("c") or "")
    assert result["code"] == 0 and result["levels"] == []
    assert set(result["env"]) == set(tuning.environment({}, mxnet_loaded=False))
    assert bool(result["libc"]) == glibc
