"""Issue 12's misuse and fault catalogue for the CLI and checkpoints.

One parametrised test per class of fault: corpus, flags, checkpoint corruption
(per file), interrupts (real signals to a subprocess), concurrency, bounds, a
full disk (a real tmpfs as root, a patched write too) and library API arguments, plus SIGKILL fault
injection during saves (a few kills here; ``benchmarks/fault_injection.py``
runs hundreds).  Every CLI case
asserts the exit code, exactly one error line naming the problem, no
traceback, and that the run's previous checkpoint is byte-for-byte untouched
and still loads.

Runs are tiny (hidden 16, 1200 characters): the plumbing is under test.
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lyricnn.run import checkpoint as ck, store, task
from lyricnn.cli import main as cli
from lyricnn.run.config import RunConfig

TINY = ["--num-chars", "1200", "--num-hiddens", "16", "--num-steps", "5", "--batch-size", "4",
        "--no-progress", "--period", "1000"]
HEADER = "lyricnn: training model="  # the run's first stderr line, not an error


# -- helpers ------------------------------------------------------------------------

def snapshot(run_dir):
    """``{file: bytes}`` of a run's checkpoint: what no failure may change."""
    folder = Path(run_dir) / "checkpoint"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def manifest_now(run_dir):
    """The manifest's bytes, or None while a running save has the folder renamed aside.

    A save renames the old folder away and the new one into place (two renames), so a
    reader polling a *live* run can find no folder for an instant; only a finished
    run's folder is compared whole (``snapshot``).
    """
    try:
        return (Path(run_dir) / "checkpoint" / store.MANIFEST).read_bytes()
    except FileNotFoundError:
        return None


def assert_intact(run_dir, before):
    assert snapshot(run_dir) == before, "the previous checkpoint was changed"
    assert ck.load_checkpoint(run_dir).epoch == json.loads(before[store.HISTORY])["epoch"][-1]


def error_line(err):
    """The one error line of ``err`` (the run header aside); fails on a traceback."""
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith(HEADER)]
    assert len(lines) == 1, err
    return lines[0]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def spawn(*argv, cwd=None):
    """``python -m lyricnn.cli ARGV`` in a new process (OMP passive: a busy 2-core machine)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "lyricnn.cli", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env=env)


def wait_for(predicate, proc, timeout=60.0, step=0.002):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the process ended first ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out")
        time.sleep(step)


def mxnet_loading(proc):
    """True once the process maps libmxnet: it is inside main(), importing MXNet."""
    def check():
        try:
            return "libmxnet" in Path(f"/proc/{proc.pid}/maps").read_text()
        except OSError:
            return False
    return check


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A run directory with a 1-epoch checkpoint (copied per case, never changed)."""
    out = tmp_path_factory.mktemp("catalogue") / "base"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def prev(base, tmp_path):
    """A copy of the base run and its snapshot: ``(run_dir, before)``."""
    run_dir = tmp_path / "run"
    shutil.copytree(base, run_dir)
    return run_dir, snapshot(run_dir)


# -- corpus ---------------------------------------------------------------------------

def _zip_with_bad_crc(folder):
    path = folder / "crc.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("crc.txt", "我想要你的微笑 分开 不分开 " * 100)
    data = bytearray(path.read_bytes())
    data[data.index("微笑".encode())] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _truncated_zip(folder):
    path = folder / "trunc.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("trunc.txt", "我想要你的微笑 分开 不分开 " * 100)
    path.write_bytes(path.read_bytes()[:-30])
    return path


def _write(name, data):
    def make(folder):
        (folder / name).write_bytes(data)
        return folder / name
    return make


def _fifo(folder):
    os.mkfifo(folder / "fifo")
    return folder / "fifo"


CORPUS = {
    "folder": (lambda f: f, 2, "is a folder, not a file"),
    "fifo": (_fifo, 2, "is a named pipe (FIFO)"),
    "dev-null": (lambda f: Path("/dev/null"), 2, "character device"),
    "missing": (lambda f: f / "missing.txt", 2, "does not exist"),
    "empty": (_write("empty.txt", b""), 2, "is empty"),
    "not-utf8": (_write("gbk.txt", "分开".encode("gbk") * 50), 2, "is not UTF-8 text"),
    "too-short": (_write("short.txt", "分开了".encode()), 2, "needs at least"),
    "bad-crc-zip": (_zip_with_bad_crc, 2, "is a corrupt zip file (Bad CRC"),
    "truncated-zip": (_truncated_zip, 2, "is a corrupt zip file"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus(capsys, tmp_path, prev, case):
    make, code, message = CORPUS[case]
    (tmp_path / "data").mkdir()
    corpus = make(tmp_path / "data")
    run_dir, before = prev
    got, out, err = run(capsys, "train", *TINY, "--epochs", 1, "--corpus", corpus,
                        "--out", run_dir, "--force")
    assert got == code and message in error_line(err) and out == ""
    assert_intact(run_dir, before)


def test_a_byte_order_mark_is_not_a_character(capsys, tmp_path):
    corpus = tmp_path / "bom.txt"
    corpus.write_bytes("\ufeff".encode() + "我想要你的微笑 分开 不分开 ".encode() * 60)
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--corpus", corpus,
                       "--out", tmp_path / "run")
    assert code == 0, err
    assert "\ufeff" not in ck.load_checkpoint(tmp_path / "run").vocab


# -- flags ----------------------------------------------------------------------------

FLAGS = {
    "hidden-zero": (["--num-hiddens", 0], "num_hiddens must be an integer >= 1, got 0"),
    "hidden-float": (["--hidden", 2.5], "num_hiddens must be an integer >= 1, got '2.5'"),
    "lr-zero": (["--lr", 0], "lr must be a finite number > 0"),
    "lr-float32-zero": (["--lr", "1e-50"], "it becomes 0 in float32"),
    "lr-huge": (["--lr", "1e39"], "lr must be a finite number > 0 and <= 3.4"),
    "lr-nan": (["--lr", "nan"], "lr must be a finite number"),
    "clip-float32-zero": (["--clip", "1e-60"], "clipping_theta must be at least"),
    "seed-negative": (["--seed", -1], "seed must be an integer between 0 and 4294967295"),
    "seed-huge": (["--seed", 2**32], "seed must be an integer between 0 and 4294967295"),
    "valid-fraction": (["--valid-fraction", 0.999], "--valid-fraction 0.999 of 1200 characters"),
    "valid-fraction-one": (["--valid-fraction", 1], "valid_fraction must be a number >= 0 "
                                                    "and < 1"),
    "model": (["--model", "transformer"], "model must be one of"),
    "sampler": (["--sampler", "shuffled"], "sampler must be one of 'random', 'consecutive'"),
    "epochs-zero": (["--epochs", 0], "num_epochs must be an integer >= 1"),
    "save-every-zero": (["--save-every", 0], "save_every must be an integer >= 1"),
    "pred-len-huge": (["--pred-len", 10**9], "pred_len must be an integer between 0 and"),
    "prefix-unknown": (["--prefix", "分☃"], "character(s) '☃' are not in the corpus"),
    "prefix-empty": (["--prefix", ""], "--prefix must not be empty"),
    "num-chars-negative": (["--num-chars", -3], "num_chars must be an integer >= 1"),
    "unknown-flag": (["--momentum", 0.5], "unrecognized arguments: --momentum"),
}


@pytest.mark.parametrize("case", sorted(FLAGS))
def test_flags(capsys, prev, case):
    flags, message = FLAGS[case]
    run_dir, before = prev
    code, out, err = run(capsys, "train", *TINY, "--epochs", 2, *flags, "--out", run_dir,
                         "--force")
    assert code == 2 and message in error_line(err) and out == ""
    assert_intact(run_dir, before)


RUN_FLAGS = {
    "resume-nowhere": (lambda r: ["--resume", r.parent / "nowhere"], "does not exist"),
    "resume-changed-setting": (lambda r: ["--resume", r, "--hidden", 32],
                               "--num-hiddens 32 (checkpoint: 16)"),
    "resume-a-file": (lambda r: ["--resume", r / "checkpoint" / "config.json"],
                      "is a file, not a checkpoint folder"),
    "out-exists": (lambda r: [*TINY, "--out", r], "already holds a checkpoint: continue it "
                                                  "with --resume"),
    "out-is-a-file": (lambda r: [*TINY, "--out", r / "checkpoint" / "config.json"],
                      "is a file; give a folder"),
}


@pytest.mark.parametrize("case", sorted(RUN_FLAGS))
def test_run_flags(capsys, prev, case):
    flags, message = RUN_FLAGS[case]
    run_dir, before = prev
    code, out, err = run(capsys, "train", *flags(run_dir), "--epochs", 2)
    assert code == 2 and message in error_line(err)
    assert_intact(run_dir, before)


# -- checkpoint corruption, per file ----------------------------------------------------

def _flip(name):
    def damage(folder):
        path = folder / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x5A
        path.write_bytes(bytes(data))
    return damage


def _delete(name):
    return lambda folder: (folder / name).unlink()


def _resigned(name, text):
    """Replace a file's content and fix the manifest: only the content check can object."""
    def damage(folder):
        (folder / name).write_text(text)
        manifest = json.loads((folder / store.MANIFEST).read_text())
        data = (folder / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(),
                                   "bytes": len(data)}
        (folder / store.MANIFEST).write_text(json.dumps(manifest))
    return damage


CORRUPTION = {
    **{f"flip-{name}": (_flip(name), name, "does not match its checksum")
       for name in store.DATA_FILES},
    **{f"delete-{name}": (_delete(name), name, "missing") for name in store.FILES},
    "config-list": (_resigned(store.CONFIG, "[1, 2]"), store.CONFIG, "expected an object"),
    "rng-empty": (_resigned(store.RNG, "{}"), store.RNG, "expected an object with keys"),
    "history-null": (_resigned(store.HISTORY, "null"), store.HISTORY, "expected an object"),
    "history-infinity": (_resigned(store.HISTORY, '{"epoch": [1], "perplexity": [Infinity], '
                                               '"seconds": [1], "valid_perplexity": [null]}'),
                         store.HISTORY, "Infinity is not standard JSON"),
    "manifest-garbage": (lambda f: (f / store.MANIFEST).write_text("[]"), store.MANIFEST,
                         "not a format-2 manifest"),
}


@pytest.mark.parametrize("command", ["generate", "resume"])
@pytest.mark.parametrize("case", sorted(CORRUPTION))
def test_checkpoint_corruption(capsys, prev, case, command):
    damage, name, message = CORRUPTION[case]
    run_dir, _ = prev
    damage(run_dir / "checkpoint")
    damaged = snapshot(run_dir)
    argv = (["generate", "--checkpoint", run_dir, "--prefix", "分"] if command == "generate"
            else ["train", "--resume", run_dir, "--epochs", 2, "--no-progress"])
    code, out, err = run(capsys, *argv)
    line = error_line(err)
    assert code == 1 and out == "", err
    assert "bad checkpoint" in line and f"checkpoint: {name}: " in line and message in line
    assert "restore the folder" in line or "upgrade" in line
    assert snapshot(run_dir) == damaged  # nothing was "repaired" or overwritten


# -- interrupts: real signals -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                       (signal.SIGHUP, 129)])   # SIGHUP: terminal closed
@pytest.mark.parametrize("when", ["startup", "training"])
def test_interrupts(prev, sig, code, when):
    run_dir, before = prev
    proc = spawn("train", "--resume", run_dir, "--epochs", 10**6, "--no-progress")
    if when == "startup":
        wait_for(mxnet_loading(proc), proc)
    else:  # after the resumed run saved at least one epoch of its own
        wait_for(lambda: manifest_now(run_dir) not in (None, before[store.MANIFEST]), proc)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 20  # stops within seconds
    assert proc.returncode == code, err
    line = error_line(err)
    name = signal.Signals(sig).name
    if when == "startup":
        assert line == f"lyricnn: interrupted by {name}"
        assert_intact(run_dir, before)
    else:
        epoch = ck.load_checkpoint(run_dir).epoch
        assert line.startswith(f"lyricnn train: interrupted by {name}; the checkpoint of "
                               f"epoch {epoch} is in") and epoch >= 2
        assert "--resume" in line


# -- concurrency ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def writer(base, tmp_path_factory):
    """A run training (and saving every epoch) in another process for this module's cases."""
    run_dir = tmp_path_factory.mktemp("writer") / "run"
    shutil.copytree(base, run_dir)
    first = snapshot(run_dir)[store.MANIFEST]
    proc = spawn("train", "--resume", run_dir, "--epochs", 10**6, "--no-progress")
    wait_for(lambda: manifest_now(run_dir) not in (None, first), proc)
    yield run_dir, proc
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143


def _second_writer(capsys, run_dir):
    return run(capsys, "train", "--resume", run_dir, "--epochs", 10**6)


def _second_fresh_writer(capsys, run_dir):
    return run(capsys, "train", *TINY, "--out", run_dir, "--force")


@pytest.mark.parametrize("second", [_second_writer, _second_fresh_writer],
                         ids=["resume", "force"])
@pytest.mark.slow
def test_a_second_writer_fails_at_once(capsys, writer, second):
    run_dir, proc = writer
    start = time.monotonic()
    code, out, err = second(capsys, run_dir)
    assert code == 1 and "is being written by another lyricnn process (pid " \
        f"{proc.pid}" in error_line(err)
    assert time.monotonic() - start < 30 and proc.poll() is None


@pytest.mark.slow
def test_readers_never_see_a_half_written_checkpoint(writer):
    run_dir, proc = writer
    epochs = set()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # many loads, across several saves
        epochs.add(ck.load_checkpoint(run_dir).epoch)
    assert len(epochs) >= 2, "no save happened while reading"


# -- bounds -----------------------------------------------------------------------------

BOUNDS = {
    "length-huge": (["generate", "--prefix", "分", "--length", 99999999999999],
                    "length must be an integer between 0 and 1000000"),
    "length-negative": (["generate", "--prefix", "分", "--length", -1], "length must be"),
    "top-k-above-vocab": (["generate", "--prefix", "分", "--top-k", 10**9,
                           "--strategy", "sample"], "--top-k must be at most the vocabulary"),
    "temperature-inf": (["generate", "--prefix", "分", "--temperature", "inf"],
                        "temperature must be a finite number >= 0"),
    "prefix-unknown": (["generate", "--prefix", "☃"], "are not in the corpus"),
    "ngram-order-huge": (["score", "分开", "--ngram-order", 10000000],
                         "--ngram-order: order must be <= the number of training tokens"),
    "ngram-order-negative": (["score", "分开", "--ngram-order", -1],
                             "ngram_order must be an integer >= 0"),
    "score-short-text": (["score", "分"], "at least 2 characters"),
}


@pytest.mark.parametrize("case", sorted(BOUNDS))
def test_bounds(capsys, prev, case):
    argv, message = BOUNDS[case]
    run_dir, before = prev
    start = time.monotonic()
    code, out, err = run(capsys, argv[0], "--checkpoint", run_dir, *argv[1:])
    assert code == 2 and message in error_line(err) and out == ""
    assert time.monotonic() - start < 20  # refused up front, not after the work
    assert_intact(run_dir, before)


def test_a_model_beyond_memory_is_refused_up_front(capsys, prev):
    run_dir, before = prev
    code, out, err = run(capsys, "train", *TINY, "--num-hiddens", 10**6, "--out", run_dir,
                         "--force")
    assert code == 2 and "GiB" in error_line(err) and "--num-hiddens" in error_line(err)
    assert_intact(run_dir, before)


# -- library API arguments ------------------------------------------------------------

def _api_cases(folder):
    loaded = ck.load_checkpoint(folder)
    good = (loaded.config, loaded.vocab, loaded.lm, loaded.history, loaded.corpus_text,
            loaded.rng_state)
    return {
        "config-string-int": (lambda: RunConfig(num_hiddens="8").validate(derived=False),
                              ValueError, "num_hiddens must be an integer >= 1, got '8' (str)"),
        "config-nan-lr": (lambda: RunConfig(lr=float("nan")).validate(derived=False),
                          ValueError, "lr must be a finite number"),
        "config-from-list": (lambda: RunConfig.from_dict([1, 2]), ValueError,
                             "a config must be a JSON object"),
        "config-numpy-ok": (lambda: RunConfig(num_hiddens=np.int64(8), seed=np.int32(1))
                            .validate(derived=False), None, None),
        "save-dict-config": (lambda: ck.save_checkpoint(folder.parent / "x", {}, *good[1:]),
                             TypeError, "config must be a RunConfig"),
        "save-wrong-rng-epoch": (lambda: ck.save_checkpoint(
            folder.parent / "x", *good[:5], ck.capture_rng_state(99)), ValueError,
            "rng_state['mxnet_seed'] is 99"),
        "load-a-file": (lambda: ck.load_checkpoint(folder / "checkpoint" / store.CONFIG),
                        store.CheckpointError, "is a file, not a checkpoint folder"),
        "load-missing": (lambda: ck.load_checkpoint(folder / "nowhere"), FileNotFoundError,
                         "does not exist"),
        "restore-empty-rng": (lambda: ck.restore_rng_state({}), ValueError,
                              "expected an object with keys"),
        "build-unknown-model": (lambda: task.build_model(RunConfig(model="cnn", vocab_size=3)),
                                ValueError, "model must be one of"),
    }


API_CASES = ["config-string-int", "config-nan-lr", "config-from-list", "config-numpy-ok",
             "save-dict-config", "save-wrong-rng-epoch", "load-a-file", "load-missing",
             "restore-empty-rng", "build-unknown-model"]


@pytest.mark.parametrize("case", API_CASES)
def test_api_arguments(prev, case):
    run_dir, before = prev
    call, error, message = _api_cases(run_dir)[case]
    if error is None:
        call()
    else:
        with pytest.raises(error) as info:
            call()
        assert message in str(info.value) and "\n" not in str(info.value)
    assert not (run_dir.parent / "x").exists()
    assert_intact(run_dir, before)


# -- fault injection: SIGKILL during saves ----------------------------------------------

#: Kills per suite run: each costs a process start; benchmarks/fault_injection.py does more.
KILLS = 3


def kill_during_save(run_dir, rng):
    """Resume ``run_dir`` in a process and SIGKILL it at a random moment of a save."""
    stale = set(os.listdir(run_dir))  # an earlier crash's temp folder is not this save
    proc = spawn("train", "--resume", run_dir, "--epochs", 10**6, "--no-progress")

    def saving():
        return any(n.startswith(".checkpoint.tmp-") and n not in stale
                   for n in os.listdir(run_dir))
    wait_for(saving, proc, step=0.0005)
    time.sleep(rng.uniform(0, 0.03))  # somewhere in the save: files, manifest, renames
    proc.kill()
    proc.communicate(timeout=60)
    return proc.returncode


@pytest.mark.slow
def test_sigkill_during_save_keeps_a_complete_checkpoint(capsys, prev):
    run_dir, before = prev
    rng = random.Random(int(os.environ.get("LYRICNN_FAULT_SEED", "12")))
    last = 1
    for _ in range(KILLS):
        assert kill_during_save(run_dir, rng) == -signal.SIGKILL
        epoch = ck.load_checkpoint(run_dir).epoch  # a reader: the newest complete one
        assert epoch >= last
        last = epoch
    # The next run recovers: leftovers gone, the newest complete checkpoint in place.
    code, _, err = run(capsys, "train", "--resume", run_dir, "--epochs", last + 1,
                       "--no-progress")
    assert code == 0, err
    assert sorted(os.listdir(run_dir)) == [".checkpoint.lock", "checkpoint"]
    assert ck.load_checkpoint(run_dir).epoch == last + 1


# -- a full disk (a patched write: no tmpfs needed) ---------------------------------------

@pytest.mark.parametrize("failing", [store.CONFIG, store.HISTORY, store.MANIFEST])
def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(capsys, prev, monkeypatch,
                                                                 failing):
    import errno
    run_dir, before = prev
    real = ck.atomic_write_bytes

    def full(path, data):
        if Path(path).name == failing:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", full)
    code, out, err = run(capsys, "train", "--resume", run_dir, "--epochs", 2, "--no-progress")
    assert code == 1 and "No space left on device" in error_line(err)
    assert_intact(run_dir, before)
    assert sorted(os.listdir(run_dir)) == [".checkpoint.lock", "checkpoint"]  # no temp left


# -- a real full disk: a small tmpfs (needs root, as CI and this project's machines run) ---

@pytest.fixture
def small_tmpfs(tmp_path, prev):
    """A tmpfs just big enough for one checkpoint of ``prev`` and its lock, not for the
    second copy a save writes before it swaps the old one out."""
    if os.geteuid() != 0:  # the patched-write test above covers other machines
        pytest.skip("mounting a tmpfs needs root; the patched full-disk test ran instead")
    need = sum(len(b) for b in prev[1].values())
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    size_kib = (need + need // 2) // 1024 + 8
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_keeps_the_previous_checkpoint(capsys, prev, small_tmpfs):
    run_dir, before = prev
    target = small_tmpfs / "run"
    shutil.copytree(run_dir, target)
    code, out, err = run(capsys, "train", "--resume", target, "--epochs", 3, "--no-progress")
    line = error_line(err)
    assert code == 1 and "No space left on device" in line
    assert str(target) in line and any(n in line for n in store.OWN_FILES)   # which file
    assert_intact(target, before)
    assert not [n for n in os.listdir(target / "..") if n.startswith(".") and "tmp" in n]
    assert sorted(os.listdir(target)) == [".checkpoint.lock", "checkpoint"]  # no temp left


# -- issue 26: what a hostile or new user still hit ----------------------------------------

def _other_model_old(run_dir):
    """``.checkpoint.old`` beside ``run_dir/checkpoint`` holding another run (another
    model), newer than the checkpoint: what a crash of another run's save could leave."""
    other = run_dir.parent / "other"
    assert cli.main(["train", *TINY, "--epochs", "1", "--num-hiddens", "8",
                     "--out", str(other)]) == 0
    shutil.copytree(other / "checkpoint", run_dir / ".checkpoint.old")


def test_a_stale_old_checkpoint_of_another_run_is_never_used(capsys, prev):
    run_dir, before = prev
    _other_model_old(run_dir)
    capsys.readouterr()
    assert ck.load_checkpoint(run_dir).config.num_hiddens == 16        # not the .old's 8
    code, _, err = run(capsys, "train", "--resume", run_dir, "--epochs", 2)
    assert code == 0, err
    loaded = ck.load_checkpoint(run_dir)
    assert loaded.config.num_hiddens == 16 and loaded.epoch == 2
    assert not (run_dir / ".checkpoint.old").exists()                   # our save's leftover


def test_a_stale_old_checkpoint_of_this_run_loses_to_a_later_epoch_whatever_its_clock(capsys,
                                                                                     prev):
    """An earlier epoch of the same run as ``.checkpoint.old`` with a save time in the future
    (a clock set back since, or a copied folder): the later epoch is the one used."""
    run_dir, _ = prev
    earlier = run_dir.parent / "earlier"
    shutil.copytree(run_dir / "checkpoint", earlier)
    assert run(capsys, "train", "--resume", run_dir, "--epochs", 2)[0] == 0
    manifest = json.loads((earlier / store.MANIFEST).read_text())
    manifest["created_ns"] = time.time_ns() + 10**18                    # ~30 years ahead
    (earlier / store.MANIFEST).write_text(json.dumps(manifest))
    shutil.move(earlier, run_dir / ".checkpoint.old")
    assert ck.load_checkpoint(run_dir).epoch == 2
    code, _, err = run(capsys, "train", "--resume", run_dir, "--epochs", 3)
    assert code == 0 and ck.load_checkpoint(run_dir).history.epoch == [1, 2, 3], err


def test_a_file_of_the_users_inside_the_checkpoint_folder_survives_every_save(capsys, prev):
    run_dir, _ = prev
    notes = run_dir / "checkpoint" / "notes.txt"
    notes.write_text("lr 1e2 looked best")
    (run_dir / "checkpoint" / "plots").mkdir()
    assert run(capsys, "train", "--resume", run_dir, "--epochs", 3)[0] == 0   # two saves
    assert notes.read_text() == "lr 1e2 looked best" and (notes.parent / "plots").is_dir()
    assert ck.load_checkpoint(run_dir).epoch == 3


def _best_of_user_files(run_dir):
    (run_dir / "best").mkdir()
    (run_dir / "best" / "mine.txt").write_text("not a checkpoint")


def _best_link(run_dir):
    (run_dir / "elsewhere").mkdir()
    (run_dir / "best").symlink_to(run_dir / "elsewhere")


def _best_file(run_dir):
    (run_dir / "best").write_text("a file")


def _plot_folder(run_dir):
    (run_dir / "perplexity.png").mkdir()


OWN_NAMES = {"best-of-user-files": (_best_of_user_files, "not a lyricnn checkpoint"),
             "best-link": (_best_link, "is a symbolic link"),
             "best-file": (_best_file, "is a file"),
             "plot-folder": (_plot_folder, "not a regular file")}


@pytest.mark.parametrize("how", ["fresh", "force", "resume"])
@pytest.mark.parametrize("case", sorted(OWN_NAMES))
def test_what_a_run_would_replace_is_checked_before_it_trains(capsys, prev, tmp_path, case, how):
    """Refused at once (not after the first epoch), and nothing of the user's touched."""
    run_dir, _ = prev
    make, message = OWN_NAMES[case]
    target = tmp_path / "fresh" if how != "resume" else run_dir
    target.mkdir(exist_ok=True)
    make(target)
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    argv = (["--resume", run_dir, "--epochs", 2] if how == "resume" else
            [*TINY, "--epochs", 1, "--out", target] + (["--force"] if how == "force" else []))
    code, out, err = run(capsys, "train", *argv, "--plot")
    assert code == 2 and message in error_line(err) and "epoch 1" not in out, err
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before


def test_a_folder_holding_only_best_is_not_replaced_without_force(capsys, prev, tmp_path):
    run_dir, _ = prev
    keep = tmp_path / "keep"
    keep.mkdir()
    shutil.copytree(run_dir / "checkpoint", keep / "best")              # the user kept best/
    best = {p.name: p.read_bytes() for p in (keep / "best").iterdir()}
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", keep)
    assert code == 2 and "holds best/" in error_line(err) and "--force" in err
    assert {p.name: p.read_bytes() for p in (keep / "best").iterdir()} == best


def test_force_keeps_the_earlier_best_until_the_new_run_has_saved(capsys, prev, tmp_path):
    run_dir, _ = prev
    keep = tmp_path / "keep"
    keep.mkdir()
    shutil.copytree(run_dir / "checkpoint", keep / "best")
    best = {p.name: p.read_bytes() for p in (keep / "best").iterdir()}
    # A run that diverges in its first epoch saves nothing: best/ stays as it was.
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", keep, "--force",
                       "--lr", "1e30", "--clip", "1e30")
    assert code == 1 and "diverged" in err
    assert {p.name: p.read_bytes() for p in (keep / "best").iterdir()} == best
    # One that saves replaces it: without a held-out split there is no best of its own.
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", keep, "--force")
    assert code == 0, err
    assert not (keep / "best").exists() and ck.load_checkpoint(keep).epoch == 1


def test_a_fresh_run_leaves_a_plot_it_was_not_asked_for(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "perplexity.png").write_bytes(b"the user's own picture")
    assert run(capsys, "train", *TINY, "--epochs", 1, "--out", out)[0] == 0
    assert (out / "perplexity.png").read_bytes() == b"the user's own picture"


def test_interrupted_before_any_save_the_advice_is_to_start_again(capsys, tmp_path,
                                                                   monkeypatch):
    from lyricnn.cli import train as train_cmd
    monkeypatch.setattr(train_cmd, "retain_freed_memory", lambda: os.kill(os.getpid(),
                                                                         signal.SIGINT))
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path / "run")
    assert code == 130
    line = error_line(err)
    assert "no checkpoint was saved" in line and "--resume" not in line
    assert "run the same command again" in line


def test_version(capsys):
    from lyricnn import __version__
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"lyricnn {__version__}"


def _sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


HOSTILE_FILES = {
    # A FIFO where a file should be: opened without blocking and refused, never read.
    "corpus-fifo": ("corpus.txt", lambda p: os.mkfifo(p), "corpus.txt: is not a regular file"),
    # 8 GiB (sparse) where the manifest says a few KB: read one byte past the stated size.
    "params-endless": ("params.params", lambda p: _sparse(p, 8 << 30),
                       "params.params: does not match its checksum"),
    "manifest-endless": ("manifest.json", lambda p: _sparse(p, 8 << 30), "manifest.json"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_hostile_checkpoint_files_are_refused_without_reading_them(capsys, prev, case):
    run_dir, _ = prev
    name, make, message = HOSTILE_FILES[case]
    target = run_dir / "checkpoint" / name
    target.unlink()
    make(target)
    start = time.monotonic()
    code, out, err = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    assert time.monotonic() - start < 30
    assert code == 1 and message in error_line(err) and out == ""


def test_a_corpus_of_one_distinct_character_is_refused_before_training(capsys, tmp_path):
    corpus = tmp_path / "spaces.txt"
    corpus.write_text(" \n" * 3000, encoding="utf-8")
    code, _, err = run(capsys, "train", "--corpus", corpus, "--num-chars", "all",
                       "--out", tmp_path / "run")
    assert code == 2 and "1 distinct characters" in error_line(err)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_corpus_path_that_is_not_utf8_is_refused_before_training(capsys, tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.txt")
    with open(raw, "wb") as f:
        f.write("分开 不分开 ".encode("utf-8") * 500)
    code, _, err = run(capsys, "train", "--corpus", os.fsdecode(raw), *TINY[2:],
                       "--out", tmp_path / "run")
    assert code == 2 and "not UTF-8" in error_line(err)


@pytest.mark.parametrize("case", ["dangling", "inside-checkpoint", "corpus-loop",
                                  "checkpoint-loop"])
def test_bad_paths_are_one_line(capsys, prev, tmp_path, case):
    run_dir, before = prev
    loop = tmp_path / "loop"
    os.symlink(loop, loop)                                   # a link to itself
    if case == "dangling":
        os.symlink(tmp_path / "nowhere", tmp_path / "out")
        argv, expect = ["train", *TINY, "--out", tmp_path / "out"], "does not exist"
    elif case == "inside-checkpoint":
        argv = ["train", *TINY, "--out", run_dir / "checkpoint" / "x"]
        expect = "inside the checkpoint folder"
    elif case == "corpus-loop":
        argv, expect = ["train", "--corpus", loop, "--out", tmp_path / "r"], "loop"
    else:
        argv, expect = ["generate", "--checkpoint", loop, "--prefix", "分开"], "loop"
    code, out, err = run(capsys, *argv)
    assert code == 2 and expect in error_line(err), err
    assert_intact(run_dir, before)


def test_generate_with_stdout_closed_is_an_error(prev):
    run_dir, _ = prev
    proc = subprocess.run([sys.executable, "-m", "lyricnn.cli", "generate", "--checkpoint",
                           str(run_dir), "--prefix", "分开"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=120,
                          preexec_fn=lambda: os.close(1))
    assert proc.returncode != 0 and "standard output is closed" in proc.stderr


def test_a_tiny_temperature_is_greedy_not_nan(capsys, prev):
    run_dir, _ = prev
    greedy = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    tiny = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开",
               "--strategy", "sample", "--temperature", "5e-324", "--seed", "1")
    assert tiny[0] == 0 and tiny[1] == greedy[1], tiny[2]


def _book_api_cases():
    """Book-API calls a notebook can make with arguments that are wrong: each must be one
    ``ValueError`` naming the argument (d2lzh returns shifted rows, zeros or NaN)."""
    import mxnet as mx
    from mxnet import nd
    from mxnet.gluon import nn as gluon_nn
    from mxnet.gluon import rnn as gluon_rnn

    import lyricnn as d2l
    from lyricnn.training.optim import clipped_sgd

    V, H = 20, 4
    params = d2l.get_params(V, H)
    for p in params:
        p.grad[:] = 1
    idx_to_char = [chr(0x4e00 + i) for i in range(V)]
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    other = d2l.get_params(V + 1, H)
    nan_params = d2l.get_params(V, H)
    nan_params[1][:] = float("nan")                  # W_hh: every output becomes NaN
    gluon = d2l.RNNModel(gluon_rnn.RNN(H), V + 1)
    gluon.initialize()

    def predict(ps, i2c=idx_to_char):
        return d2l.predict_rnn(i2c[0], 3, d2l.rnn, ps, d2l.init_rnn_state, H, V, mx.cpu(), i2c,
                               char_to_idx)
    return {
        "onehot-too-large": (lambda: d2l.to_onehot(nd.array([[0, V]]), V), "X must hold"),
        "onehot-negative": (lambda: d2l.to_onehot(nd.array([[-1, 2]]), V), "X must hold"),
        "onehot-fraction": (lambda: d2l.to_onehot(nd.array([[0.5, 2]]), V), "X must hold"),
        "onehot-nan": (lambda: d2l.to_onehot(nd.array([[float("nan"), 2]]), V), "X must hold"),
        "clip-zero": (lambda: d2l.grad_clipping(params, 0, None), "theta"),
        "clip-negative": (lambda: d2l.grad_clipping(params, -1, None), "theta"),
        "clip-nan": (lambda: d2l.grad_clipping(params, float("nan"), None), "theta"),
        "clipped-sgd-negative": (lambda: clipped_sgd(params, [p.grad for p in params], 1.0,
                                                     -1.0), "theta"),
        "clipped-sgd-lr-nan": (lambda: clipped_sgd(params, [p.grad for p in params],
                                                   float("nan"), 1.0), "lr"),
        "sgd-batch-zero": (lambda: d2l.sgd(params, 0.1, 0), "batch_size"),
        "sgd-lr-nan": (lambda: d2l.sgd(params, float("nan"), 1), "lr"),
        "predict-other-vocab-params": (lambda: predict(other), "vocab_size=20"),
        "predict-other-idx_to_char": (lambda: predict(params, idx_to_char[:-1]), "idx_to_char"),
        "predict-gluon-other-vocab": (lambda: d2l.predict_rnn_gluon(
            idx_to_char[0], 3, gluon, V, mx.cpu(), idx_to_char, char_to_idx), "vocab_size"),
        "train-gluon-other-vocab": (lambda: d2l.train_and_predict_rnn_gluon(
            gluon, H, V, mx.cpu(), [0, 1, 2] * 30, idx_to_char, char_to_idx, 1, 5, 1.0, 0.1, 2,
            1, 3, [idx_to_char[0]]), "vocab_size"),
        "rnnmodel-vocab-zero": (lambda: d2l.RNNModel(gluon_rnn.RNN(H), 0), "vocab_size"),
        "rnnmodel-string-layer": (lambda: d2l.RNNModel("rnn", V), "rnn_layer"),
        "sampler-index-2**24": (lambda: next(d2l.data_iter_consecutive(
            [2**24 + 1] * 100, 2, 5)), "2**24"),
        "device-huge": (lambda: d2l.resolve_ctx("cpu:99999999999999999999"), "not a device"),
        "onehot-size-beyond-float32": (lambda: d2l.to_onehot(nd.array([[0, 1]]), 10**12),
                                       "size must be an integer between 1 and 16777216"),
        "sgd-lr-underflows-float32": (lambda: d2l.sgd(params, 1e-50, 1), "lr / batch_size"),
        "sgd-param-without-grad": (lambda: d2l.sgd([nd.ones(3)], 0.1, 1), "params[0]"),
        "clip-param-without-grad": (lambda: d2l.grad_clipping([nd.ones(3)], 1.0, None),
                                    "params[0]"),
        "predict-num_hiddens-mismatch": (lambda: d2l.predict_rnn(
            idx_to_char[0], 3, d2l.rnn, params, d2l.init_rnn_state, H + 1, V, mx.cpu(),
            idx_to_char, char_to_idx), "num_hiddens=5"),
        "predict-num_hiddens-negative": (lambda: d2l.predict_rnn(
            idx_to_char[0], 3, d2l.rnn, params, d2l.init_rnn_state, -1, V, mx.cpu(),
            idx_to_char, char_to_idx), "num_hiddens"),
        "predict-char_to_idx-past-vocab": (lambda: d2l.predict_rnn(
            idx_to_char[0], 3, d2l.rnn, params, d2l.init_rnn_state, H, V, mx.cpu(),
            idx_to_char, {**char_to_idx, idx_to_char[0]: V + 3}), "char_to_idx maps"),
        "predict-nan-parameters": (lambda: predict(nan_params), "NaN"),
        "train-gluon-num_hiddens-mismatch": (lambda: d2l.train_and_predict_rnn_gluon(
            d2l.RNNModel(gluon_rnn.RNN(H), V), H * 2, V, mx.cpu(), [0, 1, 2] * 30, idx_to_char,
            char_to_idx, 1, 5, 1.0, 0.1, 2, 1, 3, [idx_to_char[0]]), "num_hiddens=8"),
        "rnnmodel-dense-layer": (lambda: d2l.RNNModel(gluon_nn.Dense(H), V), "rnn_layer"),
        "rnnmodel-ntc-layout": (lambda: d2l.RNNModel(gluon_rnn.RNN(H, layout="NTC"), V),
                                "layout='TNC'"),
        "rnnmodel-no-hidden-units": (lambda: d2l.RNNModel(gluon_rnn.RNN(0), V), "hidden_size"),
    }


BOOK_API_MORE = {   # found by the independent hostile run after the first fixes
    "predict-gpu-context": lambda d2l, mx, P, V, i2c, c2i: d2l.predict_rnn(
        i2c[0], 3, d2l.rnn, P, d2l.init_rnn_state, 4, V, mx.gpu(0), i2c, c2i),
    "predict-bad-context-string": lambda d2l, mx, P, V, i2c, c2i: d2l.predict_rnn(
        i2c[0], 3, d2l.rnn, P, d2l.init_rnn_state, 4, V, "foo", i2c, c2i),
    "init-state-batch-zero": lambda d2l, mx, P, V, i2c, c2i: d2l.init_rnn_state(0, 4, mx.cpu()),
    "init-state-hidden-negative": lambda d2l, mx, P, V, i2c, c2i: d2l.init_lstm_state(
        2, -1, mx.cpu()),
    "rnn-state-of-other-size": lambda d2l, mx, P, V, i2c, c2i: d2l.rnn(
        d2l.to_onehot(mx.nd.array([[0, 1], [2, 3]]), V), d2l.init_rnn_state(2, 8, mx.cpu()), P),
    "get-params-beyond-memory": lambda d2l, mx, P, V, i2c, c2i: d2l.get_params(V, 10**12),
    "get-params-gpu-context": lambda d2l, mx, P, V, i2c, c2i: d2l.get_params(V, 4, mx.gpu(3)),
    "get-params-bad-context": lambda d2l, mx, P, V, i2c, c2i: d2l.get_params(V, 4, "banana"),
    "init-state-gpu-context": lambda d2l, mx, P, V, i2c, c2i: d2l.init_rnn_state(
        2, 4, mx.gpu(1)),
    "init-state-giant": lambda d2l, mx, P, V, i2c, c2i: d2l.init_rnn_state(2, 10**12, mx.cpu()),
    "rnnmodel-giant-vocabulary": lambda d2l, mx, P, V, i2c, c2i: d2l.RNNModel(
        __import__("mxnet").gluon.rnn.RNN(4), 10**12),
    "getter-returning-none": lambda d2l, mx, P, V, i2c, c2i: d2l.train_and_predict_rnn(
        d2l.rnn, lambda: None, d2l.init_rnn_state, 4, V, mx.cpu(), [0, 1, 2] * 40, i2c, c2i,
        True, 1, 5, 1.0, 0.1, 2, 1, 3, [i2c[0]]),
    "predict-uninitialised-model": lambda d2l, mx, P, V, i2c, c2i: d2l.predict_rnn_gluon(
        i2c[0], 3, d2l.RNNModel(__import__("mxnet").gluon.rnn.RNN(4), V), V, mx.cpu(), i2c,
        c2i),
    "getter-without-gradients": lambda d2l, mx, P, V, i2c, c2i: d2l.train_and_predict_rnn(
        d2l.rnn, lambda: [p.copy() for p in P], d2l.init_rnn_state, 4, V, mx.cpu(),
        [0, 1, 2] * 40, i2c, c2i, True, 1, 5, 1.0, 0.1, 2, 1, 3, [i2c[0]]),
}


@pytest.mark.parametrize("case", sorted(BOOK_API_MORE))
def test_book_api_refuses_what_reached_mxnet(case):
    import mxnet as mx

    import lyricnn as d2l
    V = 20
    i2c = [chr(0x4e00 + i) for i in range(V)]
    c2i = {c: i for i, c in enumerate(i2c)}
    P = d2l.get_params(V, 4)
    with pytest.raises(ValueError) as err:
        BOOK_API_MORE[case](d2l, mx, P, V, i2c, c2i)
    assert len(str(err.value).splitlines()) == 1 and "MXNet" not in str(err.value)[:8], err.value


BOOK_API = ["onehot-too-large", "onehot-negative", "onehot-fraction", "onehot-nan",
            "clip-zero", "clip-negative", "clip-nan", "clipped-sgd-negative",
            "clipped-sgd-lr-nan", "sgd-batch-zero", "sgd-lr-nan", "predict-other-vocab-params",
            "predict-other-idx_to_char", "predict-gluon-other-vocab", "train-gluon-other-vocab",
            "rnnmodel-vocab-zero", "rnnmodel-string-layer", "sampler-index-2**24",
            "device-huge", "onehot-size-beyond-float32", "sgd-lr-underflows-float32",
            "sgd-param-without-grad", "clip-param-without-grad", "predict-num_hiddens-mismatch",
            "predict-num_hiddens-negative", "predict-char_to_idx-past-vocab",
            "predict-nan-parameters", "train-gluon-num_hiddens-mismatch", "rnnmodel-dense-layer",
            "rnnmodel-ntc-layout", "rnnmodel-no-hidden-units"]


@pytest.mark.parametrize("case", BOOK_API)
def test_book_api_refuses_what_d2lzh_gets_silently_wrong(case):
    call, name = _book_api_cases()[case]
    with pytest.raises(ValueError) as err:
        call()
    assert name in str(err.value) and len(str(err.value).splitlines()) == 1, err.value


def test_clipping_no_parameters_does_nothing_as_in_the_book():
    import lyricnn as d2l
    assert d2l.grad_clipping([], 1.0, None) is None


def test_the_plateau_rule_has_a_floor():
    from lyricnn.training.loop import MAX_PLATEAUS, History, TrainingConverged, annealed_lr
    history = History()
    for epoch, valid in enumerate([10.0] + [11.0 + i for i in range(MAX_PLATEAUS + 1)], 1):
        history.append(epoch, 1.0, 1.0, valid, 1.0)
    last = MAX_PLATEAUS + 2                  # epochs 2..last did not improve on epoch 1
    assert annealed_lr(last, history, 20.0, 4.0) == 20.0 / 4.0 ** MAX_PLATEAUS
    with pytest.raises(TrainingConverged, match=f"did not improve in {MAX_PLATEAUS + 1}"):
        annealed_lr(last + 1, history, 20.0, 4.0)
    assert annealed_lr(last + 1, history, 20.0, 1.0) == 20.0     # no decay, no floor
    assert annealed_lr(last + 1, history, 20.0, 4.0, decay_from=3) == 20.0 / 4.0 ** (last - 2)


def test_a_word_run_that_stops_early_ends_cleanly(capsys, tmp_path, monkeypatch):
    from lyricnn.run import task as task_module
    from lyricnn.training.loop import TrainingConverged

    def schedule(epoch, history, lr, lr_decay=1.0, decay_from=0):
        if epoch == 3:
            raise TrainingConverged(2, 6)
        return lr
    monkeypatch.setattr(task_module, "annealed_lr", schedule)
    corpus = tmp_path / "words.txt"
    corpus.write_text("".join(f"the cat sat on mat {i % 7} .\n" for i in range(400)),
                      encoding="utf-8")
    code, _, err = run(capsys, "train", "--tokens", "word", "--corpus", corpus,
                       "--valid-fraction", "0.1", "--num-hiddens", "8", "--batch-size", "4",
                       "--num-steps", "5", "--epochs", "5", "--no-progress",
                       "--out", tmp_path / "run")
    assert code == 0, err
    assert "stopped after epoch 2" in err and ck.load_checkpoint(tmp_path / "run").epoch == 2


@pytest.mark.parametrize("field, value, message", [
    ("num_layers", 20000, "num_layers must be an integer between 1 and 64"),
    # 65,536 hidden units: a 17 GB W_hh if it were built; the weight count refuses it first.
    ("num_hiddens", 65536, "but the model of config.json")])
def test_a_hand_edited_giant_config_is_refused_before_the_model_is_built(capsys, prev, field,
                                                                         value, message):
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    config = json.loads((folder / store.CONFIG).read_text())
    config["config"][field] = value
    _resigned(store.CONFIG, json.dumps(config))(folder)
    start = time.monotonic()
    code, out, err = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    assert time.monotonic() - start < 30
    assert code == 1 and message in error_line(err) and out == ""


def test_deeper_stacks_than_the_limit_are_refused_up_front(capsys, tmp_path):
    code, _, err = run(capsys, "train", *TINY, "--num-layers", 100000, "--out", tmp_path / "r")
    assert code == 2 and "num_layers must be an integer between 1 and 64" in error_line(err)


def test_a_sparse_parameter_array_is_named(capsys, prev):
    import mxnet as mx
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    arrays = mx.nd.load(str(folder / store.PARAMS))
    arrays["W_hq"] = arrays["W_hq"].tostype("row_sparse")
    mx.nd.save(str(folder / "p.tmp"), arrays)
    _resigned_bytes = (folder / "p.tmp").read_bytes()
    (folder / "p.tmp").unlink()
    (folder / store.PARAMS).write_bytes(_resigned_bytes)
    manifest = json.loads((folder / store.MANIFEST).read_text())
    manifest["files"][store.PARAMS] = {"sha256": hashlib.sha256(_resigned_bytes).hexdigest(),
                                       "bytes": len(_resigned_bytes)}
    (folder / store.MANIFEST).write_text(json.dumps(manifest))
    code, out, err = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    assert code == 1 and "is sparse (storage type" in error_line(err)


def test_a_corpus_beyond_memory_is_refused_before_it_is_read(capsys, tmp_path, monkeypatch):
    import lyricnn.data.corpus as corpus_module
    corpus = tmp_path / "big.txt"
    corpus.write_text("分开" * 200_000, encoding="utf-8")           # 1.2 MB
    monkeypatch.setattr(corpus_module, "available_memory", lambda: 40 << 20)
    code, _, err = run(capsys, "train", "--corpus", corpus, "--num-chars", "all",
                       "--out", tmp_path / "run")
    assert code == 2 and "bytes per character" in error_line(err)
    monkeypatch.setattr(corpus_module, "available_memory", lambda: 400 << 20)   # enough
    assert corpus_module.read_text(corpus)[:2] == "分开"


def test_a_signal_during_a_long_sample_stops_it():
    import mxnet as mx

    import lyricnn as d2l
    from lyricnn.decoding.generate import generate
    V = 10
    lm = d2l.build_lm("rnn-scratch", V, 4)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 5          # asked to stop at the 6th step
    text = generate(lm, [chr(97)], 10**6, [chr(97 + i) for i in range(V)],
                    {chr(97 + i): i for i in range(V)}, should_stop=stop)
    assert len(text) == 6 and mx.cpu() == lm.ctx


def test_a_file_size_limit_during_a_save_is_one_line(prev, tmp_path):
    """``ulimit -f`` below a checkpoint's size: MXNet's writer fails its C++ check (Python
    ignores SIGXFSZ); lyricnn reports it as any write failure, one line, exit 1."""
    import resource
    run_dir, before = prev

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 10, 8 << 10))   # 8 KiB
    proc = subprocess.run([sys.executable, "-m", "lyricnn.cli", "train", "--resume",
                           str(run_dir), "--epochs", "2", "--no-progress"],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 1, proc.stderr
    line = error_line(proc.stderr)
    assert "Check failed" not in line and ("params.params" in line or "File too large" in line)
    assert_intact(run_dir, before)


@pytest.mark.parametrize("name", ["manifest.json", "config.json", "history.json"])
def test_json_nested_too_deeply_is_one_line(capsys, prev, name):
    """[[[[…]]]] 100,000 deep: Python's JSON parser recurses past its limit."""
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    deep = "[" * 100_000 + "]" * 100_000
    if name == store.MANIFEST:
        (folder / name).write_text(deep)
    else:
        _resigned(name, deep)(folder)
    for argv in (["generate", "--checkpoint", run_dir, "--prefix", "分开"],
                 ["train", "--resume", run_dir, "--epochs", 2]):
        code, out, err = run(capsys, *argv)
        assert code in (1, 2) and name in error_line(err) and out == "", err


@pytest.mark.parametrize("ndim", [-1, 0, 1000, 2**31 - 1])
def test_a_parameter_header_that_would_crash_mxnet_is_refused(capsys, prev, ndim):
    """MXNet's own reader segfaults on a negative dimension count: the header is walked in
    Python first (run.parse.parameter_header)."""
    import struct
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    data = bytearray((folder / store.PARAMS).read_bytes())
    struct.pack_into("<i", data, 32, ndim)        # the first array's ndim (after 2 headers)
    (folder / store.PARAMS).write_bytes(bytes(data))
    manifest = json.loads((folder / store.MANIFEST).read_text())
    manifest["files"][store.PARAMS]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (folder / store.MANIFEST).write_text(json.dumps(manifest))
    code, out, err = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    assert code == 1 and "not an MXNet parameter file" in error_line(err) and out == ""


def test_a_resume_into_another_folder_leaves_its_plot(capsys, prev, tmp_path):
    run_dir, _ = prev
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "perplexity.png").write_bytes(b"the user's own picture")
    assert run(capsys, "train", "--resume", run_dir, "--out", out, "--epochs", 2,
               "--no-progress")[0] == 0
    assert (out / "perplexity.png").read_bytes() == b"the user's own picture"


def test_without_a_manifest_a_format2_folder_is_refused_unread(capsys, prev):
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    (folder / store.MANIFEST).unlink()
    (folder / store.PARAMS).unlink()
    with open(folder / store.PARAMS, "wb") as f:
        f.truncate(8 << 30)                         # 8 GiB, sparse: never read
    start = time.monotonic()
    code, out, err = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    assert time.monotonic() - start < 20
    assert code == 1 and "manifest.json" in error_line(err)


@pytest.mark.parametrize("role", ["server", "scheduler"])
def test_a_stray_dmlc_role_is_refused_before_mxnet_makes_a_server(role, tmp_path):
    """With DMLC_ROLE=server in the environment, ``import mxnet`` would block for ever as a
    parameter server (deaf to Ctrl-C): the CLI refuses before importing it."""
    env = {**os.environ, "DMLC_ROLE": role, "DMLC_PS_ROOT_URI": "127.0.0.1",
           "DMLC_PS_ROOT_PORT": "9", "DMLC_NUM_WORKER": "1", "DMLC_NUM_SERVER": "1"}
    proc = subprocess.run([sys.executable, "-m", "lyricnn.cli", "generate", "--checkpoint",
                           str(tmp_path), "--prefix", "分开"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2 and f"DMLC_ROLE={role} is set" in error_line(proc.stderr)


def test_a_terminal_that_cannot_show_the_lyrics_gets_escapes_not_a_failed_run(tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-m", "lyricnn.cli", "train", *TINY, "--epochs", "2",
                           "--period", "1", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\\u5206\\u5f00" in proc.stdout                       # 分开, escaped
    assert "PYTHONIOENCODING=utf-8" in proc.stderr.splitlines()[0]
    assert ck.load_checkpoint(tmp_path / "run").epoch == 2


def test_the_last_line_gives_the_wall_time_and_what_the_log_time_measures(capsys, tmp_path):
    code, _, err = run(capsys, "train", *TINY, "--epochs", 2, "--out", tmp_path / "run")
    last = err.strip().splitlines()[-1]
    assert code == 0 and re.search(r"; 2 epoch\(s\) in [\d.]+ s on the wall, [\d.]+ s each with "
                                   r"held-out evaluation, samples and saves \(the log's 'time' "
                                   r"is the training pass alone\)$", last), last


# -- found by the independent hostile run (second round) ---------------------------------

@pytest.mark.parametrize("size", [2**50, 2**63 - 1])
def test_a_manifest_stating_a_giant_size_is_one_line(capsys, prev, size):
    run_dir, _ = prev
    path = run_dir / "checkpoint" / store.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"][store.PARAMS]["bytes"] = size
    path.write_text(json.dumps(manifest))
    for argv in (["generate", "--checkpoint", run_dir, "--prefix", "分开"],
                 ["train", "--resume", run_dir, "--epochs", 2]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and store.PARAMS in error_line(err), err


def test_a_giant_manifest_in_a_leftover_does_not_block_the_resume(capsys, prev):
    run_dir, _ = prev
    old = run_dir / ".checkpoint.old"
    shutil.copytree(run_dir / "checkpoint", old)
    manifest = json.loads((old / store.MANIFEST).read_text())
    manifest["files"][store.PARAMS]["bytes"] = 2**50
    (old / store.MANIFEST).write_text(json.dumps(manifest))
    code, _, err = run(capsys, "train", "--resume", run_dir, "--epochs", 2)
    assert code == 0 and ck.load_checkpoint(run_dir).epoch == 2, err


def test_a_checkpoint_file_that_is_a_folder_is_named(capsys, prev):
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    (folder / store.PARAMS).unlink()
    (folder / store.PARAMS).mkdir()
    code, _, err = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    assert code == 1 and store.PARAMS in error_line(err), err


def test_user_things_under_leftover_names_are_never_removed(capsys, tmp_path):
    out = tmp_path / "run"
    (out / ".checkpoint.old").mkdir(parents=True)
    (out / ".checkpoint.old" / "thesis.tex").write_text("precious")
    (out / ".checkpoint.tmp-notes.txt").write_text("precious too")
    code, _, err = run(capsys, "train", *TINY, "--epochs", 2, "--out", out)
    assert code == 2 and ".checkpoint.old" in error_line(err)       # in the way of a save
    assert (out / ".checkpoint.old" / "thesis.tex").read_text() == "precious"
    (out / ".checkpoint.old" / "thesis.tex").rename(tmp_path / "thesis.tex")
    (out / ".checkpoint.old").rmdir()
    assert run(capsys, "train", *TINY, "--epochs", 2, "--out", out)[0] == 0
    assert (out / ".checkpoint.tmp-notes.txt").read_text() == "precious too"


def test_an_interrupt_between_moves_of_the_users_files_loses_none(capsys, prev, monkeypatch):
    """A save moves a user's files from checkpoint/ into the new folder one rename each; a
    crash after the first leaves the rest behind, and recovery carries them over."""
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    for name in ("a-notes.txt", "z-notes.txt"):
        (folder / name).write_text(name)
    real_rename, calls = os.rename, []

    def crash_after_first_user_file(src, dst):
        real_rename(src, dst)
        if str(src).endswith("-notes.txt") and not calls:
            calls.append(src)
            raise KeyboardInterrupt("interrupted")   # the save's clean-up runs (see below
    monkeypatch.setattr(store.os, "rename", crash_after_first_user_file)   # for SIGKILL)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(folder, *_loaded_parts(run_dir))
    monkeypatch.setattr(store.os, "rename", real_rename)
    assert len(calls) == 1
    assert run(capsys, "train", "--resume", run_dir, "--epochs", 3)[0] == 0
    for name in ("a-notes.txt", "z-notes.txt"):
        assert (folder / name).read_text() == name


def _loaded_parts(run_dir):
    from lyricnn.training.loop import mxnet_seed
    from lyricnn.run.checkpoint import capture_rng_state
    c = ck.load_checkpoint(run_dir)
    following = c.epoch + 1
    c.history.append(following, 1.0, 1.0, None, None)    # the next epoch's save
    return (c.config, c.vocab, c.lm, c.history, c.corpus_text,
            capture_rng_state(mxnet_seed(c.config.seed, following)))


@pytest.mark.parametrize("kind", ["symlink", "fifo", "dangling"])
def test_a_lock_file_that_is_not_a_regular_file_is_left_alone(capsys, tmp_path, kind):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "important.txt"
    victim.write_text("IMPORTANT DATA")
    lock = out / ".checkpoint.lock"
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.symlink_to(tmp_path / "nowhere")
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", out)
    assert code in (1, 2) and ".checkpoint.lock" in error_line(err), err
    assert victim.read_text() == "IMPORTANT DATA" and not (tmp_path / "nowhere").exists()


def test_a_forced_resume_into_another_runs_folder_drops_its_best(capsys, prev, tmp_path):
    run_dir, _ = prev
    other = tmp_path / "other"
    assert run(capsys, "train", *TINY, "--epochs", 1, "--seed", 3, "--valid-fraction", 0.2,
               "--out", other)[0] == 0
    assert (other / "best").is_dir()
    code, _, err = run(capsys, "train", "--resume", run_dir, "--epochs", 2, "--out", other,
                       "--force")
    assert code == 0, err
    assert not (other / "best").exists()           # the seed-3 run's best/ is not ours
    assert ck.load_checkpoint(other).config.seed == ck.load_checkpoint(run_dir).config.seed


def test_a_sigkill_between_moves_of_the_users_files_loses_none(prev):
    """As above with a real SIGKILL (no clean-up runs): recovery carries the files left in
    the old folder into the complete new one."""
    run_dir, _ = prev
    folder = run_dir / "checkpoint"
    for name in ("a-notes.txt", "z-notes.txt"):
        (folder / name).write_text(name)
    script = ("import os, signal, sys\n"
              "from lyricnn.run import store\n"
              "from lyricnn.cli import main\n"
              "real = os.rename\n"
              "def rename(src, dst):\n"
              "    real(src, dst)\n"
              "    if str(src).endswith('-notes.txt'):\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "store.os.rename = rename\n"
              f"main.main(['train', '--resume', {str(run_dir)!r}, '--epochs', '2',"
              " '--no-progress'])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (folder / "a-notes.txt").exists()          # it went into the temp folder
    code = cli.main(["train", "--resume", str(run_dir), "--epochs", "3", "--no-progress"])
    assert code == 0
    for name in ("a-notes.txt", "z-notes.txt"):
        assert (folder / name).read_text() == name
    assert ck.load_checkpoint(run_dir).epoch == 3


# -- found by the third independent hostile run -----------------------------------------

@pytest.mark.parametrize("name", [".checkpoint.old", ".checkpoint.tmp-mybackup"])
def test_a_users_folder_with_checkpoint_file_names_under_a_leftover_name_is_kept(capsys, prev,
                                                                                name):
    run_dir, _ = prev
    mine = run_dir / name
    mine.mkdir()
    (mine / store.CONFIG).write_text('{"mine": 1}')
    (mine / store.PARAMS).write_bytes((run_dir / "checkpoint" / store.PARAMS).read_bytes())
    code, _, err = run(capsys, "train", "--resume", run_dir, "--epochs", 2)
    if name == ".checkpoint.old":        # in the way of the save: refused before training
        assert code == 2 and name in error_line(err)
    else:
        assert code == 0, err
    assert (mine / store.CONFIG).read_text() == '{"mine": 1}' and (mine / store.PARAMS).exists()


def test_force_keeps_a_users_file_inside_the_earlier_best(capsys, prev, tmp_path):
    out = tmp_path / "B"
    assert run(capsys, "train", *TINY, "--epochs", 1, "--valid-fraction", 0.2, "--out",
               out)[0] == 0
    (out / "best" / "bnote").write_text("mine")
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--force", "--out", out)
    assert code == 0 and (out / "best" / "bnote").read_text() == "mine", err
    assert not store.is_checkpoint(out / "best")       # the earlier run's checkpoint went


def test_an_interrupted_resume_into_another_folder_advises_the_same_command(tmp_path):
    """Before its first save, a resume into --out B has nothing of its own in B: the advice
    is to run the command again (B may hold another run, --resume B would continue that)."""
    source = tmp_path / "A"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(source)]) == 0
    out = tmp_path / "B"
    proc = spawn("train", "--resume", source, "--out", out, "--epochs", 10**6,
                 "--save-every", 10**6, "--no-progress")
    try:
        wait_for(lambda: (out / ".checkpoint.lock").exists(), proc)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    line = error_line(err)
    assert "run the same command again" in line and "--resume" not in line.split(";")[-1]


def test_an_omp_thread_count_mxnet_would_abort_on_is_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "banana"}
    proc = subprocess.run([sys.executable, "-m", "lyricnn.cli", "generate", "--checkpoint",
                           str(tmp_path), "--prefix", "分开"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2 and "OMP_NUM_THREADS='banana'" in error_line(proc.stderr)
    library = subprocess.run([sys.executable, "-c", "import lyricnn, mxnet; print('ok')"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert library.returncode == 0 and library.stdout.strip() == "ok", library.stderr


def test_a_strange_matplotlib_folder_does_not_break_commands_that_do_not_plot(tmp_path):
    env = {**os.environ, "MPLCONFIGDIR": "/proc"}
    proc = subprocess.run([sys.executable, "-m", "lyricnn.cli", "--version"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("lyricnn "), proc.stderr


def test_the_root_folder_as_a_checkpoint_is_one_clear_line(capsys):
    code, _, err = run(capsys, "generate", "--checkpoint", "/", "--prefix", "分开")
    assert code == 2 and "PosixPath" not in error_line(err) and "/" in error_line(err)


# -- found by the fourth independent hostile run ----------------------------------------

@pytest.mark.parametrize("when", [1, 3, 5])
def test_a_sigkill_while_removing_the_set_aside_checkpoint_is_finished_next_time(prev, when):
    """A save removes the folder it set aside (.checkpoint.old) file by file, its marker
    last: killed in the middle, the folder is still lyricnn's and the next run removes it."""
    run_dir, _ = prev
    script = ("import os, signal, pathlib\n"
              "from lyricnn.cli import main\n"
              "real, count = pathlib.Path.unlink, [0]\n"
              "def unlink(self, *a, **k):\n"
              "    if self.parent.name == '.checkpoint.old':\n"
              "        count[0] += 1\n"
              f"        if count[0] == {when}:\n"
              "            os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return real(self, *a, **k)\n"
              "pathlib.Path.unlink = unlink\n"
              f"main.main(['train', '--resume', {str(run_dir)!r}, '--epochs', '2',"
              " '--no-progress'])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (run_dir / ".checkpoint.old").is_dir()                 # half removed
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "3", "--no-progress"]) == 0
    assert not (run_dir / ".checkpoint.old").exists()
    assert ck.load_checkpoint(run_dir).epoch == 3


def test_a_user_file_named_like_a_temp_file_is_kept(capsys, prev):
    run_dir, _ = prev
    mine = run_dir / "checkpoint" / ".config.json.mine.tmp"
    mine.write_text("USER")
    assert run(capsys, "train", "--resume", run_dir, "--epochs", 3)[0] == 0
    assert mine.read_text() == "USER"


def test_an_unreadable_checkpoint_file_is_named(capsys, prev):
    run_dir, _ = prev
    vocab = run_dir / "checkpoint" / store.VOCAB
    vocab.unlink()
    vocab.symlink_to("/proc/self/mem")                           # every read fails (EIO)
    code, _, err = run(capsys, "generate", "--checkpoint", run_dir, "--prefix", "分开")
    assert code == 1 and store.VOCAB in error_line(err), err
