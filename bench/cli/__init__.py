"""The ``refseg`` command line: segment, bench, trace, weights, cache, tools, controllers, view, vlm.

This subpackage is the only code that reads argparse. Each command module declares its
parser, turns the parsed namespace into typed options once, and calls a library function
(``segment_images``, ``run_bench``, ``run_suite``, ``run_scorecard``, ...).

Every command returns an exit code. Errors the project raises on purpose
(:class:`tools.errors.RefsegError`) and file-system errors (``OSError``: a bad ``--out``, no
permission, a full disk) are printed as one line, never a traceback.

Ctrl-C prints one line and exits 130 at any moment. This module imports nothing heavy at its
top (it is the console script's entry point), so :func:`main` installs its SIGINT handler
before the first heavy import: while the commands are imported, Ctrl-C ends the process at
once; while a command runs, it raises ``KeyboardInterrupt`` so the command cleans up (a bench
run keeps every line it wrote and resumes when started again).
"""

from __future__ import annotations

import _signal  # the C module: `signal` builds its enums at import, which costs start-up time
import os
import sys
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing here costs start-up time
if TYPE_CHECKING:
    import argparse

INTERRUPTED = "refseg: interrupted (a bench run resumes when started again with the same --out)"


def _exit_now(_signum: int, _frame: object) -> None:
    """SIGINT outside a command (start-up, shut-down): the one line, exit 130, no unwinding."""
    os.write(2, (INTERRUPTED + "\n").encode())
    os._exit(130)


Handler = Callable[..., object] | int | None


def _on_sigint(handler: Handler) -> Handler:
    """Install ``handler`` for SIGINT; returns the previous one (``None`` off the main thread,
    where handlers cannot be set)."""
    try:
        previous: Handler = _signal.getsignal(_signal.SIGINT)
        _signal.signal(_signal.SIGINT, handler)
    except ValueError:  # not the main thread (a command run from a worker thread)
        return None
    return previous


# The command modules, in the order ``refseg --help`` lists them: each has
# ``add_parser(subparsers)``, which registers its command and sets ``func`` (see
# docs/architecture.md, "A CLI command"). Imported when the parser is built, not here.
COMMANDS: tuple[str, ...] = (
    "bench.cli.segment",
    "bench.cli.bench",
    "bench.cli.trace",
    "bench.cli.weights",
    "bench.cli.cache",
    "bench.cli.tools",
    "bench.cli.controllers",
    "bench.cli.view",
    "bench.cli.vlm",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``refseg`` parser with every command of :data:`COMMANDS`."""
    import importlib

    from bench.cli.help import RefsegParser, VersionAction

    parser = RefsegParser(
        prog="refseg",
        description="Closed-loop referring segmentation: SAM proposes, CLIP ranks, a VLM refines.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``refseg`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    With ``argv`` None (the console script, ``python -m bench.cli``) the process is refseg:
    Ctrl-C keeps ending it with the one line until it exits. With ``argv`` given (a call from
    Python) the caller's SIGINT handler is restored on return.
    """
    previous = _on_sigint(_exit_now)  # before any heavy import
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _on_sigint(_signal.default_int_handler)  # the command unwinds on Ctrl-C (finally blocks)
        try:
            return int(args.func(args))
        except BaseException as exc:
            _on_sigint(_exit_now)  # a second Ctrl-C while reporting: still one line
            return _report(exc)
    finally:
        if argv is not None and previous is not None:
            _on_sigint(previous)
        elif argv is None:
            _on_sigint(_exit_now)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush into the closed pipe is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to flush
        pass


def _report(exc: BaseException) -> int:
    """The one line for an error a command raised, and its exit code (others re-raise)."""
    from tools.errors import RefsegError

    if isinstance(exc, KeyboardInterrupt):
        print(INTERRUPTED, file=sys.stderr)
        return 130
    if isinstance(exc, BrokenPipeError):  # `refseg ... | head`: the reader has what it wanted
        _quiet_stdout()
        return 0
    if isinstance(exc, RefsegError | OSError):  # OSError: --out names a file, no permission, full disk
        from agent.tracing import redact_text

        print(f"refseg: error: {redact_text(str(exc))}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, RefsegError) else 2
    raise exc
