"""The studio page of ``lyricnn serve`` in a real browser (headless Chromium, Selenium).

One server (uvicorn in a thread, as in tests/test_serve.py) serves a character model
trained for a few epochs and one trained to memorise a short text (so that greedy
decoding copies it). The page is driven like a user would: type, click, wait; every
wait is bounded.
"""
import math
import os

import httpx
import pytest
from servers import Running

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HAVE_CHROMIUM = os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)
if not HAVE_CHROMIUM and not os.environ.get("CI"):   # CI must run them: there it fails below
    pytest.skip("install Debian's chromium and chromium-driver: apt-get install chromium "
                "chromium-driver", allow_module_level=True)

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from lyricnn.cli import main as cli
from lyricnn.serve.scheduler import wait_until
from lyricnn.serve.server import app_for

CHAR = ["--keep-newlines", "--num-chars", "6000", "--valid-fraction", "0.1", "--model", "gru",
        "--num-hiddens", "32", "--num-steps", "10", "--batch-size", "8", "--epochs", "3",
        "--no-progress", "--period", "100"]

#: Lines the memorising model learns by heart.
MEMO = ["想要有直升机", "想要和你飞到宇宙去", "想要和你融化在一起", "融化在宇宙里",
        "我每天每天每天在想想想想著你", "这样的甜蜜让我开始相信命运"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    assert cli.main(["train", *CHAR, "--out", str(root / "lyrics")]) == 0
    corpus = root / "memo.txt"
    corpus.write_text("\n".join(MEMO * 12) + "\n", encoding="utf-8")
    assert cli.main(["train", "--corpus", str(corpus), "--keep-newlines", "--valid-fraction",
                     "0.1", "--model", "gru", "--num-hiddens", "64", "--num-steps", "20",
                     "--batch-size", "8", "--epochs", "40", "--no-progress", "--period", "100",
                     "--out", str(root / "memo")]) == 0
    return root


@pytest.fixture(scope="module")
def server(runs):
    app, state = app_for([runs / "lyrics", runs / "memo"], background=True)
    running = Running(app)
    assert wait_until(lambda: state.ready, 60)
    running.state = state
    yield running
    running.stop()
    state.close()


@pytest.fixture(scope="module")
def browser():
    assert HAVE_CHROMIUM, ("CI runs the browser tests: apt-get install chromium "
                           "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, server):
    """The studio, freshly loaded, its models listed and the first one's card shown."""
    browser.get(server.url + "/")
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "body")
                        .get_attribute("data-state") == "idle")
    return browser


def wait(driver, timeout=60):
    # The page re-renders what it shows (the card, a candidate's text): an element read
    # in between is stale, and read again at the next poll.
    return WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException,))


def fill(driver, **fields):
    """Type into the controls: ``fill(driver, prefix="想要", n=3)``."""
    for name, value in fields.items():
        box = driver.find_element(By.ID, name)
        box.clear()
        box.send_keys(str(value))


def choose(driver, model):
    Select(driver.find_element(By.ID, "model")).select_by_value(model)
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "#card h2").text.endswith(model))


def texts(driver):
    """Each candidate's text exactly (newlines kept: textContent, not Selenium's .text)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.candidate .text')].map(e => e.textContent)")


def finished(driver, n):
    return len(driver.find_elements(By.CSS_SELECTOR, ".candidate.done")) == n


def idle(driver):
    return (driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "idle"
            and driver.find_element(By.ID, "generate").is_enabled()
            and not driver.find_element(By.ID, "stop").is_enabled())


def post(server, body):
    r = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_candidates_stream_side_by_side_and_equal_the_whole_answer(page, server):
    fill(page, prefix="想要有", n=3, seed=11, max_tokens=1000, temperature=0.9)
    page.find_element(By.ID, "generate").click()
    # Text shows while the candidates are still being written, then all three finish.
    wait(page).until(lambda d: any(
        e.get_attribute("textContent") for e in
        d.find_elements(By.CSS_SELECTOR, ".candidate:not(.done) .text")))
    wait(page).until(lambda d: finished(d, 3) and idle(d))
    assert len(page.find_elements(By.CSS_SELECTOR, "#candidates .candidate")) == 3
    chunks = page.execute_script("return [...lyricnnStudio.cards.values()].map(c => c.chunks)")
    assert all(c > 1 for c in chunks), chunks   # streamed, not all at once
    sent = page.execute_script("return lyricnnStudio.lastRequest")
    assert sent["prompt"] == "想要有" and sent["n"] == 3 and sent["seed"] == 11
    assert sent["stream"] is True and sent["logprobs"] == 1 and sent["max_tokens"] == 1000
    whole = post(server, {**sent, "stream": False})
    assert texts(page) == [c["text"] for c in whole["choices"]]
    # Side by side: the cards share a row.
    tops = {c.location["y"] for c in page.find_elements(By.CSS_SELECTOR, ".candidate")}
    assert len(tops) == 1
    # One span per token, each with its probability on hover.
    tokens = page.find_elements(By.CSS_SELECTOR, ".candidate:first-child .token")
    lp = whole["choices"][0]["logprobs"]
    assert len(tokens) == len(lp["tokens"])
    for span, logprob in list(zip(tokens, lp["token_logprobs"]))[:20]:
        title = span.get_attribute("title")
        assert title.startswith("p = "), title
        shown, p = float(title.split("\n")[0][4:]), math.exp(logprob)
        assert abs(shown - p) <= max(0.005, 0.05 * p), (title, p)
    # The novelty chart beside the human baseline, and the longest copy.
    card = page.find_element(By.CSS_SELECTOR, ".candidate:first-child")
    assert card.find_elements(By.CSS_SELECTOR, "svg.novelty polyline.model")
    assert card.find_elements(By.CSS_SELECTOR, "svg.novelty polyline.human")
    longest = whole["choices"][0]["originality"]["longest_copy"]["length"]
    assert card.find_element(By.CSS_SELECTOR, ".longest-copy b").text == str(longest)


def test_copies_of_the_training_text_are_highlighted_with_their_source(page, server,
                                                                       tmp_path):
    choose(page, "memo")
    fill(page, prefix="想要和你", n=2, temperature=0, max_tokens=40, seed=1)
    page.find_element(By.ID, "generate").click()
    wait(page).until(lambda d: finished(d, 2) and idle(d))
    whole = post(server, {**page.execute_script("return lyricnnStudio.lastRequest"),
                          "stream": False})
    spans = whole["choices"][0]["originality"]["copied_spans"]
    assert spans, "the memorising model should copy its training text"
    copied = page.find_elements(By.CSS_SELECTOR, ".candidate .token.copied")
    assert copied
    sources = {s["source"]["text"] for s in spans}
    assert any(source in c.get_attribute("title") for c in copied for source in sources)
    assert "p = " in copied[0].get_attribute("title")
    shot = tmp_path / "studio.png"
    assert page.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000


def test_the_card_shows_the_models_training(page, server):
    for model in ("lyrics", "memo"):
        choose(page, model)
        card = httpx.get(f"{server.url}/v1/models/{model}").json()["card"]
        box = page.find_element(By.ID, "card")
        assert box.find_element(By.CSS_SELECTOR, "[data-field=epochs]").text == str(card["epochs"])
        assert box.find_element(By.CSS_SELECTOR, "[data-field=model]").text.startswith("gru")
        assert box.find_element(By.CSS_SELECTOR, "[data-field=held-out_perplexity]").text == \
            f"{card['valid_perplexity']:.1f} (best {card['best_valid_perplexity']:.1f})"
        points = box.find_elements(By.CSS_SELECTOR, "svg#curve circle.train")
        assert len(points) == len(card["curve"]["epoch"])


def test_an_api_error_is_shown(page, server):
    fill(page, prefix="想ÿ要")
    page.find_element(By.ID, "generate").click()
    error = page.find_element(By.ID, "error")
    wait(page).until(lambda d: error.is_displayed() and error.text)
    r = httpx.post(server.url + "/v1/completions",
                   json={**page.execute_script("return lyricnnStudio.lastRequest"),
                         "stream": False})
    assert r.status_code == 400
    assert r.json()["error"]["message"] in error.text and "'ÿ'" in error.text
    assert idle(page) and not page.find_elements(By.CSS_SELECTOR, ".candidate")
    # A good request afterwards clears it.
    fill(page, prefix="想要", max_tokens=5)
    page.find_element(By.ID, "generate").click()
    wait(page).until(lambda d: finished(d, 3) and idle(d))
    assert not error.is_displayed()


def test_stop_cancels_the_generation_on_the_server(page, server):
    scheduler = server.state.scheduler
    cancelled = scheduler.stats["cancelled"]
    fill(page, prefix="想要", n=2, max_tokens=3000)
    page.find_element(By.ID, "generate").click()
    wait(page).until(lambda d: any(e.get_attribute("textContent") for e in
                                   d.find_elements(By.CSS_SELECTOR, ".candidate .text")))
    assert page.find_element(By.ID, "stop").is_enabled()
    page.find_element(By.ID, "stop").click()
    wait(page, 10).until(idle)
    assert page.find_element(By.ID, "status").text == "stopped"
    assert not page.find_elements(By.CSS_SELECTOR, ".candidate.done")
    # The closed connection cancelled the job: its rows left the batch.
    assert wait_until(lambda: scheduler.stats["cancelled"] > cancelled, 30)
    assert wait_until(lambda: not scheduler.jobs, 30)
    assert sum(len(b) for b in scheduler.batches.values()) == 0
    assert page.find_element(By.ID, "error").is_displayed() is False
