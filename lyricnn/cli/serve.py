"""``lyricnn serve``: checkpoints behind the OpenAI-style completions API and the studio page."""
import logging
import sys
import time

from lyricnn.checks import check_int
from lyricnn.cli.common import UsageError, add_ctx, add_mixture, checked
from lyricnn.context import resolve_ctx
from lyricnn.run.store import find_checkpoint

log = logging.getLogger(__name__)

#: Seconds open connections get to finish after SIGINT/SIGTERM.
GRACE = 5


def add_parser(sub):
    p = sub.add_parser(
        "serve", help="serve checkpoints: the OpenAI-style /v1/completions API and a page",
        description="Serve trained checkpoints on http://HOST:PORT: the studio page at /, "
                    "and the API every language-model server speaks (GET /health, GET "
                    "/v1/models, POST /v1/completions, streaming as server-sent events), so "
                    "the official openai client works with base_url=http://HOST:PORT/v1. "
                    "Nothing is written to disk.")
    p.add_argument("--checkpoint", action="append", required=True, metavar="DIR",
                   help="a run (or checkpoint) folder; repeat to serve several models, each "
                        "named after its run folder")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", default=8000, metavar="N",
                   type=checked(lambda v: check_int("port", v, 0, 65535)),
                   help="port (default 8000; 0 picks a free one)")
    add_mixture(p)
    add_ctx(p)
    p.set_defaults(handler=run)


def run(args, signals):
    import uvicorn

    from lyricnn.serve.server import app_for
    from lyricnn.training.launch import LaunchError, check_port_free
    for path in args.checkpoint:   # a wrong path is a usage error before the server starts
        find_checkpoint(path)
    try:   # an address this machine does not have, or a port in use: one line, exit 2
        check_port_free(args.port, args.host)
    except LaunchError as err:
        raise UsageError(f"--host {args.host} --port {args.port}: {err}") from None
    server = None

    def loaded(state):
        if state.error is not None:       # nothing to serve: stop, run() reports it
            server.should_exit = True
            return
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        host, port = server.servers[0].sockets[0].getsockname()[:2] if server.servers else (
            args.host, args.port)
        print(f"lyricnn serve: http://{host}:{port}/ serves {', '.join(state.models)} (the "
              f"page; the API at http://{host}:{port}/v1); Ctrl-C stops it",
              file=sys.stderr, flush=True)
    app, state = app_for(args.checkpoint, resolve_ctx(args.ctx), on_loaded=loaded,
                         mix_ngram=args.mix_ngram, mix_weight=args.mix_weight)
    # A client that stalls (never reads its stream, sends half a body) must not keep the
    # server alive after Ctrl-C: open connections get GRACE seconds, then are closed.
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=GRACE))
    # uvicorn handles SIGINT/SIGTERM itself: it stops taking requests and shuts down.
    try:
        server.run()
    finally:
        state.close()
    if state.error is not None:
        raise UsageError(f"the checkpoints could not be loaded: {state.error}")
    return 0
