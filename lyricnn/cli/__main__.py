"""``python -m lyricnn.cli ARGS``: the ``lyricnn`` command (how ``lyricnn launch`` starts workers)."""
import sys

from lyricnn.cli.main import main

sys.exit(main())
