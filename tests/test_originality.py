"""Verbatim-copy measures (lyricnn.decoding.originality) against brute-force references."""
import json

import numpy as np
import pytest

from lyricnn.data.corpus import load_corpus_chars
from lyricnn.decoding.originality import OriginalityIndex, human_baseline

CASES = 200
BREAK = 0  # the id that ends a line in the random corpora


def occurs(corpus, piece):
    """Brute force: whether the tuple ``piece`` occurs contiguously in the tuple ``corpus``."""
    k = len(piece)
    return any(corpus[i:i + k] == piece for i in range(len(corpus) - k + 1))


def make_case(rng):
    """A random corpus (30..300 ids over 2..5 symbols, the even ids 0, 2, ..) and a candidate
    (0..40 ids) made of corpus pieces and random ids, some never in the corpus (odd ids in
    the gaps between corpus ids, and one past the largest)."""
    size = int(rng.integers(2, 6))
    corpus = 2 * rng.integers(0, size, int(rng.integers(30, 301)))
    parts, length = [], int(rng.integers(0, 41))
    while sum(map(len, parts)) < length:
        if rng.random() < 0.5:
            start = int(rng.integers(0, len(corpus)))
            parts.append(corpus[start:start + int(rng.integers(1, 20))])
        else:
            parts.append(rng.integers(0, 2 * size + 1, int(rng.integers(1, 4))))
    candidate = np.concatenate(parts)[:length] if parts else np.zeros(0, int)
    return corpus, candidate


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(2023)
    out = []
    for _ in range(CASES):
        corpus, candidate = make_case(rng)
        out.append((corpus, candidate, OriginalityIndex(corpus, line_breaks={BREAK}),
                    tuple(corpus.tolist()), tuple(candidate.tolist())))
    return out


def brute_ms(corpus, x):
    out = []
    for j in range(len(x)):
        k = 0
        while j + k < len(x) and occurs(corpus, x[j:j + k + 1]):
            k += 1
        out.append(k)
    return out


def brute_e(corpus, x):
    out = []
    for i in range(len(x)):
        k = 0
        while k <= i and occurs(corpus, x[i - k:i + 1]):
            k += 1
        out.append(k)
    return out


def brute_novelty(corpus, x, max_n):
    m = len(x)
    return [sum(not occurs(corpus, x[j:j + n]) for j in range(m - n + 1)) / (m - n + 1)
            if n <= m else None for n in range(1, max_n + 1)]


def brute_spans(corpus, x, min_len):
    """Every (start, end) of a maximal occurring substring with end - start >= min_len."""
    m, spans = len(x), []
    for a in range(m):
        for b in range(a + min_len, m + 1):
            if not occurs(corpus, x[a:b]):
                break
            left = a > 0 and occurs(corpus, x[a - 1:b])
            right = b < m and occurs(corpus, x[a:b + 1])
            if not left and not right:
                spans.append((a, b))
    return spans


def check_source(corpus, x, span, breaks=(BREAK,)):
    """The source holds the span, and its line bounds are the nearest breaks outside it."""
    src, n = span["source"], len(corpus)
    off, length = src["offset"], span["length"]
    assert length == span["end"] - span["start"]
    assert corpus[off:off + length] == x[span["start"]:span["end"]]
    lo, hi = src["line_start"], src["line_end"]
    assert 0 <= lo <= off and off + length <= hi <= n
    assert lo == 0 or corpus[lo - 1] in breaks
    assert hi == n or corpus[hi] in breaks
    assert not any(t in breaks for t in corpus[lo:off] + corpus[off + length:hi])


# -- brute-force references on random texts --------------------------------------


def test_longest_match_from_and_match_ending_at_equal_brute_force(cases):
    for _, cand, index, corpus, x in cases:
        ms = index.longest_match_from(cand)
        assert ms.shape == (len(x),) and ms.tolist() == brute_ms(corpus, x)
        assert index.match_ending_at(cand).tolist() == brute_e(corpus, x)


def test_duplication_scores_are_one_plus_match_ending_at(cases):
    for _, cand, index, corpus, x in cases:
        assert index.duplication_scores(cand).tolist() == [1 + e for e in brute_e(corpus, x)]


def test_novelty_curve_equals_brute_force(cases):
    for _, cand, index, corpus, x in cases:
        assert index.novelty_curve(cand) == brute_novelty(corpus, x, 10)
        assert index.novelty_curve(cand, max_n=3) == brute_novelty(corpus, x, 3)


def test_copied_spans_are_every_maximal_span_with_their_sources(cases):
    for _, cand, index, corpus, x in cases:
        for min_len in (1, 3, 6):
            spans = index.copied_spans(cand, min_len)
            assert [(s["start"], s["end"]) for s in spans] == brute_spans(corpus, x, min_len)
            for span in spans:
                assert span["length"] >= min_len
                check_source(corpus, x, span)


def test_longest_copy_is_the_first_longest_span(cases):
    for _, cand, index, corpus, x in cases:
        best = index.longest_copy(cand)
        spans = brute_spans(corpus, x, 1)
        if not spans:
            assert best == {"length": 0, "start": None, "end": None, "source": None}
            continue
        length = max(b - a for a, b in spans)
        start = min(a for a, b in spans if b - a == length)
        assert (best["start"], best["length"]) == (start, length)
        check_source(corpus, x, best)


def test_decode_guard_equals_brute_force(cases):
    rng = np.random.default_rng(7)
    for _, cand, index, corpus, x in cases[:80]:
        vocab = max(corpus) + 2  # one id the corpus never holds
        for limit in (1, 2, 4):
            mask = index.allowed_mask(cand, vocab, limit)
            assert mask.shape == (vocab,) and mask.dtype == bool
            for c in range(vocab):
                # Brute force: the longest match ending at the appended id, from scratch.
                too_long = brute_e(corpus, x + (c,))[-1] > limit
                assert index.extends_copy_beyond(cand, c, limit) == too_long
                assert mask[c] == (not too_long)
        assert index.extends_copy_beyond(cand, int(rng.integers(vocab, 10**6)), 1) is False


def test_report_matches_the_single_measures_and_is_json(cases):
    for _, cand, index, corpus, x in cases[:50]:
        report = index.report(cand, min_span=2)
        assert json.loads(json.dumps(report)) == report
        assert report["longest_copy"] == index.longest_copy(cand)
        assert report["copied_spans"] == index.copied_spans(cand, 2)
        assert report["duplication"] == index.duplication_scores(cand).tolist()
        assert report["novel_ngram_fraction"] == index.novelty_curve(cand)
    assert cases[0][2].report(cases[0][1])["min_span"] == 10  # max(8, max_n=10)
    assert OriginalityIndex([1, 2], max_n=3).report([1, 2])["min_span"] == 8


# -- edge cases ------------------------------------------------------------------


def test_text_copied_entirely_has_novelty_zero_and_copy_its_length():
    rng = np.random.default_rng(1)
    corpus = rng.integers(0, 3, 500)
    index = OriginalityIndex(corpus)
    for start, length in ((0, 40), (123, 17), (460, 40), (499, 1)):
        piece = corpus[start:start + length]
        assert index.novelty_curve(piece, max_n=length) == [0.0] * length
        best = index.longest_copy(piece)
        assert (best["length"], best["start"], best["end"]) == (length, 0, length)
        assert index.duplication_scores(piece).tolist() == list(range(2, length + 2))


def test_unseen_id_is_novel_at_n_1():
    index = OriginalityIndex([1, 2, 3, 1, 2])
    assert index.novelty_curve([7], max_n=2) == [1.0, None]
    # 9 unseen among 5 tokens: 1/5 of unigrams, and every n-gram covering it, are novel.
    assert index.novelty_curve([1, 2, 9, 3, 1], max_n=3) == [0.2, 0.5, 1.0]
    assert index.longest_match_from([1, 2, 9, 3, 1]).tolist() == [2, 1, 0, 2, 1]
    assert index.match_ending_at([1, 2, 9, 3, 1]).tolist() == [1, 2, 0, 1, 2]
    # An id between corpus ids (4 between 3 and 5) is unseen too, not its neighbour.
    index = OriginalityIndex([1, 3, 5, 3])
    assert index.longest_match_from([3, 4, 5, 3, 2]).tolist() == [1, 0, 2, 1, 0]
    assert index.allowed_mask([3, 4], 6, 1).tolist() == [True] * 6
    assert index.allowed_mask([1, 3], 6, 1).tolist() == [True] * 5 + [False]


def test_no_match_crosses_the_end_of_the_corpus():
    index = OriginalityIndex([0, 1, 2])
    assert index.longest_match_from([1, 2, 0, 1]).tolist() == [2, 1, 2, 1]
    assert not index.extends_copy_beyond([1, 2], 0, 2)
    assert index.allowed_mask([1, 2], 3, 2).all()  # "1 2" ends the corpus: nothing follows


def test_empty_candidate_gives_empty_results():
    index = OriginalityIndex([0, 1, 0, 2])
    for ids in ([], np.zeros(0, np.int64), np.zeros(0)):
        assert index.longest_match_from(ids).shape == (0,)
        assert index.match_ending_at(ids).shape == (0,)
        assert index.duplication_scores(ids).shape == (0,)
        assert index.novelty_curve(ids) == [None] * 10
        assert index.copied_spans(ids, 1) == []
        assert index.longest_copy(ids)["length"] == 0
        assert index.report(ids)["duplication"] == []
        assert index.allowed_mask(ids, 3, 1).all()
        assert index.extends_copy_beyond(ids, 0, 1) is False


@pytest.mark.parametrize("ids, width", [
    (np.arange(70_000) % 70_000, 4),                 # > 65,536 distinct ids: 4 bytes
    (np.arange(3000) % 300 * 1000 + 7, 2),          # sparse ids: remapped to 300 codes
    (np.arange(3000) % 20 + 2**40, 1),              # ids beyond 2**32: sorted, not tabled
])
def test_wide_and_sparse_ids_are_compacted(ids, width):
    rng = np.random.default_rng(3)
    corpus = np.concatenate([ids, rng.permutation(ids)])
    index = OriginalityIndex(corpus)
    assert index._w == width
    data = corpus.astype(">u8").tobytes()
    for start in rng.integers(0, len(corpus) - 30, 20):
        cand = np.concatenate([corpus[start:start + 25], corpus[:5]])
        ms = index.longest_match_from(cand)
        for j, k in enumerate(ms):
            # Verified by an aligned byte search: cand[j:j+k] occurs and one token more does not.
            assert k >= 1 and aligned_find(data, cand[j:j + k])
            assert j + k == len(cand) or not aligned_find(data, cand[j:j + k + 1])


def aligned_find(data, piece):
    """Whether ``piece`` occurs in ``data`` (8-byte big-endian tokens) at a token boundary."""
    target, at = piece.astype(">u8").tobytes(), data.find(piece.astype(">u8").tobytes())
    while at >= 0 and at % 8:
        at = data.find(target, at + 1)
    return at >= 0


def test_ids_of_any_integer_type_and_integral_floats_are_accepted():
    index = OriginalityIndex(np.array([3, 1, 2, 3, 1], np.uint8), line_breaks={2})
    want = [2, 1, 0]
    for ids in ([3, 1, 5], (3, 1, 5), np.array([3, 1, 5], np.int32),
                np.array([3.0, 1.0, 5.0], np.float32), iter([3, 1, 5])):
        assert index.longest_match_from(ids).tolist() == want
    assert len(index) == 5


# -- bad arguments ---------------------------------------------------------------


@pytest.mark.parametrize("call, words", [
    (lambda: OriginalityIndex([]), ["corpus_ids", "at least one"]),
    (lambda: OriginalityIndex([[1, 2], [3, 4]]), ["corpus_ids", "1-D", "shape (2, 2)"]),
    (lambda: OriginalityIndex([1, -2]), ["corpus_ids", ">= 0", "-2"]),
    (lambda: OriginalityIndex([1.5, 2]), ["corpus_ids", "integer", "cast"]),
    (lambda: OriginalityIndex([True, False]), ["corpus_ids", "integer", "bool"]),
    (lambda: OriginalityIndex("abc"), ["corpus_ids", "string", "ids first"]),
    (lambda: OriginalityIndex(5), ["corpus_ids", "single integer", "[5]"]),
    (lambda: OriginalityIndex([1, 2], max_n=0), ["max_n", ">= 1"]),
    (lambda: OriginalityIndex([1, 2], line_breaks=3), ["line_breaks", "{3}"]),
    (lambda: OriginalityIndex([1, 2], line_breaks={-1}), ["line_breaks", ">= 0"]),
])
def test_bad_index_arguments_name_the_argument_and_the_fix(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("method, args, words", [
    ("longest_match_from", ([[1]],), ["ids", "1-D"]),
    ("novelty_curve", ([1, -1],), ["ids", ">= 0"]),
    ("novelty_curve", ([1], 0), ["max_n", ">= 1"]),
    ("match_ending_at", ([0.5],), ["ids", "integer"]),
    ("copied_spans", ([1, 2], 0), ["min_len", ">= 1", "shorter than 1"]),
    ("copied_spans", ([1, 2], 2.0), ["min_len", "float"]),
    ("report", ([1, 2], 0), ["min_span", ">= 1"]),
    ("extends_copy_beyond", ([1, 2], 1, 0), ["limit", ">= 1", "longest copy"]),
    ("extends_copy_beyond", ([1, 2], -1, 1), ["candidate_id", ">= 0"]),
    ("extends_copy_beyond", ("ab", 1, 1), ["context_ids", "string"]),
    ("allowed_mask", ([1, 2], 3, 0), ["limit", ">= 1"]),
    ("allowed_mask", ([1, 2], 0, 1), ["vocab_size", ">= 1"]),
])
def test_bad_query_arguments_name_the_argument_and_the_fix(method, args, words):
    index = OriginalityIndex([1, 2, 3])
    with pytest.raises(ValueError) as err:
        getattr(index, method)(*args)
    for word in words:
        assert word in str(err.value)


# -- human baseline ----------------------------------------------------------------


def test_human_baseline_is_the_novelty_curve_of_held_out_text():
    rng = np.random.default_rng(5)
    train, heldout = rng.integers(0, 4, 400), rng.integers(0, 5, 120)
    want = brute_novelty(tuple(train.tolist()), tuple(heldout.tolist()), 6)
    assert human_baseline(train, heldout, max_n=6) == want
    index = OriginalityIndex(train)
    assert human_baseline(None, heldout, max_n=6, index=index) == want
    assert human_baseline(train, heldout, max_n=6, index=index) == want
    with pytest.raises(ValueError, match="train_ids"):
        human_baseline(train[:-1], heldout, index=index)
    with pytest.raises(ValueError, match="train_ids"):
        human_baseline(None, heldout)
    with pytest.raises(ValueError, match="index must be an OriginalityIndex"):
        human_baseline(train, heldout, index="index")


# -- the real corpus -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lyrics():
    text = load_corpus_chars(num_chars=None)
    char_to_idx = {c: i for i, c in enumerate(sorted(set(text)))}
    return text, char_to_idx, np.array([char_to_idx[c] for c in text])


def test_lyrics_index_finds_a_real_line(lyrics):
    text, char_to_idx, ids = lyrics
    index = OriginalityIndex(ids, line_breaks={char_to_idx[" "]})
    assert len(index) == len(text)
    line = max(text[:3000].split(" "), key=len)  # a real lyric line (newlines became spaces)
    line_ids = [char_to_idx[c] for c in line]
    best = index.longest_copy(line_ids)
    assert best["length"] >= len(line) and best["start"] == 0
    src = best["source"]
    assert text[src["offset"]:src["offset"] + len(line)] == line
    assert line in text[src["line_start"]:src["line_end"]]
    assert " " not in text[src["line_start"]:src["line_end"]]
    assert index.novelty_curve(line_ids) == [0.0] * min(10, len(line)) + [None] * max(
        0, 10 - len(line))
    # The guard bans the line's last character after the rest of it, at limit len - 1.
    mask = index.allowed_mask(line_ids[:-1], len(char_to_idx), len(line) - 1)
    assert not mask[line_ids[-1]]
    assert index.extends_copy_beyond(line_ids[:-1], line_ids[-1], len(line) - 1)
