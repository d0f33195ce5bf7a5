"""N-gram language models (book 6.1): MLE, add-k and interpolated modified Kneser-Ney."""
import math
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import lyricnn.ngram.counts as ngram_module
import lyricnn.memory
import lyricnn.ngram.model
from lyricnn.data.corpus import load_corpus_chars
from lyricnn.ngram.model import NGramLM, kn_discounts, rank
from lyricnn.data.tokenize import UNK, load_ptb, segment, words

SMOOTHED = ("add-k", "kneser-ney")
SMALL_CORPUS = "我说你走先 你说你走先吧 走先走先 你走 我先走吧 他走先"


@pytest.fixture(scope="module")
def lyrics():
    return load_corpus_chars(num_chars=None)


def contexts_of(tokens, max_len):
    """Every context of length 0..max_len seen in ``tokens``, in first-appearance order."""
    seen = {}
    for j in range(max_len + 1):
        for i in range(len(tokens) - j + 1):
            seen.setdefault(tuple(tokens[i:i + j]), None)
    return list(seen)


# -- vocabulary ---------------------------------------------------------------


def test_vocabulary_is_unk_then_first_appearance():
    model = NGramLM(2).fit("banana")
    assert model.vocab.idx_to_token == [UNK, "b", "a", "n"]
    # The corpus's own <unk> (PTB has one) is not duplicated.
    model = NGramLM(1, tokenizer=str.split).fit("x <unk> y")
    assert model.vocab.idx_to_token == [UNK, "x", "y"]


def test_unknown_tokens_map_to_unk():
    model = NGramLM(2, "kneser-ney").fit("abcab")
    assert model.prob("z", "a") == model.prob(UNK, "a") > 0
    assert model.prob("b", "zzz") == model.prob("b", [UNK])


# -- MLE: the tutorial's formulas ------------------------------------------------


def test_mle_equals_the_seed_formulas_by_hand():
    # Corpus "a b c a b d a b c", N = 9.  Hand counts:
    #   unigrams a 3, b 3, c 2, d 1;  bigrams ab 3, bc 2, ca 1, bd 1, da 1;
    #   trigrams abc 2, bca 1, cab 1, abd 1, bda 1, dab 1.
    model3 = NGramLM(3, "mle", tokenizer=str.split).fit("a b c a b d a b c")
    assert model3.count(()) == 9
    assert [model3.count((w,)) for w in "abcd"] == [3, 3, 2, 1]
    assert model3.count(("a", "b")) == 3 and model3.count(("a", "b", "c")) == 2
    # P(w) = count(w) / N
    assert model3.prob("a") == 3 / 9 and model3.prob("d") == 1 / 9
    # P(w2 | w1) = count(w1 w2) / count(w1): a is followed by b all 3 times.
    assert model3.prob("b", ["a"]) == 3 / 3
    assert model3.prob("c", ["b"]) == 2 / 3 and model3.prob("d", ["b"]) == 1 / 3
    # P(w3 | w1, w2) = count(w1 w2 w3) / count(w1 w2) = 2 / 3 and 1 / 3
    assert model3.prob("c", ["a", "b"]) == 2 / 3
    assert model3.prob("d", ["a", "b"]) == 1 / 3
    # Only the last n-1 tokens of a longer context matter (Markov assumption).
    assert model3.prob("c", ["d", "a", "b"]) == model3.prob("c", ["a", "b"])
    # Trigram chain of the tutorial: P(w1) P(w2|w1) P(w3|w1,w2) P(w4|w2,w3)
    #   "a b d a" -> 3/9 * 3/3 * 1/3 * count(bda)/count(bd) = 1/1
    expected = math.log(3 / 9) + math.log(1) + math.log(1 / 3) + math.log(1)
    assert model3.log_prob("a b d a") == pytest.approx(expected, abs=1e-12)
    # Unigram: P(w1) P(w2) P(w3) P(w4);  bigram: P(w1) P(w2|w1) P(w3|w2) P(w4|w3).
    model1 = NGramLM(1, tokenizer=str.split).fit("a b c a b d a b c")
    model2 = NGramLM(2, tokenizer=str.split).fit("a b c a b d a b c")
    assert model1.log_prob("a b d a") == pytest.approx(
        math.log(3 / 9 * 3 / 9 * 1 / 9 * 3 / 9), abs=1e-12)
    assert model2.log_prob("a b d a") == pytest.approx(
        math.log(3 / 9 * 3 / 3 * 1 / 3 * 1 / 1), abs=1e-12)


def test_mle_context_count_is_how_often_the_context_is_followed():
    # "b c" occurs twice in "a b c a b d a b c" but ends the text once, so
    # only one occurrence is followed by a token: P(a | b c) = 1/1, not the
    # 1/2 that would leave P(. | b c) summing to 1/2.
    model = NGramLM(3, tokenizer=str.split).fit("a b c a b d a b c")
    assert model.count(("b", "c")) == 2
    assert model.prob("a", ["b", "c"]) == 1.0
    assert model.probs(["b", "c"]).sum() == 1.0


def test_mle_unseen_gives_zero_minus_inf_and_inf_perplexity_quietly():
    model = NGramLM(2, "mle").fit("abcabc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning either
        assert model.prob("a", "a") == 0.0
        assert model.log_prob("aa") == -math.inf
        assert model.perplexity("aa") == math.inf
        assert model.perplexity("xyz") == math.inf  # unknown tokens
        # A context never followed by anything: the MLE has no estimate -> 0.
        assert model.probs("z").sum() == 0.0
    assert math.isfinite(model.perplexity("abcab"))


# -- the tutorial's 你走先 / 你先走 illustration ----------------------------------


@pytest.mark.parametrize("smoothing", ["mle", "add-k", "kneser-ney"])
def test_unigram_cannot_tell_word_order(smoothing, lyrics):
    for corpus in (SMALL_CORPUS, lyrics):
        model = NGramLM(1, smoothing).fit(corpus)
        assert model.log_prob("你走先") == pytest.approx(model.log_prob("你先走"), abs=1e-12)


@pytest.mark.parametrize("smoothing", ["mle", "add-k", "kneser-ney"])
@pytest.mark.parametrize("order", [2, 3])
def test_bigram_and_trigram_prefer_the_order_they_saw(smoothing, order):
    # SMALL_CORPUS contains 你走先 several times and never 你先走.
    assert "你走先" in SMALL_CORPUS and "你先走" not in SMALL_CORPUS
    model = NGramLM(order, smoothing).fit(SMALL_CORPUS)
    assert model.log_prob("你走先") > model.log_prob("你先走")
    if smoothing == "mle":  # 你先 was never seen
        assert model.log_prob("你先走") == -math.inf


def test_lyrics_kneser_ney_trigram_prefers_ni_zou_xian(lyrics):
    # The lyrics have 你走 15 times but neither 走先 nor 你先 nor 先走, so MLE
    # gives both -inf; Kneser-Ney still ranks them, 你走先 first.
    assert lyrics.count("你走") == 15
    assert all(lyrics.count(s) == 0 for s in ("走先", "你先", "先走"))
    mle = NGramLM(3, "mle").fit(lyrics)
    assert mle.log_prob("你走先") == mle.log_prob("你先走") == -math.inf
    kn = NGramLM(3, "kneser-ney").fit(lyrics)
    ranked = rank(["你先走", "你走先"], kn.score)
    assert [c for c, _ in ranked] == ["你走先", "你先走"]
    # 4 decimals of float64 sums of a few logs: half a unit of the last decimal
    assert ranked[0][1] == pytest.approx(-19.5383, rel=0, abs=5e-5 + 1e-12)
    assert ranked[1][1] == pytest.approx(-19.8674, rel=0, abs=5e-5 + 1e-12)


# -- probabilities sum to one ----------------------------------------------


@pytest.mark.parametrize("smoothing", SMOOTHED)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_smoothed_distributions_sum_to_one(smoothing, order):
    corpus = list(SMALL_CORPUS)
    model = NGramLM(order, smoothing, k=0.5).fit(corpus)
    contexts = contexts_of(corpus, order - 1)
    contexts += [("没",), ("走", "没"), ("没", "有", "人")]  # unseen contexts too
    for context in contexts:
        p = model.probs(list(context))
        assert p.shape == (model.vocab_size,)
        assert np.all(p > 0)
        assert abs(p.sum() - 1.0) <= 1e-9, context


@settings(max_examples=100, deadline=None)
@given(
    tokens=st.lists(st.sampled_from("abcde"), min_size=1, max_size=40),
    order=st.integers(1, 5),
    smoothing=st.sampled_from(SMOOTHED),
    k=st.floats(0.01, 3.0),
)
def test_property_every_seen_context_sums_to_one(tokens, order, smoothing, k):
    assume(order <= len(tokens))  # a longer order is refused (test_order_is_bounded)
    model = NGramLM(order, smoothing, k=k).fit(tokens)
    for context in contexts_of(tokens, order - 1) + [("z",) * (order - 1)]:
        assert abs(model.probs(list(context)).sum() - 1.0) <= 1e-9


@settings(max_examples=100, deadline=None)
@given(
    tokens=st.lists(st.sampled_from("abcd"), min_size=1, max_size=30),
    query=st.lists(st.sampled_from("abcdz"), min_size=1, max_size=8),
    order=st.integers(1, 4),
    smoothing=st.sampled_from(("mle",) + SMOOTHED),
)
def test_property_log_prob_is_the_chain_rule(tokens, query, order, smoothing):
    assume(order <= len(tokens))
    model = NGramLM(order, smoothing).fit(tokens)
    chain = [model.prob(w, query[max(0, i - order + 1):i]) for i, w in enumerate(query)]
    with np.errstate(divide="ignore"):
        expected = float(np.sum(np.log(chain)))
    got = model.log_prob(query)
    assert got == expected or got == pytest.approx(expected, rel=1e-12)
    if math.isfinite(got):
        assert model.perplexity(query) == pytest.approx(math.exp(-got / len(query)))


# -- add-k ---------------------------------------------------------------------


def test_add_k_by_hand():
    # "a b a c", V = 4 (<unk>, a, b, c), k = 0.5.
    # P(b | a) = (count(ab) + k) / (count(a) + k V) = (1 + .5) / (2 + 2) = 0.375
    # P(a) = (2 + .5) / (4 + 2) = 2.5 / 6 (the empty context occurs N = 4 times)
    # P(a | c): c never followed -> (0 + .5) / (0 + 2) = 1/4 = uniform
    model = NGramLM(2, "add-k", k=0.5, tokenizer=str.split).fit("a b a c")
    assert model.prob("b", ["a"]) == pytest.approx(0.375)
    assert model.prob("a") == pytest.approx(2.5 / 6)
    assert model.prob("a", ["c"]) == pytest.approx(0.25)


# -- Kneser-Ney ----------------------------------------------------------------


def test_kn_discounts_formula_and_fallbacks():
    # n1..n4 = 10, 5, 3, 2:  Y = 10 / (10 + 2*5) = 0.5
    #   D1 = 1 - 2 * .5 * 5/10 = 0.5;  D2 = 2 - 3 * .5 * 3/5 = 1.1
    #   D3+ = 3 - 4 * .5 * 2/3 = 5/3
    assert kn_discounts(10, 5, 3, 2) == pytest.approx((0.5, 1.1, 5 / 3))
    # n3 = 0 would give D2 = 2 (no mass left for count-2 n-grams): fall back.
    assert kn_discounts(2, 1, 0, 0) == pytest.approx((0.5, 0.5, 0.5))
    # n1 = 0: Y undefined -> 0.5, the others from the formula where defined.
    assert kn_discounts(0, 4, 2, 1) == pytest.approx((0.5, 2 - 3 * 0.5 * 2 / 4, 3 - 4 * 0.5 / 2))
    assert kn_discounts(0, 0, 0, 0) == (0.5, 0.5, 0.5)


@given(st.lists(st.integers(0, 10**6), min_size=4, max_size=4))
def test_property_kn_discounts_stay_in_range(counts):
    for i, d in enumerate(kn_discounts(*counts), start=1):
        assert 0 < d < i


def test_kneser_ney_by_hand():
    # Bigram KN on the tokens "a b c a b"; V = 4 (<unk>, a, b, c).
    # Top order (bigrams, raw counts): ab 2, bc 1, ca 1.
    #   context totals: a -> 2, b -> 1 (the final b is followed by nothing), c -> 1.
    #   counts-of-counts n1 = 2, n2 = 1, n3 = n4 = 0: Y = 2 / (2 + 2) = 0.5,
    #   D1 = 1 - 2 * .5 * 1/2 = 0.5; D2 needs n3 > 0 -> falls back to D1 = 0.5;
    #   D3+ needs n3 > 0 -> D2 = 0.5.
    # Lower order (unigrams, continuation counts N1+(. w)): a <- {c, text start} = 2,
    #   b <- {a} = 1, c <- {b} = 1, <unk> 0; total 4.
    #   counts-of-counts n1 = 2, n2 = 1, n3 = 0 -> the same discounts 0.5, 0.5, 0.5.
    #   gamma() = (0.5 * 2 + 0.5 * 1) / 4 = 0.375, spread uniformly: 0.375 / 4 = 0.09375
    #   P1(a) = (2 - .5) / 4 + 0.09375 = 0.46875
    #   P1(b) = P1(c) = (1 - .5) / 4 + 0.09375 = 0.21875;  P1(<unk>) = 0.09375
    # Bigrams: gamma(a) = 0.5 * 1 type / 2 = 0.25;  gamma(b) = gamma(c) = 0.5 / 1 = 0.5
    #   P(b | a) = (2 - .5) / 2 + 0.25 * 0.21875 = 0.8046875
    #   P(a | a) = 0 + 0.25 * 0.46875 = 0.1171875
    #   P(c | b) = (1 - .5) / 1 + 0.5 * 0.21875 = 0.609375
    #   P(a | c) = (1 - .5) / 1 + 0.5 * 0.46875 = 0.734375
    #   P(a | <unk>): context never seen -> P1(a) = 0.46875
    model = NGramLM(2, "kneser-ney", tokenizer=str.split).fit("a b c a b")
    assert model.discounts(2) == pytest.approx((0.5, 0.5, 0.5))
    assert model.discounts(1) == pytest.approx((0.5, 0.5, 0.5))
    for token, expected in [("a", 0.46875), ("b", 0.21875), ("c", 0.21875), (UNK, 0.09375)]:
        assert model.prob(token) == pytest.approx(expected, abs=1e-15)
    assert model.prob("b", ["a"]) == pytest.approx(0.8046875, abs=1e-15)
    assert model.prob("a", ["a"]) == pytest.approx(0.1171875, abs=1e-15)
    assert model.prob("c", ["b"]) == pytest.approx(0.609375, abs=1e-15)
    assert model.prob("a", ["c"]) == pytest.approx(0.734375, abs=1e-15)
    assert model.prob("a", [UNK]) == pytest.approx(0.46875, abs=1e-15)
    # "a b c": the first token has no context and uses P1 (shorter context).
    assert model.log_prob("a b c") == pytest.approx(
        math.log(0.46875) + math.log(0.8046875) + math.log(0.609375), abs=1e-12)


def reference_kn_prob(tokens, order, vocab, word, context):
    """Interpolated modified KN written straight from Chen & Goodman, with dicts.

    Slow and independent of the array implementation; ``context`` already cut
    to at most order-1 tokens.
    """
    raw = {j: Counter(tuple(tokens[i:i + j]) for i in range(len(tokens) - j + 1))
           for j in range(1, order + 1)}
    cont = {}
    for j in range(1, order):
        cont[j] = Counter(gram[1:] for gram in raw[j + 1])  # distinct left extensions
        if len(tokens) >= j:
            cont[j][tuple(tokens[:j])] += 1  # the text start is one more predecessor

    def level(j, ctx):
        counts = raw[j] if j == order else cont[j]
        lower = 1 / len(vocab) if j == 1 else level(j - 1, ctx[1:])
        total = sum(c for g, c in counts.items() if g[:-1] == ctx)
        if total == 0:
            return lower
        coc = Counter(counts.values())
        d = (0,) + kn_discounts(coc[1], coc[2], coc[3], coc[4])
        c = counts.get(ctx + (word,), 0)
        removed = sum(d[min(v, 3)] for g, v in counts.items() if g[:-1] == ctx)
        kept = (c - d[min(c, 3)]) / total if c else 0.0
        return kept + removed / total * lower

    return level(len(context) + 1, tuple(context))


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.lists(st.sampled_from("abcd"), min_size=2, max_size=30),
    order=st.integers(1, 4),
    data=st.data(),
)
def test_property_kneser_ney_matches_a_dict_reference(tokens, order, data):
    assume(order <= len(tokens))
    model = NGramLM(order, "kneser-ney").fit(tokens)
    vocab = model.vocab.idx_to_token
    ctx_len = data.draw(st.integers(0, order - 1))
    start = data.draw(st.integers(0, len(tokens) - 1))
    context = tokens[start:start + ctx_len]
    if context and data.draw(st.booleans()):  # often an unseen context
        context = context[:-1] + [data.draw(st.sampled_from("abcdz"))]
    for word in vocab:
        expected = reference_kn_prob(tokens, order, vocab, word, context)
        assert model.prob(word, context) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_kneser_ney_order_equal_to_the_corpus_length():
    model = NGramLM(5, "kneser-ney").fit("abcab")  # one 5-gram: the longest order allowed
    assert abs(model.probs("abca").sum() - 1) <= 1e-12
    assert abs(model.probs("zz").sum() - 1) <= 1e-12
    assert math.isfinite(model.perplexity("abba"))


@pytest.mark.slow
def test_kneser_ney_5gram_on_ptb_is_near_the_published_141():
    # The commonly cited figure for an interpolated modified KN 5-gram on the
    # PTB test set is 141.2 (Mikolov et al. 2011); ours (contexts run across
    # <eos>) gives 141.06.  A bug in discounts or continuation counts moves it
    # by whole points.
    model = NGramLM(5, "kneser-ney", tokenizer=words).fit(load_ptb("train"))
    assert model.vocab_size == 10000
    # 2 decimals of a float64 computation (82k tokens: ~1e-10 relative): half a unit
    assert model.perplexity(load_ptb("test")) == pytest.approx(141.06, rel=0, abs=0.005 + 1e-9)


# -- 老板，来包福贵 vs 老板，来包富贵 -------------------------------------------

FUGUI = ["老板，来包福贵", "老板，来包富贵"]


def test_fugui_ranking_on_the_lyrics(lyrics):
    # The facts the ranking rests on: 福 is in the lyrics 24 times, 富 never
    # (so it is <unk>), and 来包 never occurs.
    assert lyrics.count("福") == 24 and "富" not in lyrics and "来包" not in lyrics
    for order in (1, 2, 3, 4, 5):
        kn = NGramLM(order, "kneser-ney").fit(lyrics)
        assert "富" not in kn.vocab
        ranked = rank(FUGUI, kn.score)
        # Kneser-Ney says 福贵 at every order: a seen character beats <unk>.
        assert [c for c, _ in ranked] == FUGUI, order
        assert ranked[0][1] > ranked[1][1] > -math.inf
    # MLE unigram: 富 has count 0 -> 富贵 is impossible.
    assert rank(FUGUI, NGramLM(1).fit(lyrics).score)[1] == (FUGUI[1], -math.inf)
    # MLE bigram: 来包 unseen -> both impossible; the tie keeps the input order.
    assert rank(FUGUI[::-1], NGramLM(2).fit(lyrics).score) == [
        (FUGUI[1], -math.inf), (FUGUI[0], -math.inf)]


def test_fugui_add_one_bigram_prefers_the_unknown_character(lyrics):
    # What add-1 really says: 富贵 wins.  P(福|包) = P(富|包) = 1 / (c(包) + V)
    # (both unseen), but 贵 after the seen 福 gets 1 / (c(福) + V) while after
    # the never-seen context <unk> it gets the uniform 1 / V, which is larger.
    model = NGramLM(2, "add-k", k=1.0).fit(lyrics)
    V = model.vocab_size
    assert model.prob("福", "包") == model.prob("富", "包")
    assert model.prob("贵", "福") == pytest.approx(1 / (24 + V))
    assert model.prob("贵", "富") == pytest.approx(1 / V)
    assert [c for c, _ in rank(FUGUI, model.score)] == FUGUI[::-1]


# -- rank --------------------------------------------------------------------


def test_rank_accepts_any_scorer_and_sorts_most_likely_first():
    ranked = rank(["aa", "b", "ccc", "dd"], lambda s: -float(len(s)))
    assert ranked == [("b", -1.0), ("aa", -2.0), ("dd", -2.0), ("ccc", -3.0)]
    with pytest.raises(ValueError, match="candidates"):
        rank([], len)
    with pytest.raises(ValueError, match="scorer"):
        rank(["a"], "not callable")
    with pytest.raises(ValueError, match="NaN"):
        rank(["a"], lambda s: float("nan"))


# -- generation ------------------------------------------------------------------


def test_greedy_generation_is_deterministic_argmax(lyrics):
    model = NGramLM(3, "kneser-ney").fit(lyrics)
    out = model.generate("分开", 12)
    assert out == model.generate("分开", 12) and len(out) == 14
    assert out[:2] == ["分", "开"]
    for i in range(2, 14):
        p = model.probs(out[i - 2:i])
        assert model.vocab.index(out[i]) == int(np.argmax(p))


def test_sampled_generation_is_reproducible_with_a_seed(lyrics):
    model = NGramLM(3, "kneser-ney").fit(lyrics)
    runs = [model.generate("分开", 30, strategy="sample", seed=s) for s in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert UNK not in runs[0] + runs[2]


def test_mle_sampling_only_follows_seen_ngrams():
    model = NGramLM(2, "mle").fit("abracadabra")
    out = model.generate("a", 50, strategy="sample", seed=3)
    assert all(model.count(out[i:i + 2]) > 0 for i in range(len(out) - 1))
    # After "z" (unknown, never a context) MLE has no estimate: it backs off
    # to the unigram distribution instead of failing.
    assert len(model.generate("z", 3)) == 4


def test_word_model_generation_returns_tokens():
    model = NGramLM(2, "kneser-ney", tokenizer=str.split).fit("the cat sat on the mat <eos>")
    out = model.generate("the", 3)
    assert out[0] == "the" and len(out) == 4 and all(t in model.vocab for t in out)


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, name", [
    ({"order": 0}, "order"), ({"order": -1}, "order"), ({"order": 2.0}, "order"),
    ({"order": True}, "order"), ({"order": 2, "smoothing": "good-turing"}, "smoothing"),
    ({"order": 2, "k": 0}, "k"), ({"order": 2, "k": -1.0}, "k"),
    ({"order": 2, "k": float("nan")}, "k"), ({"order": 2, "k": float("inf")}, "k"),
    ({"order": 2, "tokenizer": "char"}, "tokenizer"),
])
def test_bad_constructor_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NGramLM(**kwargs)


def test_using_the_model_before_fit_is_a_clear_error():
    model = NGramLM(2)
    for call in (lambda: model.prob("a"), lambda: model.log_prob("ab"),
                 lambda: model.perplexity("ab"), lambda: model.score("ab"),
                 lambda: model.generate("a", 3), lambda: model.probs(), lambda: model.vocab):
        with pytest.raises(ValueError, match="fit"):
            call()


def test_empty_text_is_a_clear_error():
    model = NGramLM(2, "kneser-ney")
    for empty in ("", []):
        with pytest.raises(ValueError, match="tokens must not be empty"):
            model.fit(empty)
    model.fit("abc")
    for call in (model.log_prob, model.perplexity, model.score, model.token_log_probs):
        with pytest.raises(ValueError, match="tokens must not be empty"):
            call("")


def test_bad_generation_and_query_arguments():
    model = NGramLM(2, "kneser-ney").fit("abcab")
    with pytest.raises(ValueError, match="strategy"):
        model.generate("a", 3, strategy="beam")
    with pytest.raises(ValueError, match="length"):
        model.generate("a", -1)
    with pytest.raises(ValueError, match="ngram"):
        model.count("abc")
    with pytest.raises(ValueError, match="discounts"):
        NGramLM(2, "mle").fit("ab").discounts(1)
    with pytest.raises(ValueError, match="tokens"):
        model.log_prob(5)


# -- counting helpers ------------------------------------------------------------


def test_counts_of_any_order_and_most_common():
    model = NGramLM(4, "mle").fit("abababc")
    assert model.count("ab") == 3 and model.count("aba") == 2 and model.count("abab") == 2
    assert model.count("bc") == 1 and model.count("ca") == 0 and model.count("zz") == 0
    assert model.counts.most_common(2, 3) == [(("a", "b"), 3), (("b", "a"), 2), (("b", "c"), 1)]
    assert model.counts.most_common(1) == [(("a",), 3), (("b",), 3), (("c",), 1)]
    assert model.counts.most_common(4, 1) == [(("a", "b", "a", "b"), 2)]


def test_probs_are_indexed_by_the_vocabulary():
    model = NGramLM(2, "kneser-ney").fit("abcab")
    p = model.probs("a")
    for i, token in enumerate(model.vocab.idx_to_token):
        assert p[i] == pytest.approx(model.prob(token, "a"), abs=1e-15)


def test_generate_zero_tokens_returns_the_prefix():
    model = NGramLM(2).fit("abcab")
    assert model.generate("ab", 0) == ["a", "b"]
    assert len(model.generate("", 5)) == 5


def test_jieba_word_model_if_installed():
    pytest.importorskip("jieba")
    model = NGramLM(2, "kneser-ney", tokenizer=segment).fit("我们一起去看电影 我们一起去吃饭")
    assert "我们" in model.vocab
    assert model.score("我们一起去看电影") > model.score("电影看去一起我们")


# -- issue 12: unhashable tokens, bounded order and length ----------------------------


def test_fit_with_unhashable_tokens_names_the_type():
    with pytest.raises(ValueError) as err:
        NGramLM(2).fit([["a", "b"], ["c"]])  # a list of sentences instead of tokens
    assert str(err.value).startswith("tokens must be hashable tokens (str, int, tuple...), got "
                                     "a list: ['a', 'b']; pass a flat sequence of tokens")
    model = NGramLM(2).fit("abab")
    with pytest.raises(ValueError, match=r"tokens must be hashable .* got a set: \{'a'\}"):
        model.log_prob(["a", {"a"}])


@pytest.mark.parametrize("order", [4, 10_000_000])
def test_order_larger_than_the_text_is_refused_up_front(order, monkeypatch):
    monkeypatch.setattr(ngram_module.NGramCounts, "_count_level", lambda *a: pytest.fail("counted"))
    with pytest.raises(ValueError) as err:
        NGramLM(order, "kneser-ney").fit("abc")
    assert str(err.value) == (
        f"order must be <= the number of training tokens (3), got {order:,}: an order-n model "
        "needs at least n tokens to see one n-gram; use order <= 3 or a longer text")


def test_order_beyond_the_memory_available_is_refused_with_the_largest_that_fits(monkeypatch):
    tokens = list(range(1000))
    available = ngram_module.counting_bytes(1000, 7)  # exactly order 7 fits
    monkeypatch.setattr(ngram_module, "available_memory", lambda: available)
    assert NGramLM(7).fit(tokens).order == 7
    with pytest.raises(ValueError) as err:
        NGramLM(8).fit(tokens)
    message = str(err.value)
    assert message.startswith("order=8 needs about ")
    assert "to count 1,000 tokens (~64 bytes per token and order)" in message
    assert message.endswith("available; use order <= 7")


def test_counting_bytes_is_the_sum_over_levels():
    # Level k has at most N - k + 1 k-grams: 10 + 9 + 8 positions for order 3.
    assert ngram_module.counting_bytes(10, 3) == 27 * ngram_module.BYTES_PER_TOKEN_AND_ORDER


def test_available_memory_is_positive_here():
    available = lyricnn.memory.available_memory()
    assert available is None or available > 0


def test_generation_length_and_seed_are_bounded():
    model = NGramLM(2).fit("abcab")
    limit = lyricnn.ngram.model.MAX_GENERATE_LENGTH
    with pytest.raises(ValueError) as err:
        model.generate("a", 99999999999999)
    assert str(err.value) == (f"length must be an integer between 0 and {limit}, got "
                              "99999999999999; generate in pieces for longer texts")
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1; or None"):
        model.generate("a", 3, strategy="sample", seed=-1)
    assert (model.generate("a", np.int64(4), "sample", seed=np.int64(5))
            == model.generate("a", 4, "sample", seed=5))


@pytest.mark.parametrize("kwargs, message", [
    ({"order": np.int64(2), "k": np.float32(0.5)}, None),
    ({"order": 2, "smoothing": "kn"},
     "smoothing must be one of 'mle', 'add-k', 'kneser-ney', got 'kn'"),
    ({"order": 2, "k": True}, "k must be a finite number > 0, got True (bool)"),
])
def test_constructor_checks_through_the_shared_helpers(kwargs, message):
    if message is None:
        model = NGramLM(**kwargs)
        assert (model.order, model.k) == (2, 0.5) and type(model.order) is int
    else:
        with pytest.raises(ValueError) as err:
            NGramLM(**kwargs)
        assert str(err.value) == message


def test_perplexity_overflow_is_inf_without_warnings(monkeypatch):
    model = NGramLM(2, "mle").fit("abab")
    assert model.perplexity("bac") == math.inf  # an unseen token: probability 0
    monkeypatch.setattr(model, "token_log_probs", lambda tokens: np.array([-800.0, -800.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # np.exp(800) would warn "overflow"
        assert model.perplexity("ab") == math.inf


def test_most_common_and_discounts_check_n():
    model = NGramLM(3, "kneser-ney").fit("abcabc")
    with pytest.raises(ValueError, match=r"^n must be an integer between 1 and 3, got 4$"):
        model.discounts(4)
    with pytest.raises(ValueError, match=r"^n must be an integer between 1 and 3, got 0$"):
        model.counts.most_common(0)
    assert model.counts.most_common(np.int64(1), num=np.int64(1)) == [(("a",), 2)]
