"""Execute every notebook in examples/notebooks on a short configuration, so they cannot rot.

Each notebook's first code cell (tagged ``parameters``) holds the book-sized
settings; the test inserts a cell right after it that overrides them with tiny
ones, runs the notebook with nbclient and checks a line of its output.

The kernel is this interpreter (the venv's): a kernelspec pointing at
``sys.executable`` is installed into a temporary prefix and put first on
``JUPYTER_PATH``, so a ``python3`` kernel of another Python elsewhere on the
machine cannot shadow it, and nothing is installed into the venv.
"""
import ast
import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

#: Every test here starts processes or trains for seconds: left out of make test-fast.
pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "examples" / "notebooks"
KERNEL = "lyricnn-test"

TRAIN = dict(NUM_CHARS=1000, NUM_HIDDENS=16, EPOCHS=1, NUM_STEPS=5, BATCH_SIZE=4,
             PERIOD=1, PRED_LEN=5)
#: notebook -> (overrides, a string its outputs must contain)
CASES = {
    "1-language-model-ngrams.ipynb": (dict(NUM_CHARS=3000, MAX_ORDER=2), "kneser-ney"),
    "2-sampling.ipynb": (dict(BATCH_SIZE=3, NUM_STEPS=4, SEED=1), "minibatches of shape (3, 4)"),
    "3-rnn-scratch.ipynb": (TRAIN, "epoch 1, perplexity"),
    "4-rnn-gluon.ipynb": (TRAIN, "epoch 1, perplexity"),
    "5-generation-and-checkpoints.ipynb": (dict(NUM_CHARS=1000, NUM_HIDDENS=16, EPOCHS=2,
                                                NUM_STEPS=5, BATCH_SIZE=4),
                                           "held-out perplexity per epoch"),
}


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("kernel")
    install_kernelspec(kernel_name=KERNEL, prefix=str(prefix))
    return str(prefix / "share" / "jupyter")


def parameter_cell(nb):
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), "first code cell must be tagged"
    return first


def assigned_names(source):
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def outputs_text(nb):
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_every_notebook_is_covered_and_committed_clean():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CASES)
    for name, (overrides, _) in CASES.items():
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        # An override of a name the notebook does not read would silently test nothing.
        assert set(overrides) <= assigned_names(parameter_cell(nb).source), name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs(name, kernel_path, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", kernel_path)
    # MXNet's OpenMP threads spin while waiting; on a busy 2-core machine that makes
    # tiny runs 10-100x slower.  Passive waiting changes only the speed.
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    overrides, expected = CASES[name]
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    values = {**overrides, "OUT_DIR": str(tmp_path / "out")}
    values = {k: v for k, v in values.items() if k in assigned_names(parameter_cell(nb).source)}
    # The first line proves the kernel runs this interpreter's environment.
    injected = nbformat.v4.new_code_cell(
        f"import sys as _sys\nassert _sys.prefix == {sys.prefix!r}, _sys.prefix\n"
        + "\n".join(f"{k} = {v!r}" for k, v in values.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(nb.cells.index(parameter_cell(nb)) + 1, injected)
    NotebookClient(nb, kernel_name=KERNEL, timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert expected in outputs_text(nb)


def _book_lines(text):
    import re
    return re.findall(r"^epoch \d+, perplexity \d+\.\d+", text, re.M)


def _reference_run(gluon):
    """What ``d2l.set_seed(0)`` then the book's training call prints with ``TRAIN``."""
    import contextlib
    import io

    from mxnet.gluon import rnn

    import lyricnn as d2l
    ci, c2i, i2c, V = d2l.load_data_jay_lyrics(num_chars=TRAIN["NUM_CHARS"])
    h, args = TRAIN["NUM_HIDDENS"], (TRAIN["EPOCHS"], TRAIN["NUM_STEPS"], 1e2, 1e-2,
                                     TRAIN["BATCH_SIZE"], TRAIN["PERIOD"], TRAIN["PRED_LEN"],
                                     ["分开"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if gluon:
            d2l.set_seed(0)
            d2l.train_and_predict_rnn_gluon(d2l.RNNModel(rnn.RNN(h), V), h, V, None, ci, i2c,
                                            c2i, *args)
        else:
            for is_random in (True, False):
                d2l.set_seed(0)
                d2l.train_and_predict_rnn(d2l.rnn, d2l.params_getter(V, h), d2l.init_rnn_state,
                                          h, V, None, ci, i2c, c2i, is_random, *args)
    return _book_lines(out.getvalue())


@pytest.mark.parametrize("name,gluon", [("3-rnn-scratch.ipynb", False),
                                        ("4-rnn-gluon.ipynb", True)])
def test_training_notebooks_print_the_numbers_of_a_seeded_run(name, gluon, kernel_path,
                                                              tmp_path, monkeypatch):
    """The notebooks reseed before training, so the earlier get_params()/initialize()
    calls do not shift their numbers away from the examples' and the results document's."""
    monkeypatch.setenv("JUPYTER_PATH", kernel_path)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    values = {**TRAIN, "OUT_DIR": str(tmp_path / "out")}
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()
                                               if k in assigned_names(parameter_cell(nb).source)))
    nb.cells.insert(nb.cells.index(parameter_cell(nb)) + 1, cell)
    NotebookClient(nb, kernel_name=KERNEL, timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = _book_lines(outputs_text(nb))
    assert printed and printed == _reference_run(gluon)
