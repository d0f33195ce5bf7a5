"""The per-step cost of building the fused kernel's flat parameter vector: issue 23's
speed lever, measured in isolation.

A Gluon layer keeps each layer's weights and biases as four Parameters, which
``lyricnn.models.fused.flatten`` concatenates into ``F.RNN``'s flat vector on every
forward, and the backward splits again; the word model's ``fused.Stack`` keeps one
flat Parameter per layer in the kernel's layout and skips both. This times forward
+ backward of a 2-layer LSTM stack run one layer per kernel call (as ``fused.run``
does) both ways, hybridized, the two alternating in one process; ms per call:

    .venv/bin/python benchmarks/bench_flat_params.py 650 20     # width, rounds

Shapes: 35 steps, batch 20, input = hidden = width (the tied word LM).
"""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import cpu_model  # noqa: E402  (standard library only)

import lyricnn  # noqa: F401  (first: process tuning before MXNet loads)
from mxnet import autograd, nd
from mxnet.gluon import nn

h = int(sys.argv[1]) if len(sys.argv) > 1 else 650
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
T, B, LAYERS = 35, 20, 2
SHAPES = [(4 * h, h), (4 * h, h), (4 * h,), (4 * h,)]      # i2h W, h2h W, i2h b, h2h b
SIZE = 2 * 4 * h * h + 2 * 4 * h                           # one layer's flat vector


class Stack(nn.HybridBlock):
    """Two LSTM layers, one ``F.RNN`` call each; ``flat``: one Parameter per layer."""

    def __init__(self, flat):
        super().__init__()
        self.flat = flat
        with self.name_scope():
            for l in range(LAYERS):
                if flat:
                    setattr(self, f"p{l}", self.params.get(f"l{l}_flat", shape=(SIZE,)))
                else:
                    for i, shape in enumerate(SHAPES):
                        setattr(self, f"p{l}_{i}", self.params.get(f"l{l}_{i}", shape=shape))

    def hybrid_forward(self, F, X, h0, c0, **p):
        for l in range(LAYERS):
            if self.flat:
                vec = p[f"p{l}"]
            else:   # what fused.flatten does: (-1, 4h) blocks, concatenated, flattened
                vec = F.concat(*[p[f"p{l}_{i}"].reshape((-1, 4 * h)) for i in range(4)],
                               dim=0).reshape((-1,))
            X = F.RNN(X, vec, h0, c0, state_size=h, num_layers=1, mode="lstm")
        return X


def make(flat):
    block = Stack(flat)
    block.initialize()
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def step(block, X, h0, c0, head):
    with autograd.record():
        Y = block(X, h0, c0)
    Y.backward(head)
    nd.waitall()


def main():
    X = nd.random.uniform(-1, 1, shape=(T, B, h))
    h0, c0 = nd.zeros((1, B, h)), nd.zeros((1, B, h))
    head = nd.random.uniform(-1, 1, shape=(T, B, h))
    blocks = {"four Parameters + concat": make(False), "one flat Parameter": make(True)}
    for block in blocks.values():
        for _ in range(3):
            step(block, X, h0, c0, head)
    print(f"machine: {cpu_model()}; 2-layer LSTM {h} wide, {T} steps x batch {B}, "
          "forward + backward")
    times = {name: [] for name in blocks}
    for _ in range(rounds):
        for name, block in blocks.items():
            start = time.perf_counter()
            step(block, X, h0, c0, head)
            times[name].append(1e3 * (time.perf_counter() - start))
    for name, ts in times.items():
        print(f"{name}: best {min(ts):.1f} ms, median {statistics.median(ts):.1f} ms")
    saved = [a - b for a, b in zip(*times.values())]
    print(f"saved per call: median {statistics.median(saved):.1f} ms of the pairs")


if __name__ == "__main__":
    main()
