"""The decoding engine (lyricnn.decoding.engine) and its processors: properties, not printouts.

The model is a small trained character RNN (a few epochs on the lyrics, so its
distributions are peaked and varied, not uniform); every property is checked on it.
"""

import numpy as np
import pytest
from float_error import as_float64

import lyricnn as d2l
from lyricnn.data.corpus import JAY_LYRICS, read_text
from lyricnn.data.hub import locate
from lyricnn.decoding import processors as P
from lyricnn.decoding.engine import Decoder, Options, Vocabulary
from lyricnn.decoding.score import token_log_probs


@pytest.fixture(scope="module")
def trained():
    """``(lm, idx_to_char, char_to_idx)``: a GRU of 32 units trained 40 epochs on 2,000
    characters that keep their newlines (the line separator is then the newline)."""
    from lyricnn.training.loop import train_epochs
    text = read_text(locate(JAY_LYRICS)).replace("\r", "")[:2000]
    idx_to_char = list(dict.fromkeys(text))
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    corpus = [char_to_idx[c] for c in text]
    d2l.set_seed(0)
    lm = d2l.build_lm("gru", len(idx_to_char), 32)
    train_epochs(lm, corpus, False, 20, 16, 100.0, 0.01, range(1, 41))   # the book's lr, clip
    # Decoded in float64: rows of a batch and a row alone then round alike to ~1e-16, so
    # the comparisons below (batched vs alone, beam vs greedy, engine vs scoring) are of
    # the same numbers and not of float32 rounding, which differs with the batch size.
    return as_float64(lm), idx_to_char, char_to_idx


@pytest.fixture(scope="module")
def decoder(trained):
    lm, idx_to_char, char_to_idx = trained
    return Decoder(lm, Vocabulary(idx_to_char, char_to_idx["\n"]))


def ids(trained, text):
    return [trained[2][c] for c in text]


# -- the processors ------------------------------------------------------------------

def test_truncation_limits_are_greedy_and_no_truncation_is_plain_sampling():
    rng = np.random.default_rng(0)
    for _ in range(200):
        z = rng.normal(size=12) * 3
        best = int(np.argmax(z))
        for u in rng.random(5):
            for kwargs in ({"top_k": 1}, {"top_p": 1e-9}, {"min_p": 1.0}):
                w = P.scale(z.copy(), 0.7)
                P.truncate(w, **kwargs)
                assert P.select(w, u) == best, kwargs
            plain, kept = P.scale(z.copy(), 0.7), P.scale(z.copy(), 0.7)
            P.truncate(kept, top_p=1.0, min_p=0.0)
            assert P.select(plain, u) == P.select(kept, u)


def test_top_p_keeps_the_smallest_set_holding_p():
    z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    for p, kept in [(0.5, 1), (0.51, 2), (0.8, 2), (0.81, 3), (0.96, 4)]:
        w = z.copy()
        P.truncate(w, top_p=p)
        assert np.isfinite(w).sum() == kept, p


def test_min_p_keeps_tokens_at_least_min_p_of_the_best():
    z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    w = z.copy()
    P.truncate(w, min_p=0.3)                  # 0.3 * 0.5 = 0.15: keeps 0.5, 0.3, 0.15
    assert np.isfinite(w).tolist() == [True, True, True, False]


def test_sampling_follows_the_distribution():
    z = np.log(np.array([0.6, 0.3, 0.1]))
    rng = np.random.default_rng(1)
    draws = np.bincount([P.select(z.copy(), u) for u in rng.random(20000)], minlength=3)
    # 20,000 draws: each frequency within 5 standard deviations of its probability.
    sd = np.sqrt(np.array([0.6, 0.3, 0.1]) * np.array([0.4, 0.7, 0.9]) / 20000)
    assert (np.abs(draws / 20000 - [0.6, 0.3, 0.1]) < 5 * sd).all()


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    z = np.array([2.0, -2.0, 1.0, 3.0])
    P.repetition_penalty(z, [0, 1, 1], 2.0, 0)
    assert z.tolist() == [1.0, -4.0, 1.0, 3.0]
    z = np.array([2.0, -2.0, 1.0, 3.0])
    P.repetition_penalty(z, [0, 1, 3], 2.0, 1)            # only the last token
    assert z.tolist() == [2.0, -2.0, 1.0, 1.5]


def test_presence_and_frequency_penalties_are_openais():
    z = np.zeros(4)
    P.presence_frequency_penalty(z, [1, 1, 1, 3], 0.5, 0.25)
    assert z.tolist() == [0.0, -(0.5 + 3 * 0.25), 0.0, -(0.5 + 0.25)]


def brute_no_repeat(context, n):
    grams = {tuple(context[i:i + n]) for i in range(len(context) - n + 1)}
    return sorted(t for t in set(range(6)) if tuple(context[len(context) - n + 1:] + [t])
                  in grams) if len(context) >= n - 1 else []


def test_no_repeat_ngram_bans_exactly_the_repeating_completions():
    rng = np.random.default_rng(2)
    for _ in range(300):
        context = rng.integers(0, 6, rng.integers(0, 25)).tolist()
        for n in (1, 2, 3, 4):
            assert P.no_repeat_ngram_bans(context, n) == brute_no_repeat(context, n)


def brute_dry(context, V, multiplier, base, allowed, breakers):
    """llama.cpp's DRY by its definition: for each token t, the longest L such that the
    last L tokens (none a breaker) occurred earlier, immediately followed by t."""
    z = np.zeros(V)
    n = len(context)
    for t in range(V):
        if t in breakers:
            continue
        best = 0
        for p in range(n - 1):                # an earlier occurrence ending at p, then t
            if context[p + 1] != t:
                continue
            length = 0
            while (length < p + 1 and context[p - length] == context[n - 1 - length]
                   and context[n - 1 - length] not in breakers
                   and context[p - length] not in breakers):
                length += 1
            best = max(best, length)
        if best >= allowed:
            z[t] -= multiplier * base ** (best - allowed)
    return z


def test_dry_equals_its_definition():
    rng = np.random.default_rng(3)
    for _ in range(300):
        context = rng.integers(0, 4, rng.integers(0, 30)).tolist()
        for breakers in ((), (0,)):
            z = np.zeros(4)
            P.dry_penalty(z, context, 0.8, 1.75, 2, breakers)
            np.testing.assert_allclose(z, brute_dry(context, 4, 0.8, 1.75, 2, breakers),
                                       rtol=1e-12, err_msg=str((context, breakers)))


def test_dry_stops_a_loop_inside_a_line_but_a_repeated_line_only_counts_itself():
    """A loop grows its match (and its penalty, exponentially) without bound; with the
    separator as a breaker, a chorus line that comes back matches at most its own line."""
    sep = 0
    chorus = [1, 2, 3, sep, 1, 2, 3, sep, 1, 2]
    with_breaker, without = np.zeros(5), np.zeros(5)
    P.dry_penalty(with_breaker, chorus, 1.0, 2.0, 2, (sep,))
    P.dry_penalty(without, chorus, 1.0, 2.0, 2, ())
    assert with_breaker[3] == -1.0 * 2.0 ** (2 - 2)      # "1 2" again: a match of 2
    assert without[3] == -1.0 * 2.0 ** (6 - 2)           # "1 2 3 sep 1 2": a match of 6


def test_a_tiny_temperature_is_greedy_not_nan():
    z = np.array([1.0, 3.0, 2.0])
    w = P.scale(z.copy(), 5e-324)
    assert not np.isnan(w).any() and P.select(w, 0.999) == 1


# -- the engine on a trained model ------------------------------------------------------

def test_greedy_equals_the_books_predict(trained, decoder):
    lm, idx_to_char, char_to_idx = trained
    c, = decoder.generate(ids(trained, "我的"), Options.greedy(max_tokens=30))
    book = d2l.predict_rnn_gluon("我的", 30, lm.model, len(idx_to_char), lm.ctx, idx_to_char,
                                 char_to_idx)
    assert "我的" + c.text == book and c.seed is None and c.finish_reason == "length"


@pytest.mark.parametrize("limit", [{"top_k": 1}, {"top_p": 1e-9}, {"min_p": 1.0}])
def test_truncation_limits_equal_greedy(trained, decoder, limit):
    greedy, = decoder.generate(ids(trained, "我的"), Options.greedy(max_tokens=30))
    c, = decoder.generate(ids(trained, "我的"), Options(max_tokens=30, **limit), seed=5)
    assert c.tokens == greedy.tokens


def test_no_truncation_equals_plain_sampling(trained, decoder):
    plain, = decoder.generate(ids(trained, "我的"), Options(max_tokens=40), seed=9)
    same, = decoder.generate(ids(trained, "我的"), Options(max_tokens=40, top_p=1.0, min_p=0.0),
                             seed=9)
    assert plain.tokens == same.tokens
    other, = decoder.generate(ids(trained, "我的"), Options(max_tokens=40), seed=10)
    assert other.tokens != plain.tokens      # the seed matters (not vacuous)


def test_batched_candidates_equal_the_same_candidates_alone(trained, decoder):
    options = Options(max_tokens=40, temperature=0.9, top_k=20, repetition_penalty=1.2,
                      dry_multiplier=0.8)
    batch = decoder.generate(ids(trained, "我的"), options, n=6, seed=100)
    assert [c.seed for c in batch] == list(range(100, 106))
    assert len({tuple(c.tokens) for c in batch}) > 1
    for c in batch:
        alone, = decoder.generate(ids(trained, "我的"), options, seed=c.seed)
        assert alone.tokens == c.tokens and alone.text == c.text
        assert alone.log_prob == pytest.approx(c.log_prob, rel=1e-6)


def test_log_prob_is_the_models_own_and_equals_scoring(trained, decoder):
    """Whatever the processors did, log_prob is the model's log P(tokens | prefix), as
    lyricnn.decoding.score computes it (one forward call per chunk instead of one per
    token: the same float64 products in another order, ~1e-15 apart; 1e-9 is generous)."""
    lm, idx_to_char, char_to_idx = trained
    for options in (Options(max_tokens=30, temperature=1.3, top_k=5, dry_multiplier=1.0),
                    Options.greedy(max_tokens=30, no_repeat_ngram=2),
                    Options(max_tokens=30, beam_width=3)):
        c = decoder.generate(ids(trained, "我的"), options, seed=1)[0]
        text = "我的" + c.text
        scored = token_log_probs(lm, text, char_to_idx)[1:]      # given the whole prefix
        np.testing.assert_allclose(c.token_log_probs, scored, rtol=1e-9, atol=1e-9)


def test_beam_search_is_at_least_as_likely_as_greedy(trained, decoder):
    for prefix in ("我的", "你", "爱情", "天"):
        p = [t for t in ids(trained, prefix)]
        greedy, = decoder.generate(p, Options.greedy(max_tokens=20))
        for width in (2, 3, 5):
            best = decoder.generate(p, Options(max_tokens=20, beam_width=width,
                                               length_penalty=0.0))[0]
            assert len(best.tokens) == len(greedy.tokens) == 20
            # float64: a sequence's log-prob is the same to ~1e-14 in any batch; 1e-9 is slack
            assert best.log_prob >= greedy.log_prob - 1e-9


def test_beam_returns_n_distinct_continuations_best_first(trained, decoder):
    out = decoder.generate(ids(trained, "我的"), Options(max_tokens=15, beam_width=4,
                                                         length_penalty=0.0), n=3)
    assert len(out) == 3 and len({tuple(c.tokens) for c in out}) == 3
    assert [c.log_prob for c in out] == sorted((c.log_prob for c in out), reverse=True)


@pytest.mark.parametrize("prefix", ["", "我的"])
def test_acrostic_lines_start_with_the_given_characters(trained, decoder, prefix):
    head = "我你爱"
    c, = decoder.generate(ids(trained, prefix), Options(
        max_tokens=200, acrostic=ids(trained, head), line_length=8), seed=3)
    lines = c.text.split("\n")
    own = 1 if prefix else 0                 # the prefix's own line comes first
    assert [line[:1] for line in lines[own:]] == list(head), c.text
    assert all(len(line) <= 8 for line in lines[own:]) and c.finish_reason == "stop"


def test_lines_and_line_length(trained, decoder):
    c, = decoder.generate(ids(trained, "我的\n"), Options(max_tokens=500, lines=3,
                                                         line_length=5), seed=4)
    lines = c.text.split("\n")
    assert len(lines) == 3 and all(1 <= len(line) <= 5 for line in lines), c.text


def test_banned_tokens_and_stop_strings(trained, decoder):
    banned = ids(trained, "我你的\n")
    c, = decoder.generate(ids(trained, "爱"), Options(max_tokens=80, banned=banned), seed=2)
    assert not set(c.tokens) & set(banned) and len(c.tokens) == 80
    free, = decoder.generate(ids(trained, "爱"), Options(max_tokens=80), seed=2)
    stop = free.text[10:12]
    c, = decoder.generate(ids(trained, "爱"), Options(max_tokens=80, stop=[stop]), seed=2)
    assert c.finish_reason == "stop" and c.text == free.text[:free.text.find(stop)]
    assert c.tokens == free.tokens[:len(c.text)]
    assert c.log_prob == pytest.approx(sum(free.token_log_probs[:len(c.text)]))


def test_no_repeat_ngram_in_generated_text(trained, decoder):
    c, = decoder.generate(ids(trained, "我"), Options.greedy(max_tokens=60, no_repeat_ngram=3))
    context = ids(trained, "我") + c.tokens
    grams = [tuple(context[i:i + 3]) for i in range(len(context) - 2)]
    assert len(grams) == len(set(grams))


def test_logprobs_lists_the_top_alternatives(trained, decoder):
    c, = decoder.generate(ids(trained, "我"), Options(max_tokens=10, logprobs=3), seed=1)
    for token, lp, top in zip(c.tokens, c.token_log_probs, c.top_logprobs):
        assert len(top) == 3 and max(top.values()) >= lp
        assert lp == top.get(token, lp)


@pytest.mark.parametrize("field, value, message", [
    ("temperature", -1, "temperature"), ("top_p", 0, "top_p"), ("min_p", 1.5, "min_p"),
    ("top_k", 0, "top_k"), ("max_tokens", 10**7, "max_tokens"), ("logprobs", 6, "logprobs"),
    ("banned", [10**6], "banned"), ("acrostic", [-1], "acrostic"), ("stop", ["a"] * 5, "stop"),
    ("presence_penalty", 3, "presence_penalty"), ("dry_base", 0.5, "dry_base"),
    ("beam_width", 65, "beam_width")])
def test_bad_options_name_the_field(decoder, field, value, message):
    with pytest.raises(ValueError, match=message):
        decoder.generate([1], Options(**{field: value}))


def test_everything_banned_is_refused(trained, decoder):
    with pytest.raises(ValueError, match="bans every token"):
        decoder.generate([1], Options(banned=list(range(len(trained[1])))))


# -- the copy guard -----------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(trained):
    """The decoder with an index of the model's training text (the first 2,000 chars)."""
    from lyricnn.decoding.originality import OriginalityIndex
    lm, idx_to_char, char_to_idx = trained
    text = read_text(locate(JAY_LYRICS)).replace("\r", "")[:2000]
    index = OriginalityIndex([char_to_idx[c] for c in text], line_breaks={char_to_idx["\n"]})
    return Decoder(lm, Vocabulary(idx_to_char, char_to_idx["\n"]), index), index


@pytest.mark.parametrize("limit", [1, 3, 6])
def test_max_copy_bounds_every_candidates_longest_copy(trained, guarded, limit):
    decoder, index = guarded
    prefixes = ["我的", "想要", "你"]
    free = [c for p in prefixes for c in decoder.generate(
        ids(trained, p), Options(max_tokens=60, temperature=0.5), n=4, seed=1)]
    assert max(index.longest_copy(c.tokens)["length"] for c in free) > limit   # it copies
    for p in prefixes:
        for c in decoder.generate(ids(trained, p), Options(max_tokens=60, temperature=0.5,
                                                           max_copy=limit), n=4, seed=1):
            assert index.longest_copy(c.tokens)["length"] <= limit, c.text


def test_max_copy_needs_an_index(trained, decoder):
    with pytest.raises(ValueError, match="max_copy needs an index"):
        decoder.generate(ids(trained, "我"), Options(max_copy=3))
