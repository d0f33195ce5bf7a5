"""The one decoding engine: every model, every option, several candidates as one batch.

    decoder = Decoder(lm, vocab, separator)            # a LanguageModel and its vocabulary
    candidates = decoder.generate(prefix_ids, Options(temperature=0.8, top_p=0.9), n=4, seed=1)

A candidate is a row of a batch: its prefix is read once, its state copied to the ``n``
rows, and each step runs the model once on all live rows (``lm(X (rows, 1), state)``).
Each row then chooses its next token from its own logits through the processors
(``lyricnn.decoding.processors``) with its own random generator, seeded by its own
seed (``seed + i`` for row ``i``): a candidate is the same whether it was generated
alone or beside others, in this process or another. ``Batch`` is that loop, open to
rows joining while others run (``lyricnn serve`` batches concurrent requests that way).

``beam`` keeps the ``width`` most likely continuations instead (scored by the
processed log-probabilities, divided by ``length ** length_penalty`` at the end), with
the greedy continuation riding along as one more row: beam search alone can lose the
greedy path, this way the result is never less likely than greedy's.

A candidate's ``log_prob`` is the model's own: the sum of ``log softmax`` of the raw
logits at each generated token (forced and inserted tokens included), whatever the
processors did, so it equals ``lyricnn.decoding.score`` on the same text.
"""
import dataclasses
import secrets

import numpy as np
from mxnet import nd

from lyricnn.checks import check_int, check_number
from lyricnn.decoding import processors as P


#: Longest continuation one call may ask for. Each token is one forward step, so a
#: million is already a long wait (docs/RESULTS.md, "Design measurements"); a larger
#: request is almost surely a typo.
MAX_LENGTH = 1_000_000
#: Most candidates (or beams) per prefix: each is a row of the batch.
MAX_CANDIDATES = 64
#: Tokens in a line before the separator is inserted, when lines are asked for.
LINE_LENGTH = 16
MAX_SEED = 2**63 - 1


@dataclasses.dataclass
class Options:
    """Every decoding option, with what it does; defaults change nothing (plain sampling
    at temperature 1 from the model's distribution). ``Options.greedy()`` is the book's."""

    max_tokens: int = 50            # tokens to generate (a stop ends earlier)
    temperature: float = 1.0        # 0: greedy (the argmax)
    top_k: object = None            # keep the k most likely tokens
    top_p: float = 1.0              # keep the most likely tokens holding this much mass
    min_p: float = 0.0              # keep tokens at least min_p times the most likely
    repetition_penalty: float = 1.0  # >1 discourages the last repetition_last_n tokens
    repetition_last_n: int = 64     # 0: the whole context
    presence_penalty: float = 0.0   # OpenAI's, -2..2, over the generated tokens
    frequency_penalty: float = 0.0  # OpenAI's, -2..2, per occurrence
    no_repeat_ngram: int = 0        # ban any n-gram of this size from occurring twice
    dry_multiplier: float = 0.0     # DRY strength (0: off; llama.cpp suggests 0.8)
    dry_base: float = 1.75
    dry_allowed_length: int = 2     # repeats up to this long are free
    dry_breakers: object = None     # tokens a repeat never spans (default: the separator)
    beam_width: int = 0             # >= 1: beam search of this width instead of sampling
    length_penalty: float = 1.0     # beam: score = log_prob / length ** length_penalty
    banned: tuple = ()              # token ids never generated
    stop: tuple = ()                # strings that end a candidate (not included)
    lines: int = 0                  # end after this many line ends (0: no limit)
    line_length: int = LINE_LENGTH  # with lines or an acrostic: longest line, in tokens
    acrostic: tuple = ()            # token ids: each new line starts with the next one
    max_copy: int = 0               # longest verbatim copy of the training text (0: off)
    logprobs: int = 0               # report the top N alternatives of each token (<= 5)

    @classmethod
    def greedy(cls, **changes):
        return cls(temperature=0.0, **changes)

    def checked(self, vocab_size):
        """These options, each checked (``ValueError`` naming the field and the fix), with
        tuples for sequences."""
        c = dataclasses.replace(self)
        c.max_tokens = check_int("max_tokens", c.max_tokens, 0, MAX_LENGTH)
        c.temperature = check_number("temperature", c.temperature, 0,
                                     hint="0 is greedy, 1 the model's own distribution")
        if c.top_k is not None:
            c.top_k = check_int("top_k", c.top_k, 1, hint="1 is greedy")
        c.top_p = check_number("top_p", c.top_p, 0, 1, low_open=True,
                               hint="1 keeps every token")
        c.min_p = check_number("min_p", c.min_p, 0, 1, hint="0 keeps every token")
        c.repetition_penalty = check_number("repetition_penalty", c.repetition_penalty, 0,
                                            low_open=True, hint="1 is no penalty")
        c.repetition_last_n = check_int("repetition_last_n", c.repetition_last_n, 0)
        c.presence_penalty = check_number("presence_penalty", c.presence_penalty, -2, 2)
        c.frequency_penalty = check_number("frequency_penalty", c.frequency_penalty, -2, 2)
        c.no_repeat_ngram = check_int("no_repeat_ngram", c.no_repeat_ngram, 0)
        c.dry_multiplier = check_number("dry_multiplier", c.dry_multiplier, 0)
        c.dry_base = check_number("dry_base", c.dry_base, 1, 8)
        c.dry_allowed_length = check_int("dry_allowed_length", c.dry_allowed_length, 1)
        c.beam_width = check_int("beam_width", c.beam_width, 0, MAX_CANDIDATES)
        c.length_penalty = check_number("length_penalty", c.length_penalty, 0, 10)
        c.lines = check_int("lines", c.lines, 0, MAX_LENGTH)
        c.line_length = check_int("line_length", c.line_length, 1, MAX_LENGTH)
        c.max_copy = check_int("max_copy", c.max_copy, 0)
        c.logprobs = check_int("logprobs", c.logprobs, 0, 5)
        c.banned = tuple(_ids("banned", c.banned, vocab_size))
        c.acrostic = tuple(_ids("acrostic", c.acrostic, vocab_size))
        if c.dry_breakers is not None:
            c.dry_breakers = tuple(_ids("dry_breakers", c.dry_breakers, vocab_size))
        if len(set(c.banned)) >= vocab_size:
            raise ValueError("banned bans every token of the vocabulary; leave at least one")
        stop = (c.stop,) if isinstance(c.stop, str) else tuple(c.stop)
        if len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"stop must be at most 4 non-empty strings, got {c.stop!r}")
        c.stop = stop
        return c


def _ids(name, ids, vocab_size):
    ids = list(ids)
    for i in ids:
        check_int(name, i, 0, vocab_size - 1, hint="token ids of the model's vocabulary")
    return [int(i) for i in ids]


@dataclasses.dataclass
class Candidate:
    """One continuation: its tokens (ids) and text, the model's log-probability of those
    tokens given the prefix, its seed (``None`` for beam search), why it ended
    (``'length'`` or ``'stop'``), and, when asked, each token's top alternatives."""

    tokens: list
    text: str
    log_prob: float
    seed: object
    finish_reason: str
    token_log_probs: list
    top_logprobs: list = None


class Vocabulary:
    """What decoding needs of a vocabulary: ``idx_to_token``, the line ``separator`` id
    (or ``None``) and the ``joiner`` put between tokens (characters: none; whitespace
    words: a space). A separator that is a symbol, not a character (``<eos>``), is
    written as a newline."""

    def __init__(self, idx_to_token, separator=None, joiner=""):
        self.idx_to_token, self.separator, self.joiner = list(idx_to_token), separator, joiner

    def __len__(self):
        return len(self.idx_to_token)

    def piece(self, token, previous):
        """The text ``token`` adds after the text so far, whose last piece was
        ``previous`` (``None`` at the start)."""
        text = self.idx_to_token[token]
        if token == self.separator and len(text) > 1:
            return "\n"
        if previous is None or previous == "\n" or not self.joiner:
            return text
        return self.joiner + text


class _Row:
    """One candidate being generated."""

    def __init__(self, prefix, options, seed, vocab, index=None):
        self.options, self.seed, self.vocab, self.index = options, seed, vocab, index
        self.context = list(prefix)            # prefix + generated ids
        self.generated, self.pieces, self.token_log_probs, self.top = [], [], [], []
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.finish_reason = None
        self.stop_at = None                    # text length where a stop string begins
        sep = vocab.separator
        # Lines: count tokens since the last separator; an acrostic line is next when the
        # context is empty or ends with the separator.
        self.line_tokens = next((i for i, t in enumerate(reversed(self.context)) if t == sep),
                                len(self.context))
        self.acrostic_next = 0
        self.lines_done = 0
        self.log_prob = 0.0
        # The text continues the prefix's: a word after a prefix word takes the joiner.
        self.prefix_piece = vocab.piece(self.context[-1], None) if self.context else None

    @property
    def lines_mode(self):
        return bool(self.options.lines or self.options.acrostic)

    def processed(self, raw):
        """The row's logits after bans and penalties (a float64 copy of ``raw``)."""
        o, sep, z = self.options, self.vocab.separator, np.array(raw, dtype=np.float64)
        forced = self.forced_token()
        P.ban(z, o.banned)
        if o.no_repeat_ngram:
            P.ban(z, P.no_repeat_ngram_bans(self.context, o.no_repeat_ngram))
        if o.max_copy and self.index is not None:
            z[~self.index.allowed_mask(self.generated, len(z), o.max_copy)] = P.NEG_INF
        P.repetition_penalty(z, self.context, o.repetition_penalty, o.repetition_last_n)
        P.presence_frequency_penalty(z, self.generated, o.presence_penalty,
                                     o.frequency_penalty)
        breakers = o.dry_breakers if o.dry_breakers is not None else (
            () if sep is None else (sep,))
        P.dry_penalty(z, self.context, o.dry_multiplier, o.dry_base, o.dry_allowed_length,
                      breakers)
        if forced is not None:
            P.force(z, forced)
        return z

    def forced_token(self):
        o, sep = self.options, self.vocab.separator
        if not self.lines_mode:
            return None
        at_line_start = not self.context or self.context[-1] == sep
        if o.acrostic and at_line_start and self.acrostic_next < len(o.acrostic):
            return o.acrostic[self.acrostic_next]
        if sep is not None and self.line_tokens >= o.line_length:
            return sep
        return None

    def choose(self, raw):
        """The next token from the model's ``raw`` logits ``(V,)``; ``None`` when every
        token is banned (the row then ends)."""
        o = self.options
        z = self.processed(raw)
        if not np.isfinite(z).any():
            return None
        if o.temperature == 0 or self.rng is None:
            return P.select(z)
        uniform = self.rng.random()       # one draw per token, whatever is truncated
        P.scale(z, o.temperature)
        P.truncate(z, o.top_k, o.top_p, o.min_p)
        return P.select(z, uniform)

    def append(self, token, raw_log_probs):
        """Add ``token``; record its log-probability and alternatives; end the row if a
        line limit, the acrostic or a stop string says so."""
        o, sep = self.options, self.vocab.separator
        if o.acrostic and self.acrostic_next < len(o.acrostic) and token == \
                o.acrostic[self.acrostic_next] and (not self.context or self.context[-1] == sep):
            self.acrostic_next += 1          # this line starts with the acrostic's next token
        self.generated.append(token)
        self.context.append(token)
        lp = float(raw_log_probs[token])
        self.token_log_probs.append(lp)
        self.log_prob += lp
        if o.logprobs:
            best = np.argsort(-raw_log_probs, kind="stable")[:o.logprobs]
            self.top.append({int(t): float(raw_log_probs[t]) for t in best})
        previous = self.pieces[-1] if self.pieces else self.prefix_piece
        self.pieces.append(self.vocab.piece(token, previous))
        if token == sep:
            self.line_tokens = 0
            self.lines_done += 1
            if (o.lines and self.lines_done >= o.lines) or (
                    o.acrostic and self.acrostic_next == len(o.acrostic)):
                return self.finish("stop", drop_last=True)
        else:
            self.line_tokens += 1
        if o.stop:
            text = "".join(self.pieces)
            found = [text.find(s) for s in o.stop if s in text]
            if found:
                self.stop_at = min(found)
                return self.finish("stop")
        if len(self.generated) >= o.max_tokens:
            self.finish("length")

    def finish(self, reason, drop_last=False):
        self.finish_reason = reason
        if drop_last:   # a line end that ends the text is not part of it
            self._truncate(len(self.generated) - 1)

    def _truncate(self, n):
        self.generated, self.pieces = self.generated[:n], self.pieces[:n]
        self.token_log_probs, self.top = self.token_log_probs[:n], self.top[:n]
        self.log_prob = float(np.sum(self.token_log_probs))

    def candidate(self):
        text = "".join(self.pieces)
        if self.stop_at is not None:
            # Keep the tokens wholly before the stop string; the text is cut at its start.
            end, kept = 0, 0
            for piece in self.pieces:
                if end + len(piece) > self.stop_at:
                    break
                end, kept = end + len(piece), kept + 1
            self._truncate(kept)
            text = text[:self.stop_at]
        return Candidate(list(self.generated), text, float(self.log_prob), self.seed,
                         self.finish_reason or "length", list(self.token_log_probs),
                         list(self.top) if self.options.logprobs else None)


class Batch:
    """Rows being generated together: each ``step`` runs the model once on every live row.

    ``add`` may be called between steps (requests joining a running batch);
    ``step`` returns ``[(row, token), ...]`` for the tokens chosen this step, and moves
    rows that ended to ``finished``.
    """

    def __init__(self, lm):
        self.lm, self.rows, self.state, self.logits = lm, [], None, None
        self.finished = []

    def add(self, rows, state, logits):
        """Rows with their ``state`` (a batch of ``len(rows)``) and next-token ``logits``
        ``(len(rows), V)`` (NumPy), from ``Decoder.prefill``."""
        if not rows:
            return
        if self.rows:
            self.state = self.lm.join_states([self.state, state])
            self.logits = np.concatenate([self.logits, logits])
        else:
            self.state, self.logits = state, logits
        self.rows.extend(rows)

    def __len__(self):
        return len(self.rows)

    def step(self):
        if not self.rows:
            return []
        log_probs = P.log_softmax(self.logits)            # (rows, V), the model's own
        chosen, events = [], []
        for row, raw, lp in zip(self.rows, self.logits, log_probs):
            if row.options.max_tokens == 0:
                row.finish("length")
                chosen.append(None)
                continue
            token = row.choose(raw)
            if token is None:                             # everything banned: end here
                row.finish("stop")
            else:
                row.append(token, lp)
                events.append((row, token))
            chosen.append(token)
        live = [i for i, row in enumerate(self.rows) if row.finish_reason is None]
        self.finished.extend(row for row in self.rows if row.finish_reason is not None)
        if not live:
            self.rows, self.state, self.logits = [], None, None
            return events
        if len(live) < len(self.rows):
            self.state = self.lm.take_state(self.state, live)
        self.rows = [self.rows[i] for i in live]
        X = nd.array([[chosen[i]] for i in live], ctx=self.lm.ctx)      # (rows, 1)
        logits, self.state = self.lm(X, self.state)                    # (rows, V)
        self.logits = _checked_logits(logits.asnumpy())
        return events

    def cancel(self, rows):
        """Drop ``rows`` (a client went away): they end with ``finish_reason`` 'cancelled'."""
        keep = [i for i, row in enumerate(self.rows) if row not in rows]
        for row in self.rows:
            if row in rows:
                row.finish_reason = "cancelled"
        if len(keep) == len(self.rows):
            return
        self.state = self.lm.take_state(self.state, keep) if keep else None
        self.logits = self.logits[keep] if keep else None
        self.rows = [self.rows[i] for i in keep]


def _checked_logits(logits):
    if np.isnan(logits).any():
        raise ValueError("the model's outputs are NaN: its parameters hold NaN or inf (a "
                         "diverged training run?); retrain or load a good checkpoint")
    return logits


class Decoder:
    """Decoding for one model: ``lm`` (a ``LanguageModel``), its ``vocab``
    (``Vocabulary``) and, for ``max_copy``, an index of its training text
    (``lyricnn.decoding.originality.OriginalityIndex``)."""

    def __init__(self, lm, vocab, index=None):
        if len(vocab) != lm.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocab)} tokens, the model "
                             f"{lm.vocab_size}; pass the model's own vocabulary")
        self.lm, self.vocab, self.index = lm, vocab, index

    def prefill(self, prefix, copies=1):
        """Read ``prefix`` (ids) once: ``(state, logits)`` for ``copies`` rows, ``logits``
        ``(copies, V)`` the next token's. An empty prefix reads the separator (the start
        of a line), or token 0 if there is none."""
        lm = self.lm
        ids = list(prefix) or [self.vocab.separator if self.vocab.separator is not None else 0]
        state = lm.begin_state(1)
        # One token per call, as the book's predict_rnn: the same numbers as it.
        for token in ids:
            logits, state = lm(nd.array([[token]], ctx=lm.ctx), state)   # (1, V)
        logits = _checked_logits(logits.asnumpy())
        if copies > 1:
            state = lm.take_state(state, [0] * copies)
            logits = np.repeat(logits, copies, axis=0)
        return state, logits

    def rows(self, prefix, options, n=1, seed=None):
        """``n`` rows for ``prefix`` with seeds ``seed, seed + 1, …`` (random ones when
        ``seed`` is None; none for greedy, which draws nothing)."""
        n = check_int("n", n, 1, MAX_CANDIDATES)
        if seed is None and options.temperature > 0:
            seed = secrets.randbelow(MAX_SEED - MAX_CANDIDATES)
        elif seed is not None:
            seed = check_int("seed", seed, 0, MAX_SEED - MAX_CANDIDATES)
        seeds = [None if options.temperature == 0 else seed + i for i in range(n)]
        return [_Row(prefix, options, s, self.vocab, self.index) for s in seeds]

    def generate(self, prefix, options=None, n=1, seed=None, should_stop=None):
        """``n`` candidates continuing ``prefix`` (token ids), as one batch; beam search
        when ``options.beam_width``. ``should_stop()``, polled every step, ends them early."""
        options = (options or Options()).checked(self.lm.vocab_size)
        if options.max_copy and self.index is None:
            raise ValueError("max_copy needs an index of the training text: build the "
                             "Decoder with index=OriginalityIndex(training ids)")
        prefix = self.check_prefix(prefix)
        if options.beam_width:
            return self.beam(prefix, options, n, should_stop)
        rows = self.rows(prefix, options, n, seed)
        batch = Batch(self.lm)
        batch.add(rows, *self.prefill(prefix, len(rows)))
        while len(batch):
            if should_stop is not None and should_stop():
                break
            batch.step()
        return [row.candidate() for row in rows]

    def check_prefix(self, prefix):
        ids = list(prefix)
        for i in ids:
            check_int("prefix", i, 0, self.lm.vocab_size - 1,
                      hint="token ids of the model's vocabulary")
        return [int(i) for i in ids]

    def beam(self, prefix, options, n=1, should_stop=None):
        """The ``n`` best of beam search of ``options.beam_width`` beams (``n`` at most the
        width), best first, by ``log_prob / length ** length_penalty`` over the processed
        log-probabilities; sampling options are not used."""
        width = options.beam_width
        n = check_int("n", n, 1, width, hint="beam search returns at most beam_width")
        greedy = dataclasses.replace(options, temperature=0.0)
        rows = [_Row(prefix, greedy, None, self.vocab, self.index)]     # the greedy path
        beams = [(0.0, _Row(prefix, greedy, None, self.vocab, self.index))]
        state, logits = self.prefill(prefix, 2)
        state = self.lm.take_state(state, [0, 1])
        done, greedy_score = [], 0.0
        # Row 0 is greedy, rows 1.. the beams; their processed scores are accumulated here.
        while True:
            if should_stop is not None and should_stop():
                break
            log_probs = P.log_softmax(logits)
            expansions = []
            g = rows[0]
            if g.finish_reason is None:
                z = g.processed(logits[0])
                if not np.isfinite(z).any():
                    g.finish("stop")
                else:
                    token = int(np.argmax(z))
                    greedy_score += P.log_softmax(z)[token]
                    g.append(token, log_probs[0])
            for b, (score, row) in enumerate(beams):
                z = P.log_softmax(row.processed(logits[b + 1]))
                for token in np.argsort(-z, kind="stable")[:width]:
                    if np.isfinite(z[token]):
                        expansions.append((score + z[token], b, int(token)))
            expansions.sort(key=lambda e: -e[0])
            new_beams, origins = [], []
            for score, b, token in expansions:
                if len(new_beams) == width:
                    break
                row = _clone(beams[b][1])
                row.append(token, log_probs[b + 1])
                if row.finish_reason is not None:
                    done.append((score, row))
                    if len(done) >= width:
                        break
                    continue
                new_beams.append((score, row))
                origins.append(b + 1)
            if len(done) >= width or not new_beams:
                beams = new_beams
                break
            live_greedy = g.finish_reason is None
            beams = new_beams
            take = [0] + origins
            state = self.lm.take_state(state, take)
            tokens = [g.generated[-1] if live_greedy else 0] + [r.generated[-1] for _, r in beams]
            out, state = self.lm(nd.array([[t] for t in tokens], ctx=self.lm.ctx), state)
            logits = _checked_logits(out.asnumpy())
        done.extend(beams)
        if rows[0].finish_reason is None:
            rows[0].finish("length")
        processed = [(s, r) for s, r in done]
        processed.append((greedy_score, rows[0]))
        alpha = options.length_penalty

        def normalised(entry):
            score, row = entry
            return score / max(len(row.generated), 1) ** alpha
        ranked = sorted(processed, key=normalised, reverse=True)
        seen, out = set(), []
        for _, row in ranked:
            key = tuple(row.generated)
            if key not in seen:
                seen.add(key)
                out.append(row.candidate())
        return out[:n]


def _clone(row):
    copy = _Row.__new__(_Row)
    copy.__dict__.update(row.__dict__)
    for name in ("context", "generated", "pieces", "token_log_probs", "top"):
        setattr(copy, name, list(getattr(row, name)))
    return copy
