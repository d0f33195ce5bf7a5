"""The ``lyricnn`` command: ``main.py`` (standard library only at import) and one module
per subcommand."""
