"""Adaptive softmax (Grave, Joulin, Cissé, Grangier, Jégou 2017, "Efficient softmax
approximation for GPUs", ICML): a word-level output layer whose cost follows Zipf's law.

**What it computes.** The vocabulary, sorted by frequency rank, is cut at
``cutoffs = (c_1, ..., c_k)`` into a *head* ``[0, c_1)`` and ``k`` tail clusters
``C_i = [c_i, c_{i+1})`` (``c_{k+1} = V``) of ``n_i = c_{i+1} - c_i`` words. The head is
a softmax over ``c_1 + k`` classes: the shortlist's words and one class per tail
cluster. Each tail cluster ``i`` has its own softmax over its words, computed from a
projection of the hidden vector to ``d_i = max(1, d // div_value**i)`` dimensions
(rarer clusters get smaller vectors: they are seen less, so they need fewer
parameters, and they cost less). The model is an exact distribution over all
``V`` words, factorised in two levels::

    p(w | h) = softmax(head(h))[w]                                   w in the head
    p(w | h) = softmax(head(h))[c_1 + i - 1] * softmax(tail_i(h))[w - c_i]   w in C_i

    head(h)   = W_head h + b_head                    (c_1 + k,)   W_head: (c_1 + k, d)
    tail_i(h) = W_i (P_i h) + b_i                    (n_i,)       P_i: (d_i, d), W_i: (n_i, d_i)

``log_prob`` gives all ``V`` log-probabilities (rows sum to 1, in the vocabulary's
own order); ``loss_sum`` the summed negative log-likelihood of the targets without
ever forming the ``(N, V)`` matrix. ``order`` says which word has which rank, so the
vocabulary itself need not be sorted by frequency.

**Cost per token** (multiply-adds of the forward pass; the backward pass costs about
twice as much in both cases, so the ratio holds for training). A full softmax over
``V`` words from ``d`` units: ``d V``. The training loss here: every token pays the
head, and only the tokens whose target lies in cluster ``i`` (a fraction ``p_i``)
pay for that cluster::

    d (c_1 + k)  +  sum_i p_i (d d_i + d_i n_i)

On Penn Treebank (V = 10000, d = 650, cutoffs (2000, 6000), div_value 4: d_1 = 162,
d_2 = 40; the 2000 most frequent words are 86.9 % of the training tokens, the next
4000 9.9 %, the rest 3.2 %): 1.30M + 0.099 * 0.75M + 0.032 * 0.19M = 1.38M against
6.5M, 4.7 times fewer. The head dominates, so ``c_1`` is the main knob. ``log_prob``
pays every cluster for every row, ``d (c_1 + k) + sum_i (d d_i + d_i n_i)`` (2.24M
here): it is for evaluation and sampling, not training.

**How it combines with tied weights** (Press & Wolf 2017). With ``tied`` (the
embedding matrix ``E``, ``(V, d)``), every word's output vector is its embedding row:
the head's ``c_1`` shortlist rows of ``W_head`` *are* the embedding rows of those
words (the head keeps its own weights only for its ``k`` cluster classes, and its
bias), and cluster ``i``'s ``W_i`` is the embedding rows of its words (plus its own
bias). Those rows are ``d`` wide, so a tied cluster cannot use a reduced projection
of width ``d_i < d``: its projection ``P_i`` is square, ``d x d`` (no reduction,
``div_value`` unused), and its cost per token becomes ``d^2 + d n_i`` (1.70M per
token on PTB above: 3.8 times fewer than 6.5M). The embedding's Parameter is used
itself, not copied, so the gradients of both uses add up in it.

**Training fast** (``loss_and_gradients`` / ``loss_and_backward``). ``loss_sum`` is the
differentiable definition; training should use the fast path, equal to it to rounding
(tests). MXNet's profiler on one step of ``loss_sum`` + ``backward`` put much of it
outside the products: the tied word rows' slices (``slice_axis``, whose backward fills a
dense ``(V, d)`` array per cluster, then ``add_n`` of them), ``log_softmax``'s native
backward, ``pick``'s, and five host uploads, each waiting for the engine's queue to
drain. The fast path computes the same logits (the embedding's rows as views of its
memory, their gradient written in place into one ``(V, d)`` array), the logits' gradient
directly (``softmax - onehot``) and one ``autograd.backward``, so that what remains is
the products (oneDNN's). A model that owns both uses of the tied embedding can go one
step further (``write_tied``, which ``WordLM`` uses): this block writes the embedding's
gradient itself and the lookup adds to it, with no dense lookup gradient to sum. The
measurements behind both: docs/RESULTS.md ("Design measurements"; issue 23's sections).

Parameters are ordinary Gluon parameters, initialised by the enclosing model's
``initialize(init=...)`` (lyricnn's word model: U(-0.1, 0.1), biases zero).
"""
import numbers

import numpy as np
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

from lyricnn.checks import check_choice, check_indices, check_int, check_number

__all__ = ["AdaptiveSoftmax"]


def _example_cutoffs(vocab_size):
    """A valid ``cutoffs`` for this vocabulary, for error messages: (V/5, 3V/5)."""
    return tuple(sorted({max(1, vocab_size // 5), max(1, 3 * vocab_size // 5)}))


def _check_cutoffs(cutoffs, vocab_size):
    example = _example_cutoffs(vocab_size)
    rule = (f"a non-empty sequence of strictly increasing integers c_1 < ... < c_k with "
            f"0 < c_1 and c_k < vocab_size={vocab_size}")
    if isinstance(cutoffs, np.ndarray) and cutoffs.ndim == 1:
        cutoffs = cutoffs.tolist()
    if not isinstance(cutoffs, (list, tuple, range)) or len(cutoffs) == 0:
        raise ValueError(f"cutoffs must be {rule}, got {cutoffs!r}; e.g. {example}")
    # check_int refuses bools and floats and names the position.
    hint = (f"in cutoffs={tuple(cutoffs)!r}: 0 < c_1 < ... < c_k < vocab_size={vocab_size}, "
            f"e.g. {example}")
    values = tuple(check_int(f"cutoffs[{i}]", c, minimum=1, maximum=vocab_size - 1, hint=hint)
                   for i, c in enumerate(cutoffs))
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"cutoffs must be strictly increasing and below "
                         f"vocab_size={vocab_size}, got {tuple(cutoffs)!r}; e.g. {example}")
    return values


def _check_order(order, vocab_size):
    """``rank_of_index`` (int64, ``(V,)``) for ``order`` (``order[r]`` = the index of
    the word of rank ``r``), or ``None`` for the identity."""
    if order is None:
        return None
    what = (f"order must be a permutation of range(vocab_size={vocab_size}) (order[r] = the "
            "index of the word of frequency rank r)")
    hint = "e.g. np.argsort(-counts, kind='stable') for per-index counts"
    if isinstance(order, (str, bytes)) or isinstance(order, numbers.Number):
        raise ValueError(f"{what}, got {order!r}; {hint}")
    if hasattr(order, "asnumpy"):  # an NDArray
        order = order.asnumpy()
    arr = np.asarray(order)
    if arr.shape != (vocab_size,):
        raise ValueError(f"{what}, got shape {arr.shape}; {hint}")
    if arr.dtype.kind not in "iu":  # floats, bools, strings: not indices
        raise ValueError(f"{what}, got dtype {arr.dtype} (first values {arr[:5].tolist()}); "
                         f"{hint}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= vocab_size:
        raise ValueError(f"{what}, got values in [{arr.min()}, {arr.max()}]; {hint}")
    if not np.array_equal(np.sort(arr), np.arange(vocab_size)):
        missing = np.setdiff1d(np.arange(vocab_size), arr)[:5].tolist()
        raise ValueError(f"{what}, got one that repeats some indices and misses {missing}; "
                         f"{hint}")
    rank_of_index = np.empty(vocab_size, dtype=np.int64)
    rank_of_index[arr] = np.arange(vocab_size)
    return rank_of_index


def _check_tied(tied, vocab_size, in_units):
    if tied is None:
        return None
    want = (vocab_size, in_units)
    if not isinstance(tied, gluon.Parameter):
        raise ValueError(f"tied must be None or the embedding's gluon Parameter of shape "
                         f"(vocab_size, in_units)={want}, got an object of type "
                         f"{type(tied).__name__}; pass embedding.weight")
    if tuple(tied.shape) != want:
        raise ValueError(f"tied must have shape (vocab_size, in_units)={want}, got shape "
                         f"{tuple(tied.shape)} ({tied.name}); tie to an "
                         f"Embedding({vocab_size}, {in_units})")
    return tied


class AdaptiveSoftmax(gluon.Block):
    """Adaptive softmax over ``vocab_size`` words from ``in_units``-wide hidden vectors.

    ``cutoffs``: strictly increasing ranks ``0 < c_1 < ... < c_k < vocab_size``: the
    head shortlist ``[0, c_1)`` and the tail clusters ``[c_1, c_2), ..., [c_k, V)``.
    ``div_value`` (>= 1): cluster ``i`` projects to ``max(1, in_units // div_value**i)``
    units. ``order`` (optional, length ``vocab_size``, a permutation):
    ``order[r]`` is the vocabulary index of the word of frequency rank ``r``; default
    the identity (the vocabulary is already sorted by frequency). ``tied`` (optional):
    the embedding's ``Parameter`` ``(vocab_size, in_units)``, whose rows then serve as
    every word's output vector (see the module docstring: tail projections are then
    square). A plain ``Block``: the loss selects rows per batch, which a hybridized
    graph cannot.

    ``log_prob(h)``: ``(N, in_units) -> (N, vocab_size)`` log-probabilities in the
    vocabulary's order. ``loss_sum(h, targets)``: ``(N, in_units), (N,) -> (1,)``, the
    summed negative log-likelihood, differentiable; calling the block is ``loss_sum``.
    ``loss_and_gradients(h, targets)`` / ``loss_and_backward(h, targets)``: the same loss
    and its gradient, fast, for training (the module docstring).
    """

    def __init__(self, vocab_size, in_units, cutoffs, div_value=4.0, order=None, tied=None,
                 **kwargs):
        vocab_size = check_int("vocab_size", vocab_size, minimum=2,
                               hint="a head word and a tail cluster need two words at least")
        in_units = check_int("in_units", in_units)
        cutoffs = _check_cutoffs(cutoffs, vocab_size)
        div_value = check_number("div_value", div_value, minimum=1,
                                 hint="cluster i gets in_units // div_value**i units; "
                                      "4.0 is Grave et al.'s")
        rank_of_index = _check_order(order, vocab_size)
        tied = _check_tied(tied, vocab_size, in_units)
        super().__init__(**kwargs)
        self.vocab_size, self.in_units, self.cutoffs = vocab_size, in_units, cutoffs
        self.div_value = div_value
        self.head_size = cutoffs[0] + len(cutoffs)          # shortlist + one class per cluster
        bounds = cutoffs + (vocab_size,)
        #: ``[(first rank, end rank)]`` of each tail cluster.
        self.clusters = list(zip(bounds[:-1], bounds[1:]))
        self._rank_of_index = rank_of_index               # numpy int64 (V,) or None
        self._order = None if rank_of_index is None else np.argsort(rank_of_index)
        self._index_cache = {}                            # (what, ctx) -> NDArray
        # Kept by name, not as an attribute (Gluon would register it, and a model's
        # save_parameters would save the embedding twice); but in self.params, so
        # initialize, cast and collect_params of this block reach it.
        self._tied_name = None if tied is None else tied.name
        if tied is not None:
            self.params.update({tied.name: tied})
        #: Width of each tail cluster's projection: reduced untied, ``in_units`` tied.
        self.tail_units = [in_units if tied is not None
                           else max(1, int(in_units // div_value ** i))
                           for i in range(1, len(cutoffs) + 1)]
        self._projections, self._outputs, self._tail_biases = [], [], []
        with self.name_scope():
            if tied is None:
                self.head = nn.Dense(self.head_size, in_units=in_units, prefix="head_")
            else:
                # Only the k cluster classes have weights of their own; the shortlist's
                # rows are the embedding's.
                self.head_weight = self.params.get("head_weight",
                                                   shape=(len(cutoffs), in_units))
                self.head_bias = self.params.get("head_bias", shape=(self.head_size,),
                                                 init="zeros")
            for i, ((lo, hi), units) in enumerate(zip(self.clusters, self.tail_units), 1):
                proj = nn.Dense(units, in_units=in_units, use_bias=False,
                                prefix=f"tail{i}_proj_")
                setattr(self, f"tail{i}_proj", proj)
                self._projections.append(proj)
                if tied is None:
                    out = nn.Dense(hi - lo, in_units=units, prefix=f"tail{i}_out_")
                    setattr(self, f"tail{i}_out", out)
                    self._outputs.append(out)
                else:
                    bias = self.params.get(f"tail{i}_bias", shape=(hi - lo,), init="zeros")
                    setattr(self, f"tail{i}_bias", bias)
                    self._tail_biases.append(bias)

    # ------------------------------------------------------------------ pieces

    @property
    def tied(self):
        """The embedding's ``Parameter`` this block's word vectors are, or ``None``."""
        return None if self._tied_name is None else self.params[self._tied_name]

    def _cached(self, what, values, ctx):
        """``values`` (host int64) as an NDArray on ``ctx``, made once per context."""
        key = (what, ctx)
        if key not in self._index_cache:
            self._index_cache[key] = nd.array(values, ctx=ctx, dtype="int64")
        return self._index_cache[key]

    def _word_rows(self, lo, hi, ctx):
        """The embedding rows of the words of ranks ``[lo, hi)``: ``(hi - lo, in_units)``."""
        emb = self.tied.data(ctx)
        if self._order is None:  # ranks are indices: a slice, no gather
            return nd.slice_axis(emb, axis=0, begin=lo, end=hi)
        return nd.take(emb, self._cached(("rows", lo, hi), self._order[lo:hi], ctx))

    def _head_logits(self, h):
        """``(N, in_units) -> (N, c_1 + k)``: shortlist words, then one logit per cluster."""
        if self.tied is None:
            return self.head(h)
        ctx = h.context
        # (c_1 + k, in_units): the shortlist's embedding rows, then the cluster classes'
        weight = nd.concat(self._word_rows(0, self.cutoffs[0], ctx),
                           self.head_weight.data(ctx), dim=0)
        return nd.FullyConnected(h, weight, self.head_bias.data(ctx),
                                 num_hidden=self.head_size)

    def _tail_logits(self, i, h):
        """Cluster ``i``'s (0-based) logits for the rows ``h``: ``(n, in_units) -> (n, n_i)``."""
        z = self._projections[i](h)                    # (n, d_i)
        if self.tied is None:
            return self._outputs[i](z)
        lo, hi = self.clusters[i]
        ctx = h.context
        return nd.FullyConnected(z, self._word_rows(lo, hi, ctx),
                                 self._tail_biases[i].data(ctx), num_hidden=hi - lo)

    def _targets(self, h, targets):
        """``targets`` checked against ``h``: their ranks (host int64 ``(N,)``) and cluster
        of each (0 for the head, ``i`` for tail cluster ``i``, 1-based)."""
        n = h.shape[0]
        targets = check_indices("targets", targets, self.vocab_size).astype(np.int64)
        if targets.shape != (n,):
            raise ValueError(f"targets must hold one index per row of h (N={n}), got shape "
                             f"{targets.shape}")
        ranks = targets if self._rank_of_index is None else self._rank_of_index[targets]
        return ranks, np.searchsorted(np.asarray(self.cutoffs), ranks, side="right")

    def _check_h(self, h):
        if not isinstance(h, nd.NDArray) or h.ndim != 2 or h.shape[1] != self.in_units \
                or h.shape[0] == 0:
            shape = getattr(h, "shape", None)
            raise ValueError(f"h must be an NDArray of shape (N, in_units={self.in_units}) "
                             f"with N >= 1, got {type(h).__name__} of shape {shape}; flatten "
                             "the time and batch axes first (h.reshape((-1, in_units)))")

    # ------------------------------------------------------------------ API

    def log_prob(self, h):
        """``(N, in_units) -> (N, vocab_size)``: every word's exact log-probability, in the
        vocabulary's own order (``order`` undone); ``exp`` of a row sums to 1."""
        self._check_h(h)
        c1 = self.cutoffs[0]
        head = nd.log_softmax(self._head_logits(h), axis=1)        # (N, c_1 + k)
        parts = [nd.slice_axis(head, axis=1, begin=0, end=c1)]     # (N, c_1)
        for i in range(len(self.clusters)):
            # log p(w) = log p(cluster) + log p(w | cluster): (N, 1) + (N, n_i)
            cluster = nd.slice_axis(head, axis=1, begin=c1 + i, end=c1 + i + 1)
            parts.append(nd.broadcast_add(cluster,
                                          nd.log_softmax(self._tail_logits(i, h), axis=1)))
        by_rank = nd.concat(*parts, dim=1)                         # (N, V), rank order
        if self._rank_of_index is None:
            return by_rank
        # Column j (word index j) is the column of j's rank.
        return nd.take(by_rank, self._cached("rank_of_index", self._rank_of_index, h.context),
                       axis=1)

    def loss_sum(self, h, targets):
        """``(N, in_units), (N,) -> (1,)``: ``-sum_n log p(targets[n] | h[n])``.

        Every row pays the head; cluster ``i`` is computed only for the rows whose target
        lies in it (found on the host from ``targets``, which come from host data
        anyway), so no ``(N, V)`` matrix is formed. Differentiable under
        ``autograd.record()`` w.r.t. ``h`` and every parameter (the tied embedding too).
        """
        self._check_h(h)
        ranks, cluster = self._targets(h, targets)
        c1, ctx = self.cutoffs[0], h.context
        head_target = np.where(cluster == 0, ranks, c1 + cluster - 1)
        head = nd.log_softmax(self._head_logits(h), axis=1)       # (N, c_1 + k)
        loss = -nd.sum(nd.pick(head, nd.array(head_target, ctx=ctx, dtype="int64"), axis=1))
        for i, (lo, _) in enumerate(self.clusters):
            rows = np.flatnonzero(cluster == i + 1)
            if rows.size == 0:  # MXNet has no empty arrays; nothing to add anyway
                continue
            h_i = nd.take(h, nd.array(rows, ctx=ctx, dtype="int64"))      # (n_i rows, d)
            tail = nd.log_softmax(self._tail_logits(i, h_i), axis=1)      # (rows, n_i)
            local = nd.array(ranks[rows] - lo, ctx=ctx, dtype="int64")
            loss = loss - nd.sum(nd.pick(tail, local, axis=1))
        return loss.reshape((1,))

    def loss_and_gradients(self, h, targets, write_tied=False):
        """``loss_sum``'s value and gradient, fast: ``(N, in_units), (N,) -> (loss, heads,
        grads)``, for training.

        ``loss`` is ``loss_sum(h, targets)`` (``(1,)``, not differentiable). The block's own
        parameters receive their gradients here (written or added per their ``grad_req``,
        as ``loss_sum(...).backward()`` would; a cluster without targets gets zeros). What
        flows further back is returned: ``heads`` is ``[h]``, plus the tied embedding's
        array if there is one, and ``grads`` their gradients; pass them, with any other
        terms of the caller's loss, to one ``autograd.backward(heads + ..., grads + ...)``
        (``h`` must be recorded: computed under ``autograd.record()``, or
        ``attach_grad``'ed). The tied embedding's gradient then adds to that of its lookup.
        ``loss_and_backward`` does it for a loss that is this alone.

        ``write_tied`` (tied only; the embedding's ``grad_req`` must be ``'add'``): the tied
        embedding's gradient is *written* into its gradient array here, every row, and is
        not among ``heads``; the caller's lookup, run backward after, adds its rows to it.
        Without it, autograd sums the two uses: a dense ``(V, in_units)`` gradient from the
        lookup's backward (zero-filled, then its rows added) plus this one, three more passes
        over the matrix (measured: ``WordRNNModel``).

        Equal to ``loss_sum`` + ``backward`` to rounding (tests/test_adaptive.py), and
        faster (measured: docs/RESULTS.md, "Design measurements"). The same logits are
        computed, on a graph of its own that starts at a detached copy of ``h``; their
        gradient, ``softmax - onehot`` per level, is computed directly (MXNet's
        ``log_softmax`` backward is a slow native kernel, ``lyricnn.training.optim``) and
        pushed back through that graph with one ``autograd.backward``, so the products'
        gradients are oneDNN's. The tied
        embedding's rows enter the products as views of its memory, no copy, marked as
        variables whose gradient buffers are the matching rows of one ``(V, in_units)``
        array: every product writes its rows of the embedding's gradient in place, instead
        of ``loss_sum``'s per-cluster slices, each of whose backward fills a dense
        ``(V, in_units)`` array, summed after.
        """
        self._check_h(h)
        tied = self.tied
        check_choice("write_tied", write_tied, (True, False))
        if write_tied and (tied is None or tied.grad_req != "add"):
            raise ValueError(
                "write_tied=True writes the tied embedding's gradient for its lookup to add "
                "to, so the block must be tied and the embedding's grad_req 'add'; got "
                + ("an untied block" if tied is None else f"grad_req {tied.grad_req!r}")
                + ": set embedding.weight.grad_req = 'add', or pass write_tied=False")
        ranks, cluster = self._targets(h, targets)
        n, c1, k, ctx = h.shape[0], self.cutoffs[0], len(self.cutoffs), h.context
        rows_of = [np.flatnonzero(cluster == i + 1) for i in range(k)]
        # Every index of this step in one upload: each nd.array waits until the engine's
        # queue (the caller's forward pass) has drained, and loss_sum made five. Per level:
        # its (row, class) pairs ((2, n), the loss's and gradient's); a cluster's rows of h
        # are the first half of the (2, m) array before its pairs.
        pieces = [np.arange(n), np.where(cluster == 0, ranks, c1 + cluster - 1)]
        for (lo, _), rows in zip(self.clusters, rows_of):
            if rows.size:
                pieces += [rows, np.arange(rows.size), ranks[rows] - lo]
        with autograd.pause():
            flat = nd.array(np.concatenate(pieces), ctx=ctx, dtype="int64")
            at, take_rows, start = [flat[:2 * n].reshape((2, n))], [], 2 * n
            for rows in rows_of:
                if rows.size:
                    m = rows.size
                    take_rows.append(flat[start:start + m])                         # views
                    at.append(flat[start + m:start + 3 * m].reshape((2, m)))
                    start += 3 * m
            h_local = h.detach()
            dh = nd.empty(h.shape, ctx=ctx, dtype=h.dtype)
            variables, buffers, reqs = [h_local], [dh], ["write"]

            def marked(array, grad, req):
                """``array``, differentiated into ``grad`` on the local graph."""
                if req != "null":
                    variables.append(array)
                    buffers.append(grad)
                    reqs.append(req)
                return array

            if tied is not None:
                E = tied.data(ctx).detach()
                E_rank = E if self._order is None else \
                    nd.take(E, self._cached("order", self._order, ctx))
                # write_tied: the rows' gradients go straight into the embedding's own
                # gradient array (in rank order: through a buffer, then its rows put back).
                dE_rank = tied.grad(ctx) if write_tied and self._order is None else \
                    nd.empty(E.shape, ctx=ctx, dtype=E.dtype)
                req = "write" if tied.grad_req != "null" else "null"
                rows = [marked(E_rank[lo:hi], dE_rank[lo:hi], req)
                        for lo, hi in [(0, c1)] + self.clusters]
                b, db = self.head_bias.data(ctx).detach(), None
                if self.head_bias.grad_req != "null":
                    db = self.head_bias.grad(ctx)
                req = self.head_bias.grad_req
                bias = [marked(b[:c1], None if db is None else db[:c1], req),
                        marked(b[c1:], None if db is None else db[c1:], req)]
        autograd.mark_variables(variables, buffers, reqs)
        logits = []
        with autograd.record():
            if tied is None:
                logits.append(self.head(h_local))
            else:
                logits.append(nd.concat(
                    nd.FullyConnected(h_local, rows[0], bias[0], num_hidden=c1),
                    nd.FullyConnected(h_local, self.head_weight.data(ctx), bias[1],
                                      num_hidden=k), dim=1))
            nonempty = [i for i, r in enumerate(rows_of) if r.size]
            for i, row_ids in zip(nonempty, take_rows):
                z = self._projections[i](nd.take(h_local, row_ids))
                if tied is None:
                    logits.append(self._outputs[i](z))
                else:
                    lo, hi = self.clusters[i]
                    logits.append(nd.FullyConnected(z, rows[i + 1],
                                                    self._tail_biases[i].data(ctx),
                                                    num_hidden=hi - lo))
        with autograd.pause():
            loss, grads = None, []
            for z, pairs in zip(logits, at):
                nll, g = _nll_and_gradient(z, pairs)
                loss = -nll if loss is None else loss - nll
                grads.append(g)
            self._zero_empty_clusters(rows_of, None if tied is None else dE_rank, ctx)
        autograd.backward(logits, grads)
        heads, head_grads = [h], [dh]
        if write_tied:
            if self._order is not None:
                with autograd.pause():    # the caller may be recording
                    nd.take(dE_rank, self._cached("rank_of_index", self._rank_of_index, ctx),
                            out=tied.grad(ctx))
        elif tied is not None and tied.grad_req != "null":
            heads.append(tied.data(ctx))
            head_grads.append(dE_rank if self._rank_of_index is None else nd.take(
                dE_rank, self._cached("rank_of_index", self._rank_of_index, ctx)))
        return loss.reshape((1,)), heads, head_grads

    def _zero_empty_clusters(self, rows_of, dE_rank, ctx):
        """The gradient of a cluster that no target reached: zero (a ``'write'`` gradient
        would otherwise keep the last step's)."""
        for i, rows in enumerate(rows_of):
            if rows.size:
                continue
            if dE_rank is not None:
                lo, hi = self.clusters[i]
                dE_rank[lo:hi] = 0
            blocks = [self._projections[i]] + ([self._outputs[i]] if self._outputs else [])
            params = [p for b in blocks for p in b.params.values()]
            params += [self._tail_biases[i]] if self._tail_biases else []
            for p in params:
                if p.grad_req == "write":
                    p.grad(ctx)[:] = 0

    def loss_and_backward(self, h, targets):
        """``loss_sum(h, targets)`` ``(1,)``, its gradient already backpropagated (into ``h``'s
        graph and every parameter): ``loss_and_gradients`` followed by its
        ``autograd.backward``. For a training loss that is this sum alone."""
        loss, heads, grads = self.loss_and_gradients(h, targets)
        autograd.backward(heads, grads)
        return loss

    def forward(self, h, targets):
        """``loss_sum(h, targets)``, so the block can be called like a loss."""
        return self.loss_sum(h, targets)


def _nll_and_gradient(logits, at):
    """``(sum of -log softmax(logits)[at], softmax(logits) - onehot(at))`` for ``logits
    (n, C)`` and ``at`` ``(2, n)`` (row, class) pairs: one level's summed loss, by
    ``loss_sum``'s own operators (``log_softmax``, then the picked entries summed), and its
    gradient, what autograd gets through them, without ``log_softmax``'s slow backward
    kernel: ``lyricnn.training.optim._loss_and_unscaled_gradient`` with a sum and the
    pairs made on the host. ``softmax`` rather than ``exp`` of the log-probabilities:
    oneDNN's kernel, the faster of the two (docs/RESULTS.md, "Design measurements")."""
    picked = nd.gather_nd(nd.log_softmax(logits, axis=1), at)
    grad = nd.softmax(logits, axis=1)
    # The in-place scatter of optim._add_at_labels: grad[at] -= 1.
    nd._internal._scatter_set_nd(grad, nd.gather_nd(grad, at) - 1, at, shape=grad.shape,
                                 out=grad)
    return nd.sum(picked), grad
