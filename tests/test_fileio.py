"""lyricnn.fileio: temp file, fsync, umask-respecting mode, rename; nothing half-written."""
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from lyricnn import fileio
from lyricnn.fileio import (
    atomic_path, atomic_write_bytes, atomic_write_text, current_umask, fsync_path)


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def leftovers(folder, name):
    return [p.name for p in folder.iterdir() if p.name.startswith(f".{name}.")]


def test_write_text_and_bytes_round_trip(tmp_path):
    target = tmp_path / "vocab.json"
    assert atomic_write_text(target, "分开\r\nx") == target
    assert target.read_bytes() == "分开\r\nx".encode("utf-8")  # no newline translation
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path, "vocab.json") == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_respects_umask(tmp_path, umask, mask, mode):
    umask(mask)
    target = tmp_path / "f.txt"
    target.write_text("old")
    os.chmod(target, 0o600)  # the old file's mode does not survive: like open(..., "w") on a new file
    atomic_write_text(target, "new")
    assert stat.S_IMODE(os.stat(target).st_mode) == mode
    with atomic_path(tmp_path / "g.png") as tmp:
        tmp.write_bytes(b"png")
    assert stat.S_IMODE(os.stat(tmp_path / "g.png").st_mode) == mode


def test_current_umask_reads_without_changing(umask):
    umask(0o027)
    assert current_umask() == 0o027
    assert current_umask() == 0o027


def test_current_umask_fallback_without_proc(umask, monkeypatch):
    umask(0o077)

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(fileio, "open", no_proc, raising=False)
    assert current_umask() == 0o077
    monkeypatch.undo()
    assert current_umask() == 0o077  # restored


def test_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        st = os.fstat(fd)
        synced.append((st.st_ino, stat.S_ISDIR(st.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", spy)
    target = tmp_path / "history.json"
    atomic_write_text(target, "{}")
    # rename keeps the inode: the file fsynced is the file now at target
    assert synced == [(os.stat(target).st_ino, False), (os.stat(tmp_path).st_ino, True)]


def test_fsync_path_on_file_and_folder(tmp_path):
    (tmp_path / "a").write_text("x")
    fsync_path(tmp_path / "a")
    fsync_path(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing")


def test_error_mid_write_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "params"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, "params") == []


@pytest.mark.parametrize("step", ["write", "fsync", "chmod", "replace"])
def test_failure_at_each_step_keeps_old_file(tmp_path, monkeypatch, step):
    target = tmp_path / "vocab.json"
    target.write_text("old")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if step == "write":
        real_open = open

        class FullDisk:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[:1])
                boom()

        monkeypatch.setattr(fileio, "open", lambda *a, **k: FullDisk(real_open(*a, **k)),
                            raising=False)
    else:
        monkeypatch.setattr(fileio.os, step, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "new content")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert leftovers(tmp_path, "vocab.json") == []


def test_killed_mid_write_leaves_old_file(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    code = textwrap.dedent(f"""
        import os, signal
        from lyricnn.fileio import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == "old"
    left = leftovers(tmp_path, "config.json")  # only a kill can leave one, and it is named so
    assert len(left) == 1 and left[0].endswith(fileio.TEMP_SUFFIX)


def test_temp_file_removed_by_caller_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="was removed or replaced"):
        with atomic_path(tmp_path / "x") as tmp:
            tmp.unlink()
    assert not (tmp_path / "x").exists()


def test_target_folder_problems_are_named(tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        atomic_write_text(tmp_path, "x")
    with pytest.raises(FileNotFoundError, match=r"folder .*missing.* does not exist; create it"):
        atomic_write_text(tmp_path / "missing" / "f", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        atomic_write_text(tmp_path / "file" / "f", "x")


def test_type_errors(tmp_path):
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        atomic_write_text(tmp_path / "f", b"x")
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        atomic_write_bytes(tmp_path / "f", "x")
    assert list(tmp_path.iterdir()) == []
