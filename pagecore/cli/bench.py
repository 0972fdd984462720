"""`pagecore bench …`: every benchmark, each printing ratios against same-run baselines."""

from __future__ import annotations

import argparse

from pagecore.cli._args import command


def _cmd_bench(args) -> int:
    from pagecore.bench import run

    return run(args.what, args.bench_args)


def register(sub) -> None:
    """Add the `bench` subcommand to the ``pagecore`` parser."""
    from pagecore.bench import BENCHMARKS

    b = command(
        sub,
        "bench",
        _cmd_bench,
        help="print throughput benchmarks (ratios against baselines measured in the same run)",
        description="Benchmarks of the paths users run; `pagecore bench WHAT --help` lists each one's options.",
    )
    b.add_argument("what", choices=sorted(BENCHMARKS), help="what to benchmark")
    b.add_argument("bench_args", nargs=argparse.REMAINDER, help="options passed to the benchmark")
