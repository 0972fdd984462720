"""Small shared helpers: atomic outputs and progress bars."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm  # not tqdm.auto: it warns in Jupyter without ipywidgets, and bars only show on terminals


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A failed or interrupted write leaves no file that looks complete (DESIGN.md principle 5).
    The file gets the mode a plain ``open(path, "w")`` would give (0666 minus the umask), not
    the private 0600 of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as stable, indented JSON (sorted keys off: records keep their order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def progress(total: int | None = None, desc: str = "", unit: str = "page", **kw) -> tqdm:
    """A progress bar on stderr that stays silent when stderr is not a terminal."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
        leave=False,
        **kw,
    )
