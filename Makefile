# Two entry points do all set-up on a fresh machine:
#   make demo   train on the lyrics and print generated text
#   make test   run the whole test suite (what CI runs)
# and, once set up:
#   make test-fast   the suite without the tests marked slow (about a minute)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_DATA ?= ../shared/data
DATA_FILES := jaychou_lyrics.txt.zip ptb.zip

.PHONY: test test-fast demo studio lyrics data bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 8) <= v <= (3, 11) else \
	  "lyricnn needs Python 3.8-3.11: mxnet 1.9.1 publishes no wheels for %d.%d. Run e.g. make PYTHON=python3.11 test" % v)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Seed data/ from the shared copy when there is one; lyricnn downloads otherwise.
data:
	@for f in $(DATA_FILES); do \
	  if [ ! -f data/$$f ] && [ -f $(SHARED_DATA)/$$f ]; then cp $(SHARED_DATA)/$$f data/$$f && echo "seeded data/$$f"; fi; \
	done

test: $(VENV)/.installed data
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed data
	$(PY) -m pytest -q -m "not slow"

# The main job: the book's scratch RNN (6.4) on the lyrics, then generation from
# the checkpoint in a fresh process.
demo: $(VENV)/.installed data
	$(VENV)/bin/lyricnn train --out runs/demo --force --plot --no-progress
	$(VENV)/bin/lyricnn generate --checkpoint runs/demo --prefix 分开 --prefix 不分开 --length 50

# The studio's lyrics model (examples/train_lyrics.py): the whole corpus, a held-out tenth,
# dropout, newlines kept; about 8 minutes here (it stops when held-out stops improving).
lyrics: $(VENV)/.installed data
	$(PY) examples/train_lyrics.py --out runs/lyrics --force --no-progress

# The lyrics studio: lyricnn serve on http://127.0.0.1:8000/ with the best model there is
# (the recipe's LSTM mixed with a 5-gram of its training text: docs/RESULTS.md).
studio: $(VENV)/.installed
	$(VENV)/bin/lyricnn serve $(if $(wildcard runs/lyrics/best/manifest.json),--checkpoint runs/lyrics/best --mix-ngram 5,--checkpoint runs/demo)

bench: $(VENV)/.installed data
	$(PY) benchmarks/bench_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
