"""`pagecore ksm` and `pagecore scan`: sharing over time (Linux KSM, the ESX scanner)."""

from __future__ import annotations

import sys

from pagecore.cli._args import (
    add_format_args,
    check_outputs,
    command,
    float_in,
    int_at_least,
    nonneg_int,
)
from pagecore.errors import PagecoreError


def _history_from_args(args):
    """A page history from page tables: one set, or a series of reads (--series/--snapshots)."""
    from pagecore.sharing.pagehistory import read_history

    try:
        return read_history(args.pages, series=args.series, interval=args.interval)
    except OSError as exc:
        raise PagecoreError(f"cannot read page tables: {exc}") from None


def _eligibility_words(info: dict) -> str:
    if info["ksm_eligibility"] == "host_view":
        return f"host_view (pages present in the host; {info['pages_not_eligible']:,} others left out)"
    return "all (every page counted as mergeable)"


def _table(rep: dict, final: dict) -> str:
    lines = [f"{k:<22}{v:>16,}" for k, v in final.items()]
    lines.append(f"{'seconds_to_converge':<22}{rep['seconds_to_converge']:>16,.2f}")
    s = rep["series"]
    if s["reads"] > 1:
        lines.append(
            f"series: {s['reads']} reads (times from {s['times_from']}, last at {s['read_times_s'][-1]:,.1f} s), "
            f"{s['writes']:,} page writes replayed"
        )
    lines.append("eligibility: " + _eligibility_words(s))
    lines.append(
        "saved at the end, by mechanism: " + ", ".join(f"{k} {v:,} pages" for k, v in rep["savings_pages"].items())
    )
    return "\n".join(lines)


def _run(emulator_cls, settings_cls, savings, args, **settings) -> int:
    from pagecore.cli._args import emit

    if args.format == "parquet" and not args.output:
        raise PagecoreError("--format parquet needs -o/--output FILE")
    if getattr(args, "lifetimes", None) and not args.series:
        raise PagecoreError("--lifetimes needs --series (successive reads of the same guests)")
    if args.interval is not None and not args.series:
        raise PagecoreError("--interval needs --series (the seconds between successive reads of the same guests)")
    check_outputs([args.output, getattr(args, "lifetimes", None)], args.pages)
    try:
        st = settings_cls(**settings)
    except ValueError as exc:
        raise PagecoreError(str(exc)) from None
    history, info = _history_from_args(args)
    if getattr(args, "lifetimes", None) and info["reads"] < 2:  # series_lifetimes' ValueError was a traceback
        raise PagecoreError(
            f"--lifetimes needs at least two reads of each guest; these tables hold {info['reads']} read of each "
            f"VM ({', '.join(history.vm_names[:3])}{', …' if len(history.vm_names) > 3 else ''})"
        )
    if args.series and info["reads"] < 2:  # --series and --interval were ignored without a word
        vms = ", ".join(history.vm_names[:3]) + (", …" if len(history.vm_names) > 3 else "")
        raise PagecoreError(
            f"--series: these tables hold one read of each VM ({vms}), so there is no series to replay; "
            "drop --series" + (" and --interval" if args.interval is not None else "") + " to count them as one set"
        )
    if info["zero_unknown"]:  # the zero counts would read 0 without a word
        n = len(info["zero_unknown"])
        print(
            f"pagecore: warning: {info['zero_unknown'][0]}"
            + (f" and {n - 1} more tables do" if n > 1 else " does")
            + " not mark zero pages (an imported trace): zero pages count as ordinary contents there, and the "
            "zero counts (ksm_zero_pages, savings 'zero') leave them out",
            file=sys.stderr,
        )
    em = emulator_cls(history, st)
    # the ESX scanner: rates too low to finish a pass in its time limit; KSM: too many wake-ups
    # before the last change (a huge --interval)
    check = getattr(em, "check_can_settle", None) or getattr(em, "check_can_run", None)
    try:
        check()
    except ValueError as exc:
        raise PagecoreError(str(exc)) from None
    res = em.run()
    rep = res.to_dict()
    rep["ksm_eligibility"] = info["ksm_eligibility"]
    rep["series"] = info
    rep["savings_pages"] = savings(em)  # mechanism keys (pagecore.vocab)
    end = float(res.timeline["t"].iloc[-1]) if len(res.timeline) else 0.0
    if end < history.last_write_s:  # e.g. KSM's max_full_scans reached first on a tiny history
        rep["warning"] = (
            f"the run stopped at {end:,.1f} s, before the last write at {history.last_write_s:,.1f} s: "
            "later changes were not replayed"
        )
        print(f"pagecore: warning: {rep['warning']}", file=sys.stderr)
    elif not res.settled:  # a time or scan limit reached before the counters settled
        rep["warning"] = (
            f"the run stopped at {end:,.1f} s, before every VM finished a pass after the last change: "
            "the counters are not the converged ones (raise the scan rates)"
            if hasattr(em, "check_can_settle")  # the ESX scanner
            else f"the run stopped at {end:,.1f} s, before KSM's counters settled (equal over consecutive full "
            "scans after the last change): the counters are not the converged ones"
        )
        print(f"pagecore: warning: {rep['warning']}", file=sys.stderr)

    from pagecore._util import all_or_nothing

    def rows():
        tl = res.timeline.copy()
        tl["ksm_eligibility"] = info["ksm_eligibility"]
        return tl

    with all_or_nothing():  # --lifetimes and -o appear together or not at all
        if getattr(args, "lifetimes", None):
            _write_lifetimes(args, history, info)
        emit(args, rep, rows, lambda: _table(rep, res.final))
    return 0


def _cmd_ksm(args) -> int:
    from pagecore.sharing.emulated_savings import ksm_savings
    from pagecore.sharing.ksm import KsmEmulator, KsmSettings

    if args.sleep_ms == 0:  # the emulator's scan cost is 0: every time it reported was 0.00 s
        raise PagecoreError(
            "--sleep-ms 0: the emulated scan takes no time, so KSM would find everything in 0 s; "
            "use --sleep-ms 1 or more"
        )
    return _run(
        KsmEmulator,
        KsmSettings,
        ksm_savings,
        args,
        pages_to_scan=args.pages_to_scan,
        sleep_millisecs=args.sleep_ms,
        max_page_sharing=args.max_page_sharing,
        use_zero_pages=args.use_zero_pages,
        smart_scan=not args.no_smart_scan,
    )


def _cmd_scan(args) -> int:
    from pagecore.sharing.emulated_savings import scanner_savings
    from pagecore.sharing.scanner import EsxScanner, ScannerSettings

    return _run(
        EsxScanner,
        ScannerSettings,
        scanner_savings,
        args,
        scan_rate_vm=args.rate_vm,
        scan_rate_total=args.rate_total,
        hash_bits=args.hash_bits,
        seed=args.seed,
    )


def _write_lifetimes(args, history, info) -> None:
    """``--lifetimes FILE.csv``: duplicate lifetimes observed in a series of real reads."""
    import pandas as pd

    from pagecore._util import atomic_path
    from pagecore.experiments.scan import series_lifetimes

    surv, catch = series_lifetimes(history, info["read_times_s"], [5, 10, 20, 50, 100, 200, 500], [500, 5000, 50000])
    out = pd.concat([surv.assign(table="survival"), catch.assign(table="catchable")], ignore_index=True)
    with atomic_path(args.lifetimes) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6g")


def register(sub) -> None:
    """Add the `overtime` subcommand(s) to the ``pagecore`` parser."""

    def _over_time_inputs(sp):
        sp.add_argument("pages", nargs="+", help="page tables written by `pagecore hash`")
        sp.add_argument(
            "--series",
            "--snapshots",
            dest="series",
            action="store_true",
            help="the tables are successive reads of the same guests (pagecore live --count N): "
            "content changes between reads are replayed as writes at the later read's time",
        )
        sp.add_argument(
            "--interval",
            type=float_in(0, above=True),
            default=None,
            help="with --series: seconds between successive reads (default: the read times recorded by pagecore live)",
        )
        add_format_args(sp, "run")
        sp.add_argument(
            "--lifetimes",
            metavar="FILE",
            help="with --series: write the duplicate lifetimes the reads show (survival and the fraction a "
            "scanner at each rate could catch) as CSV",
        )

    ks = command(
        sub,
        "ksm",
        _cmd_ksm,
        help="emulate Linux KSM over page tables until it converges",
        description="Replay ksmd (stable/unstable trees, volatility filter, pacing, smart scan) over the pages "
        "and print the final /sys/kernel/mm/ksm counters and the seconds KSM needs to find the sharing.",
    )
    _over_time_inputs(ks)
    ks.add_argument(
        "--pages-to-scan", type=int_at_least(1, 2**32 - 1), default=100, help="pages per wake-up (default 100)"
    )
    ks.add_argument("--sleep-ms", type=int_at_least(0, 2**32 - 1), default=20, help="sleep_millisecs (default 20)")
    ks.add_argument(
        "--max-page-sharing", type=int_at_least(2, 2**31 - 1), default=256, help="max_page_sharing (default 256)"
    )
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
    sc.add_argument(
        "--rate-vm", type=float_in(0, above=True), default=50.0, help="pages/s per VM (default 50, ESX 2.x)"
    )
    sc.add_argument(
        "--rate-total", type=float_in(0, above=True), default=200.0, help="pages/s system-wide (default 200, ESX 2.x)"
    )
    sc.add_argument(
        "--hash-bits",
        type=int_at_least(32, 64),
        default=64,
        help="page-hash bits used, 32 to 64: at least the 32 a hint frame keeps (default 64)",
    )
    sc.add_argument("--seed", type=nonneg_int, default=0, help="seed of the scan order (default 0)")
