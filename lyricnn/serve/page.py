"""The studio page's files, served from the package (no CDN: users may be offline).

Only the names in ``ASSETS`` can be read: a request names an asset, never a path, so
nothing outside this folder is reachable (``tests/test_serve.py`` tries traversals).
"""
from importlib import resources

#: name -> media type: every file the page may load.
ASSETS = {"index.html": "text/html; charset=utf-8",
          "studio.js": "text/javascript; charset=utf-8",
          "studio.css": "text/css; charset=utf-8"}


def read(name):
    """The bytes of asset ``name`` (one of ``ASSETS``)."""
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files("lyricnn.serve").joinpath("static", name).read_bytes()
