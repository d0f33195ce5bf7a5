"""``lyricnn launch``: run ``lyricnn train`` on several worker processes (dist_sync)."""
import argparse
import sys

from lyricnn.checks import check_int, check_number
from lyricnn.cli.common import UsageError, checked
from lyricnn.training.launch import MAX_SERVERS, MAX_WORKERS, launch


def add_parser(sub):
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
    p.add_argument("--workers", type=checked(lambda v: check_int("workers", v, 1, MAX_WORKERS)),
                   required=True, metavar="N", help=f"worker processes (at most {MAX_WORKERS})")
    p.add_argument("--servers", type=checked(lambda v: check_int("servers", v, 1, MAX_SERVERS)),
                   default=1, metavar="M",
                   help=f"parameter-server processes (default 1, at most {MAX_SERVERS})")
    p.add_argument("--port", type=checked(lambda v: check_int("port", v, 1, 65535)),
                   metavar="P", help="the scheduler's port on 127.0.0.1 (default: a free one)")
    p.add_argument("--timeout", type=checked(lambda v: check_number("timeout", v, 0,
                                                                     low_open=True)),
                   metavar="SECONDS", help="stop every process after this long (exit 124)")
    p.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="-- train ...",
                   help="the lyricnn train command each worker runs")
    p.set_defaults(handler=run)


def run(args, signals):
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
