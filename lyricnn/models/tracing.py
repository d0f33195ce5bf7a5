"""Train a reader's own cell as one MXNet graph: run it once under autograd, replay the record.

The book's chapters train cells the reader types into the notebook (``rnn``,
``gru``, ``lstm`` with ``get_params``). Run as written, every time step calls
five to fifteen small operators from Python, about 250 (RNN) to 800 (LSTM)
per minibatch forward, each paying MXNet's per-call cost (Python, autograd's
bookkeeping, the engine); the backward pass adds one each. At the book's
sizes that cost, not arithmetic, is most of a minibatch.

MXNet records every operator run inside ``autograd.record()``, and
``autograd.get_symbol`` hands that record back as a symbolic graph.
``TracedForward`` runs the forward function once per input signature (shapes,
types, devices) on
copies of its inputs, takes the record as a graph, compiles it into one
``CachedOp`` (a static memory plan, as ``HybridBlock.hybridize`` makes) and
calls that instead for every training minibatch of that signature: the same
operators in the same order on the same values. Outputs and gradients equal
the function's to float rounding (bit-identical in tests/test_tracing.py);
the replay is checked against the recorded run before it is used.

On the book's RNN cell (forward + backward of one minibatch) the replay is
clearly faster than the cell run on CSR one-hot inputs (measured:
docs/RESULTS.md, "Design measurements"; ``benchmarks/bench_speed.py`` for
whole epochs).

What this changes for the reader, as ``hybridize`` does (book section 8.1):
Python in the cell that computes no NDArray, a ``print`` or an ``if`` on a
value, runs only while the cell is being recorded. ``trace=False`` (in
``train_and_predict_rnn``) runs the cell as written every minibatch. Only
training is traced; prediction and evaluation (not recording) call the
function. A cell that cannot be replayed runs as written, with the reason
logged (``logging``, level INFO) and kept in ``TracedForward.untraced``:

* it makes arrays of its own (``nd.zeros`` inside the cell: the record holds
  no value for them);
* an output does not depend on the inputs, or MXNet cannot compile the record;
* the replay differs from the recorded run (random operators inside the cell).
"""
import json
import logging

from mxnet import autograd, nd, sym
from mxnet.base import MXNetError

log = logging.getLogger(__name__)

#: The replay must equal the recorded run to this fraction of the output's largest
#: magnitude (observed: exactly equal).
REPLAY_RTOL = 1e-6


class TracedForward:
    """``forward(X, state, params) -> (logits, state)``, replayed as one graph while training.

    ``forward`` runs outside training and for a signature that cannot be
    replayed; ``record`` (default ``forward``; the same values) is what is
    recorded. ``untraced`` says why a signature runs as written (else ``None``).
    """

    def __init__(self, forward, record=None):
        self.forward = forward
        self.record = forward if record is None else record
        self.untraced = None
        self._graphs = {}      # input signature -> (CachedOp, argument positions) or None

    def __call__(self, X, state, params):
        if not (autograd.is_recording() and autograd.is_training()):
            return self.forward(X, state, params)
        arrays = [X, *state, *params]
        key = tuple((a.shape, a.dtype, a.stype, a.context) for a in arrays)
        if key not in self._graphs:
            self._graphs[key] = self._trace(X, state, params)
        graph = self._graphs[key]
        if graph is None:
            return self.forward(X, state, params)
        op, positions = graph
        outputs = op(*[arrays[i] for i in positions])
        outputs = outputs if isinstance(outputs, list) else [outputs]
        return outputs[0], type(state)(outputs[1:])

    def _trace(self, X, state, params):
        """Record ``record`` on copies of the inputs; the checked ``CachedOp`` or ``None``."""
        n_state = len(state)
        with autograd.pause():
            copies = [a.copy() for a in (X, *state, *params)]   # [X, *state, *params]
        # Marking each copy as a variable gives it a name in the record, so the
        # graph's inputs can be matched to the arrays passed in (X and the state
        # need no gradient; the record is the same either way).
        for i, a in enumerate(copies):
            a.attach_grad(grad_req="write" if i > n_state else "null")
        names = {autograd.get_symbol(a).list_inputs()[0]: i for i, a in enumerate(copies)}
        with autograd.record(train_mode=True):
            # logits: (num_steps * batch, V); new_state: like state
            logits, new_state = self.record(copies[0], type(state)(copies[1:1 + n_state]),
                                            copies[1 + n_state:])
        heads = [logits, *new_state]
        try:
            graph = sym.Group([autograd.get_symbol(a) for a in heads])
        except MXNetError:
            return self._untraced("an output does not depend on the inputs")
        graph = output_products_hoisted(one_hot_products_as_gathers(graph))
        inputs = graph.list_inputs()
        own = [name for name in inputs if name not in names]
        if own:
            return self._untraced(f"it uses {len(own)} array(s) it makes itself")
        positions = [names[name] for name in inputs]
        op = nd.CachedOp(graph, flags=[("static_alloc", True), ("static_shape", True)])
        try:
            with autograd.train_mode():
                replay = op(*[copies[i] for i in positions])
            replay = replay if isinstance(replay, list) else [replay]
            same = all(_close(r, h) for r, h in zip(replay, heads))
        except MXNetError as err:
            first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            return self._untraced(f"MXNet cannot run its record as a graph ({first})")
        if not same:
            return self._untraced("replaying its record gives other values (random operators?)")
        return op, positions

    def _untraced(self, why):
        self.untraced = f"the cell runs as written every minibatch: {why}"
        log.info("%s", self.untraced)
        return None


def _close(a, b):
    """``a`` equals ``b`` to ``REPLAY_RTOL`` of ``b``'s largest magnitude (NaN never).

    Compared on the device: only two numbers reach Python (a large ``asnumpy``
    here would slow all later training, see ``MXNET_CPU_PARALLEL_SIZE`` in
    ``lyricnn/__init__.py``).
    """
    if a.shape != b.shape:
        return False
    if a.size == 0:
        return True
    diff = float(nd.abs(a - b).max().asscalar())
    return bool(diff <= REPLAY_RTOL * float(nd.abs(b).max().asscalar()))


def one_hot_products_as_gathers(graph):
    """``graph`` with every ``dot(one_hot(i), W)`` computed as ``take(W, i)``.

    The book feeds its cells one-hot rows, so each step's input product is a
    ``(batch, V) x (V, h)`` product whose result is the rows ``W[i]``: the same
    values (one term 1.0 x w, the rest exact zeros; the gradient sums the same
    rows in another order). Replacing the product by the row gather removes a
    third of the cell's GEMMs (book RNN: 35 of 105 products forward and
    backward) and their share of the minibatch's time in MXNet's profiler
    (measured: docs/RESULTS.md, "Design measurements"). Only
    plain products (no transposes) of a plain one-hot (values 1 and 0, float32)
    are replaced; everything else is left as recorded.
    """
    spec = json.loads(graph.tojson())
    nodes = spec["nodes"]
    for node in nodes:
        if node["op"] != "dot" or any(node.get("attrs", {}).get(k, "False") not in ("False", "0")
                                      for k in ("transpose_a", "transpose_b")):
            continue
        source = nodes[node["inputs"][0][0]]
        attrs = source.get("attrs", {})
        if (source["op"] != "one_hot" or float(attrs.get("on_value", 1)) != 1.0
                or float(attrs.get("off_value", 0)) != 0.0
                or attrs.get("dtype", "float32") != "float32"):
            continue
        node["op"], node["attrs"] = "take", {"axis": "0", "mode": "clip"}
        node["inputs"] = [node["inputs"][1], source["inputs"][0]]
    return sym.load_json(json.dumps(spec))


#: The ops a bias ``+`` is recorded as.
BIAS_ADDS = ("broadcast_add", "broadcast_plus", "elemwise_add", "_plus")


def output_products_hoisted(graph):
    """``graph`` with the per-step output layer computed once over all steps.

    The book's cells compute ``Y = dot(H, W_hq) + b_q`` at every step, and the
    training loop concatenates the steps' ``Y``: ``T`` small ``(batch, h) x (h,
    V)`` products, the largest of the model (``V`` = 1027 columns). When a
    recorded output is exactly ``concat([dot(H_t, W) + b for t], dim=0)`` (the
    same ``W`` and ``b`` at every step, nothing else reading the products), it
    becomes ``dot(concat(H_t), W) + b``: one ``(T·batch, h) x (h, V)`` product,
    the same values row for row (each row is the same dot products; summation
    order within a row may differ by BLAS blocking), as PyTorch's fastest
    version of the book's model hoists it (measured: docs/RESULTS.md, "Speed").
    Anything else is left as recorded.
    """
    spec = json.loads(graph.tojson())
    nodes, heads = spec["nodes"], spec["heads"]
    consumers = {}   # node id -> how many node inputs read it
    for node in nodes:
        for src, _, _ in node["inputs"]:
            consumers[src] = consumers.get(src, 0) + 1
    for c, node in enumerate(list(nodes)):
        if node["op"] not in ("Concat", "concat") or node.get("attrs", {}).get("dim", "1") != "0":
            continue
        if consumers.get(c, 0) != 0:      # only a concat that is a graph output itself
            continue
        parts = []
        for src, _, _ in node["inputs"]:
            add = nodes[src]
            if add["op"] not in BIAS_ADDS or consumers.get(src) != 1:
                break
            dot_id, bias = add["inputs"][0], add["inputs"][1]
            dot = nodes[dot_id[0]]
            if (dot["op"] != "dot" or consumers.get(dot_id[0]) != 1
                    or any(dot.get("attrs", {}).get(k, "False") not in ("False", "0")
                           for k in ("transpose_a", "transpose_b"))):
                break
            parts.append((dot["inputs"][0], dot["inputs"][1], bias))
        else:
            if len(parts) < 2 or len({(w[0], b[0]) for _, w, b in parts}) != 1:
                continue
            _, W, b = parts[0]
            node["inputs"] = [h for h, _, _ in parts]       # concat(H_1..H_T): (T*batch, h)
            dot_new = {"op": "dot", "name": node["name"] + "_hoisted_dot", "inputs": [[c, 0, 0], W]}
            nodes.append(dot_new)
            add_new = {"op": "broadcast_add", "name": node["name"] + "_hoisted_add",
                       "inputs": [[len(nodes) - 1, 0, 0], b]}
            nodes.append(add_new)
            for h in heads:
                if h[0] == c:
                    h[0] = len(nodes) - 1
    spec.pop("node_row_ptr", None)
    return sym.load_json(json.dumps(spec))
