"""`pagecore share`: the sharing analysis of page tables, as a table, JSON or Parquet."""

from __future__ import annotations

import sys

from pagecore.cli._args import add_format_args, check_outputs, command, int_at_least, key_from_args, nonneg_int
from pagecore.errors import PagecoreError


def _fmt_table(rep: dict, by_vm: bool) -> str:
    from pagecore.experiments.sharetable import COLUMNS, LEGEND, share_rows

    rows = share_rows(rep, by_vm)

    def cell(key, v):
        if key == "saved_mib":
            return f"{v:,.1f}"
        if key == "saved_pct":
            return f"{v:.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    cells = [[cell(k, r[k]) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(COLUMNS)]

    def line(values):
        first = f"{values[0]:<{widths[0]}}"
        return "  ".join([first] + [f"{v:>{w}}" for v, w in zip(values[1:], widths[1:], strict=True)])

    head = line([h for _, h in COLUMNS])
    rule = "-" * len(head)
    lines = [head, rule]
    for r, c in zip(rows, cells, strict=True):
        if by_vm and r["set"] == "all":
            lines.append(rule)
        lines.append(line(c))
    lines += ["", textwrap_legend(LEGEND, len(head))]
    ver = rep["verification"]
    if rep["verified"]:
        check = (
            f"verified: {ver['pages_compared']:,} pages byte-compared; "
            f"false matches: {ver['false_match_pages']:,} pages, "
            f"{ver['false_match_pairs']:,} pairs of different contents under one hash"
            + (f"; {ver['unresolved_pages']:,} pages unresolved (not shared)" if ver["unresolved_pages"] else "")
        )
    else:
        check = (
            f"UNVERIFIED ({ver.get('reason')}): expected false matches {rep['expected_false_matches']:.2g} "
            "for random-like contents"
        )
    k = rep["ksm"]
    e = rep["esxtop"]
    lines += [
        "",
        f"reclaimed {rep['reclaimed_mb']:,.1f} MiB of {rep['total_mb']:,.1f} MiB; {check}",
        f"saved pages: intra-VM {rep['intra_vm_saved_pages']:,}, inter-VM {rep['inter_vm_saved_pages']:,}; "
        f"zero {rep['zero_saved_pages']:,}, non-zero {rep['nonzero_saved_pages']:,}",
        "saved by mechanism: " + ", ".join(f"{m} {v:,.1f} MiB" for m, v in rep["savings_mb"].items()),
        f"KSM ({_eligibility_words(k)}): pages_shared {k['pages_shared']:,}, pages_sharing {k['pages_sharing']:,}, "
        f"pages_unshared {k['pages_unshared']:,}, ksm_zero_pages {k['ksm_zero_pages']:,} "
        f"(use_zero_pages={k['use_zero_pages']}), general_profit {k['general_profit'] / 2**20:,.1f} MiB",
        f"esxtop: SHRD {e['SHRD_mb']:,.1f} MiB, ZERO {e['ZERO_mb']:,.1f} MiB, SHRDSVD {e['SHRDSVD_mb']:,.1f} MiB",
    ]
    if "salting" in rep:
        sg = rep["salting"]
        lines.append(
            f"Mem.ShareForceSalting={sg['mode']}: reclaimed {sg['reclaimed_pages_salted']:,} pages "
            f"(loses {sg['savings_lost_pages']:,}); cross-VM shared pages an attacker could probe: "
            f"{sg['cross_vm_shared_pages_unsalted']:,} unsalted, {sg['cross_vm_shared_pages_salted']:,} salted"
        )
    if k.get("eligibility_note"):
        lines.append(f"note: {k['eligibility_note']}")
    if "large_pages" in rep:
        lines += _large_page_lines(rep["large_pages"])
    for b in rep.get("biased_inputs", []):
        lines.append(f"WARNING: {b['message']}")
    for d in rep.get("damaged_inputs", []):
        lines.append(f"WARNING: {d['vm']}: hashed from a damaged dump ({d['damage']}): only the pages read are counted")
    for sp in rep.get("split_parts", []):
        lines.append(f"WARNING: {_split_part_message(sp)}")
    if rep.get("zero_unknown"):
        lines.append(
            "WARNING: " + ", ".join(rep["zero_unknown"]) + " mark no zero pages (imported traces): their zero pages "
            "count as ordinary contents, and every zero count (zero_pages, ZERO, ksm_zero_pages) leaves them out"
        )
    if rep.get("fuzzy_snapshots"):
        lines.append("note: unverified (fuzzy) live snapshots of running guests: " + ", ".join(rep["fuzzy_snapshots"]))
    if rep["top_shared"]:
        lines.append(
            "top shared contents: "
            + ", ".join(
                f"{t['hash'][:8]}… ×{t['copies']:,} in {t['vms']} VM(s){' (zero)' if t['zero'] else ''}"
                for t in rep["top_shared"][:5]
            )
        )
    return "\n".join(lines)


def _split_part_message(sp: dict) -> str:
    return (
        f"{sp['vm']}: hashed from one part of a split dump (makedumpfile --split, frames {sp['start_pfn']:#x}-"
        f"{sp['end_pfn']:#x} of {sp['max_mapnr']:#x}): its {sp['frames_in_other_parts']:,} frames in the other "
        "parts are not counted"
    )


def _eligibility_words(k: dict) -> str:
    if k.get("eligibility") == "host_view":
        return f"eligibility host_view: pages present in the host, {k.get('pages_not_eligible', 0):,} others left out"
    return "eligibility all: every page counted as mergeable"


def _large_page_lines(lp: dict) -> list[str]:
    """The large-page section of the table (issue 16): regions, backable ones, sharing lost."""
    reach = lp["regions_to_reach"]
    lines = [
        f"large pages ({lp['region_bytes'] // 2**20} MiB regions): {lp['regions']:,} regions, "
        f"{lp['backable_regions']:,} backable by a large page (every 4 KiB frame present); backing them loses "
        f"{lp['lost_mb_if_backed']:,.1f} MiB of the sharing+zero savings "
        f"({100 * lp['lost_fraction_if_backed']:.1f} %, {lp['lost_zero_pages_if_backed']:,} of them zero pages)",
        "  breaking the most profitable regions first gets back "
        + ", ".join(f"{100 * float(m):g} % after {n:,}" for m, n in reach.items())
        + f" of {lp['regions']:,} regions",
    ]
    if "host_thp_regions" in lp:
        lines.append(
            f"  host view: {lp['host_thp_regions']:,} regions backed by transparent huge pages now, hiding "
            f"{lp['lost_mb_host_thp']:,.1f} MiB of savings until split"
        )
    return lines


def textwrap_legend(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=max(width, 60), initial_indent="", subsequent_indent="  "))


def _share_csv_frame(rep: dict, by_vm: bool):
    """The table's rows (CSV): :data:`pagecore.experiments.sharetable.COLUMNS`, then the
    mechanism keys and the KSM counters of the whole set with the eligibility they used."""
    import pandas as pd

    from pagecore.experiments.sharetable import COLUMNS, share_rows
    from pagecore.vocab import MECHANISMS

    rows = []
    for r in share_rows(rep, by_vm):
        row = {**r, "saved_mib": f"{r['saved_mib']:.6g}", "saved_pct": f"{r['saved_pct']:.6g}"}
        whole = r["set"] == "all"
        for m in (m for m in MECHANISMS if m in rep["savings_pages"]):
            row[f"{m}_saved_pages"] = rep["savings_pages"][m] if whole else ""
        for k in ("pages_shared", "pages_sharing", "pages_unshared", "ksm_zero_pages", "eligibility"):
            row[f"ksm_{k}"] = rep["ksm"][k] if whole else ""
        rows.append(row)
    cols = [k for k, _ in COLUMNS] + [k for k in rows[0] if k not in dict(COLUMNS)]
    return pd.DataFrame(rows, columns=cols)


def _parse_salts(items) -> dict[str, str]:
    out = {}
    for item in items or []:
        vm, sep, salt = item.partition("=")
        if not sep or not vm:
            raise PagecoreError(f"--salt takes VM=SALT, got {item!r}")
        if vm in out and out[vm] != salt:
            raise PagecoreError(f"--salt gives VM {vm!r} two salts ({out[vm]!r} and {salt!r}); give one")
        out[vm] = salt
    return out


def _cmd_share(args) -> int:
    from pagecore.cli._args import emit
    from pagecore.experiments.analyze import analyze_page_tables

    if args.format == "parquet" and not args.output:
        raise PagecoreError("--format parquet needs -o/--output FILE")
    check_outputs([args.output], [*args.pages, args.key_file], args.dump_dir)
    if args.salt and args.salting is None:  # salts only change the salted counts --salting asks for
        raise PagecoreError("--salt sets the salts of --salting's counts; give --salting 0, 1 or 2 with it")
    _check_size(args.pages)
    rep = analyze_page_tables(
        args.pages,
        verify=args.verify,
        salting_mode=args.salting,
        salts=_parse_salts(args.salt),
        use_zero_pages=args.use_zero_pages,
        max_page_sharing=args.max_page_sharing,
        top_n=args.top,
        show_progress=not args.quiet,
        key=key_from_args(args) if (args.key_env or args.key_file) else None,
        dump_dir=args.dump_dir,
        large_pages=args.large_pages,
        threads=args.threads,
    )
    if args.format != "table":  # the table prints them itself; JSON/Parquet users still see them
        for b in rep.get("biased_inputs", []):
            print(f"pagecore: warning: {b['message']}", file=sys.stderr)
        for sp in rep.get("split_parts", []):
            print(f"pagecore: warning: {_split_part_message(sp)}", file=sys.stderr)
        if rep.get("zero_unknown"):
            print(
                f"pagecore: warning: {', '.join(rep['zero_unknown'])} mark no zero pages (imported traces): every zero "
                "count leaves them out",
                file=sys.stderr,
            )
    by_vm = args.by == "vm"
    if args.format == "json" and not by_vm:
        rep.pop("by_vm")
    rows = (lambda: _share_csv_frame(rep, by_vm)) if args.format == "csv" else (lambda: _share_frame(rep, by_vm))
    emit(args, rep, rows, lambda: _fmt_table(rep, by_vm))
    return 0


def _check_size(paths) -> None:
    """Refuse, before reading any page, a set larger than one count takes (its pages were loaded,
    17 bytes each, then the counter's ValueError was a traceback)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pagecore.sharing.counts import MAX_PAGES

    n = 0
    for p in paths:
        try:
            n += pq.ParquetFile(p).metadata.num_rows
        except (pa.ArrowInvalid, OSError):  # not a readable table: the analysis names the problem
            return
    if n > MAX_PAGES:
        raise PagecoreError(
            f"{n:,} pages in {len(paths)} page tables: one count takes at most {MAX_PAGES:,}; count larger "
            "sets by hash-prefix partitions (pagecore.sharing.partition: scatter_table, count_partition, gather)"
        )


def _share_frame(rep: dict, by_vm: bool):
    """The Parquet rows: the whole set's scalar fields (KSM counters as ``ksm_*``, saved pages
    per mechanism key as ``<key>_saved_pages``), then each VM's (``--by vm``)."""
    import pandas as pd

    flat = {k: v for k, v in rep.items() if not isinstance(v, dict | list)}
    flat.update({f"ksm_{k}": v for k, v in rep["ksm"].items() if not k.startswith(("use_", "max_"))})
    flat.update({f"{k}_saved_pages": v for k, v in rep["savings_pages"].items()})
    if "large_pages" in rep:
        lp = rep["large_pages"]
        flat.update({f"large_pages_{k}": v for k, v in lp.items() if not isinstance(v, dict | list)})
    rows = [{"set": "all", **flat}]
    if by_vm:
        for name, d in rep["by_vm"].items():
            rows.append({"set": name, **{k: v for k, v in d.items() if not isinstance(v, dict)}})
    return pd.DataFrame(rows)


def register(sub) -> None:
    """Add the `share` subcommand(s) to the ``pagecore`` parser."""
    s = command(
        sub,
        "share",
        _cmd_share,
        help="sharing metrics of one or more page tables",
        description="Content-based sharing of the pages in the given page tables, in the paper's "
        "vocabulary: total, zero, shared (COW), reclaimed and shared − reclaimed pages.",
    )
    s.add_argument("pages", nargs="+", help="page tables written by `pagecore hash`")
    s.add_argument("--by", choices=["total", "vm"], default="total", help="also report each VM (default: total only)")
    add_format_args(s)
    s.add_argument(
        "--no-large-pages",
        dest="large_pages",
        action="store_false",
        help="leave out the large-page section (2 MiB regions; default: included)",
    )
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
    s.add_argument("--dump-dir", metavar="DIR", help="look for dumps that moved since hashing in DIR (by file name)")
    kg = s.add_mutually_exclusive_group()
    kg.add_argument(
        "--key-env", metavar="VAR", help="key of keyed tables (to verify them), from environment variable VAR"
    )
    kg.add_argument("--key-file", metavar="PATH", help="key of keyed tables (to verify them), from PATH")
    s.add_argument("--use-zero-pages", action="store_true", help="KSM counters as with use_zero_pages=1")
    s.add_argument(
        "--max-page-sharing",
        type=int_at_least(2, 2**31 - 1),
        default=256,
        help="KSM max_page_sharing (default 256; KSM takes 2 to 2147483647, a C int)",
    )
    s.add_argument("--salting", type=int, choices=[0, 1, 2], help="also report ESXi Mem.ShareForceSalting at this mode")
    s.add_argument("--salt", action="append", metavar="VM=SALT", help="sched.mem.pshare.salt of a VM (repeatable)")
    s.add_argument("--top", type=nonneg_int, default=10, help="most-copied contents to list (default 10)")
    s.add_argument(
        "--threads", type=nonneg_int, default=0, help="counting threads (0 = all cores; the counts do not depend on it)"
    )
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
