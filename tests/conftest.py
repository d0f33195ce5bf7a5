import lyricnn  # noqa: F401  (first: it sets MXNet threads before MXNet loads)
import os
from pathlib import Path

import pytest

from lyricnn import hub

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config):
    # Tests never download: if neither the cache nor data/ has the corpus, read
    # the shared copy in place (CI and developers have ../shared/data).
    try:
        hub.locate("jaychou_lyrics.txt.zip", download_missing=False)
    except FileNotFoundError:
        if SHARED_DATA.is_dir():
            os.environ[hub.ENV_VAR] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def lyrics_zip():
    return hub.locate("jaychou_lyrics.txt.zip", download_missing=False)


# Tests import the book's notebook code from benchmarks/book_notebook.py.
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
