import os
import stat
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from lyricnn.data import hub


@pytest.fixture
def http_root(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1 on a free port; yield (root, base_url)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(hub.ENV_VAR, str(folder))
    return folder


def test_download_good_file_verifies_and_lands(http_root, cache, lyrics_zip):
    root, base = http_root
    shutil.copy(lyrics_zip, root / "jaychou_lyrics.txt.zip")
    url = f"{base}/jaychou_lyrics.txt.zip"
    path = hub.download("jaychou_lyrics.txt.zip", url=url)
    assert path == cache / "jaychou_lyrics.txt.zip"
    assert hub.sha1sum(path) == hub.DATA_HUB["jaychou_lyrics.txt.zip"][1]
    assert sorted(p.name for p in cache.iterdir()) == ["jaychou_lyrics.txt.zip"]


def test_locate_downloads_from_registry_when_missing(http_root, cache, lyrics_zip, monkeypatch):
    root, base = http_root
    shutil.copy(lyrics_zip, root / "jaychou_lyrics.txt.zip")
    sha1 = hub.DATA_HUB["jaychou_lyrics.txt.zip"][1]
    monkeypatch.setitem(hub.DATA_HUB, "jaychou_lyrics.txt.zip",
                        (f"{base}/jaychou_lyrics.txt.zip", sha1))
    # Hide every other copy so that locate() must download.
    monkeypatch.setattr(hub, "PROJECT_DATA_DIR", cache / "nowhere")
    monkeypatch.chdir(cache.parent)
    assert hub.locate("jaychou_lyrics.txt.zip") == cache / "jaychou_lyrics.txt.zip"


def test_corrupted_download_raises_and_leaves_nothing(http_root, cache, lyrics_zip):
    root, base = http_root
    data = bytearray(Path(lyrics_zip).read_bytes())
    data[100] ^= 0xFF
    (root / "jaychou_lyrics.txt.zip").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha1 mismatch"):
        hub.download("jaychou_lyrics.txt.zip", url=f"{base}/jaychou_lyrics.txt.zip")
    assert list(cache.iterdir()) == []


def test_unreachable_url_says_where_to_put_the_file(cache):
    with pytest.raises(FileNotFoundError) as err:
        # Port 9 on loopback: nothing listens there.
        hub.download("ptb.zip", url="http://127.0.0.1:9/ptb.zip", timeout=5)
    msg = str(err.value)
    assert "ptb.zip" in msg and str(cache) in msg and hub.DATA_HUB["ptb.zip"][1] in msg
    assert list(cache.iterdir()) == []


def test_missing_404_is_an_error(http_root, cache):
    _, base = http_root
    with pytest.raises(FileNotFoundError, match="could not download"):
        hub.download("ptb.zip", url=f"{base}/ptb.zip")
    assert list(cache.iterdir()) == []


def test_env_dir_is_searched_first(tmp_path, monkeypatch, lyrics_zip):
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(lyrics_zip, folder / "jaychou_lyrics.txt.zip")
    monkeypatch.setenv(hub.ENV_VAR, str(folder))
    assert hub.search_dirs()[0] == folder
    assert hub.locate("jaychou_lyrics.txt.zip") == folder / "jaychou_lyrics.txt.zip"


def test_file_with_wrong_hash_is_skipped(tmp_path, monkeypatch, lyrics_zip):
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir()
    good.mkdir()
    (bad / "jaychou_lyrics.txt.zip").write_bytes(b"not the lyrics")
    shutil.copy(lyrics_zip, good / "jaychou_lyrics.txt.zip")
    monkeypatch.setenv(hub.ENV_VAR, str(bad))
    monkeypatch.setattr(hub, "PROJECT_DATA_DIR", good)
    assert hub.locate("jaychou_lyrics.txt.zip") == good / "jaychou_lyrics.txt.zip"
    monkeypatch.setattr(hub, "PROJECT_DATA_DIR", tmp_path / "none")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        hub.locate("jaychou_lyrics.txt.zip", download_missing=False)


def test_book_relative_data_dir_is_searched(tmp_path, monkeypatch, lyrics_zip):
    (tmp_path / "data").mkdir()
    (tmp_path / "notebooks").mkdir()
    shutil.copy(lyrics_zip, tmp_path / "data" / "jaychou_lyrics.txt.zip")
    monkeypatch.setenv(hub.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setattr(hub, "PROJECT_DATA_DIR", tmp_path / "none")
    monkeypatch.chdir(tmp_path / "notebooks")
    assert hub.locate("jaychou_lyrics.txt.zip", download_missing=False).resolve() == \
        (tmp_path / "data" / "jaychou_lyrics.txt.zip").resolve()


def test_explicit_path_and_unknown_name(tmp_path, lyrics_zip):
    assert hub.locate("jaychou_lyrics.txt.zip", path=lyrics_zip) == Path(lyrics_zip)
    with pytest.raises(FileNotFoundError, match="path="):
        hub.locate("jaychou_lyrics.txt.zip", path=tmp_path / "nope.zip")
    with pytest.raises(ValueError, match="unknown data file"):
        hub.locate("imagenet.zip")


def test_registry_hashes():
    assert hub.DATA_HUB["jaychou_lyrics.txt.zip"][1] == "9529987e701a4f37048ab778270a5dde9a762a0b"
    assert hub.DATA_HUB["ptb.zip"][1] == "319d85e578af0cdc590547f26231e4e31cdf1e42"


# -- the download's rename goes through fileio; misuse is named ------------------------


def test_download_mode_follows_the_umask_and_is_fsynced(http_root, cache, lyrics_zip,
                                                        monkeypatch):
    root, base = http_root
    shutil.copy(lyrics_zip, root / "jaychou_lyrics.txt.zip")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino),
                                                  real_fsync(fd))[1])
    old = os.umask(0o022)
    try:
        path = hub.download("jaychou_lyrics.txt.zip", url=f"{base}/jaychou_lyrics.txt.zip")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # mkstemp's 0600 before
    assert os.stat(path).st_ino in synced and os.stat(cache).st_ino in synced


@pytest.mark.parametrize("timeout, shown", [(0, "0"), (-1, "-1"), (float("nan"), "nan"),
                                            ("60", "'60' (str)")])
def test_bad_timeout_is_named_before_any_network(cache, timeout, shown):
    with pytest.raises(ValueError) as err:
        hub.download("ptb.zip", url="http://127.0.0.1:9/ptb.zip", timeout=timeout)
    assert str(err.value) == (f"timeout must be a finite number > 0, got {shown}; "
                              "seconds to wait for the server")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unhashable_name_is_an_unknown_file():
    with pytest.raises(ValueError, match=r"unknown data file \['ptb.zip'\]; registered: "):
        hub.locate(["ptb.zip"])
