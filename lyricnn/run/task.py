"""TODO docstring (run.task, from checkpoint.py)."""
import logging


from lyricnn.data.corpus import Vocab
from lyricnn.models.build import build_lm

try:  # advisory locks: POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)



# -- models -------------------------------------------------------------------------

def build_model(config, ctx=None):
    """A freshly initialised language model for ``config`` (``models.build_lm``, or
    ``wordlm.build_word_lm`` for a word-level config)."""
    config.validate()
    if config.is_word:
        from lyricnn.models.word import build_word_lm
        return build_word_lm(config.model, config.vocab_size, config.embedding_size,
                             config.num_hiddens, config.num_layers, config.dropout,
                             config.tied, ctx)
    return build_lm(config.model, config.vocab_size, config.num_hiddens, config.num_layers,
                    ctx=ctx)


def vocab_of(config, corpus_text):
    """The vocabulary a run of ``config`` builds from ``corpus_text``: its characters in
    first-appearance order, or (word level) the words of its training part."""
    if config.is_word:
        from lyricnn.data.words import word_corpus_of
        return word_corpus_of(config, corpus_text, held_out=False).vocab
    return Vocab.from_tokens(corpus_text)
