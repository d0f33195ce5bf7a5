"""Start a server: the app answers at once (``/health`` 503) while the models load in the
background, then the scheduler thread takes requests."""
import logging
import threading

from lyricnn.serve.api import MAX_JOBS, create_app
from lyricnn.serve.models import load_served
from lyricnn.serve.scheduler import Scheduler

log = logging.getLogger(__name__)


class State:
    """What the routes read: the models (once loaded), the scheduler, a load error."""

    def __init__(self, max_jobs=MAX_JOBS):
        self.models, self.ready, self.error = {}, False, None
        self.scheduler = Scheduler(max_jobs)

    def load(self, paths, ctx=None, **mix):
        """Load ``paths`` (checkpoint folders) and start the scheduler; on failure keep
        the error (``/health`` stays 503) and raise it."""
        try:
            self.models = load_served(paths, ctx, **mix)
        except Exception as err:
            self.error = err
            raise
        self.scheduler.start()
        self.ready = True

    def close(self):
        if self.scheduler.is_alive():
            self.scheduler.stop()
            self.scheduler.join(timeout=10)


def app_for(paths, ctx=None, background=True, max_jobs=MAX_JOBS, on_loaded=None, **mix):
    """``(app, state)`` serving the checkpoints ``paths``; ``background``: load them in a
    thread (the app answers ``/health`` with 503 meanwhile) instead of before returning,
    then call ``on_loaded(state)`` (also after a failure: ``state.error`` says which).
    ``mix``: ``mix_ngram``, ``mix_weight`` of ``load_served``."""
    state = State(max_jobs)
    if background:
        def load():
            try:
                state.load(paths, ctx, **mix)
            except Exception:
                log.debug("loading the models failed", exc_info=True)
            if on_loaded is not None:
                on_loaded(state)
        threading.Thread(target=load, name="lyricnn-load", daemon=True).start()
    else:
        state.load(paths, ctx, **mix)
    return create_app(state), state
