"""TODO docstring (cli.launch, from cli.py)."""
# Only the standard library at import time: the console script imports this
# module before main() can install its signal handlers, and a Ctrl-C while
# MXNet loads must still end in one line, not a traceback.  Importing
# lyricnn.cli runs lyricnn/__init__.py first, which sets OMP_NUM_THREADS
# before MXNet loads.
import argparse
import sys
from lyricnn.cli.common import UsageError, _checked


def _add_launch(sub):
    from lyricnn.checks import check_int, check_number
    p = sub.add_parser(
        "launch", help="train on several worker processes (MXNet's dist_sync KVStore)",
        description="Start a scheduler, --servers parameter servers and --workers workers "
                    "of 'lyricnn train' on this machine (loopback, a free port), with "
                    "--kvstore dist_sync added: each worker trains on its share of every "
                    "minibatch, gradients are summed, and worker 0 writes the run. Output "
                    "lines are prefixed [worker i]/[server i]/[scheduler]; if one process "
                    "fails, all are stopped and its exit code is returned. Example: "
                    "lyricnn launch --workers 2 -- train --out runs/dist --epochs 50",
        epilog="Several machines: see the README (the DMLC_* variables each host needs).")
    p.add_argument("--workers", type=_checked(lambda v: check_int("workers", v, 1)),
                   required=True, metavar="N", help="worker processes")
    p.add_argument("--servers", type=_checked(lambda v: check_int("servers", v, 1)), default=1,
                   metavar="M", help="parameter-server processes (default 1)")
    p.add_argument("--port", type=_checked(lambda v: check_int("port", v, 1, 65535)),
                   metavar="P", help="the scheduler's port on 127.0.0.1 (default: a free one)")
    p.add_argument("--timeout", type=_checked(lambda v: check_number("timeout", v, 0,
                                                                     low_open=True)),
                   metavar="SECONDS", help="stop every process after this long (exit 124)")
    p.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="-- train ...",
                   help="the lyricnn train command each worker runs")
    p.set_defaults(handler=cmd_launch)


def cmd_launch(args, signals):
    from lyricnn.training.launch import launch

    command = args.worker_command
    command = command[1:] if command[:1] == ["--"] else command
    if command[:1] != ["train"]:
        raise UsageError("launch runs 'lyricnn train' on every worker: give it after '--', "
                         "e.g. lyricnn launch --workers 2 -- train --out runs/dist")
    for i, arg in enumerate(command):
        if arg == "--kvstore" or arg.startswith("--kvstore="):
            value = arg.partition("=")[2] or (command[i + 1] if i + 1 < len(command) else "")
            if value != "dist_sync":
                raise UsageError(f"--kvstore {value} under launch: the workers sum their "
                                 "gradients through dist_sync; drop --kvstore")
            break
    else:
        command = command + ["--kvstore", "dist_sync"]
    return launch([sys.executable, "-m", "lyricnn.cli"] + command, workers=args.workers,
                  servers=args.servers, port=args.port, timeout=args.timeout)
