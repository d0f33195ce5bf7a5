"""lyricnn.run.task: what depends on the token level, decided once per level."""
import numpy as np
import pytest

from lyricnn.data.tokenize import UNK
from lyricnn.run.config import RunConfig
from lyricnn.run.task import CHARS, WORDS, task_of

WORD = dict(tokens="word", sampler="consecutive")


@pytest.mark.parametrize("kw", [
    dict(model="rnn-scratch"), dict(model="gru-scratch", num_layers=2),
    dict(model="lstm-scratch", num_layers=3), dict(model="rnn"),
    dict(model="gru", num_layers=2), dict(model="lstm", num_layers=2),
    dict(model="lstm", num_layers=2, **WORD),
    dict(model="gru", num_layers=2, tied=True, embed_size=12, **WORD),
    dict(model="rnn", embed_size=8, **WORD)])
def test_num_parameters_is_the_built_models_count(kw):
    config = RunConfig(vocab_size=37, num_hiddens=12, corpus_sha1="0" * 40, **kw)
    task = task_of(config)
    built = task.build_model(config)
    assert task.num_parameters(config) == sum(int(np.prod(a.shape))
                                              for a in built.named_parameters().values())


def test_each_level_has_its_task():
    assert task_of(RunConfig()) is CHARS and task_of(RunConfig(model="lstm", **WORD)) is WORDS


def test_characters_out_of_the_vocabulary_are_refused_and_words_become_unk():
    from lyricnn.data.corpus import Vocab
    chars = CHARS.corpus(RunConfig(), "分开不分开").vocab
    assert CHARS.encode(RunConfig(), chars, "分开") == [0, 1]
    with pytest.raises(ValueError, match=r"--prefix: characters \['☃'\] are not in the corpus"):
        CHARS.encode(RunConfig(), chars, "分☃", "--prefix")
    words = Vocab(["the", "cat", UNK])
    config = RunConfig(model="lstm", **WORD)
    assert WORDS.encode(config, words, "the dog") == [0, 2]       # the stated policy
    with pytest.raises(ValueError, match="has no words"):
        WORDS.encode(config, words, "   ")


def test_a_corpus_too_short_for_one_minibatch_names_the_flags():
    config = RunConfig(batch_size=4, num_steps=5, sampler="consecutive")
    corpus = CHARS.corpus(config, "abcdefghij")
    with pytest.raises(ValueError, match=r"--batch-size 4 x --num-steps 5 needs at least 24"):
        CHARS.check_trainable(config, corpus)
    with pytest.raises(ValueError, match="1 distinct characters"):
        CHARS.check_trainable(config, CHARS.corpus(config, " " * 100))
