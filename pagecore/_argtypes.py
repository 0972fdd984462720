"""argparse types for whole numbers and finite floats in a range, shared by the commands
(:mod:`pagecore.cli`) and the benchmarks (:mod:`pagecore.bench`, which ``cli`` imports, so they
live below both)."""

from __future__ import annotations

import argparse


def int_at_least(low: int, high: int | None = None):
    """argparse type: a whole number >= ``low`` (and <= ``high`` when given)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {v}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"expected a number <= {high:,}, got {v:,}")
        return v

    return parse


def float_in(low: float, high: float | None = None, *, above: bool = False):
    """argparse type: a finite number >= ``low`` (> ``low`` when ``above``) and <= ``high``;
    ``nan`` and ``inf`` are refused (NaN passes every comparison and then spreads into results)."""
    import math

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if v < low or (above and v == low):
            raise argparse.ArgumentTypeError(f"expected a number {'>' if above else '>='} {low:g}, got {v:g}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"expected a number <= {high:g}, got {v:g}")
        return v

    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
