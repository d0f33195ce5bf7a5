"""``lyricnn serve``: the OpenAI-style API, tested with the official ``openai`` client.

One server (uvicorn in a thread, on a free loopback port) serves a character model and
a word model trained here for a few epochs; every request goes to 127.0.0.1.

Where a candidate computed in one batch is compared with the same seed's candidate in
another (alone, or beside other requests), the float32 logits differ by rounding
(~1e-7 relative: another summation order); a sampled token can differ only if its
uniform draw falls within that distance of a boundary of the cumulative distribution,
about 1e-7 per token, 3e-5 over a test's few hundred tokens. Exact equality is
checked in float64 in tests/test_engine.py.
"""
import hashlib
import json
import socket
import threading
import time

import httpx
import openai
import pytest
from servers import Running

from lyricnn.cli import main as cli
from lyricnn.decoding.engine import Options
from lyricnn.serve.api import create_app
from lyricnn.serve.scheduler import wait_until
from lyricnn.serve.server import State, app_for

pytestmark = pytest.mark.slow

CHAR = ["--keep-newlines", "--num-chars", "6000", "--valid-fraction", "0.1", "--model", "gru",
        "--num-hiddens", "32", "--num-steps", "10", "--batch-size", "8", "--epochs", "3",
        "--no-progress", "--period", "100"]


def tree(folder):
    """``{relative path: sha256}`` of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    assert cli.main(["train", *CHAR, "--out", str(root / "lyrics")]) == 0
    words = root / "words.txt"
    words.write_text("\n".join(f"the cat sat on the mat number {i % 7} and the dog ran"
                               for i in range(300)), encoding="utf-8")
    assert cli.main(["train", "--tokens", "word", "--corpus", str(words), "--num-hiddens", "16",
                     "--batch-size", "4", "--num-steps", "5", "--epochs", "2",
                     "--valid-fraction", "0.1", "--no-progress", "--out",
                     str(root / "words")]) == 0
    return root


@pytest.fixture(scope="module")
def server(runs):
    before = tree(runs)
    app, state = app_for([runs / "lyrics", runs / "words"], background=True)
    running = Running(app)
    assert wait_until(lambda: state.ready, 60)
    running.state = state
    yield running
    running.stop()
    state.close()
    assert tree(runs) == before, "serving changed a file on disk"


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                         timeout=60)


def post(server, body, **kwargs):
    return httpx.post(server.url + "/v1/completions", json=body, timeout=60, **kwargs)


# -- the standard API ---------------------------------------------------------------

def test_health_is_503_until_the_models_are_loaded(runs):
    state = State()
    running = Running(create_app(state))
    try:
        r = httpx.get(running.url + "/health")
        assert r.status_code == 503 and r.json() == {"status": "loading"}
        r = httpx.post(running.url + "/v1/completions", json={"model": "lyrics", "prompt": "想"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "loading"
        state.load([runs / "lyrics"])
        assert httpx.get(running.url + "/health").json() == {"status": "ok"}
    finally:
        running.stop()
        state.close()


def test_models_are_listed_with_their_cards(client, server):
    assert sorted(m.id for m in client.models.list()) == ["lyrics", "words"]
    card = httpx.get(server.url + "/v1/models/lyrics").json()["card"]
    assert card["epochs"] == 3 and card["keep_newlines"] and card["tokens"] == "char"
    assert len(card["curve"]["valid_perplexity"]) == 3 and card["valid_perplexity"] > 1
    assert len(card["human_novel_ngram_fraction"]) == 10


def test_the_openai_client_gets_n_seeded_choices(client, server):
    out = client.completions.create(model="lyrics", prompt="想要", max_tokens=30, n=3, seed=7,
                                    temperature=0.9, extra_body={"top_k": 20})
    assert [c.index for c in out.choices] == [0, 1, 2]
    seeds = [c.model_extra["seed"] for c in out.choices]
    assert seeds == [7, 8, 9] and out.usage.completion_tokens == sum(
        len(c.model_extra["originality"]["duplication"]) for c in out.choices)
    served = server.state.models["lyrics"]
    ids = served.vocab.to_indices(list("想要"))
    for c in out.choices:   # each choice is the engine's candidate of its seed, alone
        alone, = served.decoder.generate(ids, Options(max_tokens=30, temperature=0.9,
                                                      top_k=20), seed=c.model_extra["seed"])
        assert c.text == alone.text and c.finish_reason == alone.finish_reason


@pytest.mark.parametrize("extra", [{}, {"stop": ["\n"]}, {"extra_body": {"lines": 2}},
                                   {"extra_body": {"acrostic": "想你"}}])
def test_streamed_text_equals_the_whole_text_for_the_same_seed(client, extra):
    kwargs = dict(model="lyrics", prompt="想要", max_tokens=40, n=2, seed=3, temperature=1.0,
                  **extra)
    whole = client.completions.create(**kwargs)
    parts = {0: "", 1: ""}
    finish = {}
    for chunk in client.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            parts[c.index] += c.text
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    assert [parts[0], parts[1]] == [c.text for c in whole.choices]
    assert [finish[0], finish[1]] == [c.finish_reason for c in whole.choices]


def test_logprobs_are_the_models_and_name_the_tokens(client):
    out = client.completions.create(model="lyrics", prompt="想要", max_tokens=10, logprobs=3,
                                    temperature=0)
    lp = out.choices[0].logprobs
    assert "".join(lp.tokens) == out.choices[0].text and len(lp.top_logprobs) == 10
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and value == max(top.values()) and top[token] == value  # greedy


def test_a_word_model_is_served_too(client):
    out = client.completions.create(model="words", prompt="the cat", max_tokens=6,
                                    temperature=0, logprobs=1)
    text, lp = out.choices[0].text, out.choices[0].logprobs
    assert text.startswith(" ") or text.startswith("\n")      # it continues "the cat"
    assert "".join(lp.tokens) == text                          # each token's piece of text
    full = "the cat" + text
    assert all(full[o:o + len(t)] == t for o, t in zip(lp.text_offset, lp.tokens))
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="words", prompt="the zebra", max_tokens=3)
    assert "zebra" in str(err.value)
    ok = client.completions.create(model="words", prompt="the zebra", max_tokens=3,
                                   extra_body={"unknown": "unk"})
    assert ok.choices[0].finish_reason == "length"


# -- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("body, status, param", [
    ({"model": "lyrics", "prompt": "想", "temperature": -1}, 400, "temperature"),
    ({"model": "lyrics", "prompt": "想", "top_p": 2}, 400, "top_p"),
    ({"model": "lyrics", "prompt": "想", "max_tokens": 10**6}, 400, "max_tokens"),
    ({"model": "lyrics", "prompt": "想", "n": 17}, 400, "n"),
    ({"model": "lyrics", "prompt": "想", "logprobs": 6}, 400, "logprobs"),
    ({"model": "lyrics", "prompt": "想", "stop": ["a"] * 5}, 400, "stop"),
    ({"model": "nope", "prompt": "想"}, 400, "model"),
    ({"model": "lyrics", "prompt": "想ÿ要"}, 400, "prompt"),
    ({"model": "lyrics", "prompt": "想", "tempreature": 1}, 400, "tempreature"),
    ({"model": "lyrics", "prompt": "想", "echo": True}, 400, "echo"),
    ({"model": "lyrics", "prompt": "想", "seed": -1}, 400, "seed"),
    ({"model": "lyrics", "prompt": 5}, 400, "prompt"),
    ({"model": "lyrics", "prompt": "想", "acrostic": "ÿ"}, 400, "acrostic"),
    ({"model": "lyrics", "prompt": "想", "beam_width": 2, "n": 3}, 400, "n"),
])
def test_bad_requests_get_the_error_envelope_naming_the_parameter(server, body, status, param):
    r = post(server, body)
    error = r.json()["error"]
    assert r.status_code == status and error["param"] == param, error
    assert set(error) == {"message", "type", "param", "code"} and error["message"]


def test_unknown_prompt_characters_are_listed(server):
    error = post(server, {"model": "lyrics", "prompt": "想ÿ要þ"}).json()["error"]
    assert "'ÿ'" in error["message"] and "'þ'" in error["message"]


def test_the_openai_client_raises_on_a_bad_value(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="lyrics", prompt="想", temperature=-1)
    assert err.value.body["param"] == "temperature"


@pytest.mark.parametrize("data, status", [
    (b"{not json", 400), (b"[1, 2]", 400), (b"[" * 50000, 400),   # nested past Python's recursion limit
    (json.dumps({"model": "lyrics", "prompt": "想" * 40000}).encode(), 413)])
def test_malformed_and_oversized_bodies(server, data, status):
    r = httpx.post(server.url + "/v1/completions", content=data,
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status and "error" in r.json()


def test_a_thousand_malformed_requests_leave_the_server_answering(server, client):
    bodies = [b"{", b"null", b'{"model": 1}', b'{"model": "lyrics", "prompt": "\\u0000"}',
              b'{"model": "lyrics", "n": "x"}']
    start = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(1000):
            r = http.post("/v1/completions", content=bodies[i % len(bodies)],
                          headers={"content-type": "application/json"})
            assert r.status_code in (400, 413), r.text
    assert time.monotonic() - start < 120
    out = client.completions.create(model="lyrics", prompt="想要", max_tokens=5, temperature=0)
    assert len(out.choices[0].text) >= 1


@pytest.mark.parametrize("path", [
    "/static/../../etc/passwd", "/static/..%2f..%2fetc%2fpasswd", "/static/%2e%2e/api.py",
    "/static/..%252f..%252fetc%252fpasswd", "/../../etc/passwd", "/static/index.html/..",
    "/static/studio.js%00.html", "/v1/models/..%2f..%2fetc%2fpasswd", "/static/"])
def test_no_path_outside_the_assets_can_be_read(server, path):
    r = httpx.get(server.url + path)
    assert r.status_code == 404 and b"root:" not in r.content and b"import" not in r.content


def test_the_page_and_its_assets_are_served(server):
    for path in ("/", "/static/index.html", "/static/studio.js", "/static/studio.css"):
        r = httpx.get(server.url + path)
        assert r.status_code == 200 and r.content, path


# -- concurrency --------------------------------------------------------------------------

def test_concurrent_requests_share_steps_and_equal_their_sequential_answers(server, client):
    state = server.state
    prompts = ["想要", "我的", "你", "爱"] * 2
    sequential = [client.completions.create(model="lyrics", prompt=p, max_tokens=40, seed=i,
                                            temperature=0.8).choices[0].text
                  for i, p in enumerate(prompts)]
    steps, rows = state.scheduler.stats["steps"], state.scheduler.stats["rows_per_step"]
    results = [None] * len(prompts)

    def ask(i):
        results[i] = client.completions.create(model="lyrics", prompt=prompts[i],
                                               max_tokens=40, seed=i,
                                               temperature=0.8).choices[0].text
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == sequential
    d_steps = state.scheduler.stats["steps"] - steps
    d_rows = state.scheduler.stats["rows_per_step"] - rows
    assert d_rows == 8 * 40 and d_rows / d_steps > 1.5   # rows shared forward calls


def test_a_client_that_goes_away_cancels_its_generation(server):
    scheduler = server.state.scheduler
    cancelled = scheduler.stats["cancelled"]
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", server.url + "/v1/completions",
                         json={"model": "lyrics", "prompt": "想要", "max_tokens": 4000,
                               "stream": True}) as r:
            lines = r.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
    # The connection is closed: the rows leave the batch and the job ends as cancelled.
    assert wait_until(lambda: scheduler.stats["cancelled"] > cancelled, 30)
    assert wait_until(lambda: not scheduler.jobs, 30)
    assert sum(len(b) for b in scheduler.batches.values()) == 0


def test_a_full_queue_answers_429(runs):
    app, state = app_for([runs / "lyrics"], background=False, max_jobs=1)
    running = Running(app)
    try:
        long = threading.Thread(target=lambda: httpx.post(
            running.url + "/v1/completions", json={"model": "lyrics", "prompt": "想",
                                                    "max_tokens": 3000}, timeout=120))
        long.start()
        assert wait_until(lambda: state.scheduler.jobs, 30)
        r = httpx.post(running.url + "/v1/completions",
                       json={"model": "lyrics", "prompt": "想", "max_tokens": 3})
        assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
        long.join(120)
    finally:
        running.stop()
        state.close()


def test_serve_refuses_an_address_it_cannot_listen_on(runs, capsys):
    for host in ("8.8.8.8", "no such host!!"):
        code = cli.main(["serve", "--checkpoint", str(runs / "lyrics"), "--host", host,
                         "--port", "0"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "--host" in err, err


def test_serve_stops_on_sigterm_even_with_a_stalled_client(runs):
    """A client that sent half a request (and never more) must not keep the server up:
    open connections get lyricnn.cli.serve.GRACE seconds after the signal."""
    import os
    import signal
    import subprocess
    import sys

    from lyricnn.cli.serve import GRACE
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-m", "lyricnn.cli", "serve", "--checkpoint",
                             str(runs / "lyrics"), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: _healthy(port), 60)
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100"
                        b"\r\n\r\n{\"a")
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=GRACE + 20)
        assert time.monotonic() - start < GRACE + 20
        stalled.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def _healthy(port):
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_model_served_mixed_with_an_ngram(runs):
    app, state = app_for([runs / "lyrics"], background=False, mix_ngram=3, mix_weight=0.5)
    running = Running(app)
    try:
        card = httpx.get(running.url + "/v1/models/lyrics").json()["card"]
        assert card["mixture"] == {"ngram": 3, "weight": 0.5}
        r = httpx.post(running.url + "/v1/completions",
                       json={"model": "lyrics", "prompt": "想要", "max_tokens": 10, "seed": 1},
                       timeout=60)
        assert r.status_code == 200 and len(r.json()["choices"][0]["text"]) >= 1
    finally:
        running.stop()
        state.close()
