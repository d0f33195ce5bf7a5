"""One thread runs every MXNet call of the server, batching requests together.

MXNet's imperative API is not documented as safe to call from several threads, and
the two cores of this machine would gain nothing from it: so every model call happens
on this one thread. Each model has one ``lyricnn.decoding.engine.Batch``; a request
(a ``Job``) is read (its prompt prefilled) between two steps and its rows join the
batch, so concurrent requests share each step's forward call (dynamic batching).
Tokens go back to the request's asyncio queue as they are chosen; a cancelled job's
rows leave the batch at the next step.
"""
import logging
import queue
import threading
import time

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More jobs than ``Scheduler.max_jobs`` are waiting or running."""


class Job:
    """One request: prompts (token ids) of one model, the options, ``n`` per prompt.

    Events go to ``deliver(event)`` (thread-safe, set by the server):
    ``("piece", choice, text, is_separator)`` per token, then
    ``("done", choice, candidate, originality)`` per choice, then ``("end",)``;
    or ``("error", message)``.
    """

    def __init__(self, served, prompts, options, n, seed, deliver):
        self.served, self.prompts, self.options = served, prompts, options
        self.n, self.seed, self.deliver = n, seed, deliver
        self.cancelled = False
        self.open = len(prompts) * n          # choices not finished yet
        self.rows = []


class Scheduler(threading.Thread):
    """The model thread. ``submit`` a ``Job``; ``cancel`` it; ``stop`` the thread."""

    def __init__(self, max_jobs=64):
        super().__init__(name="lyricnn-model", daemon=True)
        self.max_jobs = max_jobs
        self.pending = queue.Queue()
        self.batches = {}                     # model name -> Batch
        self.owner = {}                       # row -> (job, choice index)
        self.jobs = set()                     # started, not finished
        self.lock = threading.Lock()
        self.waiting = 0
        self.stopping = False
        self.stats = {"jobs": 0, "cancelled": 0, "steps": 0, "rows_per_step": 0,
                      "tokens": 0}

    # -- called from the server's threads -------------------------------------------------

    def submit(self, job):
        with self.lock:
            if self.waiting + len(self.jobs) >= self.max_jobs:
                raise QueueFull(f"{self.max_jobs} requests are already waiting or running")
            self.waiting += 1
        self.pending.put(job)

    def cancel(self, job):
        job.cancelled = True

    def stop(self):
        self.stopping = True
        self.pending.put(None)

    # -- the thread -------------------------------------------------------------------------

    def run(self):
        while not self.stopping:
            busy = any(len(b) for b in self.batches.values())
            new = []
            try:   # idle: sleep until a job (or stop's None) comes; busy: take what is there
                item = self.pending.get_nowait() if busy else self.pending.get()
                while item is not None:
                    new.append(item)
                    item = self.pending.get_nowait()
            except queue.Empty:
                pass
            with self.lock:
                self.waiting -= len(new)
            for job in new:
                self._start(job)
            self._drop_cancelled()
            self._step()

    def _start(self, job):
        self.stats["jobs"] += 1
        if job.cancelled:
            return self._end(job, cancelled=True)
        try:
            decoder = job.served.decoder
            if job.options.beam_width:
                for p, prompt in enumerate(job.prompts):
                    for i, c in enumerate(decoder.beam(prompt, job.options, job.n)):
                        self._done(job, p * job.n + i, c)
                return self._end(job)
            batch = self.batches.setdefault(job.served.name, _new_batch(decoder.lm))
            self.jobs.add(job)
            for p, prompt in enumerate(job.prompts):
                seed = None if job.seed is None else job.seed + p * job.n
                rows = decoder.rows(prompt, job.options, job.n, seed)
                state, logits = decoder.prefill(prompt, len(rows))
                for i, row in enumerate(rows):
                    self.owner[row] = (job, p * job.n + i)
                job.rows.extend(rows)
                batch.add(rows, state, logits)
        except Exception as err:   # a model failure: this request fails, the server goes on
            log.exception("a request failed")
            self._forget(job)
            job.deliver(("error", str(err)))

    def _step(self):
        for batch in self.batches.values():
            if not len(batch):
                continue
            rows = len(batch)
            try:
                events = batch.step()
            except Exception as err:
                log.exception("a batch failed")
                for row in list(batch.rows) + list(batch.finished):
                    job = self.owner.get(row, (None,))[0]
                    if job is not None and job in self.jobs:
                        self._forget(job)
                        job.deliver(("error", str(err)))
                batch.rows, batch.finished = [], []
                continue
            self.stats["steps"] += 1
            self.stats["rows_per_step"] += rows
            self.stats["tokens"] += len(events)
            for row, token in events:
                job, choice = self.owner[row]
                job.deliver(("piece", choice, row.pieces[-1] if row.pieces else "",
                             token == row.vocab.separator))
            for row in batch.finished:
                job, choice = self.owner.pop(row)
                self._done(job, choice, row.candidate())
            batch.finished = []

    def _done(self, job, choice, candidate):
        served = job.served
        job.deliver(("done", choice, candidate, served.index.report(candidate.tokens)))
        job.open -= 1
        if job.open == 0:
            self._end(job)

    def _drop_cancelled(self):
        for job in [j for j in self.jobs if j.cancelled]:
            batch = self.batches.get(job.served.name)
            if batch is not None:
                batch.cancel([r for r in job.rows if r in self.owner])
            self._end(job, cancelled=True)

    def _forget(self, job):
        for row in job.rows:
            self.owner.pop(row, None)
        self.jobs.discard(job)

    def _end(self, job, cancelled=False):
        if cancelled:
            self.stats["cancelled"] += 1
        self._forget(job)
        job.deliver(("end",))


def _new_batch(lm):
    from lyricnn.decoding.engine import Batch
    return Batch(lm)


def wait_until(predicate, timeout, step=0.01):
    """Poll ``predicate`` until true or ``timeout`` seconds (for tests and shutdown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
