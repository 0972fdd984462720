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


def _int_at_least(low: int):
    """argparse type: a whole number >= ``low``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


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
def _fmt_table(rep: dict, by_vm: bool) -> str:
    cols = [
        ("pages", "total_pages"),
        ("zero", "zero_pages"),
        ("shared", "shared_pages"),
        ("reclaimed", "reclaimed_pages"),
        ("shared-recl", "shared_minus_reclaimed_pages"),
    ]
    head = f"{'set':<18}" + "".join(f"{c:>13}" for c, _ in cols) + f"{'reclaimed':>11}"
    lines = [head, "-" * len(head)]

    def row(label, d):
        cells = "".join(f"{d[k]:>13,}" for _, k in cols)
        pct = 100.0 * d["reclaimed_pages"] / d["total_pages"] if d["total_pages"] else 0.0
        return f"{label[:18]:<18}{cells}{pct:>10.1f}%"

    if by_vm:
        for name, d in rep["by_vm"].items():
            alone = {
                "total_pages": d["total_pages"],
                "zero_pages": d["zero_pages"],
                "shared_pages": d["alone_shared_pages"],
                "reclaimed_pages": d["alone_reclaimed_pages"],
                "shared_minus_reclaimed_pages": d["alone_shared_pages"] - d["alone_reclaimed_pages"],
            }
            lines.append(row(f"{name} alone", alone))
        lines.append("-" * len(head))
    lines.append(row(f"all ({rep['vms']} VMs)", rep))
    ver = rep["verification"]
    if rep["verified"]:
        check = f"verified: {ver['pages_compared']:,} pages byte-compared, {rep['false_matches']} false matches"
    else:
        check = f"unverified ({ver.get('reason')}): expected false matches {rep['expected_false_matches']:.2g}"
    k = rep["ksm"]
    e = rep["esxtop"]
    lines += [
        "",
        f"reclaimed {rep['reclaimed_mb']:,.1f} MB of {rep['total_mb']:,.1f} MB; {check}",
        f"saved pages: intra-VM {rep['intra_vm_saved_pages']:,}, inter-VM {rep['inter_vm_saved_pages']:,}; "
        f"zero {rep['zero_saved_pages']:,}, non-zero {rep['nonzero_saved_pages']:,}",
        f"KSM: pages_shared {k['pages_shared']:,}, pages_sharing {k['pages_sharing']:,}, "
        f"pages_unshared {k['pages_unshared']:,}, ksm_zero_pages {k['ksm_zero_pages']:,} "
        f"(use_zero_pages={k['use_zero_pages']}), general_profit {k['general_profit'] / 2**20:,.1f} MiB",
        f"esxtop: SHRD {e['SHRD_mb']:,.1f} MB, ZERO {e['ZERO_mb']:,.1f} MB, SHRDSVD {e['SHRDSVD_mb']:,.1f} MB",
    ]
    if "salting" in rep:
        sg = rep["salting"]
        lines.append(
            f"Mem.ShareForceSalting={sg['mode']}: reclaimed {sg['reclaimed_pages_salted']:,} pages "
            f"(loses {sg['savings_lost_pages']:,}); cross-VM shared pages an attacker could probe: "
            f"{sg['cross_vm_shared_pages_unsalted']:,} unsalted, {sg['cross_vm_shared_pages_salted']:,} salted"
        )
    if rep["top_shared"]:
        lines.append(
            "top shared contents: "
            + ", ".join(
                f"{t['hash'][:8]}… ×{t['copies']:,} in {t['vms']} VM(s){' (zero)' if t['zero'] else ''}"
                for t in rep["top_shared"][:5]
            )
        )
    return "\n".join(lines)


def _parse_salts(items) -> dict[str, str]:
    out = {}
    for item in items or []:
        vm, sep, salt = item.partition("=")
        if not sep or not vm:
            raise PagecoreError(f"--salt takes VM=SALT, got {item!r}")
        out[vm] = salt
    return out


def _cmd_share(args) -> int:
    from .analyze import analyze_page_tables

    rep = analyze_page_tables(
        args.pages,
        verify=args.verify,
        salting_mode=args.salting,
        salts=_parse_salts(args.salt),
        use_zero_pages=args.use_zero_pages,
        max_page_sharing=args.max_page_sharing,
        top_n=args.top,
        show_progress=not args.quiet,
    )
    if args.format == "json":
        if args.by != "vm":
            rep.pop("by_vm")
        json.dump(rep, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "parquet":
        if not args.output:
            raise PagecoreError("--format parquet needs -o/--output FILE")
        _write_share_parquet(rep, args.output, args.by == "vm")
    else:
        print(_fmt_table(rep, args.by == "vm"))
    return 0


def _write_share_parquet(rep: dict, path: str, by_vm: bool) -> None:
    import pandas as pd

    from ._util import atomic_path

    flat = {k: v for k, v in rep.items() if not isinstance(v, dict | list)}
    flat.update({f"ksm_{k}": v for k, v in rep["ksm"].items() if not k.startswith(("use_", "max_"))})
    rows = [{"set": "all", **flat}]
    if by_vm:
        for name, d in rep["by_vm"].items():
            rows.append({"set": name, **{k: v for k, v in d.items() if not isinstance(v, dict)}})
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


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


def _load_workflow_config(path: str) -> dict:
    """The workflow config at ``path``, validated against the schema next to it when present."""
    import yaml

    from .config import validate_config

    p = Path(path)
    if not p.is_file():
        raise PagecoreError(f"{p}: no such config file; pass --config (the workflow's is workflow/config/config.yaml)")
    with open(p) as fh:
        cfg = yaml.safe_load(fh) or {}
    schema = p.parent.parent / "schemas" / "config.schema.yaml"
    return validate_config(cfg, schema) if schema.is_file() else cfg


def _cmd_synth_fig05(args) -> int:
    from .guests import GuestSet
    from .synth import write_hash_only_tables

    cfg = _load_workflow_config(args.config)
    scenarios = cfg["fig05"]["scenarios"]
    if args.scenario not in scenarios:
        raise PagecoreError(
            f"unknown Figure 5 scenario {args.scenario!r}; the config has {', '.join(sorted(scenarios))}"
        )
    gs = GuestSet.from_config(scenarios[args.scenario], cfg["catalogue"], cfg["fig05"]["seed"])
    names = [g.name for g in gs.guests]
    generator = {
        "model": "GuestSet",
        "scenario": args.scenario,
        "catalogue": cfg["catalogue"],
        "seed": cfg["fig05"]["seed"],
    }
    rows = write_hash_only_tables(gs, range(len(names)), names, args.output, generator)
    print(f"{args.output}: {len(names)} guests, {rows:,} pages, {gs.total_mb:,.1f} MB (hash-only)", file=sys.stderr)
    return 0


def _cmd_synth_trace(args) -> int:
    from .workloads import generate, scenario, write_trace

    cfg = _load_workflow_config(args.config)
    w = cfg["workloads"]
    names = sorted(k for k, v in w.items() if isinstance(v, dict) and "vms" in v)
    if args.scenario not in names:
        raise PagecoreError(f"unknown workload scenario {args.scenario!r}; the config has {', '.join(names)}")
    sc = scenario(args.scenario, w[args.scenario], seed=w["seed"], chunk_s=w["chunk_s"])
    rows = write_trace(
        args.output, generate(sc), {"scenario": args.scenario, "seed": w["seed"], "chunk_s": w["chunk_s"]}
    )
    print(f"{args.output}: {rows:,} page references", file=sys.stderr)
    return 0


def _cmd_import_memorybuddies(args) -> int:
    from .memorybuddies import import_trace

    meta = import_trace(args.trace, args.output, args.vm, header_bytes=args.header_bytes, max_pages=args.max_pages)
    print(
        f"{args.output}: {meta['pages_read']:,} pages of {meta['vm']} (32-bit hashes, hash-only; "
        f"header {meta['header_bytes']:,} bytes: {meta['header_first_line'][:60]!r})",
        file=sys.stderr,
    )
    return 0


# ------------------------------------------------------------------------------ ksm / scan
def _history_from_args(args):
    """A page history from page tables: one set, or successive snapshots (--snapshots)."""
    from .sim.pagehistory import PageHistory
    from .traces import read_page_tables

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


def _print_result(res, keys, fmt) -> None:
    out = res.to_dict()
    if fmt == "json":
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for k in keys:
        print(f"{k:<22}{out[k]:>16,}")
    print(f"{'seconds_to_converge':<22}{out['seconds_to_converge']:>16,.2f}")


def _cmd_ksm(args) -> int:
    from .sim.ksm import KsmSettings, emulate_ksm

    try:
        st = KsmSettings(
            pages_to_scan=args.pages_to_scan,
            sleep_millisecs=args.sleep_ms,
            max_page_sharing=args.max_page_sharing,
            use_zero_pages=args.use_zero_pages,
            smart_scan=not args.no_smart_scan,
        )
    except ValueError as exc:
        raise PagecoreError(str(exc)) from None
    res = emulate_ksm(_history_from_args(args), st)
    keys = [
        "full_scans",
        "pages_shared",
        "pages_sharing",
        "pages_unshared",
        "pages_volatile",
        "ksm_zero_pages",
        "general_profit",
    ]
    _print_result(res, keys, args.format)
    return 0


def _cmd_scan(args) -> int:
    from .sim.scanner import ScannerSettings, emulate_scanner

    try:
        st = ScannerSettings(
            scan_rate_vm=args.rate_vm, scan_rate_total=args.rate_total, hash_bits=args.hash_bits, seed=args.seed
        )
    except ValueError as exc:
        raise PagecoreError(str(exc)) from None
    res = emulate_scanner(_history_from_args(args), st)
    keys = [
        "pages_scanned",
        "shared_pages",
        "reclaimed_pages",
        "shared_frames",
        "hint_frames",
        "false_matches",
        "pages_hashed",
        "bytes_compared",
        "table_bytes",
    ]
    _print_result(res, keys, args.format)
    return 0


# ------------------------------------------------------------------------------ bench
def _cmd_bench(args) -> int:
    if args.what == "ingest":
        from . import bench_ingest

        return bench_ingest.main(args.bench_args)
    if args.what == "sim":
        from . import bench_sim

        return bench_sim.main(args.bench_args)
    if args.what == "guest":
        from . import bench_guest

        return bench_guest.main(args.bench_args)
    from . import bench

    return bench.main([args.what, *args.bench_args])


def build_parser() -> argparse.ArgumentParser:
    from .dumps.base import DEFAULT_CHUNK_PAGES

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
    h.add_argument("dump", help="memory dump: raw image, ELF core, LiME, kdump-compressed or flattened")
    h.add_argument("-o", "--output", required=True, help="page table to write (.parquet)")
    h.add_argument("--vm", help="VM name stored in the table (default: the dump's file stem)")
    h.add_argument(
        "--format",
        default="auto",
        help="dump format: raw, elf, lime, kdump, kdump-flat (default: auto, detected from magic bytes)",
    )
    h.add_argument("--threads", type=_nonneg_int, default=0, help="hashing threads (0 = all; default 0)")
    h.add_argument(
        "--chunk-pages",
        type=_positive_int,
        default=DEFAULT_CHUNK_PAGES,
        help=f"pages per chunk; bounds memory (default {DEFAULT_CHUNK_PAGES}: 64 MiB)",
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
    s.add_argument("--by", choices=["total", "vm"], default="total", help="also report each VM (default: total only)")
    s.add_argument("--format", choices=["table", "json", "parquet"], default="table", help="output (default: table)")
    s.add_argument("-o", "--output", help="file for --format parquet")
    vg = s.add_mutually_exclusive_group()
    vg.add_argument(
        "--verify",
        dest="verify",
        action="store_const",
        const="yes",
        default="auto",
        help="byte-compare equal-hash pages in the source dumps (default: when the dumps are there)",
    )
    vg.add_argument(
        "--no-verify",
        dest="verify",
        action="store_const",
        const="no",
        help="count equal hashes as equal pages without reading the dumps",
    )
    s.add_argument("--use-zero-pages", action="store_true", help="KSM counters as with use_zero_pages=1")
    s.add_argument("--max-page-sharing", type=_positive_int, default=256, help="KSM max_page_sharing (default 256)")
    s.add_argument("--salting", type=int, choices=[0, 1, 2], help="also report ESXi Mem.ShareForceSalting at this mode")
    s.add_argument("--salt", action="append", metavar="VM=SALT", help="sched.mem.pshare.salt of a VM (repeatable)")
    s.add_argument("--top", type=_nonneg_int, default=10, help="most-copied contents to list (default 10)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
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

    f5 = sysub.add_parser(
        "fig05",
        help="composed guests of a Figure 5 scenario as a hash-only page table",
        description="The guests of one Figure 5 scenario (A, B, C in the workflow config), composed from the "
        "content-class catalogue and written directly as a hash-only page table (no page bytes).",
    )
    f5.add_argument("--scenario", required=True, help="scenario name in the config (A, B, C)")
    f5.add_argument("-o", "--output", required=True, help="page table to write (.parquet)")
    f5.add_argument("--config", default="workflow/config/config.yaml", help="workflow config (default: %(default)s)")
    f5.set_defaults(func=_cmd_synth_fig05)
    tr = sysub.add_parser(
        "trace",
        help="an access trace (page references over VM time) of a workload scenario",
        description="Page references (t, vm, gpfn, write) of one workload scenario of the workflow config "
        "(fig06, fig07, fig08), streamed into Parquet row groups.",
    )
    tr.add_argument("scenario", help="workload scenario name in the config (e.g. fig06)")
    tr.add_argument("-o", "--output", required=True, help="trace to write (.parquet)")
    tr.add_argument("--config", default="workflow/config/config.yaml", help="workflow config (default: %(default)s)")
    tr.set_defaults(func=_cmd_synth_trace)

    im = sub.add_parser(
        "import",
        help="import published page-hash traces as page tables",
        description="Convert published memory traces into (hash-only) page tables.",
    )
    imsub = im.add_subparsers(dest="source", metavar="SOURCE", required=True)
    mb = imsub.add_parser(
        "memorybuddies",
        help="a UMass Memory Buddies trace (text header, then 32-bit hashes)",
        description="A UMass Memory Buddies memory trace as a hash-only page table with 32-bit hashes; see "
        "pagecore.memorybuddies for how the header and hash list are found.",
    )
    mb.add_argument("trace", help="trace file")
    mb.add_argument("-o", "--output", required=True, help="page table to write (.parquet)")
    mb.add_argument("--vm", help="machine name (default: the file stem)")
    mb.add_argument("--header-bytes", type=_nonneg_int, help="header length (default: detect the text lines)")
    mb.add_argument("--max-pages", type=_positive_int, help="hashes to read (default: to the end of the file)")
    mb.set_defaults(func=_cmd_import_memorybuddies)

    def _over_time_inputs(sp):
        sp.add_argument("pages", nargs="+", help="page tables written by `pagecore hash`")
        sp.add_argument(
            "--snapshots", action="store_true", help="the tables are successive snapshots of the same guests"
        )
        sp.add_argument("--interval", type=float, default=60.0, help="seconds between snapshots (default %(default)s)")
        sp.add_argument("--format", choices=["table", "json"], default="table", help="output (default: table)")

    ks = sub.add_parser(
        "ksm",
        help="emulate Linux KSM over page tables until it converges",
        description="Replay ksmd (stable/unstable trees, volatility filter, pacing, smart scan) over the pages "
        "and print the final /sys/kernel/mm/ksm counters and the seconds KSM needs to find the sharing.",
    )
    _over_time_inputs(ks)
    ks.add_argument("--pages-to-scan", type=_positive_int, default=100, help="pages per wake-up (default 100)")
    ks.add_argument("--sleep-ms", type=_nonneg_int, default=20, help="sleep_millisecs (default 20)")
    ks.add_argument("--max-page-sharing", type=_int_at_least(2), default=256, help="max_page_sharing (default 256)")
    ks.add_argument("--use-zero-pages", action="store_true", help="map zero pages to the kernel zero page")
    ks.add_argument("--no-smart-scan", action="store_true", help="smart_scan=0 (default: on, as in the kernel)")
    ks.set_defaults(func=_cmd_ksm)

    sc = sub.add_parser(
        "scan",
        help="emulate the ESX page-sharing scanner over page tables until it converges",
        description="Replay the ESX background scanner (paper §4.2-4.3: hash table of shared and hint frames, "
        "random order, rate caps) and print what it shared, its hash-table memory and CPU-cost proxy.",
    )
    _over_time_inputs(sc)
    sc.add_argument("--rate-vm", type=float, default=50.0, help="pages/s per VM (default 50, ESX 2.x)")
    sc.add_argument("--rate-total", type=float, default=200.0, help="pages/s system-wide (default 200, ESX 2.x)")
    sc.add_argument("--hash-bits", type=int, default=64, help="page-hash bits used (default 64)")
    sc.add_argument("--seed", type=int, default=0, help="seed of the scan order (default 0)")
    sc.set_defaults(func=_cmd_scan)

    b = sub.add_parser(
        "bench",
        help="print throughput benchmarks (ratios against baselines measured in the same run)",
        description="Benchmarks; see `python -m pagecore.bench --help`.",
    )
    b.add_argument("what", choices=["hash", "count", "ingest", "sim", "guest"], help="what to benchmark")
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
