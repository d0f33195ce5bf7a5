"""lyricnn.data.words: word corpus, embedding RNN model, whole-split evaluation (issue 13)."""
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from lyricnn.data import hub
from lyricnn.data.sampling import data_iter_consecutive
from lyricnn.data.tokenize import EOS, PTB, UNK, read_ptb_text
from lyricnn.training.loop import train_epochs
from lyricnn.data.words import WordCorpus, load_ptb_corpus, word_corpus
from lyricnn.models.word import WordRNNModel, build_word_lm
from lyricnn.data.sampling import streams
from lyricnn.training.evaluate import evaluate_perplexity

from float_error import ROUTE64, assert_same_function

TEXT = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n"


def tiny_corpus(repeat=1):
    return word_corpus(TEXT * repeat, "the cat sat on a log\n", "the bird sat\n")


# ---------------------------------------------------------------------- corpus

def test_vocabulary_from_train_in_first_appearance_order_with_eos_and_unk():
    corpus = tiny_corpus()
    assert corpus.vocab.idx_to_token == ["the", "cat", "sat", "on", "mat", EOS, "dog", "log",
                                         "a", "and", UNK]
    assert corpus.tokenizer == "whitespace" and corpus.vocab_size == 11
    idx = corpus.vocab.token_to_idx
    assert corpus.train[:7] == [idx[w] for w in "the cat sat on the mat".split()] + [idx[EOS]]
    assert len(corpus.train) == 6 + 6 + 5 + 3  # words + one <eos> per line


def test_out_of_vocabulary_words_become_unk():
    corpus = tiny_corpus()
    assert corpus.vocab.to_tokens(corpus.test) == ["the", UNK, "sat", EOS]  # 'bird' unseen
    assert corpus.vocab.to_tokens(corpus.valid) == "the cat sat on a log".split() + [EOS]


def test_unknown_word_without_unk_names_it():
    with pytest.raises(ValueError, match=r"test_text has the word 'bird' \(token 1\).*no '<unk>'"):
        word_corpus(TEXT, test_text="the bird sat\n", unk=False)
    assert UNK not in word_corpus(TEXT, unk=False).vocab


def test_max_vocab_keeps_the_most_frequent_and_maps_the_rest_to_unk():
    corpus = word_corpus(TEXT, max_vocab=4)
    # counts: the 4, <eos> 3, sat/on/a 2 (cat, dog too): the, <eos>, then 'cat' (first of 2s).
    assert corpus.vocab.idx_to_token == ["the", "cat", EOS, UNK]
    assert corpus.vocab.to_tokens(corpus.train[:7]) == ["the", "cat", UNK, UNK, "the", UNK, EOS]


def test_eos_off():
    assert EOS not in word_corpus("a b\nc d\n", eos=False).vocab


@pytest.mark.parametrize("kwargs, message", [
    (dict(train_text=" \n\t\n"), r"train_text has no words"),
    (dict(train_text="a b\n", valid_text="\n"), r"valid_text has no words"),
    (dict(train_text="a a a", eos=False, unk=False), r"vocabulary has 1 type.*at least 2"),
    (dict(train_text="a b", max_vocab=1), r"max_vocab must be an integer >= 2, got 1"),
    (dict(train_text="a b", tokenizer="char"), r"tokenizer must be one of 'whitespace', 'jieba'"),
    (dict(train_text=b"a b"), r"train_text must be a str, got bytes"),
])
def test_bad_corpora_are_refused(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        word_corpus(**kwargs)


def test_missing_split_is_an_error_naming_it():
    corpus = word_corpus(TEXT, valid_text="the cat\n")
    assert corpus.split("valid") == corpus.valid
    with pytest.raises(ValueError, match=r"the corpus has no test split.*test_text="):
        corpus.split("test")
    with pytest.raises(ValueError, match=r"split must be one of"):
        corpus.split("dev")


def test_jieba_tokenizer_segments_lines():
    pytest.importorskip("jieba")
    corpus = word_corpus("我爱北京\n我爱你\n", tokenizer="jieba")
    tokens = corpus.vocab.to_tokens(corpus.train)
    assert tokens.count(EOS) == 2 and tokens[-1] == EOS and "".join(
        t for t in tokens if t != EOS) == "我爱北京我爱你"
    assert corpus.tokenizer == "jieba"


def test_ptb_corpus_facts_from_the_shared_zip():
    corpus = load_ptb_corpus(hub.locate(PTB, download_missing=False))
    assert isinstance(corpus, WordCorpus)
    assert corpus.vocab_size == 10_000 and UNK in corpus.vocab and EOS in corpus.vocab
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929_589, 73_760, 82_430)
    assert corpus.train.count(corpus.vocab.index(EOS)) == 42_068
    assert corpus.vocab.idx_to_token[:3] == ["aer", "banknote", "berlitz"]  # first line's words
    # Valid and test are closed over the training vocabulary: their <unk>s are PTB's own.
    unk = corpus.vocab.index(UNK)
    for split in ("valid", "test"):
        raw = read_ptb_text(split, hub.locate(PTB, download_missing=False)).split()
        assert corpus.split(split).count(unk) == raw.count(UNK) > 0
    assert repr(corpus) == ("Corpus(10,000 types, whitespace tokens: train 929,589, "
                            "valid 73,760, test 82,430)")


# -------------------------------------------------------------------- batching

def stream_batches(indices, batch_size, num_steps):
    """``streams`` as NumPy pairs (the held-out and word-level batches)."""
    return [(x.asnumpy(), y.asnumpy()) for x, y in streams(indices, batch_size, num_steps)]


def test_stream_batches_hand_worked_ten_tokens():
    got = [(x.tolist(), y.tolist()) for x, y in stream_batches(range(10), 2, 3)]
    # columns [0..4] and [5..9]; chunks of 3 steps, then the shorter last one.
    assert got == [([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]]),
                   ([[3], [8]], [[4], [9]])]
    got = [(x.tolist(), y.tolist()) for x, y in stream_batches(range(10), 3, 3)]
    # 10 // 3 = 3 tokens a column: token 9 trimmed, 2 targets a column.
    assert got == [([[0, 1], [3, 4], [6, 7]], [[1, 2], [4, 5], [7, 8]])]


def test_stream_batches_score_every_token_once_and_start_as_training_batches():
    batches = list(stream_batches(range(23), 4, 2))
    targets = sorted(v for _, y in batches for v in y.ravel().tolist())
    assert targets == sorted(set(range(20)) - {0, 5, 10, 15})  # 20 kept, column starts not scored
    first = next(iter(data_iter_consecutive(list(range(23)), 4, 2)))
    assert first[0].asnumpy().tolist() == batches[0][0].tolist()


def test_stream_batches_refuse_too_few_tokens():
    with pytest.raises(ValueError, match=r"5 tokens cut into batch_size=3.*1 token per stream"):
        stream_batches(range(5), 3, 2)
    with pytest.raises(ValueError, match=r"num_steps must be an integer >= 1, got 0"):
        stream_batches(range(5), 1, 0)


# ----------------------------------------------------------------------- model

def test_forward_contract_is_rnnmodels():
    mx.random.seed(0)
    lm = build_word_lm("gru", 7, 4, 5, num_layers=2)
    lm.model.cast("float64")   # batches of 2 and 1 round differently: ROUTE64 in float64
    X = nd.array([[0, 1, 2], [3, 4, 5]])  # (batch 2, num_steps 3)
    logits, state = lm(X, lm.begin_state(2))
    assert logits.shape == (6, 7) and state[0].shape == (2, 2, 5)
    # Row t * batch + b is step t of sequence b: sequence 1 run alone gives rows 1, 3, 5.
    alone, _ = lm(X[1:2], lm.begin_state(1))
    assert_same_function([alone], [logits.asnumpy()[1::2]])


@pytest.mark.parametrize("cell", ["rnn", "rnn_tanh", "gru", "lstm"])
def test_every_cell_builds_and_initialises_uniformly(cell):
    lm = build_word_lm(cell, 20, 6, 6, num_layers=2, dropout=0.2, tied=True)
    values = np.concatenate([w.asnumpy().ravel() for w in lm.weights()])
    assert values.min() >= -0.1 and values.max() <= 0.1 and values.std() > 0.04
    assert lm.model.rnn.dropout == 0.2 and not lm.model.rnn.locked  # between the layers
    assert lm.model.rnn.mode == {"rnn": "rnn_relu"}.get(cell, cell)


def test_tied_requires_equal_sizes_and_names_both():
    with pytest.raises(ValueError, match=r"embed_size=8, num_hiddens=16"):
        WordRNNModel("lstm", 10, 8, 16, tied=True)
    with pytest.raises(ValueError, match=r"cell must be one of"):
        WordRNNModel("transformer", 10, 8, 8)
    with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 2, got 1"):
        build_word_lm("lstm", 1, 8, 8)
    with pytest.raises(ValueError, match=r"dropout must be < 1"):
        build_word_lm("lstm", 10, 8, 8, dropout=1)


def _copy(src, dst):
    for name, p in dst.model.named_parameters().items():
        p.set_data(src.get(name, src.get("embedding.weight")))


def test_tied_weights_are_one_parameter_and_receive_both_gradients():
    mx.random.seed(1)
    tied = build_word_lm("lstm", 12, 6, 6, tied=True)
    net = tied.model
    assert net.decoder.weight is net.embedding.weight
    names = list(tied.named_parameters())
    assert "embedding.weight" in names and "decoder.weight" not in names
    assert len(tied.weights()) == len(names) == 3  # embedding, the LSTM layer, decoder bias
    untied = build_word_lm("lstm", 12, 6, 6, tied=False)
    _copy(tied.named_parameters(), untied)  # decoder.weight := the shared matrix
    X, Y = nd.array([[0, 1, 2, 3]]), nd.array([[1, 2, 3, 11]])
    for lm in (tied, untied):
        with autograd.record():
            logits, _ = lm(X, lm.begin_state(1))
            l = gloss.SoftmaxCrossEntropyLoss()(logits, Y.T.reshape((-1,))).sum()
        l.backward()
        # the same operators on the same values: the same bits
        np.testing.assert_array_equal(logits.asnumpy(),
                                      tied(X, tied.begin_state(1))[0].asnumpy())
    # autograd adds the tied matrix's two gradients (one elementwise sum of two arrays,
    # exact in either order) that the untied model computes apart: the same bits
    shared = tied.model.embedding.weight.grad().asnumpy()
    untied_net = untied.model
    both = (untied_net.embedding.weight.grad() + untied_net.decoder.weight.grad()).asnumpy()
    np.testing.assert_array_equal(shared, both)
    # Rows never read as inputs (4..11) still learn, through the decoder.
    assert np.abs(shared[4:]).sum() > 0


def test_dropout_off_at_evaluation_and_on_in_training():
    mx.random.seed(2)
    corpus = tiny_corpus(3)
    lm = build_word_lm("lstm", corpus.vocab_size, 8, 8, num_layers=2, dropout=0.5)
    first = evaluate_perplexity(lm, corpus.train, 2, 4)
    assert evaluate_perplexity(lm, corpus.train, 2, 4) == first
    X = nd.array([corpus.train[:6]])
    with autograd.record():
        a, _ = lm(X, lm.begin_state(1))
        b, _ = lm(X, lm.begin_state(1))
    a, b = a.asnumpy(), b.asnumpy()  # logits are small at initialisation: compare relatively
    assert np.abs(a - b).max() > 0.1 * np.abs(a).max()
    # Under autograd.record (training mode) evaluation still turns dropout off.
    with autograd.record():
        assert evaluate_perplexity(lm, corpus.train, 2, 4) == first


# ------------------------------------------------------------------ evaluation

def test_evaluation_does_not_depend_on_the_chunk_length():
    mx.random.seed(3)
    corpus = tiny_corpus(4)
    lm = build_word_lm("lstm", corpus.vocab_size, 8, 8, num_layers=2, dropout=0.3)
    lm.model.cast("float64")   # chunks of 5 and 35 round differently: ROUTE64 in float64
    short, long_ = (evaluate_perplexity(lm, corpus.train, 3, n) for n in (5, 35))
    assert short == pytest.approx(long_, rel=ROUTE64)
    # A different column count changes what is scored, so the value may move: sanity only.
    assert 1 < short < 2 * corpus.vocab_size


def test_zero_logits_score_the_vocabulary_size():
    corpus = tiny_corpus(2)
    lm = build_word_lm("gru", corpus.vocab_size, 5, 7)
    lm.model.decoder.weight.set_data(nd.zeros((corpus.vocab_size, 7)))
    lm.model.decoder.bias.set_data(nd.zeros((corpus.vocab_size,)))
    # float64: MXNet's float32 log_softmax of zeros is 20 u off -log(11) (2.9e-6 nats);
    # in float64 every logit is exactly 0 and the loss log(V) to a few roundings.
    lm.model.cast("float64")
    assert evaluate_perplexity(lm, corpus.train, 2, 3) == pytest.approx(corpus.vocab_size,
                                                                        rel=ROUTE64)


def test_evaluation_matches_a_hand_sum_over_the_stream():
    mx.random.seed(4)
    corpus = tiny_corpus(2)
    lm = build_word_lm("rnn_tanh", corpus.vocab_size, 4, 4)
    lm.model.cast("float64")   # one step at a time rounds differently: ROUTE64 in float64
    rows = np.asarray(corpus.train[:2 * (len(corpus.train) // 2)]).reshape(2, -1)
    nll = 0.0
    for r in rows:  # each column alone, one step at a time, state carried
        state = lm.begin_state(1)
        for t in range(len(r) - 1):
            logits, state = lm(nd.array([[r[t]]]), state)
            p = logits.softmax().asnumpy()[0]
            nll -= math.log(p[r[t + 1]])
    expected = math.exp(nll / (rows.size - 2))
    assert evaluate_perplexity(lm, corpus.train, 2, 6) == pytest.approx(expected, rel=ROUTE64)


def test_evaluation_refuses_indices_outside_the_vocabulary():
    lm = build_word_lm("gru", 5, 3, 3)
    with pytest.raises(ValueError, match=r"integer indices in \[0, vocab_size=5\).*\[0, 7\]"):
        evaluate_perplexity(lm, [0, 1, 7, 2], 1, 2)


def test_trains_through_train_epochs_and_perplexity_falls():
    mx.random.seed(5)
    corpus = tiny_corpus(20)
    lm = build_word_lm("lstm", corpus.vocab_size, 16, 16, num_layers=1, dropout=0.1, tied=True)
    before = evaluate_perplexity(lm, corpus.valid + corpus.train, 2, 10)
    history = train_epochs(lm, corpus.train, False, 10, 4, 1.0, 5.0, range(1, 16))
    after = evaluate_perplexity(lm, corpus.valid + corpus.train, 2, 10)
    assert len(history.epoch) == 15 and history.perplexity[-1] < history.perplexity[0]
    assert before > 0.9 * corpus.vocab_size and after < 0.5 * before


@pytest.mark.parametrize("dropout, dropped", [(0.0, False), (0.5, True)])
def test_dropout_on_embeddings_and_before_the_decoder(dropout, dropped):
    # One token, one sequence: a unit dropped at the embedding zeroes its entry of
    # that row's gradient; one dropped before the decoder zeroes its decoder column.
    mx.random.seed(6)
    lm = build_word_lm("lstm", 9, 16, 16, dropout=dropout)
    with autograd.record():
        logits, _ = lm(nd.array([[3]]), lm.begin_state(1))
        (logits * nd.arange(9).reshape((1, 9))).sum().backward()
    emb_row = lm.model.embedding.weight.grad().asnumpy()[3]                 # (16,)
    dec_cols = np.abs(lm.model.decoder.weight.grad().asnumpy()).sum(axis=0)  # (16,)
    assert bool((emb_row == 0).sum() > 2) is dropped
    assert bool((dec_cols == 0).sum() > 2) is dropped
