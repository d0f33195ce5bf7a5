import lyricnn  # noqa: F401  (first: it sets MXNet threads before MXNet loads)
import os
from pathlib import Path

import pytest

from lyricnn.data import hub

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


# Benchmarks import the oracles as tests.oracle: the repository root on sys.path.
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pytest_terminal_summary(terminalreporter):
    """Show the size of issue 12's misuse and fault catalogue after the run."""
    def cases(outcome):
        return [r for r in terminalreporter.stats.get(outcome, [])
                if getattr(r, "nodeid", "").startswith("tests/test_catalogue.py")]
    passed, failed, skipped = cases("passed"), cases("failed"), cases("skipped")
    total = len([r for r in passed + failed if r.when == "call"]) + len(skipped)
    if total:
        terminalreporter.write_line(
            f"misuse and fault catalogue (tests/test_catalogue.py): {total} cases, "
            f"{len([r for r in passed if r.when == 'call'])} passed, {len(failed)} failed, "
            f"{len(skipped)} skipped")
