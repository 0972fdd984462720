"""`pagecore hash`: a memory dump → a page table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pagecore.cli._args import check_outputs, command, int_at_least, key_from_args, nonneg_int, output_arg


def _cmd_hash(args) -> int:
    # hashing does no linear algebra: keep NumPy's OpenBLAS from starting a thread pool at
    # import (10-20 ms of start-up, issue 18); no effect when NumPy is already imported
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pagecore.dumps import READERS  # noqa: F401 - validates --format choices lazily
    from pagecore.errors import PagecoreError
    from pagecore.pages.ingest import hash_dump

    check_outputs([args.output], [args.dump, args.key_file])
    if args.vm is None:  # `hash . -o t.parquet` said "vm: expected a VM name ..., got ''" (the stem of ".")
        from pagecore.dumps import check_input_path

        check_input_path(args.dump)
    if args.vm is not None and not args.vm.strip():  # `--vm ""` fell back to the file stem without a word
        raise PagecoreError("--vm needs a name (omit it for the dump's file stem)")
    vm = args.vm or Path(args.dump).stem
    if args.format == "raw":  # loud even with --quiet: the format's headers become guest pages
        from pagecore.dumps import detect_format
        from pagecore.dumps.raw import foreign_magic

        try:
            looks = detect_format(args.dump)
        except PagecoreError:
            try:  # detection refuses a qcow2 disk or a compressed file: still warn about it here
                with open(args.dump, "rb") as fh:
                    looks = foreign_magic(fh.read(16))
            except OSError:
                looks = None
        if looks not in (None, "raw"):
            print(
                f"pagecore: WARNING: {args.dump}: --format raw on a file whose magic bytes say {looks}: its headers "
                "and encoding are hashed as if they were guest pages (use --format auto)",
                file=sys.stderr,
            )
    meta = hash_dump(
        args.dump,
        args.output,
        vm,
        format=args.format,
        key=key_from_args(args),
        threads=args.threads,
        chunk_pages=args.chunk_pages,
        skip_bad_pages=args.skip_bad_pages,
        show_progress=not args.quiet,
        compress=tuple(args.compress or ()),
    )
    if meta.get("damage"):  # loud even with --quiet: the numbers describe only the pages read
        print(f"pagecore: WARNING: {args.dump}: damaged dump: {meta['damage']}", file=sys.stderr)
    if meta.get("pages_partial"):  # loud even with --quiet: part of these pages' bytes are made up
        n = meta["pages_partial"]
        print(
            f"pagecore: warning: {args.dump}: {n:,} page{'s' if n != 1 else ''} only partly present in the dump "
            "(segment or range edges not on a 4 KiB boundary): the missing bytes were read as zeros and hashed so",
            file=sys.stderr,
        )
    split = meta.get("split_part")
    if split:  # loud even with --quiet: the guest's other frames are in the other parts' files
        print(
            f"pagecore: warning: {args.dump}: one part of a split dump (makedumpfile --split): it holds frames "
            f"{split['start_pfn']:#x}-{split['end_pfn']:#x} of the guest's {split['max_mapnr']:#x}; "
            f"{split['frames_in_other_parts']:,} more frames are in the other parts, not in this table",
            file=sys.stderr,
        )
    if not args.quiet:
        extra = ""
        if meta["pages_skipped"] or meta["pages_excluded"]:
            extra = f", {meta['pages_skipped']:,} skipped, {meta['pages_excluded']:,} excluded"
        print(
            f"{args.output}: {meta['pages']:,} pages of {vm} ({meta['format']}{extra})",
            file=sys.stderr,
        )
    from pagecore.dumps.dumplevel import bias_of

    zero_pages = None
    if meta.get("dump_level"):
        import pyarrow.compute as pc

        from pagecore.pages.tables import read_page_table

        zero_pages = int(pc.sum(read_page_table(args.output, ["zero"])["zero"]).as_py() or 0)
    bias = bias_of(meta, zero_pages)
    if bias is not None:  # printed even with --quiet: the numbers made from this table are lower bounds
        print(f"pagecore: warning: {bias['message']}", file=sys.stderr)
    return 0


def register(sub) -> None:
    """Add the `hash` subcommand(s) to the ``pagecore`` parser."""
    from pagecore._defaults import COMPRESS_ALGORITHMS as ALGORITHMS
    from pagecore._defaults import DEFAULT_CHUNK_PAGES, MAX_CHUNK_PAGES

    h = command(
        sub,
        "hash",
        _cmd_hash,
        help="hash every page of a memory dump into a page table",
        description="Stream a guest memory dump through the pcx64-v1 page hash and write a "
        "Parquet page table (vm, gpfn, hash, zero) with provenance metadata.",
    )
    h.add_argument(
        "dump",
        help="memory dump: raw image, ELF core, LiME, kdump-compressed or flattened, QEMU migration stream, "
        "libvirt save image, VMware .vmss/.vmsn (with its .vmem)",
    )
    output_arg(h)
    h.add_argument("--vm", help="VM name stored in the table (default: the dump's file stem)")
    h.add_argument(
        "--format",
        default="auto",
        help="dump format: raw, elf, lime, kdump, kdump-flat, qemu-migration, libvirt-save, vmware "
        "(default: auto, detected from magic bytes)",
    )
    h.add_argument("--threads", type=nonneg_int, default=0, help="hashing threads (0 = all; default 0)")
    h.add_argument(
        "--chunk-pages",
        type=int_at_least(1, MAX_CHUNK_PAGES),
        default=DEFAULT_CHUNK_PAGES,
        help=f"pages per chunk; bounds memory (default {DEFAULT_CHUNK_PAGES}: 64 MiB; at most {MAX_CHUNK_PAGES:,})",
    )
    h.add_argument(
        "--compress",
        action="append",
        metavar="ALG",
        choices=ALGORITHMS,
        help=f"also store each page's compressed size with ALG ({', '.join(ALGORITHMS)}; repeatable) for `compress`",
    )
    h.add_argument("--skip-bad-pages", action="store_true", help="count and skip unreadable pages instead of failing")
    kg = h.add_mutually_exclusive_group()
    kg.add_argument(
        "--key-env", metavar="VAR", help="key the hash with the secret (at least 16 bytes) in environment variable VAR"
    )
    kg.add_argument("--key-file", metavar="PATH", help="key the hash with the secret (at least 16 bytes) in PATH")
    h.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
