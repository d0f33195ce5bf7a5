"""The word LM's decoder as ``FullyConnected`` (oneDNN's inner product, what ``nn.Dense``
runs) against ``dot`` + bias (the BLAS GEMM): forward + backward of ``(700, h) x (h,
10,000)`` in a hybridized block, the two alternating in one process; ms per call:

    .venv/bin/python benchmarks/bench_decoder_product.py 650 20     # h, rounds
"""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import cpu_model  # noqa: E402  (standard library only)

import lyricnn  # noqa: F401
from mxnet import autograd, nd
from mxnet.gluon import nn

m, k, n = 700, int(sys.argv[1]) if len(sys.argv) > 1 else 650, 10000


class DotDense(nn.Dense):
    def hybrid_forward(self, F, x, weight, bias=None):
        y = F.dot(x, weight, transpose_b=True)
        return F.broadcast_add(y, bias.reshape((1, -1)))


class Lin(nn.HybridBlock):
    def __init__(self, cls):
        super().__init__()
        with self.name_scope():
            self.d = cls(n, in_units=k)

    def hybrid_forward(self, F, x):
        return self.d(x)


def make(cls):
    b = Lin(cls)
    b.initialize()
    b.hybridize(static_alloc=True, static_shape=True)
    return b


blocks = {"fc": make(nn.Dense), "dot": make(DotDense)}
blocks["dot"].d.weight.set_data(blocks["fc"].d.weight.data())
x = nd.random.uniform(shape=(m, k))
g = nd.random.uniform(shape=(m, n))


def step(b):
    xx = x.copy()
    xx.attach_grad()
    with autograd.record():
        y = b(xx)
    y.backward(g)
    nd.waitall()


for b in blocks.values():
    for _ in range(3):
        step(b)
# same values
with autograd.record():
    a, c = blocks["fc"](x), blocks["dot"](x)
print(f"machine: {cpu_model()}; ({m}, {k}) x ({k}, {n}), forward + backward")
print("max |fc - dot| / max|fc|:", float((a - c).abs().max().asscalar() / a.abs().max().asscalar()))
times = {name: [] for name in blocks}
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 20):
    for name, b in blocks.items():
        t = time.perf_counter()
        step(b)
        times[name].append(1e3 * (time.perf_counter() - t))
for name, ts in times.items():
    print(f"{name}: best {min(ts):.1f} ms, median {statistics.median(ts):.1f} ms")
