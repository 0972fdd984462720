"""`pagecore synth …` and `pagecore import …`: synthetic guests, traces and published traces."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from pagecore import PAGE_SIZE
from pagecore.cli._args import (
    add_config_arg,
    check_outputs,
    command,
    float_in,
    group,
    int_at_least,
    load_workflow_config,
    nonneg_int,
    output_arg,
    positive_int,
)
from pagecore.errors import PagecoreError


def _size(b: int) -> str:
    return f"{b / 2**30:,.1f} GiB" if b >= 2**30 else f"{b / 2**20:,.1f} MiB"


def _check_free_space(out: Path, need: int, what: str) -> None:
    """Refuse before writing when ``need`` bytes cannot fit in the file system of ``out``: every
    guest is kept (as a temporary) until all are written, so a run too large filled the disk,
    for everything else on it too, before failing."""
    import shutil

    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: writing says so if it fails
    if need > free:
        raise PagecoreError(
            f"synth fig04: {what} need {_size(need)}; {probe} has {_size(free)} free "
            "(fewer --vms or a smaller --mem-mb)"
        )


_GUEST = re.compile(r"vm\d{2,}\.raw")
_GUEST_TMP = re.compile(r"\.vm\d{2,}\.raw\.pagecore-tmp-(\d+)-\d+")


def _listing(paths, n: int = 3) -> str:
    names = sorted(p.name for p in paths)
    return ", ".join(names[:n]) + (f" and {len(names) - n:,} more" if len(names) > n else "")


def _earlier_run(out: Path, names: set[str], force: bool) -> list[Path]:
    """Refuse, before writing, an output directory that is not empty: guests of an earlier run
    left beside this run's (fewer ``--vms``) gave a directory of mixed runs, and guests that
    page tables were hashed from were replaced without a word. With ``force``, the directory may
    hold an earlier run's guests (regular files ``vmNN.raw``) and nothing else; return those
    this run does not write (to remove once its own are in place). Temporaries of killed runs
    are not counted (writing removes them)."""
    from pagecore._util import _alive

    if not out.is_dir():
        return []
    entries = []
    for p in out.iterdir():
        m = _GUEST_TMP.fullmatch(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            continue
        entries.append(p)
    if not entries:
        return []
    if not force:
        raise PagecoreError(
            f"synth fig04: {out} is not empty (it holds {_listing(entries)}); this run's guests would mix with "
            "what is there: pick a new or empty directory, or pass --force to replace an earlier run's guests"
        )
    foreign = [p for p in entries if not (_GUEST.fullmatch(p.name) and p.is_file() and not p.is_symlink())]
    if foreign:
        raise PagecoreError(
            f"synth fig04 --force: {out} holds files synth does not write ({_listing(foreign)}); --force replaces "
            "only an earlier run's guests (regular files vmNN.raw): move the others away or pick another directory"
        )
    return sorted(p for p in entries if p.name not in names)


def _option(m: re.Match) -> str:
    return "--" + m.group(1).replace("_", "-")


def _cmd_synth_fig04(args) -> int:
    from pagecore._util import progress
    from pagecore.synth import FIG04_DEFAULTS, Fig04Model

    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise PagecoreError(f"{out}: -o/--output-dir is not a directory")
    targets = [out / f"vm{i + 1:02d}.raw" for i in range(args.vms)]
    check_outputs(targets, [])
    stale = _earlier_run(out, {t.name for t in targets}, args.force)
    try:
        model = Fig04Model(**{k: getattr(args, k) for k in FIG04_DEFAULTS})
    except ValueError as exc:  # fractions that sum past 1, a size of no pages: named as the options
        given = {k: getattr(args, k) for k in FIG04_DEFAULTS}
        text = re.sub(r"\b(intra_dup_groups|intra_dup|mem_mb|zero|common|variants|variant)\b", _option, str(exc))
        raise PagecoreError(
            f"synth fig04: {text} (given or default: "
            + ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in given.items() if k != "seed")
            + ")"
        ) from None
    _check_free_space(out, args.vms * model.pages * PAGE_SIZE, f"{args.vms:,} guests of {model.pages:,} pages")
    from pagecore._util import all_or_nothing

    with all_or_nothing(), progress(args.vms, desc="write guests", unit="VM") as bar:  # every guest or none
        for i in range(args.vms):
            path = out / f"vm{i + 1:02d}.raw"
            model.write_raw(i, path)
            bar.update(1)
    for p in stale:  # only once this run's guests are all in place
        p.unlink()
    gone = f"; removed the earlier run's {_listing(stale)}" if stale else ""
    print(f"{args.vms} raw dumps of {model.pages:,} pages in {out}{gone}", file=sys.stderr)
    return 0


def _cmd_synth_fig05(args) -> int:
    from pagecore.synth.fig04 import write_hash_only_tables
    from pagecore.synth.guests import GuestSet

    check_outputs([args.output], [args.config])
    cfg = load_workflow_config(args.config)
    scenarios = cfg["fig05"]["scenarios"]
    if args.scenario not in scenarios:
        raise PagecoreError(
            f"unknown Figure 5 scenario {args.scenario!r}; the config has {', '.join(sorted(scenarios))}"
        )
    try:
        gs = GuestSet.from_config(scenarios[args.scenario], cfg["catalogue"], cfg["fig05"]["seed"])
    except ValueError as exc:  # names the model cannot tell apart
        raise PagecoreError(f"synth fig05 {args.scenario}: {exc}") from None
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
    from pagecore.synth.workloads import generate, scenario, write_trace

    check_outputs([args.output], [args.config])
    cfg = load_workflow_config(args.config)
    w = cfg["workloads"]
    names = sorted(k for k, v in w.items() if isinstance(v, dict) and "vms" in v)
    if args.scenario not in names:
        raise PagecoreError(f"unknown workload scenario {args.scenario!r}; the config has {', '.join(names)}")
    sc_cfg = w[args.scenario]
    if args.scenario == "fig08" and w.get("fig08_fit"):  # the declared fit's schedules, as the pipeline's
        from pagecore.experiments import apply_fig08_fit, fit_fig08_active

        f = w["fig08_fit"]
        sc_cfg = apply_fig08_fit(sc_cfg, fit_fig08_active(sc_cfg, f.get("split", "max_mb"), f.get("lead_min", 1.0)))
    sc = scenario(args.scenario, sc_cfg, seed=w["seed"], chunk_s=w["chunk_s"])
    rows = write_trace(
        args.output, generate(sc), {"scenario": args.scenario, "seed": w["seed"], "chunk_s": w["chunk_s"]}
    )
    print(f"{args.output}: {rows:,} page references", file=sys.stderr)
    return 0


def _cmd_import_memorybuddies(args) -> int:
    from pagecore.synth.memorybuddies import import_trace

    check_outputs([args.output], [args.trace])
    meta = import_trace(args.trace, args.output, args.vm, header_bytes=args.header_bytes, max_pages=args.max_pages)
    print(
        f"{args.output}: {meta['pages_read']:,} pages of {meta['vm']} (32-bit hashes, hash-only; "
        f"header {meta['header_bytes']:,} bytes: {meta['header_first_line'][:60]!r})",
        file=sys.stderr,
    )
    return 0


def register(sub) -> None:
    """Add the `synth` subcommand(s) to the ``pagecore`` parser."""
    sysub = group(
        sub,
        "synth",
        "scenario",
        "SCENARIO",
        help="write synthetic guests as real dump files",
        description="Deterministic synthetic guests standing in for the paper's machines.",
    )
    f4 = command(
        sysub,
        "fig04",
        _cmd_synth_fig04,
        help="identical Linux guests of Figure 4 as raw dumps",
        description="N identical guests (paper Figure 4) written as raw physical images "
        "vm01.raw … vmNN.raw. Fractions default to the workflow's calibrated values.",
    )
    from pagecore._defaults import FIG04_DEFAULTS

    f4.add_argument(
        "-o", "--output-dir", required=True, help="directory for vmNN.raw files: new or empty unless --force"
    )
    f4.add_argument(
        "--force",
        action="store_true",
        help="write into a directory holding an earlier run's guests (vmNN.raw and nothing else): "
        "replace them, and remove those this run does not write once its own are in place",
    )
    f4.add_argument("--vms", type=positive_int, default=10, help="number of guests (default 10)")
    f4.add_argument(
        "--mem-mb",
        type=float_in(0, above=True),
        default=FIG04_DEFAULTS["mem_mb"],
        help="guest memory in MB (default %(default)s)",
    )
    for name in ("zero", "intra_dup", "intra_dup_groups", "common", "variant"):
        f4.add_argument(
            f"--{name.replace('_', '-')}",
            type=float_in(0, 1),
            default=FIG04_DEFAULTS[name],
            help="fraction of pages (default %(default)s)",
        )
    f4.add_argument(
        "--variants",
        type=int_at_least(1, 2**32),
        default=FIG04_DEFAULTS["variants"],
        help="versions per variant slot (default %(default)s)",
    )
    f4.add_argument("--seed", type=nonneg_int, default=FIG04_DEFAULTS["seed"], help="seed (default %(default)s)")

    f5 = command(
        sysub,
        "fig05",
        _cmd_synth_fig05,
        help="composed guests of a Figure 5 scenario as a hash-only page table",
        description="The guests of one Figure 5 scenario (A, B, C in the workflow config), composed from the "
        "content-class catalogue and written directly as a hash-only page table (no page bytes).",
    )
    f5.add_argument("scenario", help="Figure 5 scenario name in the config (A, B, C)")
    output_arg(f5)
    add_config_arg(f5)
    tr = command(
        sysub,
        "trace",
        _cmd_synth_trace,
        help="an access trace (page references over VM time) of a workload scenario",
        description="Page references (t, vm, gpfn, write) of one workload scenario of the workflow config "
        "(fig06, fig07, fig08), streamed into Parquet row groups.",
    )
    tr.add_argument("scenario", help="workload scenario name in the config (e.g. fig06)")
    output_arg(tr, "trace to write (.parquet)")
    add_config_arg(tr)

    imsub = group(
        sub,
        "import",
        "source",
        "SOURCE",
        help="import published page-hash traces as page tables",
        description="Convert published memory traces into (hash-only) page tables.",
    )
    mb = command(
        imsub,
        "memorybuddies",
        _cmd_import_memorybuddies,
        help="a UMass Memory Buddies trace (text header, then 32-bit hashes)",
        description="A UMass Memory Buddies memory trace as a hash-only page table with 32-bit hashes; see "
        "pagecore.synth.memorybuddies for how the header and hash list are found.",
    )
    mb.add_argument("trace", help="trace file")
    output_arg(mb)
    mb.add_argument("--vm", help="machine name (default: the file stem)")
    mb.add_argument("--header-bytes", type=nonneg_int, help="header length (default: detect the text lines)")
    mb.add_argument(
        "--max-pages",
        type=positive_int,
        help="hashes to read (default: the header's page count line, 'pages: N', else to the end of the file)",
    )
