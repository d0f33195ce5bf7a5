"""``lyricnn launch``: run ``lyricnn train`` on several worker processes (dist_sync)."""
import argparse
import contextlib
import io
import sys
from pathlib import Path

from lyricnn.checks import check_int, check_number
from lyricnn.cli.common import CHECKPOINT_NAME, UsageError, checked
from lyricnn.run.store import is_checkpoint
from lyricnn.training.launch import MAX_SERVERS, MAX_WORKERS, SIGNAL_EXIT, launch

#: The launcher's exit codes when a signal (SIGINT, SIGTERM, SIGHUP) stopped the job.
INTERRUPTED = frozenset(SIGNAL_EXIT.values())


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
    out, epochs = _check_before_starting(command, args.workers)
    code = launch([sys.executable, "-m", "lyricnn.cli"] + command, workers=args.workers,
                  servers=args.servers, port=args.port, timeout=args.timeout)
    saved = next((f for f in (out / CHECKPOINT_NAME, out) if is_checkpoint(f)), None)
    if code in INTERRUPTED and saved is not None:
        # The workers were stopped mid-step (a dist_sync worker cannot finish alone), so
        # none of them could say how to go on: the launcher does.
        print(f"lyricnn launch: {saved} holds the last saved epoch; continue with: "
              f"lyricnn launch --workers {args.workers} -- train --resume {out}"
              + (f" --epochs {epochs}" if epochs is not None else ""),
              file=sys.stderr)
    return code


def _check_before_starting(command, workers):
    """What a fresh run's worker 0 would refuse at once, refused before any process starts:
    the worker flags themselves, the batch split over the workers and the ``--out`` folder.
    (A resumed run's settings come from its checkpoint: its workers check them.) Returns
    the run folder and ``--epochs`` (None when not given), for the resume advice."""
    from lyricnn.cli import main, rundir, train
    from lyricnn.context import resolve_ctx_list
    from lyricnn.run.config import RunConfig
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            train_args = main.build_parser().parse_args(command)
    except SystemExit:   # argparse's one line (or the help text): say it as the workers would
        raise UsageError(f"the worker command: {said.getvalue().strip().splitlines()[-1]}"
                         ) from None
    if getattr(train_args, "max_minutes", None) is not None:
        raise UsageError(train.MAX_MINUTES_DIST)
    if train_args.resume:
        return Path(train_args.out or train_args.resume), train_args.num_epochs
    config = RunConfig.from_args(train_args)
    rundir.check_split(config, resolve_ctx_list(train_args.ctx), workers)
    out = rundir.out_folder(train_args, config)
    rundir.check_out(out, train_args.force, train_args.plot)
    return out, train_args.num_epochs
