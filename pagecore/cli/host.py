"""`pagecore host`: your VMs on a host of a given size — memory won per mechanism, VMs that fit, time to pay off.

::

    pagecore host PAGES.parquet|DUMP ... --memory 4G [--memory 8G | --memory 2G:16G:2G]
                  [--policy esx2002,esxi,kvm-ksm] [--activity light|idle:0.8|...] [--vms VMS.yaml]
                  [--format table|json|csv|parquet] [-o FILE] [--timelines F.parquet] [--plot F.png]

A VM file (``--vms``) lists VMs with their own sizes, reservations, shares and activity::

    - {pages: web1.parquet, activity: busy, reservation_mb: 512}
    - {dump: db1.elf, name: db1, size_mb: 4096, shares: 80000, trace: db1.trace.parquet}

Settings default to the ``host:`` section of the workflow config (``--config``).
"""

from __future__ import annotations

import re
import sys

from pagecore._defaults import MAX_VMS
from pagecore.cli._args import add_config_arg, add_format_args, check_outputs, command, emit, int_at_least
from pagecore.errors import PagecoreError

#: binary units whatever the spelling (M, MB, MiB = 2^20 bytes, as the paper's megabytes)
_UNITS = {"": 1.0, "m": 1.0, "mb": 1.0, "mib": 1.0, "g": 1024.0, "gb": 1024.0, "gib": 1024.0,
          "t": 1024.0**2, "tb": 1024.0**2, "tib": 1024.0**2}  # fmt: skip


#: Host sizes one ``--memory`` range may list (each is a full consolidation search).
MAX_HOST_SIZES = 1000


def parse_size_mb(text: str) -> float:
    """``512``, ``512M``, ``4G``, ``1.5GiB`` → MiB."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise PagecoreError(f"--memory {text!r}: expected a size like 512M, 4G or 4096 (MiB)")
    v = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if v <= 0:
        raise PagecoreError(f"--memory {text!r}: must be > 0")
    return v


def parse_memory(items) -> list[float] | None:
    """``--memory`` values: sizes, or ``FROM:TO:STEP`` ranges (inclusive)."""
    if not items:
        return None
    out = []
    for item in items:
        for part in str(item).split(","):
            if part.count(":") == 2:
                a, b, s = (parse_size_mb(x) for x in part.split(":"))
                if b < a:
                    raise PagecoreError(f"--memory {part!r}: FROM must be <= TO")
                if (b - a) / s + 1 > MAX_HOST_SIZES:  # 1M:1T:1M is a million hosts: hours, not an answer
                    raise PagecoreError(
                        f"--memory {part!r}: {int((b - a) / s) + 1:,} host sizes; at most {MAX_HOST_SIZES:,} "
                        "(use a larger STEP)"
                    )
                k = 0
                while a + k * s <= b + 1e-9:
                    out.append(a + k * s)
                    k += 1
            else:
                out.append(parse_size_mb(part))
    return sorted(set(out))


def _entries(args) -> list[dict]:
    import yaml

    from pagecore._util import is_page_table

    entries = []
    if args.vms:
        try:
            with open(args.vms, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise PagecoreError(f"{args.vms}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise PagecoreError(f"{args.vms}: not a YAML text file (byte {exc.start} is not UTF-8)") from None
        except yaml.YAMLError as exc:
            raise PagecoreError(f"{args.vms}: not YAML ({str(exc).splitlines()[0]})") from None
        if isinstance(data, dict):
            data = data.get("vms")
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise PagecoreError(f"{args.vms}: expected a list of VMs, each a mapping with pages: or dump:")
        entries += data
    for p in args.inputs:
        e = {"pages": p} if is_page_table(p) else {"dump": p}  # by content, not by name
        if args.activity:
            e["activity"] = args.activity
        entries.append(e)
    if args.activity:
        for e in entries:
            e.setdefault("activity", args.activity)
    return entries


def _settings(args):
    from pagecore.experiments.host import settings_from_config

    cfg = {}
    if args.config or not (args.inputs or args.vms):
        from pagecore.cli._args import load_workflow_config

        cfg = dict(load_workflow_config(args.config).get("host", {}))
    ksm = dict(cfg.get("ksm", {}))
    for k in ("pages_to_scan", "sleep_millisecs", "max_page_sharing"):
        v = getattr(args, f"ksm_{k}")
        if v is not None:
            ksm[k] = v
    if args.ksm_use_zero_pages:
        ksm["use_zero_pages"] = True
    if args.ksm_no_smart_scan:
        ksm["smart_scan"] = False
    if args.ksm_advisor:
        ksm["advisor_mode"] = "scan-time"
    cfg["ksm"] = ksm
    pol = None
    if args.policy:
        pol = tuple(x for item in args.policy for x in item.split(",") if x)
    return settings_from_config(
        cfg,
        memory_mb=parse_memory(args.memory),
        policies=pol,
        replicas=args.replicas,
        max_vms=args.max_vms,
        verify=args.verify,
        emulate_vms=args.emulate_vms,
        kvm_balloon=args.kvm_balloon,
    )


def _mib(h: float) -> str:
    """A host size in MiB, every digit kept (``:g`` printed 1 TiB as 1.04858e+06)."""
    return f"{h:.10g}"


def format_table(rep: dict) -> str:
    """The readable answer: per policy and host size, VMs that fit and MiB won per mechanism."""
    from pagecore.vocab import MECHANISMS

    rows = rep["rows"]
    lines = []
    names = ", ".join(f"{v['name']} ({v['size_mb']:.6g} MiB, {v['activity']})" for v in rep["vms"])
    lines.append(f"VMs of the mix: {names}")
    elig = sorted({v["ksm_eligibility"] for v in rep["vms"]})
    st = rep["settings"]
    thp = st.get("kvm_thp") and "all" in elig and {"kvm-ksm", "cooperative"} & set(st["policies"])
    lines.append(
        f"KSM eligibility: {', '.join(elig)} pages"
        + (" but the all-zero 2 MiB regions (THP-backed guest RAM)" if thp else "")
        + f"; replicas beyond the input: {rep['settings']['replicas']}"
    )
    short = {"zero": "zero", "share_intra": "intra", "share_inter": "inter", "compress": "zip", "balloon": "balloon",
             "swap": "swap", "free_report": "freerep"}  # fmt: skip
    capped = {(f["policy"], f["host_mb"]) for f in rep["fits"] if f.get("at_max_vms")}
    head = f"{'policy':<12}{'host MiB':>9}{'fit':>7}" + "".join(f"{short[m]:>9}" for m in MECHANISMS)
    head += f"{'idle tax':>9}{'boot swap':>10}{'t90 s':>9}{'scan/s':>9}"
    lines += ["", "memory won at the consolidation answer (MiB; idle tax = memory moved, not won)", head]
    for (p, h), g in rows.groupby(["policy", "host_mb"], sort=False):
        by = dict(zip(g["mechanism"], g["saved_mb_at_fit"], strict=True))
        r0 = g.iloc[0]
        fit = f"{int(r0['vms_fit'])}{'+' if (p, h) in capped else ''}"  # +: stopped at --max-vms
        line = f"{p:<12}{_mib(h):>9} {fit:>6}" + "".join(f"{by.get(m, 0.0):>9.1f}" for m in MECHANISMS)
        line += f"{by.get('idle_tax', 0.0):>9.1f}{r0['boot_swap_mb_at_fit']:>10.1f}"
        line += f"{r0['seconds_to_90pct']:>9.0f}{r0['scan_pages_per_s']:>9,.0f}"
        lines.append(line)
    if rep.get("replay"):
        lines += [
            "",
            "cross-check: the memory-manager replay (sharing scanner inside it) at the answer and one VM more",
        ]
        lines.append(f"{'policy':<12}{'host MiB':>9}{'VMs':>5}{'model':>8}{'replay':>8}{'swap out after boot':>21}"
                     f"{'in boot':>9}{'shared at end':>15}")  # fmt: skip
        for r in rep["replay"]:
            lines.append(
                f"{r['policy']:<12}{_mib(r['host_mb']):>9} {r['vms']:>4}{'fits' if r['model_fits'] else 'no':>8}"
                f"{'fits' if r['fits'] else 'no':>8}{r['swap_out_after_boot_mb']:>19.1f} M"
                f"{r['swap_out_in_boot_mb']:>7.1f} M{r['shared_mb_end']:>13.1f} M"
            )
    lines += ["", "notes:"]
    for f in rep["fits"]:
        for n in f.get("notes", []):
            lines.append(f"  {f['policy']} @ {_mib(f['host_mb'])} MiB: {n}")
    lines.append(
        "  fit = largest number of VMs of this mix with nothing swapped after boot (N+: the search stopped at "
        "--max-vms, at least N fit; ballooning allowed where the "
        "policy balloons); boot swap = what booting them all at once would swap before any sharing is found; "
        "t90 = seconds for the policy's scanner to find 90 % of the converged sharing on the input VMs; "
        "scan/s = pages hashed (ESX) or compared (KSM) per second"
    )
    return "\n".join(lines)


def _json_report(rep: dict) -> dict:
    out = {k: v for k, v in rep.items() if k not in ("rows", "timelines")}
    out["rows"] = rep["rows"].to_dict(orient="records")
    return out


def _cmd_host(args) -> int:
    from pagecore.experiments.host import check_vm_entry, host_report, load_vms

    outs = [args.output, args.timelines, args.plot]
    if args.plot:  # the file named is the file written: its name says its format, checked before the work
        from pagecore.plotting import figure_format

        try:
            figure_format(args.plot)
        except ValueError as e:
            raise PagecoreError(f"--plot {e}") from None
    entries = _entries(args)
    for i, e in enumerate(entries):
        check_vm_entry(e, i)
    # every file a VM comes from (including those a --vms file names) is an input, never an output
    inputs = [e.get(k) for e in entries for k in ("pages", "dump", "trace") if e.get(k)]
    check_outputs(outs, [*inputs, args.vms, args.config], args.dump_dir)
    settings = _settings(args)
    if args.replay:  # the replay is the ESX memory manager's: say so rather than skip a policy without a word
        other = [p for p in settings.policies if p not in ("esx2002", "esxi")]
        if len(other) == len(settings.policies):
            raise PagecoreError(
                f"--replay cross-checks the esx2002 and esxi policies only, and none is asked for "
                f"(--policy {','.join(settings.policies)}): add esx2002 or esxi to --policy, or leave out --replay"
            )
        if other:
            print(
                f"pagecore: note: --replay cross-checks esx2002 and esxi only, not {', '.join(other)}", file=sys.stderr
            )
    for e in entries:
        e.setdefault("activity", settings.activity)
    if not entries:
        raise PagecoreError("give page tables or dumps (or --vms FILE) to place on the host")
    vms = load_vms(entries, show_progress=not args.quiet)
    rep = host_report(vms, settings, dump_dir=args.dump_dir, with_replay=args.replay)
    from pagecore._util import all_or_nothing, atomic_path

    with all_or_nothing():  # the report, timelines and plot appear together or not at all
        emit(args, _json_report(rep), rep["rows"], lambda: format_table(rep))
        if args.timelines:
            with atomic_path(args.timelines) as tmp:
                rep["timelines"].to_parquet(tmp, index=False)
        if args.plot:
            from pagecore.plotting import save_figure_file
            from pagecore.plotting.host import host_whatif

            save_figure_file(host_whatif(rep["rows"], rep["timelines"]), args.plot)
    return 0


def register(sub) -> None:
    """Add the `host` subcommand to the ``pagecore`` parser."""
    p = command(
        sub,
        "host",
        _cmd_host,
        help="your VMs on a host: memory won per mechanism, VMs that fit, time to pay off",
        description="Place the VMs of page tables or dumps on a host of the given memory under the esx2002, "
        "esxi and kvm-ksm policies (and cooperative, with guest free-page lists): memory won per mechanism "
        "(zero, share_intra, share_inter, compress, balloon, swap, free_report; idle_tax reported as memory "
        "moved), the largest number of VMs of this mix that fit with nothing swapped after boot, the boot-time "
        "swap, the time to reach 90 %% of the sharing and the pages scanned per second.",
    )
    p.add_argument("inputs", nargs="*", metavar="PAGES|DUMP", help="page tables (.parquet) or dumps (hashed)")
    p.add_argument("--vms", metavar="FILE", help="YAML list of VMs (size_mb, reservation_mb, shares, activity)")
    p.add_argument(
        "--memory",
        action="append",
        metavar="SIZE",
        help="host memory: 4G, 4096 (MiB), 4G,8G or a range 2G:16G:2G (default: config host.memory_mb)",
    )
    p.add_argument(
        "--policy", action="append", metavar="P", help="esx2002, esxi, kvm-ksm, cooperative (default: the first three)"
    )
    p.add_argument("--activity", help="activity: busy, light (default), idle, idle:F or active:F")
    p.add_argument("--replicas", choices=("distinct", "identical"), help="copies beyond the inputs (default distinct)")
    p.add_argument(
        "--max-vms",
        type=int_at_least(1, MAX_VMS),
        help=f"largest mix size tried (default 256; at most {MAX_VMS:,}, and a mix of at most 2^30 pages = 4 TiB "
        "of guest memory is evaluated: more is refused)",
    )
    p.add_argument(
        "--emulate-vms",
        type=int_at_least(1, MAX_VMS),
        help=f"VMs the scanner timing runs on (default: the inputs; at most {MAX_VMS:,} and 2^30 pages)",
    )
    p.add_argument("--verify", choices=("auto", "yes", "no"), help="byte-compare equal hashes (default auto)")
    p.add_argument("--dump-dir", metavar="DIR", help="where the dumps behind the page tables are, if they moved")
    # the kernel's sysfs types (unsigned int, int): past them KSM's C code would not take the value
    p.add_argument("--ksm-pages-to-scan", type=int_at_least(1, 2**32 - 1), help="KSM pages_to_scan (default 100)")
    p.add_argument("--ksm-sleep-millisecs", type=int_at_least(0, 2**32 - 1), help="KSM sleep_millisecs (default 20)")
    p.add_argument("--ksm-max-page-sharing", type=int_at_least(2, 2**31 - 1), help="KSM max_page_sharing (default 256)")
    p.add_argument("--ksm-use-zero-pages", action="store_true", help="KSM use_zero_pages=1")
    p.add_argument("--ksm-no-smart-scan", action="store_true", help="KSM smart_scan=0")
    p.add_argument("--kvm-balloon", choices=("none", "mom"), help="Linux host balloon policy (default none)")
    p.add_argument("--ksm-advisor", action="store_true", help="KSM advisor_mode=scan-time (pages_to_scan auto-tuned)")
    add_config_arg(p)
    add_format_args(p, "host report")
    p.add_argument(
        "--replay",
        action="store_true",
        help="cross-check esx2002/esxi with the memory-manager replay at the answer and one VM more (slow)",
    )
    p.add_argument("--timelines", metavar="FILE", help="write the scanners' savings over time (Parquet)")
    p.add_argument("--plot", metavar="FILE", help="write the what-if figure (.png or .pdf)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
