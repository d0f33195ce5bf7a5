"""``lyricnn serve``'s HTTP API: the OpenAI-style completions every LM server speaks.

    GET  /health              503 {"status": "loading"} until the models are loaded, then 200
    GET  /v1/models           the models (one per --checkpoint), OpenAI's list shape
    GET  /v1/models/{id}      one model, with its card (corpus, size, curve, human baseline)
    POST /v1/completions      model, prompt, max_tokens, temperature, top_p, n, stream, stop,
                              seed, logprobs (<= 5), presence_penalty, frequency_penalty; and
                              lyricnn's own: top_k, min_p, repetition_penalty,
                              repetition_last_n, no_repeat_ngram, dry_multiplier, dry_base,
                              dry_allowed_length, beam_width, length_penalty, banned, lines,
                              line_length, acrostic, max_copy, unknown
    GET  /                    the studio page; /static/NAME its assets (a fixed list)

Every error is ``{"error": {"message", "type", "param", "code"}}``: 400 for a bad
value (``param`` names it), an unknown model or a prompt with unknown tokens; 413 for
a body over ``MAX_BODY``; 429 when ``MAX_JOBS`` requests are already waiting or
running; 404 for any other path. Unknown fields are refused (400), not ignored: a
misspelt option would otherwise silently do nothing.

A choice is ``{text, index, finish_reason, logprobs, seed, originality}``; with
``stream`` each chunk carries new text as soon as it is certain (a line end that may
be dropped, or the start of a possible stop string, waits for the next token), and a
choice's last chunk carries its ``finish_reason``, ``logprobs`` and ``originality``;
the stream ends with ``data: [DONE]``. A client that disconnects cancels its request.
"""
import asyncio
import json
import secrets
import time

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lyricnn.decoding.engine import MAX_CANDIDATES, Options
from lyricnn.decoding.originality import shown
from lyricnn.serve import page
from lyricnn.serve.scheduler import Job, QueueFull

#: Limits of one request (a server shares two cores among everyone).
MAX_BODY = 64 << 10            # bytes
MAX_TOKENS = 4096              # max_tokens
MAX_N = 16                     # n (choices per prompt)
MAX_PROMPTS = 8                # prompts per request
MAX_PROMPT_CHARS = 4096
#: Requests waiting or running at once; more get 429.
MAX_JOBS = 64
#: OpenAI's default for max_tokens.
DEFAULT_MAX_TOKENS = 16

# Request fields -> Options fields (same names unless listed).
OPENAI_FIELDS = {"model", "prompt", "max_tokens", "temperature", "top_p", "n", "stream",
                 "stop", "seed", "logprobs", "presence_penalty", "frequency_penalty", "user",
                 "echo", "best_of", "suffix", "logit_bias", "stream_options"}
OWN_FIELDS = {"top_k", "min_p", "repetition_penalty", "repetition_last_n", "no_repeat_ngram",
              "dry_multiplier", "dry_base", "dry_allowed_length", "beam_width",
              "length_penalty", "banned", "lines", "line_length", "acrostic", "max_copy",
              "unknown"}
UNSUPPORTED = {"echo": False, "best_of": 1, "suffix": None, "logit_bias": None}


class ApiError(Exception):
    def __init__(self, status, message, param=None, code=None, type="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = \
            status, message, param, code, type

    def response(self):
        return JSONResponse({"error": {"message": self.message, "type": self.type,
                                       "param": self.param, "code": self.code}},
                            status_code=self.status)


def create_app(state):
    """The Starlette app over ``state`` (a ``lyricnn.serve.server.State``: the models once
    loaded, and the scheduler)."""

    async def health(request):
        if not state.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def models(request):
        _require_ready(state)
        return JSONResponse({"object": "list", "data": [_model(s) for s in state.models.values()]})

    async def model(request):
        _require_ready(state)
        served = state.models.get(request.path_params["model_id"])
        if served is None:
            raise ApiError(404, f"no model {request.path_params['model_id']!r}; GET /v1/models "
                           "lists them", "model", "model_not_found")
        return JSONResponse({**_model(served), "card": served.card()})

    async def completions(request):
        _require_ready(state)
        body = await _json_body(request)
        served, prompts, options, n, seed, stream = _parse(state, body)
        loop = asyncio.get_running_loop()
        events = asyncio.Queue()
        job = Job(served, [ids for _, ids in prompts], options, n, seed,
                  lambda e: loop.call_soon_threadsafe(events.put_nowait, e))
        try:
            state.scheduler.submit(job)
        except QueueFull as err:
            raise ApiError(429, f"the server is busy: {err}; retry shortly", None,
                           "queue_full", "rate_limit_error") from None
        meta = {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion",
                "created": int(time.time()), "model": served.name}
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_stream(state, job, events, meta, prompts, served,
                                             include_usage),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return await _whole(request, state, job, events, meta, prompts, served)

    async def index(request):
        return Response(page.read("index.html"), media_type="text/html; charset=utf-8")

    async def static(request):
        name = request.path_params["name"]
        if name not in page.ASSETS:
            raise ApiError(404, f"no asset {name!r}", None, "not_found")
        return Response(page.read(name), media_type=page.ASSETS[name])

    async def not_found(request, exc):
        return ApiError(404, f"no such path: {request.url.path}", None, "not_found").response()

    async def api_error(request, exc):
        return exc.response()

    routes = [Route("/health", health), Route("/v1/models", models),
              Route("/v1/models/{model_id:path}", model),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/", index), Route("/static/{name}", static)]
    return Starlette(routes=routes, exception_handlers={ApiError: api_error, 404: not_found,
                                                        405: _method_not_allowed})


async def _method_not_allowed(request, exc):
    return ApiError(405, f"{request.method} is not allowed on {request.url.path}", None,
                    "method_not_allowed").response()


def _require_ready(state):
    if not state.ready:
        raise ApiError(503, "the models are still loading; GET /health says when they are "
                       "ready", None, "loading", "unavailable_error")


def _model(served):
    return {"id": served.name, "object": "model", "created": 0, "owned_by": "lyricnn"}


async def _json_body(request):
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
        raise ApiError(413, f"the body is larger than {MAX_BODY} bytes", None, "body_too_large")
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise ApiError(413, f"the body is larger than {MAX_BODY} bytes", None,
                               "body_too_large")
    except ClientDisconnect:
        raise ApiError(400, "the client went away", None, "disconnected") from None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise ApiError(400, f"the body is not valid JSON: {str(err)[:200]}", None,
                       "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", None, "invalid_json")
    return data


def _param_of(message):
    word = message.split(" ", 1)[0]
    return word if word in OPENAI_FIELDS | OWN_FIELDS else None


def _number(body, name, default):
    value = body.get(name, default)
    return default if value is None else value


def _parse(state, body):
    """``(served, [(text, ids)], Options, n, seed, stream)`` of a request, or ``ApiError``."""
    unknown = sorted(set(body) - OPENAI_FIELDS - OWN_FIELDS)
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}; see GET / for the options", unknown[0],
                       "unknown_field")
    for name, neutral in UNSUPPORTED.items():
        if body.get(name, neutral) not in (neutral, None):
            raise ApiError(400, f"{name} is not supported by lyricnn serve", name,
                           "unsupported")
    name = body.get("model")
    if not isinstance(name, str) or name not in state.models:
        raise ApiError(400, f"model must be one of {sorted(state.models)}, got {name!r}",
                       "model", "model_not_found")
    served = state.models[name]
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise ApiError(400, "stream_options must be an object such as {\"include_usage\": "
                       "true}", "stream_options")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream must be true or false, got {stream!r}", "stream")
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise ApiError(400, f"n must be an integer between 1 and {MAX_N}, got {n!r}", "n")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**63 - MAX_CANDIDATES * MAX_PROMPTS):
        raise ApiError(400, f"seed must be a non-negative integer, got {seed!r}", "seed")
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) \
            or not 0 <= max_tokens <= MAX_TOKENS:
        raise ApiError(400, f"max_tokens must be an integer between 0 and {MAX_TOKENS}, got "
                       f"{max_tokens!r}", "max_tokens")
    logprobs = body.get("logprobs")
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    config, vocab, task = served.config, served.vocab, served.task

    def encode(text, param, unknown="error", empty=False):
        if not isinstance(text, str):
            raise ApiError(400, f"{param} must be a string, got {type(text).__name__}", param)
        if len(text) > MAX_PROMPT_CHARS:
            raise ApiError(400, f"{param} is longer than {MAX_PROMPT_CHARS} characters", param,
                           "too_long")
        try:
            return task.encode(config, vocab, text, param, unknown=unknown, empty=empty)
        except ValueError as err:
            raise ApiError(400, str(err), param, "unknown_tokens") from None
    acrostic = body.get("acrostic")
    banned = body.get("banned")
    try:
        options = Options(
            max_tokens=max_tokens, temperature=_number(body, "temperature", 1.0),
            top_k=body.get("top_k"), top_p=_number(body, "top_p", 1.0),
            min_p=_number(body, "min_p", 0.0),
            repetition_penalty=_number(body, "repetition_penalty", 1.0),
            repetition_last_n=_number(body, "repetition_last_n", 64),
            presence_penalty=_number(body, "presence_penalty", 0.0),
            frequency_penalty=_number(body, "frequency_penalty", 0.0),
            no_repeat_ngram=_number(body, "no_repeat_ngram", 0),
            dry_multiplier=_number(body, "dry_multiplier", 0.0),
            dry_base=_number(body, "dry_base", 1.75),
            dry_allowed_length=_number(body, "dry_allowed_length", 2),
            beam_width=_number(body, "beam_width", 0),
            length_penalty=_number(body, "length_penalty", 1.0),
            banned=encode(banned, "banned") if banned else (),
            stop=stop if isinstance(stop, (list, tuple)) else [stop],
            lines=_number(body, "lines", 0), line_length=_number(body, "line_length", 16),
            acrostic=encode(acrostic, "acrostic") if acrostic else (),
            max_copy=_number(body, "max_copy", 0),
            logprobs=0 if logprobs is None else logprobs).checked(len(vocab))
    except ValueError as err:
        raise ApiError(400, str(err), _param_of(str(err))) from None
    if options.top_k is not None and options.top_k > len(vocab):
        raise ApiError(400, f"top_k must be at most the vocabulary size ({len(vocab)}), got "
                       f"{options.top_k}", "top_k")
    if options.beam_width and n > options.beam_width:
        raise ApiError(400, f"n={n} is more than beam_width={options.beam_width}: beam search "
                       "returns at most its width", "n")
    prompt = body.get("prompt", "")
    prompts = prompt if isinstance(prompt, list) else [prompt]
    if not 1 <= len(prompts) <= MAX_PROMPTS:
        raise ApiError(400, f"prompt must be a string or a list of 1 to {MAX_PROMPTS} strings",
                       "prompt")
    mode = body.get("unknown", "error")
    if mode not in task.UNKNOWN:
        raise ApiError(400, f"unknown must be one of {list(task.UNKNOWN)}, got {mode!r}",
                       "unknown")
    encoded = [(p, encode(p, "prompt", mode, empty=bool(options.acrostic))) for p in prompts]
    return served, encoded, options, n, seed, stream


def _logprobs(candidate, pieces, start_offset, vocab):
    """OpenAI's ``logprobs`` object of a candidate: ``tokens`` are the pieces of text each
    token added (so they join into the text), ``text_offset`` where each starts in
    prompt + text."""
    if candidate.top_logprobs is None:
        return None
    offsets, at = [], start_offset
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    return {"tokens": pieces, "token_logprobs": candidate.token_log_probs,
            "top_logprobs": [{vocab.idx_to_token[k]: v for k, v in top.items()}
                             for top in candidate.top_logprobs],
            "text_offset": offsets}


def _pieces(served, prompt_ids, tokens):
    """The text each of ``tokens`` adds after ``prompt_ids`` (as the engine joins them)."""
    vocab, out = served.decoder.vocab, []
    previous = vocab.piece(prompt_ids[-1], None) if prompt_ids else None
    for t in tokens:
        previous = vocab.piece(t, previous)
        out.append(previous)
    return out


def _choice(candidate, report, index, served, prompt):
    joiner, vocab = served.task.separator(served.config), served.vocab
    prompt_text, prompt_ids = prompt
    pieces = _pieces(served, prompt_ids, candidate.tokens)
    return {"text": candidate.text, "index": index, "finish_reason": candidate.finish_reason,
            "logprobs": _logprobs(candidate, pieces, len(prompt_text), vocab),
            "seed": candidate.seed,
            "originality": shown(served.index, report, served.baseline,
                                 lambda ids: joiner.join(vocab.to_tokens(ids.tolist())))}


def _usage(prompts, completion_tokens, n):
    prompt_tokens = sum(len(ids) for _, ids in prompts) * n
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def _whole(request, state, job, events, meta, prompts, served):
    """Wait for every choice; cancel if the client goes away meanwhile."""
    choices, tokens = {}, 0
    while True:
        try:
            event = await asyncio.wait_for(events.get(), timeout=0.25)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                state.scheduler.cancel(job)
                return Response(status_code=499)
            continue
        if event[0] == "done":
            _, index, candidate, report = event
            choices[index] = _choice(candidate, report, index, served, prompts[index // job.n])
            tokens += len(candidate.tokens)
        elif event[0] == "error":
            raise ApiError(500, f"generation failed: {event[1]}", None, "generation_failed",
                           "server_error")
        elif event[0] == "end":
            break
    return JSONResponse({**meta, "choices": [choices[i] for i in sorted(choices)],
                         "usage": _usage(prompts, tokens, job.n)})


def _sse(data):
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(state, job, events, meta, prompts, served, include_usage=False):
    """Server-sent events: text as it becomes certain, then each choice's last chunk."""
    longest_stop = max((len(s) for s in job.options.stop), default=0)
    text = {}        # choice -> text so far
    sent = {}        # choice -> characters sent
    separator_last = {}
    tokens = 0
    try:
        while True:
            event = await events.get()
            kind = event[0]
            if kind == "piece":
                _, index, piece, is_sep = event
                text[index] = text.get(index, "") + piece
                separator_last[index] = is_sep
                # Hold back what the end may still take away: a line end (dropped when it
                # ends the text) and the start of a stop string.
                hold = max(longest_stop - 1, 0) + (len(piece) if is_sep else 0)
                safe = max(len(text[index]) - hold, sent.get(index, 0))
                if safe > sent.get(index, 0):
                    delta = text[index][sent.get(index, 0):safe]
                    sent[index] = safe
                    yield _sse({**meta, "choices": [{"text": delta, "index": index,
                                                     "logprobs": None, "finish_reason": None}]})
            elif kind == "done":
                _, index, candidate, report = event
                choice = _choice(candidate, report, index, served, prompts[index // job.n])
                choice["text"] = candidate.text[sent.get(index, 0):]
                tokens += len(candidate.tokens)
                yield _sse({**meta, "choices": [choice]})
            elif kind == "error":
                yield _sse({"error": {"message": f"generation failed: {event[1]}",
                                      "type": "server_error", "param": None,
                                      "code": "generation_failed"}})
                break
            elif kind == "end":
                break
        if include_usage:   # OpenAI's: a last chunk with no choices and the usage
            yield _sse({**meta, "choices": [], "usage": _usage(prompts, tokens, job.n)})
        yield "data: [DONE]\n\n"
    finally:
        state.scheduler.cancel(job)   # a no-op once ended; frees the rows if the client left
