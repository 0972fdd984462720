"""Argument types and helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from pagecore._argtypes import float_in, int_at_least, nonneg_int, positive_int
from pagecore._util import is_page_table
from pagecore.errors import PagecoreError

__all__ = ["float_in", "int_at_least", "nonneg_int", "positive_int"]  # their home: pagecore._argtypes


def key_from_args(args):
    from pagecore.pages.hashing import PageKey

    if getattr(args, "key_env", None):
        return PageKey.from_env(args.key_env)
    if getattr(args, "key_file", None):
        return PageKey.from_file(args.key_file)
    return PageKey.default()


def load_workflow_config(path: str | None) -> dict:
    """The workflow config at ``path`` (default: the one installed with pagecore), validated.

    The schema is the one next to the config when there is one (``../schemas/``), else the
    packaged schema.
    """
    from pagecore.config import default_schema_path, load_config

    if path is None:
        return load_config()
    p = Path(path)
    if not p.is_file():
        raise PagecoreError(f"{p}: no such config file; omit --config for the default one")
    schema = p.parent.parent / "schemas" / "config.schema.yaml"
    return load_config(p, schema if schema.is_file() else default_schema_path())


def add_config_arg(p: argparse.ArgumentParser) -> None:
    """``--config FILE``: a workflow config; default the one installed with pagecore."""
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="workflow config (default: the installed copy of workflow/config/config.yaml)",
    )


def command(sub, name: str, func, help: str, description: str, **kw) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (one-line ``help``, longer ``description``) that runs ``func(args)``."""
    p = sub.add_parser(name, help=help, description=description, **kw)
    p.set_defaults(func=func)
    return p


def group(sub, name: str, dest: str, metavar: str, help: str, description: str):
    """Add a subcommand ``name`` whose own subcommands go in ``dest``; return their subparsers."""
    p = sub.add_parser(name, help=help, description=description)
    return p.add_subparsers(dest=dest, metavar=metavar, required=True)


def output_arg(p: argparse.ArgumentParser, help: str = "page table to write (.parquet)", required: bool = True):
    """The ``-o/--output FILE`` option."""
    p.add_argument("-o", "--output", required=required, help=help)


def check_outputs(outputs, inputs, dump_dir=None) -> None:
    """Refuse, before any work, outputs that are inputs, directories or devices, two outputs
    that are one file, and a ``dump_dir`` (``--dump-dir``) that is not a directory (one line).

    The dump a page table was hashed from is an input too (verification and ``compress`` read
    it, also as the same name in ``dump_dir``): ``share t.parquet -o dump.raw`` must not replace it.
    """
    import os

    from pagecore._util import check_output

    if dump_dir is not None and not os.path.isdir(dump_dir):
        raise PagecoreError(f"--dump-dir {dump_dir}: no such directory")
    inputs = [i for i in inputs if i is not None]
    inputs += _source_dumps(inputs, dump_dir)
    seen: dict[str, str] = {}
    for out in outputs:
        if out is None:
            continue
        check_output(out, inputs)
        real = os.path.realpath(out)
        if real in seen:
            raise PagecoreError(f"{out}: the same file is named as two outputs (also as {seen[real]}); name each once")
        seen[real] = os.fspath(out)


def _source_dumps(inputs, dump_dir=None) -> list[str]:
    """The dumps the page tables among ``inputs`` record (``source_path``), and the same names in
    ``dump_dir``; tables that cannot be read are left to the command to report.

    Tables of older versions (and older `import memorybuddies` ones) record a relative path,
    relative to the directory the hashing ran in: that is unknown, so both the current directory
    and the table's own one are taken (from another directory, `share d/t.parquet -o d/t.raw`
    replaced the dump of such a table with its report, exit 0)."""
    import os

    from pagecore.pages.tables import page_table_metadata

    out = []
    for i in inputs:
        # a page table by its magic bytes, not its name: `hash g.raw -o g.pq` then `share g.pq -o
        # g.raw` replaced the dump with the report, exit 0
        if not (isinstance(i, str | os.PathLike) and os.path.isfile(i) and is_page_table(i)):
            continue
        try:
            meta = page_table_metadata(i)
        except PagecoreError:
            continue
        for src in (meta.get("source_path"), meta.get("vmem_path")):  # a VMware dump is two files
            if isinstance(src, str) and src:
                out.append(src)
                if not os.path.isabs(src):
                    out.append(os.path.join(os.path.dirname(os.fspath(i)), src))
                if dump_dir is not None:
                    out.append(os.path.join(dump_dir, os.path.basename(src)))
    return out


def add_format_args(p: argparse.ArgumentParser, what: str = "report") -> None:
    """The one ``--format table|json|csv|parquet`` and ``-o/--output FILE`` pair every reporting
    command takes (:data:`pagecore.vocab.FORMATS`)."""
    from pagecore.vocab import FORMATS

    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help=f"output: a readable table (default), the {what}'s rows as CSV, the whole {what} as JSON, "
        "or its rows as Parquet (needs -o)",
    )
    p.add_argument("-o", "--output", help="file to write instead of standard output (required for parquet)")


def emit(args, report: dict, rows, table_text) -> None:
    """Write ``report`` in ``args.format``: ``table`` prints ``table_text()``; ``json`` the whole
    report; ``csv``/``parquet`` the DataFrame ``rows`` (a callable is called first). Files are
    written atomically; ``parquet`` needs ``-o``."""
    import json
    import sys

    from pagecore._util import atomic_path

    fmt, out = args.format, getattr(args, "output", None)
    if fmt == "parquet" and not out:
        raise PagecoreError("--format parquet needs -o/--output FILE")
    if fmt in ("csv", "parquet") and callable(rows):
        rows = rows()
    if fmt == "parquet":
        with atomic_path(out) as tmp:
            rows.to_parquet(tmp, index=False)
        return
    if fmt == "json":
        text = json.dumps(report, indent=2, default=_json_default) + "\n"
    elif fmt == "csv":
        text = rows.to_csv(index=False)
    else:
        text = table_text() + "\n"
    if out:
        with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
