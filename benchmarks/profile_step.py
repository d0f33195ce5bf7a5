"""Where one training minibatch of the book's scratch RNN goes (lyricnn's fast path).

Milliseconds per call, medians of 3 x 20 calls, book shapes (vocabulary 1027,
256 hidden, batch 32, 35 steps), nothing asserted; then two pieces of the
loss's gradient at the 2x200 word LM's shape (400 x 10,000 logits): the label
scatter by ``__setitem__`` against ``training._add_at_labels``, and the
``1 / tokens`` pass that ``clipped_sgd``'s ``grad_scale`` replaces:

    .venv/bin/python benchmarks/profile_step.py
"""
import time

import lyricnn  # noqa: F401  (first: it sets MXNet's threads before MXNet loads)
import mxnet as mx
import numpy as np
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from lyricnn.models import cells
from lyricnn.models import fused
from lyricnn import tuning
from lyricnn.training import optim as training

V, H, B, T = 1027, 256, 32, 35


def per_call_ms(fn, n=20):
    fn()
    nd.waitall()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    nd.waitall()
    return (time.perf_counter() - start) / n * 1e3


def main():
    mx.random.seed(0)
    rs = np.random.RandomState(0)
    params = cells.init_params(cells.RNN, V, H)
    W_xh, W_hh, b_h, W_hq, b_q = params
    X, Y = nd.array(rs.randint(0, V, (B, T))), nd.array(rs.randint(0, V, (B, T)))
    labels = Y.T.reshape((-1,))                       # (T * B,), time-major like the logits
    state = cells.RNN.zero_state(1, B, H, None)
    loss = gloss.SoftmaxCrossEntropyLoss()
    hiddens = nd.random.normal(shape=(T * B, H))
    XW = nd.random.normal(shape=(T, B, H))

    def forward():
        cells.sequence(cells.RNN, X, state, params)

    def forward_backward():
        with autograd.record():
            logits, _ = cells.sequence(cells.RNN, X, state, params)
            l = loss(logits, labels).mean()
        l.backward()

    def training_step():
        forward_backward()
        training.clipped_sgd(params, [p.grad for p in params], 1.0, 1e-2)

    def output_layer_and_loss():
        with autograd.record():
            l = loss(nd.FullyConnected(hiddens, W_hq.T, b_q, num_hidden=V), labels).mean()
        l.backward()

    def input_gather():
        with autograd.record():
            l = nd.Embedding(X.T, W_xh, input_dim=V, output_dim=H).sum()
        l.backward()

    def fused_kernel():
        with autograd.record():
            vector = fused.flatten(nd, [fused.identity(nd, b_h), W_hh.T],
                                   [b_h, nd.zeros(H)], H)
            out, _ = fused.run(nd, XW, [state[0].expand_dims(0)], [vector],
                               mode="rnn_tanh", num_hiddens=H)
            l = out.sum()
        l.backward()

    for name, fn in [("forward", forward), ("forward + backward", forward_backward),
                     ("training step (+ clipped SGD)", training_step),
                     ("output layer + loss, fwd + bwd", output_layer_and_loss),
                     ("input gather, fwd + bwd", input_gather),
                     ("fused kernel, fwd + bwd", fused_kernel)]:
        print(f"{name:32s} {np.median([per_call_ms(fn) for _ in range(3)]):6.1f} ms", flush=True)

    tuning.retain_freed_memory()                    # as in training: no page faults
    probs = nd.softmax(nd.random.normal(shape=(400, 10_000)))
    word_labels = nd.array(rs.randint(0, 10_000, 400))
    rows = nd.arange(400)

    def setitem_scatter():
        probs[rows, word_labels] = probs[rows, word_labels] - 1.0

    def direct_scatter():
        training._add_at_labels(probs, word_labels, -1.0)

    def scale_pass():
        probs.__imul__(0.5)

    for name, fn in [("label scatter, __setitem__", setitem_scatter),
                     ("label scatter, _add_at_labels", direct_scatter),
                     ("1 / tokens pass over the logits", scale_pass)]:
        print(f"{name:32s} {np.median([per_call_ms(fn) for _ in range(3)]):6.2f} ms", flush=True)


if __name__ == "__main__":
    main()
