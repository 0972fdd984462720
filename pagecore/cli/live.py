"""`pagecore live`: running QEMU guests on this host → page tables with the host's view of each page."""

from __future__ import annotations

import contextlib
import glob
import re
import sys
import time
from pathlib import Path

from pagecore.cli._args import check_outputs, command, float_in, key_from_args, positive_int


def _cmd_live(args) -> int:
    import signal

    from pagecore.errors import InputError
    from pagecore.qemu import live
    from pagecore.qemu.capture import QMP, CaptureError

    def _stop(signum, frame):  # before and between reads; during a read, read_guest stops at a page boundary
        raise live.LiveStopped(f"stopped by {signal.Signals(signum).name}; no partial table written")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    pids = live.find_qemu_pids() if args.all_qemu else list(args.pid or [])
    if not pids:
        raise InputError("/proc", "no QEMU process to read", hint="pass --pid PID or --all-qemu")
    for pid in pids:
        why = live.qemu_reason(pid)
        if why and not args.force:
            raise InputError(f"/proc/{pid}", why, hint="pass --force to read it anyway")
    qmp_for = dict(args.qmp or [])
    stray = sorted(set(qmp_for) - set(pids))
    if stray:
        raise InputError("--qmp", f"PID {stray[0]} is not one of the processes to read", hint="pass --pid for it too")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "-o/--output is not a directory", hint="name a directory for the page tables")
    # every table this run writes, named before any read: two guests of one name (or one PID given
    # twice) would replace each other's table, and no table may replace the key file
    if len(set(pids)) < len(pids):
        twice = next(p for p in pids if pids.count(p) > 1)
        raise InputError("--pid", f"PID {twice} is given twice", hint="name each once")
    names: dict[int, str] = {}
    for pid in pids:
        names[pid] = live.table_stem(live.guest_name(pid), pid)
        other = next((o for o in names if o != pid and names[o] == names[pid]), None)
        if other is not None:
            raise InputError(
                out_dir / f"{names[pid]}.parquet",
                f"guests {other} and {pid} would both be written here (one name, {names[pid]!r})",
                hint="read them into separate -o directories",
            )
    outs = [out_dir / _table_name(names[pid], args.count, i) for pid in pids for i in range(args.count)]
    check_outputs(outs, [args.key_file])
    # reads of an earlier run this one would not replace (`--count 4`, then `--count 2`: .0002 and
    # .0003 stayed, and `ksm --series DIR/*.parquet` replayed two runs as one series)
    ours = {o.name for o in outs}
    stale = sorted(
        f.name
        for stem in names.values()
        for f in out_dir.glob(f"{glob.escape(stem)}.*parquet")
        if re.fullmatch(re.escape(stem) + r"(\.\d{4})?\.parquet", f.name) and f.name not in ours
    )
    if stale:
        raise InputError(
            out_dir,
            f"holds reads of an earlier run this one would not replace ({', '.join(stale[:3])}"
            f"{', …' if len(stale) > 3 else ''}): DIR/*.parquet would mix the two runs as one series",
            hint="move them away or pick another -o directory",
        )
    key = key_from_args(args)
    opened: list[tuple[live.Guest, QMP | None]] = []
    written: list[Path] = []
    created = not out_dir.exists()
    try:
        for pid in pids:
            sock = qmp_for.get(pid) or live.qmp_socket_of(pid)
            if sock and live.qmp_socket_owned(pid, sock) is False:
                raise InputError(
                    sock,
                    f"not a socket of process {pid} (another QEMU's QMP would be read and paused instead)",
                    hint=f"give this QEMU's own socket with --qmp {pid}=SOCKET",
                )
            qmp = None
            if sock:
                try:
                    qmp = QMP(Path(sock), timeout=10)
                except (CaptureError, OSError) as e:
                    print(f"pid {pid}: QMP {sock} unusable ({e}); using /proc/{pid}/smaps only", file=sys.stderr)
            try:
                guest = live.locate_by_qmp(pid, qmp) if qmp is not None else live.locate_by_maps(pid)
            except BaseException:
                if qmp is not None:
                    qmp.close()
                raise
            opened.append((guest, qmp))
            print(f"{guest.name} (pid {pid}): {guest.pages:,} pages, found by {guest.how}", file=sys.stderr)
            for note in guest.notes:
                print(f"  note: {note}", file=sys.stderr)
        # read i of every guest together, so a series (--count N) holds each read of all guests at one time
        for i in range(args.count):
            if i:
                time.sleep(args.interval)
            for guest, qmp in opened:
                written.append(_read_one(args, guest, qmp, out_dir, i, key))
    except BaseException:
        if written:  # each table is whole on its own (renamed when complete): say which stay
            print(
                f"stopped; {len(written)} complete table(s) of this run kept in {out_dir}: "
                f"{', '.join(p.name for p in written[:4])}{', …' if len(written) > 4 else ''}",
                file=sys.stderr,
            )
        if created:  # a run that wrote nothing leaves no empty -o directory (rmdir: only if empty)
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    finally:
        for _, qmp in opened:
            if qmp is not None:
                qmp.close()
    return 0


def _read_one(args, guest, qmp, out_dir: Path, i: int, key) -> Path:
    """Read ``guest`` once into ``<guest>.parquet`` (``<guest>.NNNN.parquet`` in a series), say how it
    went, and return the table's path."""
    from pagecore.qemu import live

    name = _table_name(live.table_stem(guest.name, guest.pid), args.count, i)
    meta = live.read_guest(
        guest,
        out_dir / name,
        qmp=qmp,
        pause=args.pause,
        max_mb_per_s=None if args.max_mb_per_s == 0 else args.max_mb_per_s,
        key=key,
        measure_drift=not args.no_drift,
    )
    if args.pause and meta["pause_seconds"] is None:
        extra = "the guest was already paused (left paused)"
    elif args.pause:
        extra = f"paused {meta['pause_seconds']:.3f} s"
    elif meta["drift_pages"] is None:
        extra = "unverified (fuzzy), drift not measured"
    else:
        extra = f"unverified (fuzzy): {meta['drift_pages']:,} pages changed between two reads"
    print(
        f"  {out_dir / name}: {meta['pages']:,} pages in {meta['read_seconds']:.2f} s, {extra}, "
        f"{meta['pages_skipped']:,} unreadable",
        file=sys.stderr,
    )
    return out_dir / name


def _table_name(stem: str, count: int, i: int) -> str:
    """``<stem>.parquet``, or ``<stem>.NNNN.parquet`` for read ``i`` of a series."""
    return f"{stem}.parquet" if count == 1 else f"{stem}.{i:04d}.parquet"


def _pid_sock(text: str):
    import argparse

    pid, sep, sock = text.partition("=")
    if not sep or not pid.isdigit():
        raise argparse.ArgumentTypeError(f"expected PID=SOCKET, got {text!r}")
    return int(pid), sock


def register(sub) -> None:
    """Add the `live` subcommand to the ``pagecore`` parser."""
    p = command(
        sub,
        "live",
        _cmd_live,
        help="read running QEMU guests' memory (read-only, rate-limited) into page tables",
        description="Find each QEMU guest's RAM in its process (QMP when a socket is known, else the "
        "largest RAM mappings), read it through /proc/PID/mem read-only at a bounded rate, and write one "
        "page table per guest with the host's view of each page (present, THP, zero page, KSM). Without "
        "--pause the snapshot is fuzzy: its drift is measured by reading twice and the table is marked "
        "'unverified (fuzzy)'. Needs root.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--pid", type=positive_int, action="append", help="QEMU process to read (repeatable)")
    who.add_argument("--all-qemu", action="store_true", help="every qemu-system-* process on this host")
    p.add_argument("-o", "--output", required=True, help="directory for the page tables (<guest>.parquet)")
    p.add_argument(
        "--qmp", type=_pid_sock, action="append", metavar="PID=SOCKET", help="QMP socket of a PID (default: -qmp unix:)"
    )
    p.add_argument("--pause", action="store_true", help="stop the guest (QMP) while reading: a consistent snapshot")
    p.add_argument(
        "--max-mb-per-s",
        type=float_in(0),
        default=64.0,
        help="read rate limit per guest in MiB/s (0: none; default 64)",
    )
    p.add_argument("--interval", type=float_in(0, above=True), default=60.0, help="seconds between successive reads")
    p.add_argument(
        "--count",
        type=positive_int,
        default=1,
        help="successive reads of every guest (default 1); N > 1 writes <guest>.NNNN.parquet, a series for "
        "`pagecore ksm/scan --series`",
    )
    p.add_argument("--no-drift", action="store_true", help="fuzzy reads: skip the second pass that measures drift")
    p.add_argument("--force", action="store_true", help="read a process that is not qemu-system-*")
    kg = p.add_mutually_exclusive_group()
    kg.add_argument(
        "--key-env", metavar="VAR", help="key the hash with the secret (at least 16 bytes) in environment variable VAR"
    )
    kg.add_argument("--key-file", metavar="PATH", help="key the hash with the secret (at least 16 bytes) in PATH")
