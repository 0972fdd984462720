"""The ``pagecore`` command, assembled from one small module per subcommand group.

Owns argument parsing and printing only; every computation is a library call (a subcommand
module must not contain logic the library lacks). Errors the user can fix are printed as one
line, ``pagecore: error: …``, with a non-zero exit status; progress bars appear on stderr only
when it is a terminal. Subcommand modules import the library lazily, inside their handlers, so
``pagecore --help`` and each command start fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from pagecore._signals import Terminated, handlers
from pagecore.cli import bench, compress, hash, host, live, overtime, qemu, share, synth
from pagecore.errors import PagecoreError

EPILOG = "Paper: C. A. Waldspurger, Memory Resource Management in VMware ESX Server, OSDI '02."
GROUPS = (hash, share, compress, host, synth, overtime, live, qemu, bench)


class _Version(argparse.Action):
    """``--version``, looking the version up only when asked (importlib.metadata is slow)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import pagecore

        print(f"pagecore {pagecore.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pagecore",
        description="Measure what page sharing, ballooning and the idle memory tax win back on "
        "virtualized hosts (a reproduction of Waldspurger, OSDI '02).",
        epilog=EPILOG,
    )
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``pagecore`` command; return its exit status.

    Ctrl-C exits 130 and SIGTERM 143, each with one line and no temporary file left (outputs
    are written through :func:`pagecore._util.atomic_path`, which removes its temporary on
    the way out). Any error a user can cause is one line on stderr, never a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with handlers():  # never lost inside a Numba compile (see pagecore._signals)
            return int(args.func(args) or 0)
    except PagecoreError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pagecore: interrupted (Ctrl-C); no output written", file=sys.stderr)
        return 130
    except Terminated:
        print("pagecore: terminated (SIGTERM); no output written", file=sys.stderr)
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


def console() -> None:
    """The ``pagecore`` executable: :func:`main`, then exit at once when interrupted.

    After Ctrl-C or SIGTERM the outputs have already been cleaned up and the line printed;
    skipping the interpreter's teardown (Numba's thread pools, module finalizers) is what keeps
    "stops within a second" true on a loaded machine.
    """
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
