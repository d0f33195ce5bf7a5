"""The lyrics model of the studio: the whole corpus, a held-out tenth, dropout, newlines kept.

The book's setup (the first 10,000 characters, nothing held out) only memorises. This
recipe trains on all 63,282 characters of the lyrics with the last 10 % held out, a
2-layer tied LSTM of 512 units reading an embedding with dropout 0.75 (the word
models' path, on characters), the learning rate halved whenever the held-out
perplexity stops improving, and line breaks kept (``--keep-newlines``) so that
generated lyrics have lines. The run keeps ``best/``, the epoch with the lowest
held-out perplexity, which ``make studio`` serves. Figures: docs/RESULTS.md, "The
lyrics studio". Extra arguments are passed to ``lyricnn train``:

    .venv/bin/python examples/train_lyrics.py --out runs/lyrics --force
"""
import sys

from lyricnn.cli import main as cli

RECIPE = ["--model", "lstm", "--num-layers", "2", "--num-hiddens", "512", "--embed-size", "512",
          "--tied", "--dropout", "0.75", "--lr", "40", "--clip", "0.25", "--lr-decay", "2",
          "--num-steps", "35", "--batch-size", "16", "--num-chars", "all",
          "--valid-fraction", "0.1", "--keep-newlines", "--seed", "0", "--epochs", "56",
          "--period", "1", "--plot"]

if __name__ == "__main__":
    sys.exit(cli.main(["train", *RECIPE, *sys.argv[1:]]))
