"""`pagecore ksm` and `pagecore scan`: sharing over time (Linux KSM, the ESX scanner)."""

from __future__ import annotations

import json
import sys

from pagecore.cli._args import command, int_at_least, nonneg_int, positive_int
from pagecore.errors import PagecoreError


def _history_from_args(args):
    """A page history from page tables: one set, or successive snapshots (--snapshots)."""
    from pagecore.pages.tables import read_page_tables
    from pagecore.sharing.pagehistory import PageHistory

    cols = ["vm", "gpfn", "hash", "zero"]
    try:
        if args.snapshots:
            snaps = [read_page_tables([p], columns=cols).to_pandas() for p in args.pages]
            return PageHistory.from_snapshots(snaps, [k * args.interval for k in range(len(snaps))])
        df = read_page_tables(args.pages, columns=cols).to_pandas()
    except (OSError, ValueError) as exc:
        raise PagecoreError(f"cannot read page tables: {exc}") from None
    vm, names = df["vm"].astype(str).factorize()
    return PageHistory.from_pages(df["hash"].to_numpy(), df["zero"].to_numpy(), vm, list(names), df["gpfn"].to_numpy())


def _print_result(res, fmt) -> None:
    out = res.to_dict()
    if fmt == "json":
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for k, v in res.final.items():
        print(f"{k:<22}{v:>16,}")
    print(f"{'seconds_to_converge':<22}{out['seconds_to_converge']:>16,.2f}")


def _run(emulate, settings_cls, args, **settings) -> int:
    try:
        st = settings_cls(**settings)
    except ValueError as exc:
        raise PagecoreError(str(exc)) from None
    _print_result(emulate(_history_from_args(args), st), args.format)
    return 0


def _cmd_ksm(args) -> int:
    from pagecore.sharing.ksm import KsmSettings, emulate_ksm

    return _run(
        emulate_ksm,
        KsmSettings,
        args,
        pages_to_scan=args.pages_to_scan,
        sleep_millisecs=args.sleep_ms,
        max_page_sharing=args.max_page_sharing,
        use_zero_pages=args.use_zero_pages,
        smart_scan=not args.no_smart_scan,
    )


def _cmd_scan(args) -> int:
    from pagecore.sharing.scanner import ScannerSettings, emulate_scanner

    return _run(
        emulate_scanner,
        ScannerSettings,
        args,
        scan_rate_vm=args.rate_vm,
        scan_rate_total=args.rate_total,
        hash_bits=args.hash_bits,
        seed=args.seed,
    )


def register(sub) -> None:
    """Add the `overtime` subcommand(s) to the ``pagecore`` parser."""

    def _over_time_inputs(sp):
        sp.add_argument("pages", nargs="+", help="page tables written by `pagecore hash`")
        sp.add_argument(
            "--snapshots", action="store_true", help="the tables are successive snapshots of the same guests"
        )
        sp.add_argument("--interval", type=float, default=60.0, help="seconds between snapshots (default %(default)s)")
        sp.add_argument("--format", choices=["table", "json"], default="table", help="output (default: table)")

    ks = command(
        sub,
        "ksm",
        _cmd_ksm,
        help="emulate Linux KSM over page tables until it converges",
        description="Replay ksmd (stable/unstable trees, volatility filter, pacing, smart scan) over the pages "
        "and print the final /sys/kernel/mm/ksm counters and the seconds KSM needs to find the sharing.",
    )
    _over_time_inputs(ks)
    ks.add_argument("--pages-to-scan", type=positive_int, default=100, help="pages per wake-up (default 100)")
    ks.add_argument("--sleep-ms", type=nonneg_int, default=20, help="sleep_millisecs (default 20)")
    ks.add_argument("--max-page-sharing", type=int_at_least(2), default=256, help="max_page_sharing (default 256)")
    ks.add_argument("--use-zero-pages", action="store_true", help="map zero pages to the kernel zero page")
    ks.add_argument("--no-smart-scan", action="store_true", help="smart_scan=0 (default: on, as in the kernel)")

    sc = command(
        sub,
        "scan",
        _cmd_scan,
        help="emulate the ESX page-sharing scanner over page tables until it converges",
        description="Replay the ESX background scanner (paper §4.2-4.3: hash table of shared and hint frames, "
        "random order, rate caps) and print what it shared, its hash-table memory and CPU-cost proxy.",
    )
    _over_time_inputs(sc)
    sc.add_argument("--rate-vm", type=float, default=50.0, help="pages/s per VM (default 50, ESX 2.x)")
    sc.add_argument("--rate-total", type=float, default=200.0, help="pages/s system-wide (default 200, ESX 2.x)")
    sc.add_argument("--hash-bits", type=int, default=64, help="page-hash bits used (default 64)")
    sc.add_argument("--seed", type=int, default=0, help="seed of the scan order (default 0)")
