"""The Kneser-Ney anchor of the lyrics model: n-grams on the CLI's own held-out split.

The split is the one ``lyricnn train --num-chars all --valid-fraction 0.1`` makes (the
last 10 % of the characters held out), with the book's preprocessing (newlines as
spaces) and with ``--keep-newlines``. Each held-out character is scored given the
characters before it, across the split's boundary, as a running text is read:

    .venv/bin/python examples/lyrics_anchor.py
"""
import numpy as np

from lyricnn.metrics import perplexity
from lyricnn.ngram.model import NGramLM
from lyricnn.run.config import RunConfig
from lyricnn.run.task import task_of


def main():
    print("| preprocessing | " + " | ".join(f"{n}-gram" for n in (3, 4, 5)) + " |")
    print("|---|---|---|---|")
    for keep in (False, True):
        config = RunConfig(model="lstm", num_chars=None, valid_fraction=0.1,
                           keep_newlines=keep)
        chars = list(task_of(config).text(config))
        train, valid = config.split(chars)
        cells = []
        for order in (3, 4, 5):
            lm = NGramLM(order, "kneser-ney").fit(train)
            held_out = lm.token_log_probs(chars)[len(train):]   # (len(valid),)
            cells.append(f"{perplexity(-float(np.mean(held_out))):.1f}")
        name = "newlines kept" if keep else "newlines as spaces (the book's)"
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
