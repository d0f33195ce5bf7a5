"""The reference oracles of the suite: the book's notebook code as the book writes it.

``book_notebook`` (6.4) and ``book_notebook_gated`` (6.7-6.8) are the cells a
reader types into the chapter's notebooks, run unchanged through lyricnn or
d2lzh. d2lzh itself (the ``test`` extra) is the other oracle; lyricnn's own
modules never import either.
"""
