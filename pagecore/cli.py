"""The ``pagecore`` command: one subcommand per pipeline stage.

Errors the user can fix are printed as one line, ``pagecore: error: …``, with a non-zero exit
status; progress bars appear on stderr only when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import PagecoreError

EPILOG = "Paper: C. A. Waldspurger, Memory Resource Management in VMware ESX Server, OSDI '02."


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def _key_from_args(args):
    from .hashing import PageKey

    if getattr(args, "key_env", None):
        return PageKey.from_env(args.key_env)
    if getattr(args, "key_file", None):
        return PageKey.from_file(args.key_file)
    return PageKey.default()


# ------------------------------------------------------------------------------- hash
def _cmd_hash(args) -> int:
    from .dumps import READERS  # noqa: F401 - validates --format choices lazily
    from .ingest import hash_dump

    vm = args.vm or Path(args.dump).stem
    meta = hash_dump(
        args.dump,
        args.output,
        vm,
        format=args.format,
        key=_key_from_args(args),
        threads=args.threads,
        chunk_pages=args.chunk_pages,
        skip_bad_pages=args.skip_bad_pages,
        show_progress=not args.quiet,
    )
    if not args.quiet:
        extra = ""
        if meta["pages_skipped"] or meta["pages_excluded"]:
            extra = f", {meta['pages_skipped']:,} skipped, {meta['pages_excluded']:,} excluded"
        print(
            f"{args.output}: {meta['pages']:,} pages of {vm} ({meta['format']}{extra})",
            file=sys.stderr,
        )
    return 0


# ------------------------------------------------------------------------------ share
def _fmt_table(total: dict, per_vm: dict[str, dict]) -> str:
    cols = [
        ("pages", "total_pages"),
        ("zero", "zero_pages"),
        ("shared", "shared_pages"),
        ("reclaimed", "reclaimed_pages"),
        ("shared-recl", "shared_minus_reclaimed_pages"),
    ]
    head = f"{'set':<16}" + "".join(f"{c:>14}" for c, _ in cols) + f"{'reclaimed %':>13}"
    lines = [head, "-" * len(head)]

    def row(label, d):
        cells = "".join(f"{d[k]:>14,}" for _, k in cols)
        pct = 100.0 * d["reclaimed_pages"] / d["total_pages"] if d["total_pages"] else 0.0
        return f"{label[:16]:<16}{cells}{pct:>12.1f}%"

    for name, d in per_vm.items():
        lines.append(row(name, d))
    if per_vm:
        lines.append("-" * len(head))
    lines.append(row(f"all ({total['vms']} VMs)", total))
    mb = total["reclaimed_mb"]
    lines.append(
        f"reclaimed {mb:,.1f} MB of {total['total_mb']:,.1f} MB"
        + ("" if total["verified"] else f" (hash-only: expected false matches {total['expected_false_matches']:.2g})")
    )
    return "\n".join(lines)


def _cmd_share(args) -> int:
    from .sharing import report_page_tables

    report = report_page_tables(args.pages)
    if args.by != "vm":
        report.pop("by_vm")
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_fmt_table(report, report.get("by_vm", {})))
    return 0


# ------------------------------------------------------------------------------ synth
def _cmd_synth_fig04(args) -> int:
    from ._util import progress
    from .synth import Fig04Model

    model = Fig04Model(
        mem_mb=args.mem_mb,
        zero=args.zero,
        intra_dup=args.intra_dup,
        intra_dup_groups=args.intra_dup_groups,
        common=args.common,
        variant=args.variant,
        variants=args.variants,
        seed=args.seed,
    )
    out = Path(args.output_dir)
    with progress(args.vms, desc="write guests", unit="VM") as bar:
        for i in range(args.vms):
            path = out / f"vm{i + 1:02d}.raw"
            model.write_raw(i, path)
            bar.update(1)
    print(f"{args.vms} raw dumps of {model.pages:,} pages in {out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------ bench
def _cmd_bench(args) -> int:
    from . import bench

    return bench.main([args.what, *args.bench_args])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pagecore",
        description="Measure what page sharing, ballooning and the idle memory tax win back on "
        "virtualized hosts (a reproduction of Waldspurger, OSDI '02).",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"pagecore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    h = sub.add_parser(
        "hash",
        help="hash every page of a memory dump into a page table",
        description="Stream a guest memory dump through the pcx64-v1 page hash and write a "
        "Parquet page table (vm, gpfn, hash, zero) with provenance metadata.",
    )
    h.add_argument("dump", help="memory dump (raw physical image, …)")
    h.add_argument("-o", "--output", required=True, help="page table to write (.parquet)")
    h.add_argument("--vm", help="VM name stored in the table (default: the dump's file stem)")
    h.add_argument("--format", default="auto", help="dump format (default: detect from magic bytes)")
    h.add_argument("--threads", type=_nonneg_int, default=0, help="hashing threads (0 = all; default 0)")
    h.add_argument(
        "--chunk-pages", type=_positive_int, default=4096, help="pages per chunk; bounds memory (default 4096)"
    )
    h.add_argument("--skip-bad-pages", action="store_true", help="count and skip unreadable pages instead of failing")
    kg = h.add_mutually_exclusive_group()
    kg.add_argument("--key-env", metavar="VAR", help="key the hash with the secret in environment variable VAR")
    kg.add_argument("--key-file", metavar="PATH", help="key the hash with the secret in PATH")
    h.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    h.set_defaults(func=_cmd_hash)

    s = sub.add_parser(
        "share",
        help="sharing metrics of one or more page tables",
        description="Content-based sharing of the pages in the given page tables, in the paper's "
        "vocabulary: total, zero, shared (COW), reclaimed and shared − reclaimed pages.",
    )
    s.add_argument("pages", nargs="+", help="page tables written by `pagecore hash`")
    s.add_argument(
        "--by", choices=["total", "vm"], default="total", help="also report each VM on its own (default: total only)"
    )
    s.add_argument("--format", choices=["table", "json"], default="table", help="output format (default: table)")
    s.set_defaults(func=_cmd_share)

    sy = sub.add_parser(
        "synth",
        help="write synthetic guests as real dump files",
        description="Deterministic synthetic guests standing in for the paper's machines.",
    )
    sysub = sy.add_subparsers(dest="scenario", metavar="SCENARIO", required=True)
    f4 = sysub.add_parser(
        "fig04",
        help="identical Linux guests of Figure 4 as raw dumps",
        description="N identical guests (paper Figure 4) written as raw physical images "
        "vm01.raw … vmNN.raw. Fractions default to the workflow's calibrated values.",
    )
    from .synth import FIG04_DEFAULTS

    f4.add_argument("-o", "--output-dir", required=True, help="directory for vmNN.raw files")
    f4.add_argument("--vms", type=_positive_int, default=10, help="number of guests (default 10)")
    f4.add_argument(
        "--mem-mb", type=float, default=FIG04_DEFAULTS["mem_mb"], help="guest memory in MB (default %(default)s)"
    )
    for name in ("zero", "intra_dup", "intra_dup_groups", "common", "variant"):
        f4.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=FIG04_DEFAULTS[name],
            help="fraction of pages (default %(default)s)",
        )
    f4.add_argument(
        "--variants",
        type=_positive_int,
        default=FIG04_DEFAULTS["variants"],
        help="versions per variant slot (default %(default)s)",
    )
    f4.add_argument("--seed", type=int, default=FIG04_DEFAULTS["seed"], help="seed (default %(default)s)")
    f4.set_defaults(func=_cmd_synth_fig04)

    b = sub.add_parser(
        "bench",
        help="print throughput benchmarks (ratios against baselines measured in the same run)",
        description="Benchmarks; see `python -m pagecore.bench --help`.",
    )
    b.add_argument("what", choices=["hash"], help="what to benchmark")
    b.add_argument("bench_args", nargs=argparse.REMAINDER, help="options passed to the benchmark")
    b.set_defaults(func=_cmd_bench)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
