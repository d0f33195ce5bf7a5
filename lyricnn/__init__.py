"""lyricnn: chapter 6 of 《动手学深度学习》 (MXNet edition) as a library.

``import lyricnn as d2l`` runs the book's chapter code unchanged: the names
below match the book's helper package ``d2lzh``.
"""
from .context import resolve_ctx, set_seed, try_all_gpus, try_gpu
from .data import Vocab, load_corpus_chars, load_data_jay_lyrics, read_text
from .hub import DATA_HUB, download, locate
from .onehot import to_onehot
from .sampling import data_iter_consecutive, data_iter_random

__version__ = "0.1.0"
