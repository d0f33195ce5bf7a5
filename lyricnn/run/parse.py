"""Reading a checkpoint's files: each one parsed and checked before anything is built.

Every problem is one ``CheckpointError`` naming the folder, the file, what is
wrong and what to do (``lyricnn.run.store.checkpoint_error``). The order
matters and is ``lyricnn.run.checkpoint.load_checkpoint``'s: checksums first
(a damaged file is reported as damaged, not as its symptom), then each file's
content, then the parameters against the model the config describes.
"""
import json
import math
import struct

import mxnet as mx
import numpy as np
from mxnet import nd

from lyricnn.checks import is_integer, is_real
from lyricnn.data.corpus import Vocab
from lyricnn.run.config import RunConfig, text_sha1
from lyricnn.run.format1 import (NONFINITE, format1_constant, format1_parameter_names,
                                 upgrade_format1)
from lyricnn.run.store import (ITERATE, OPTIONAL_FILES, CONFIG, CORPUS, DATA_FILES, FIX, FORMAT, HISTORY, MANIFEST, PARAMS,
                               RNG, VOCAB, checkpoint_error, is_int_in, sha256)
from lyricnn.run.task import build_model, task_of, vocab_of
from lyricnn.training.loop import History, mxnet_seed
from lyricnn.run.store import is_number



def refuse_constant(name):
    raise ValueError(f"{name} is not standard JSON")


def parse_json(folder, name, data, strict=True):
    """The JSON value of ``data``; ``strict``: refuse ``Infinity``/``NaN`` (format 1 wrote them)."""
    try:
        return json.loads(data.decode("utf-8"),
                          parse_constant=refuse_constant if strict else format1_constant)
    except RecursionError:   # [[[[…]]]] 100,000 deep: Python's parser recurses
        raise checkpoint_error(folder, name, "not valid JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise checkpoint_error(folder, name, f"not valid JSON ({err})") from None


def check_manifest(folder, contents):
    """The verified manifest of a format-2 folder, or ``CheckpointError``."""
    if MANIFEST not in contents:
        raise checkpoint_error(folder, MANIFEST, "missing: the save that wrote this folder did not "
                     "finish, or the file was deleted")
    manifest = parse_json(folder, MANIFEST, contents[MANIFEST])
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not (isinstance(files, dict) and set(DATA_FILES) <= set(files)
            and set(files) <= set(DATA_FILES + OPTIONAL_FILES)
            and all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                    and is_int_in(v.get("bytes"), 0, 2**63) for v in files.values())
            and is_int_in(manifest.get("created_ns"), 0, 2**63)
            and manifest.get("format") == FORMAT):
        raise checkpoint_error(folder, MANIFEST, f"not a format-{FORMAT} manifest (expected format, "
                     f"created_ns and the sha256 and size of {list(DATA_FILES)})")
    for name in files:
        if name not in contents:
            raise checkpoint_error(folder, name, "missing (listed in the manifest)")
        data, entry = contents[name], files[name]
        if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
            raise checkpoint_error(folder, name, f"does not match its checksum in {MANIFEST} ("
                         f"{len(data)} bytes, {entry['bytes']} saved): the file was changed "
                         "or corrupted after it was saved")
    return manifest


def parse_config(folder, contents):
    """``(RunConfig, format)`` from ``config.json``."""
    if CONFIG not in contents:
        raise checkpoint_error(folder, CONFIG, "missing")
    data = parse_json(folder, CONFIG, contents[CONFIG])
    if not isinstance(data, dict) or "config" not in data or "format" not in data:
        raise checkpoint_error(folder, CONFIG, "expected an object with 'format' and 'config'")
    fmt = data["format"]
    if fmt not in (1, FORMAT):
        newer = is_int_in(fmt, FORMAT + 1, 2**31)
        raise checkpoint_error(folder, CONFIG, f"format {fmt!r} is not one this lyricnn reads (1, "
                     f"{FORMAT})", "upgrade lyricnn" if newer else FIX)
    try:
        raw = upgrade_format1(data["config"]) if fmt == 1 else data["config"]
        return RunConfig.from_dict(raw), fmt
    except (TypeError, ValueError) as err:
        raise checkpoint_error(folder, CONFIG, str(err)) from None


def parse_vocab(folder, contents, config, corpus_text):
    data = parse_json(folder, VOCAB, contents[VOCAB])
    tokens = data.get("idx_to_token") if isinstance(data, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise checkpoint_error(folder, VOCAB, "expected {\"idx_to_token\": [characters...]}")
    try:
        vocab = Vocab(tokens)
    except ValueError as err:
        raise checkpoint_error(folder, VOCAB, str(err)) from None
    if len(vocab) != config.vocab_size:
        raise checkpoint_error(folder, VOCAB, f"has {len(vocab)} tokens but the model ({CONFIG}) "
                     f"has vocab_size={config.vocab_size}: they come from different runs")
    expected = vocab_of(config, corpus_text)
    if expected != vocab:
        i = next((i for i, (a, b) in enumerate(zip(vocab.idx_to_token, expected.idx_to_token))
                  if a != b), min(len(vocab), len(expected)))
        got = vocab.idx_to_token[i] if i < len(vocab) else "nothing"
        want = expected.idx_to_token[i] if i < len(expected) else "nothing"
        raise checkpoint_error(folder, VOCAB, f"is not the vocabulary of {CORPUS}: index {i} is "
                     f"{got!r}, the corpus gives {want!r}")
    return vocab


def parse_corpus(folder, contents, config):
    try:
        text = contents[CORPUS].decode("utf-8")
    except UnicodeDecodeError as err:
        raise checkpoint_error(folder, CORPUS, f"not UTF-8 text ({err})") from None
    if text_sha1(text) != config.corpus_sha1:
        raise checkpoint_error(folder, CORPUS, f"does not match the sha1 in {CONFIG}: it is not the "
                     "text the model was trained on")
    return text


def decode_float(value, allow_none):
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value in NONFINITE:
        return NONFINITE[value]
    if is_real(value):
        return float(value)
    raise ValueError(f"expected a number{' or null' if allow_none else ''}, got {value!r}")


def parse_history(folder, contents, fmt):
    data = parse_json(folder, HISTORY, contents[HISTORY], strict=fmt == FORMAT)
    keys = ("epoch", "perplexity", "seconds", "valid_perplexity", "lr", "averaged")
    try:
        if isinstance(data, dict) and "lr" not in data and isinstance(data.get("epoch"), list):
            data["lr"] = [None] * len(data["epoch"])  # saved before the rate was recorded
        if isinstance(data, dict) and "averaged" not in data and \
                isinstance(data.get("epoch"), list):
            data["averaged"] = [0] * len(data["epoch"])  # saved before NT-ASGD
        if not isinstance(data, dict) or set(data) != set(keys):
            raise ValueError(f"expected an object with the lists {list(keys)}")
        if not all(isinstance(data[k], list) for k in keys) or \
                len({len(data[k]) for k in keys}) != 1:
            raise ValueError(f"{list(keys)} must be lists of one length")
        if data["epoch"] != list(range(1, len(data["epoch"]) + 1)) or \
                not all(is_integer(e) for e in data["epoch"]):
            raise ValueError(f"'epoch' must be 1, 2, ..., n, got {data['epoch'][:5]!r}...")
        perplexity = [decode_float(v, False) for v in data["perplexity"]]
        valid = [decode_float(v, True) for v in data["valid_perplexity"]]
        seconds = [decode_float(v, False) for v in data["seconds"]]
        lrs = [decode_float(v, True) for v in data["lr"]]
        if any(v is not None and not (0 < v < math.inf) for v in lrs):
            raise ValueError("a learning rate in 'lr' is not a positive finite number")
        if any(not (p >= 1) for p in perplexity):
            raise ValueError("a perplexity is below 1 or nan")
        if any(v is not None and not (v >= 1) for v in valid):
            raise ValueError("a held-out perplexity is below 1 or nan")
        if any(not (0 <= s < math.inf) for s in seconds):
            raise ValueError("'seconds' must be finite and >= 0")
        averaged = data["averaged"]
        if not all(is_int_in(a, 0, 2**53) for a in averaged) or \
                any(b < a for a, b in zip(averaged, averaged[1:])):
            raise ValueError("'averaged' must be counts of averaged updates, never decreasing")
    except ValueError as err:
        raise checkpoint_error(folder, HISTORY, str(err)) from None
    return History(epoch=list(data["epoch"]), perplexity=perplexity, seconds=seconds,
                   valid_perplexity=valid, lr=lrs, averaged=[int(a) for a in averaged])


def parse_rng(folder, contents, config, epoch):
    data = parse_json(folder, RNG, contents[RNG])
    try:
        check_rng(data)
    except ValueError as err:
        raise checkpoint_error(folder, RNG, str(err)) from None
    if data["mxnet_seed"] != mxnet_seed(config.seed, epoch):
        raise checkpoint_error(folder, RNG, f"mxnet_seed is {data['mxnet_seed']}, but after epoch "
                     f"{epoch} ({HISTORY}) with seed {config.seed} ({CONFIG}) it is "
                     f"{mxnet_seed(config.seed, epoch)}")
    return data


def mxnet_message(err):
    """The informative last line of an MXNet error (its text starts with a C++ trace)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else type(err).__name__
    return line[len("MXNetError: "):] if line.startswith("MXNetError: ") else line


#: MXNet 1.x's parameter file (``nd.save``): the list magic, the arrays' magic numbers
#: (V2; V3 with NumPy shape semantics) and the element sizes of its dtype codes.
_LIST_MAGIC, _ARRAY_MAGICS = 0x112, (0xF993FAC9, 0xF993FACA)
_DTYPE_BYTES = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1}
_MAX_NDIM = 32


def parameter_header(data):
    """``[(shape, dtype code)]`` of the dense arrays in an ``nd.save`` file, read in Python.

    MXNet's own reader trusts the file: a negative or huge ``ndim`` or a shape larger
    than the file makes it crash the process (a segmentation fault) or allocate what
    the shape says. So the header is walked here first, every count, shape and size
    checked against the bytes there are; ``ValueError`` says what is wrong. Sparse
    arrays are refused (lyricnn saves dense ones).
    """
    view, pos = memoryview(data), 0

    def take(fmt):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(view):
            raise ValueError(f"the file ends inside its header (byte {pos})")
        values = struct.unpack_from(fmt, view, pos)
        pos += size
        return values
    magic, _ = take("<QQ")
    if magic != _LIST_MAGIC:
        raise ValueError("no MXNet parameter-list header")
    (count,) = take("<Q")
    if count > len(view) // 16:
        raise ValueError(f"it claims {count:,} arrays in {len(view):,} bytes")
    arrays = []
    for i in range(count):
        array_magic, stype = take("<Ii")
        if array_magic not in _ARRAY_MAGICS:
            raise ValueError(f"array {i} has no MXNet array header")
        if stype != 0:
            raise ValueError(f"array {i} is sparse (storage type {stype}); lyricnn saves "
                             "dense arrays")
        (ndim,) = take("<i")
        if not 0 < ndim <= _MAX_NDIM:
            raise ValueError(f"array {i} has {ndim} dimensions")
        shape = take(f"<{ndim}q")
        if any(d < 0 for d in shape):
            raise ValueError(f"array {i} has the shape {shape}")
        _, _, dtype = take("<iii")                       # device type, device id, dtype
        if dtype not in _DTYPE_BYTES:
            raise ValueError(f"array {i} has the unknown dtype code {dtype}")
        nbytes = int(np.prod(shape, dtype=object)) * _DTYPE_BYTES[dtype]
        if nbytes > len(view) - pos:
            raise ValueError(f"array {i} of shape {shape} needs {nbytes:,} bytes, the file "
                             f"has {len(view) - pos:,} left")
        pos += nbytes
        arrays.append((shape, dtype))
    (names,) = take("<Q")
    if names != count:
        raise ValueError(f"{count} arrays but {names} names")
    for i in range(names):
        (length,) = take("<Q")
        if length > len(view) - pos:
            raise ValueError(f"name {i} is longer than the file")
        pos += length
    return arrays


def load_parameters(folder, contents, config, fmt, ctx):
    try:
        header = parameter_header(contents[PARAMS])
    except ValueError as err:
        raise checkpoint_error(folder, PARAMS, f"not an MXNet parameter file ({err})") from None
    expected = task_of(config).num_parameters(config)
    found = sum(int(np.prod(shape, dtype=object)) for shape, _ in header)
    if expected != found:   # before MXNet reads the file, let alone builds a model
        raise checkpoint_error(folder, PARAMS, f"holds {found:,} weights, but the model of "
                               f"{CONFIG} ({config.describe()}) has {expected:,}",
                               "the checkpoint's files come from different runs: " + FIX)
    try:
        arrays = nd.load_frombuffer(contents[PARAMS])
    except mx.base.MXNetError as err:
        raise checkpoint_error(folder, PARAMS, f"not an MXNet parameter file ({mxnet_message(err)})") \
            from None
    if not isinstance(arrays, dict) or not arrays:
        raise checkpoint_error(folder, PARAMS, "expected named arrays (nd.save of a dict)")
    for name, array in arrays.items():
        if array.stype != "default" or array.dtype != np.float32:
            raise checkpoint_error(folder, PARAMS, f"{name!r} is a {array.stype} "
                                   f"{np.dtype(array.dtype).name} "
                                   "array; lyricnn saves dense float32 parameters")
        if not np.isfinite(array.asnumpy()).all():
            raise checkpoint_error(folder, PARAMS, f"{name!r} holds NaN or infinite values "
                                   "(saved from a diverged run, or corrupted)")
    # Building initialises (and so draws from MXNet's generator) before the
    # saved values overwrite the parameters; restore_rng_state reseeds MXNet.
    lm = build_model(config, ctx)
    if fmt == 1:
        arrays = format1_parameter_names(arrays)
    try:
        lm.load_named_parameters({k: v.as_in_context(lm.ctx) for k, v in arrays.items()})
    except ValueError as err:
        raise checkpoint_error(folder, PARAMS, f"does not fit the model of {CONFIG} "
                     f"({config.describe()}): {err}",
                     "the checkpoint's files come from different runs: " + FIX) from None
    return lm


def parse_iterate(folder, contents, lm, history):
    """NT-ASGD's SGD iterate (``{name: NDArray}``) when ``history`` says averaging has
    started, else ``None``; ``CheckpointError`` when the file is missing, present without
    averaging, or does not fit ``lm``'s trainable weights (checked before MXNet reads it)."""
    averaged = history.averaged[-1] if history.epoch else 0
    if not averaged:
        if ITERATE in contents:
            raise checkpoint_error(folder, ITERATE, f"present, but {HISTORY} says no update "
                                   "was averaged", "the checkpoint's files come from different "
                                   "runs: " + FIX)
        return None
    if ITERATE not in contents:
        raise checkpoint_error(folder, ITERATE, f"missing: {HISTORY} says {averaged} updates "
                               "were averaged (NT-ASGD), and resuming needs the SGD iterate")
    own = {name: a for name, a in lm.named_parameters().items()
           if any(a is w for w in lm.weights())}
    try:
        header = parameter_header(contents[ITERATE])
    except ValueError as err:
        raise checkpoint_error(folder, ITERATE, f"not an MXNet parameter file ({err})") from None
    found = sum(int(np.prod(shape, dtype=object)) for shape, _ in header)
    expected = sum(a.size for a in own.values())
    if found != expected:
        raise checkpoint_error(folder, ITERATE, f"holds {found:,} weights, the model "
                               f"{expected:,}", "the checkpoint's files come from different "
                               "runs: " + FIX)
    try:
        arrays = nd.load_frombuffer(contents[ITERATE])
    except mx.base.MXNetError as err:
        raise checkpoint_error(folder, ITERATE, "not an MXNet parameter file "
                               f"({mxnet_message(err)})") from None
    if isinstance(arrays, dict):
        arrays = lm.own_arrays(arrays)
    if not isinstance(arrays, dict) or set(arrays) != set(own) or any(
            arrays[n].shape != a.shape or arrays[n].dtype != np.float32 or
            not np.isfinite(arrays[n].asnumpy()).all() for n, a in own.items()):
        raise checkpoint_error(folder, ITERATE, "its arrays are not the model's weights "
                               "(names, shapes, float32, finite)", "the checkpoint's files "
                               "come from different runs: " + FIX)
    return arrays


def check_rng(state):
    """``state`` if it has ``capture_rng_state``'s shape and ranges, else ``ValueError``."""
    def need(ok, what):
        if not ok:
            raise ValueError(what)
    need(isinstance(state, dict) and set(state) == {"python", "numpy", "mxnet_seed"},
         "expected an object with keys 'python', 'numpy', 'mxnet_seed'")
    py, npy = state["python"], state["numpy"]
    need(isinstance(py, dict) and set(py) == {"version", "state", "gauss_next"},
         "'python' must have keys 'version', 'state', 'gauss_next'")
    need(py["version"] == 3 and isinstance(py["state"], list) and len(py["state"]) == 625
         and all(is_int_in(v, 0, 2**32 - 1) for v in py["state"][:-1])
         and is_int_in(py["state"][-1], 0, 624)
         and (py["gauss_next"] is None or is_number(py["gauss_next"])),
         "'python' is not a Mersenne Twister state (version 3, 625 integers)")
    need(isinstance(npy, dict)
         and set(npy) == {"name", "keys", "pos", "has_gauss", "cached_gaussian"},
         "'numpy' must have keys 'name', 'keys', 'pos', 'has_gauss', 'cached_gaussian'")
    need(npy["name"] == "MT19937" and isinstance(npy["keys"], list) and len(npy["keys"]) == 624
         and all(is_int_in(v, 0, 2**32 - 1) for v in npy["keys"])
         and is_int_in(npy["pos"], 0, 624) and npy["has_gauss"] in (0, 1)
         and is_number(npy["cached_gaussian"]),
         "'numpy' is not an MT19937 state (624 keys, pos 0..624)")
    need(is_int_in(state["mxnet_seed"], 0, 2**63), "'mxnet_seed' must be an integer >= 0")
    return state
