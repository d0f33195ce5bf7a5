"""The models a server holds: each checkpoint loaded once, with its decoder, its
originality index and human baseline, and a card describing it."""
import dataclasses
import math
from pathlib import Path

from lyricnn.run.checkpoint import load_checkpoint
from lyricnn.run.task import task_of


@dataclasses.dataclass
class Served:
    """One loaded checkpoint, ready to decode: read-only after loading."""

    name: str
    path: Path
    checkpoint: object      # lyricnn.run.checkpoint.Checkpoint
    task: object            # lyricnn.run.task.Task
    decoder: object         # lyricnn.decoding.engine.Decoder (with the index)
    index: object           # lyricnn.decoding.originality.OriginalityIndex
    baseline: object        # the held-out split's novelty curve, or None
    mix_ngram: int = 0      # decoded mixed with a Kneser-Ney n-gram of this order (0: no)
    mix_weight: float = 0.5

    @property
    def vocab(self):
        return self.checkpoint.vocab

    @property
    def config(self):
        return self.checkpoint.config

    def card(self):
        """What the page shows of the model: corpus, model, size, epochs, perplexities,
        the training curve and the human baseline."""
        config, history = self.config, self.checkpoint.history
        valid = [v for v in history.valid_perplexity if v is not None]
        return {
            "id": self.name, "path": str(self.path), "tokens": config.tokens,
            "corpus": config.corpus or "the Jay Chou lyrics (the book's corpus)",
            "model": config.model, "num_layers": config.num_layers,
            "num_hiddens": config.num_hiddens, "vocab_size": config.vocab_size,
            "parameters": self.task.num_parameters(config),
            "keep_newlines": config.keep_newlines, "dropout": config.dropout,
            "epochs": self.checkpoint.epoch,
            "train_perplexity": _finite(history.perplexity[-1]) if history.epoch else None,
            "valid_perplexity": _finite(valid[-1]) if valid else None,
            "best_valid_perplexity": _finite(min(valid)) if valid else None,
            "curve": {"epoch": list(history.epoch),
                      "perplexity": [_finite(p) for p in history.perplexity],
                      "valid_perplexity": [_finite(v) for v in history.valid_perplexity]},
            "human_novel_ngram_fraction": self.baseline,
            "line_separator": self.task.line_separator(config, self.vocab),
            "mixture": {"ngram": self.mix_ngram, "weight": self.mix_weight}
            if self.mix_ngram else None,
        }


def _finite(x):
    return x if x is not None and math.isfinite(x) else None


def load_served(paths, ctx=None, mix_ngram=0, mix_weight=0.5):
    """``{name: Served}`` for the checkpoint folders ``paths`` (each decoded mixed with a
    Kneser-Ney ``mix_ngram``-gram of its training text when ``mix_ngram``); a model's name
    is its run
    folder's name (``lyrics``; ``lyrics/best`` for a run's best checkpoint; ``-2``, ``-3``
    … added when two are alike)."""
    served = {}
    for path in paths:
        ckpt = load_checkpoint(path, ctx)
        task = task_of(ckpt.config)
        index, baseline = task.originality(ckpt.config, ckpt.vocab, ckpt.corpus_text)
        folder = ckpt.path.parent if ckpt.path.name == "checkpoint" else ckpt.path
        base = folder.name or "model"
        if base == "best" and folder.parent.name:   # runs/lyrics/best: "lyrics/best"
            base = f"{folder.parent.name}/best"
        name, k = base, 2
        while name in served:
            name, k = f"{base}-{k}", k + 1
        lm = ckpt.lm if not mix_ngram else task.mixture(
            ckpt.config, ckpt.vocab, ckpt.lm, ckpt.corpus_text, mix_ngram, mix_weight)
        served[name] = Served(name, ckpt.path, ckpt, task,
                              task.decoder(ckpt.config, ckpt.vocab, lm, index), index,
                              baseline, mix_ngram, mix_weight)
    return served
