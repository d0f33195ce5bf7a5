"""NT-ASGD: non-monotonically triggered averaged SGD (Merity et al. 2018, AWD-LSTM).

Plain SGD runs until the validation perplexity stalls; from then on every update
is followed by a running mean of the iterates, ``mean_n = mean_(n-1) + (w_n -
mean_(n-1)) / n``, and the *mean* is what is validated, saved as the model and
used after training (Polyak & Juditsky 1992). The trigger is AWD-LSTM's: after
epoch ``t`` (validation ``v_t``), averaging starts when ``t > n + 1`` and ``v_t``
is worse than the best of ``v_1 .. v_(t-n-1)``, the epochs before the last ``n``.
The rule reads only the history, so a resumed run finds the same epoch; the mean
and its count are checkpointed (``lyricnn.run.checkpoint``: the model's file holds
the mean, ``iterate.params`` the SGD iterate), so resuming equals not stopping.
"""
import contextlib

from lyricnn.checks import check_int


def triggered(valid, nonmono):
    """Whether NT-ASGD starts after the last epoch of ``valid`` (its validation
    perplexities, in order): ``len(valid) > nonmono + 1`` and ``valid[-1] >
    min(valid[:-nonmono - 1])``."""
    nonmono = check_int("nonmono", nonmono, 1)
    if len(valid) <= nonmono + 1 or any(v is None for v in valid):
        return False
    return valid[-1] > min(valid[:-nonmono - 1])


def _named_weights(lm):
    """``{name: array}`` of ``lm``'s trainable arrays, in ``lm.weights()``'s order."""
    weights = lm.weights()
    ids = {id(w): i for i, w in enumerate(weights)}
    named = {name: a for name, a in lm.named_parameters().items() if id(a) in ids}
    if len(named) != len(weights):
        raise ValueError("the model's named_parameters() do not hold its weights() arrays")
    return dict(sorted(named.items(), key=lambda item: ids[id(item[1])]))


class Averaging:
    """The running mean of a ``LanguageModel``'s weights from the update the trigger fires
    on; ``count`` iterates are in it (0: not started)."""

    def __init__(self, nonmono):
        self.nonmono = check_int("asgd", nonmono, 1, hint="AWD-LSTM uses 5")
        self.count, self.mean, self.iterate = 0, None, None
        self.active = False

    def after_epoch(self, history):
        """Start averaging (from the next update) if the trigger fires on ``history``."""
        if not self.active and triggered(history.valid_perplexity, self.nonmono):
            self.active = True

    def add(self, weights):
        """One more iterate: ``weights`` (the model's arrays, after an update)."""
        self.count += 1
        if self.mean is None:
            self.mean = [w.copy() for w in weights]
            return
        for m, w in zip(self.mean, weights):
            m += (w - m) * (1.0 / self.count)   # in place: no second copy of the model

    @contextlib.contextmanager
    def applied(self, lm):
        """``lm``'s weights hold the mean inside the block, the SGD iterate again after it.
        Inside, ``iterate`` is ``{name: the iterate's array}``, what a checkpoint keeps
        (``iterate.params``) to resume; ``None`` before averaging has started."""
        if not self.count:
            yield
            return
        named = _named_weights(lm)
        self.iterate = {name: w.copy() for name, w in named.items()}
        for w, m in zip(named.values(), self.mean):
            w[:] = m
        try:
            yield
        finally:
            for name, w in named.items():
                w[:] = self.iterate[name]
            self.iterate = None

    def restore(self, history, lm, iterate):
        """Resume after ``history``: ``lm`` holds the saved mean (the model's file),
        ``iterate`` (``{name: array}``) the saved SGD iterate, ``None`` before averaging
        started; ``history.averaged[-1]`` iterates were averaged."""
        self.count = history.averaged[-1] if history.epoch else 0
        valid = history.valid_perplexity
        self.active = self.count > 0 or any(triggered(valid[:t], self.nonmono)
                                            for t in range(1, len(valid) + 1))
        if self.count:
            named = _named_weights(lm)
            self.mean = [w.copy() for w in named.values()]
            for name, w in named.items():
                w[:] = iterate[name].as_in_context(w.context)
        return self
