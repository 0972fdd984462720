"""The ``pagecore`` command, assembled from one small module per subcommand group.

Owns argument parsing and printing only; every computation is a library call (a subcommand
module must not contain logic the library lacks). Errors the user can fix are printed as one
line, ``pagecore: error: …``, with a non-zero exit status; progress bars appear on stderr only
when it is a terminal. Subcommand modules import the library lazily, inside their handlers, so
``pagecore --help`` and each command start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pagecore._signals import Terminated, handlers
from pagecore.errors import PagecoreError

EPILOG = "Paper: C. A. Waldspurger, Memory Resource Management in VMware ESX Server, OSDI '02."
#: The subcommand modules, in the order ``pagecore --help`` lists them, each with the top-level
#: commands it registers (tests/test_cli.py checks the names against what each one registers).
#: A command line that names one of them builds only that module's parser: importing and
#: registering all of them is about 30 ms of every run's start-up (issue 18).
GROUPS = {
    "hash": ("hash",),
    "share": ("share",),
    "compress": ("compress",),
    "host": ("host",),
    "synth": ("synth", "import"),
    "overtime": ("ksm", "scan"),
    "live": ("live",),
    "qemu": ("qemu",),
    "bench": ("bench",),
}


class _Version(argparse.Action):
    """``--version``, looking the version up only when asked (importlib.metadata is slow)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import pagecore

        print(f"pagecore {pagecore.__version__}")
        parser.exit()


def group_module(name: str):
    """The subcommand module ``pagecore.cli.<name>`` (imported on first use)."""
    return importlib.import_module(f"pagecore.cli.{name}")


def _named_group(argv: list[str]) -> str | None:
    """The module whose command ``argv`` names (its first word that is not an option), if any."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return next((g for g, commands in GROUPS.items() if word in commands), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``pagecore`` parser: every subcommand, or only module ``only``'s (for one command line)."""
    p = argparse.ArgumentParser(
        prog="pagecore",
        description="Measure what page sharing, ballooning and the idle memory tax win back on "
        "virtualized hosts (a reproduction of Waldspurger, OSDI '02).",
        epilog=EPILOG,
    )
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (only,) if only else GROUPS:
        group_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``pagecore`` command; return its exit status.

    Ctrl-C exits 130 and SIGTERM 143, each with one line and no temporary file left (outputs
    are written through :func:`pagecore._util.atomic_path`, which removes its temporary on
    the way out). Any error a user can cause is one line on stderr, never a traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_named_group(argv))
    args = parser.parse_args(argv)
    from pagecore._util import WRITTEN

    WRITTEN.clear()  # this command's outputs only (tests call main more than once in a process)
    try:
        with handlers():  # never lost inside a Numba compile (see pagecore._signals)
            return int(args.func(args) or 0)
    except PagecoreError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"pagecore: interrupted (Ctrl-C); {_what_was_written()}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"pagecore: terminated (SIGTERM); {_what_was_written()}", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("pagecore: error: out of memory; use smaller --chunk-pages or fewer inputs at once", file=sys.stderr)
        return 1
    except OSError as exc:  # the last net: any file-system error is one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pagecore: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


def _what_was_written() -> str:
    """What an interrupted command leaves: "no output written", or the complete outputs it had
    already renamed into place (an interrupt can come after the last rename, before the exit)."""
    from pagecore._util import WRITTEN

    if not WRITTEN:
        return "no output written"
    names = [str(p) for p in WRITTEN[:3]] + ([f"{len(WRITTEN) - 3} more"] if len(WRITTEN) > 3 else [])
    return f"complete before the interrupt, nothing else written: {', '.join(names)}"


def _one_blas_thread() -> None:
    """Start NumPy's BLAS with one thread unless the user chose a number.

    pagecore does no BLAS-heavy work (its kernels are Numba loops; the only linear algebra is a
    2 x 2 solve), and OpenBLAS starting its thread pool is about 50 ms of wall time and 70 ms
    of CPU time in every process that imports NumPy (issue 18: start-up). Must run before NumPy
    is imported; a user's ``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS`` or ``OMP_NUM_THREADS``
    wins.
    """
    if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"


def console() -> None:
    """The ``pagecore`` executable: :func:`main`, then exit at once when interrupted.

    After Ctrl-C or SIGTERM the outputs have already been cleaned up and the line printed;
    skipping the interpreter's teardown (Numba's thread pools, module finalizers) is what keeps
    "stops within a second" true on a loaded machine.
    """
    _one_blas_thread()
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
