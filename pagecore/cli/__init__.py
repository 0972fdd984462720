"""The ``pagecore`` command, assembled from one small module per subcommand group.

Owns argument parsing and printing only; every computation is a library call (a subcommand
module must not contain logic the library lacks). Errors the user can fix are printed as one
line, ``pagecore: error: …``, with a non-zero exit status; progress bars appear on stderr only
when it is a terminal. Subcommand modules import the library lazily, inside their handlers, so
``pagecore --help`` and each command start fast.
"""

from __future__ import annotations

import argparse
import sys

from pagecore import __version__
from pagecore.cli import bench, hash, overtime, qemu, share, synth
from pagecore.errors import PagecoreError

EPILOG = "Paper: C. A. Waldspurger, Memory Resource Management in VMware ESX Server, OSDI '02."
GROUPS = (hash, share, synth, overtime, bench, qemu)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pagecore",
        description="Measure what page sharing, ballooning and the idle memory tax win back on "
        "virtualized hosts (a reproduction of Waldspurger, OSDI '02).",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"pagecore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PagecoreError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pagecore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
