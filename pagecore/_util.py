"""Small shared helpers: safe atomic outputs (never an input, never a device) and progress bars."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import itertools
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

TMP_TAG = ".pagecore-tmp-"
"""Temporary outputs are named ``.<name>.pagecore-tmp-<pid>-<n>``: recognisable, so that a
later run writing the same output removes the ones a killed run (SIGKILL) left behind."""

_UMASK = os.umask(0)
os.umask(_UMASK)


def _describe(st: os.stat_result) -> str | None:
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "is a device"
    return "is a special file (FIFO or socket)"


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """The file an output at ``path`` will replace, after refusing anything but a regular file.

    An output is never an input (compared by device and inode, through symbolic links), never a
    directory, device or special file (``-o /dev/null`` must not replace the device node). A
    symbolic link to a regular file is followed: the file it names is replaced, the link stays.
    Call it before any work, so a mistake costs nothing.

    Raises
    ------
    InputError
        Naming the output and what it is.
    """
    from pagecore.errors import InputError

    if os.fspath(path).endswith(("/", os.sep)):  # Path() drops the slash: `-o new/` wrote a file `new`
        raise InputError(path, "output names a directory (it ends with /)", hint="name a regular file to write")
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(path)  # follows links: /dev/stdout is a link to a pipe or a terminal
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(path, f"cannot use as output: {exc.strerror}") from None
    if st is not None:
        what = _describe(st)
        if what:
            raise InputError(path, f"output {what}", hint="name a regular file to write")
        for i in inputs:
            try:
                ist = os.stat(i)
            except OSError:
                continue
            if (ist.st_dev, ist.st_ino) == (st.st_dev, st.st_ino):
                raise InputError(
                    path,
                    f"output is the input {os.fspath(i)}",
                    hint="inputs are never overwritten; name another output",
                )
    return target


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: bytes a file name may have (NAME_MAX on Linux and the usual file systems)
NAME_MAX = 255
#: bytes the temporary's name may take before :data:`TMP_TAG`: room for the tag, a pid and a counter
_TMP_STEM_MAX = NAME_MAX - len(TMP_TAG) - 28


def _tmp_stem(target: Path) -> str:
    """The start of ``target``'s temporaries' names, up to :data:`TMP_TAG`: ``.NAME``, or, for a
    name too long to take the tag (a valid 253-byte output was refused as "File name too long"),
    its start cut to fit and a digest of the whole name (temporaries of two long names differ)."""
    stem = "." + target.name
    raw = os.fsencode(stem)
    if len(raw) <= _TMP_STEM_MAX:
        return stem
    import hashlib

    digest = hashlib.blake2b(raw, digest_size=6).hexdigest()
    cut = _TMP_STEM_MAX - len(digest) - 1
    while cut > 1 and raw[cut] & 0xC0 == 0x80:  # not inside a UTF-8 character (a lone byte is no text)
        cut -= 1
    return os.fsdecode(raw[:cut]) + "~" + digest


def clean_stale_temporaries(target: Path) -> list[Path]:
    """Remove temporaries of ``target`` left by runs whose process is gone; return them."""
    removed = []
    stem = _tmp_stem(target)
    for p in target.parent.glob(f"{glob.escape(stem)}{TMP_TAG}*"):
        pid = p.name[len(stem) + len(TMP_TAG) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink() if not p.is_dir() else shutil.rmtree(p)
                removed.append(p)
                print(f"pagecore: removed {p}, left by an interrupted run", file=sys.stderr)
    return removed


RUN_DIR_PREFIX = "pagecore-"
"""Per-run temporary directories are ``$TMPDIR/pagecore-<command>-<pid>-<random>/`` holding a
``.lock`` the run keeps locked (:func:`run_tmpdir`): recognisable, so that the next run of the
command removes those a killed run (SIGKILL) left behind, and never one of a live process."""

_LOCK_NAME = ".lock"


def _held_by_a_live_run(d: Path) -> bool:
    """Whether another process still holds the lock of run directory ``d`` (a ``flock`` dies
    with its process, also under SIGKILL and across PID namespaces)."""
    try:
        fd = os.open(d / _LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: keep it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the lock we may just have taken
    return False


def clean_stale_run_dirs(command: str, base: str | os.PathLike | None = None) -> list[Path]:
    """Remove the temporary directories (and, from older versions, the temporary files
    ``pagecore-<command>-<pid>-<i>.parquet``) that runs of ``command`` whose process is gone
    left in ``base`` (default: the temporary directory); one line on stderr for each.

    A directory is removed only when its PID is not alive *and* its lock is free, a file only
    when its PID is not alive; anything else is left alone.
    """
    import re

    base = Path(base if base is not None else tempfile.gettempdir())
    pattern = re.compile(rf"{re.escape(RUN_DIR_PREFIX + command)}-(\d+)-(?:\d+\.parquet|[A-Za-z0-9_]+)")
    removed = []
    for p in base.glob(f"{glob.escape(RUN_DIR_PREFIX + command)}-*"):
        m = pattern.fullmatch(p.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            if p.is_symlink():
                continue  # never follow a link someone put there
            if p.is_dir():
                if p.name.endswith(".parquet") or _held_by_a_live_run(p):
                    continue
                shutil.rmtree(p)
            elif p.name.endswith(".parquet"):
                p.unlink()
            else:
                continue
        except OSError:
            continue
        removed.append(p)
        print(f"pagecore: removed {p}, left by an interrupted run", file=sys.stderr)
    return removed


@contextlib.contextmanager
def run_tmpdir(command: str, base: str | os.PathLike | None = None) -> Iterator[Path]:
    """A private temporary directory for one run of ``command``, removed with everything in it
    when the block ends: normally, on an error, on Ctrl-C or SIGTERM (both unwind through here,
    :mod:`pagecore._signals`). Stale directories of killed runs are removed first
    (:func:`clean_stale_run_dirs`)."""
    from pagecore.errors import InputError

    base = Path(base if base is not None else tempfile.gettempdir())
    clean_stale_run_dirs(command, base)
    try:
        d = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{command}-{os.getpid()}-", dir=base))
    except OSError as exc:
        raise InputError(base, f"cannot make a temporary directory: {exc.strerror}", hint="set TMPDIR") from None
    try:
        fd = os.open(d / _LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.close(fd)


_counter = itertools.count()

#: Outputs this process has renamed into place (complete files), in order: an interrupted command
#: names them instead of saying "no output written" (:func:`pagecore.cli.main`).
WRITTEN: list[Path] = []


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A failed or interrupted write leaves no file that looks complete (DESIGN.md principle 5),
    and no temporary file either (SIGINT/SIGTERM unwind through here; a SIGKILL's leftovers
    are removed by the next run writing the same output). The output is checked first
    (:func:`check_output`: never an input, a directory or a device), and created with the
    user's umask like any file the user makes. Errors writing it (disk full, read-only file
    system, no permission) are one-line :class:`~pagecore.errors.InputError`.
    """
    from pagecore.errors import InputError

    target = check_output(path, inputs)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(target.parent, f"cannot create the output directory: {exc.strerror}") from None
    clean_stale_temporaries(target)
    tmp = target.parent / f"{_tmp_stem(target)}{TMP_TAG}{os.getpid()}-{next(_counter)}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # mode & ~umask
    except OSError as exc:
        raise InputError(target, f"cannot write output: {exc.strerror}", hint="check the directory") from None
    try:
        yield tmp
        if _DEFERRED is not None:  # inside all_or_nothing(): renamed with the command's other outputs
            _DEFERRED.append((tmp, target))
            return
        os.replace(tmp, target)
        WRITTEN.append(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        ours = exc.filename is not None and Path(exc.filename) in (tmp, target)
        if ours or exc.errno in _WRITE_ERRNOS or "No space left" in str(exc):
            raise InputError(
                target, f"cannot write output: {exc.strerror}", hint="free space or pick another place"
            ) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}

#: Finished temporaries waiting for the end of :func:`all_or_nothing` (None outside it).
_DEFERRED: list[tuple[Path, Path]] | None = None


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Outputs written inside (through :func:`atomic_path`) appear together when the block ends,
    or none does: a command writing a report, timelines and a plot that is interrupted after the
    first no longer leaves it in place while saying "no output written"."""
    from pagecore.errors import InputError

    global _DEFERRED
    if _DEFERRED is not None:  # nested: the outer block renames
        yield
        return
    _DEFERRED = pending = []
    try:
        yield
        _DEFERRED = None
        while pending:
            tmp, target = pending[0]
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise InputError(target, f"cannot write output: {exc.strerror}", hint="check the directory") from None
            WRITTEN.append(target)
            pending.pop(0)
    finally:
        _DEFERRED = None
        for tmp, _ in pending:
            with contextlib.suppress(OSError):
                tmp.unlink()


def is_page_table(path) -> bool:
    """Whether ``path`` is a Parquet file (a page table), by its magic bytes, whatever its name:
    commands that take dumps and page tables tell them apart by content (a table named ``x.pq``
    was read as a dump). False where it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def name_tag(name: str) -> int:
    """A stable 16-bit integer for a name: the synthetic guests key the contents of a guest, OS
    kind or application by it (:mod:`pagecore.synth.guests`), so two names of one tag would be
    generated as one (:func:`tag_collision` finds them)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=2).digest(), "little")


def tag_collision(names) -> tuple[str, str] | None:
    """The first two different ``names`` with one :func:`name_tag`, or None."""
    seen: dict[int, str] = {}
    for name in names:
        other = seen.setdefault(name_tag(name), name)
        if other != name:
            return other, name
    return None


def write_state_json(path: str | os.PathLike, obj) -> None:
    """Write a saved-state file (host settings a root command restores) as ``path``, mode 0644.

    Unlike :func:`write_json_atomic`, a symbolic link at ``path`` is never followed: state files
    live in shared directories (``/var/tmp``, a ``--state-file`` in ``/tmp``) where anyone may plant
    one, and following it made root replace the file it named (``/etc/shadow``) with JSON. The
    temporary is made beside ``path`` (``O_EXCL``, so no link either) and renamed onto the name
    itself, replacing a link, not its target.
    """
    from pagecore.errors import InputError

    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{next(_counter)}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise InputError(path, f"cannot write the state file: {exc.strerror}", hint="check the directory") from None
    try:
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o644)  # whatever the umask: a file others may write is refused when read
            fh.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(path, f"cannot write the state file: {exc.strerror}") from None
        raise


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as stable, indented JSON (sorted keys off: records keep their order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


class SilentBar:
    """What :func:`progress` returns when stderr is not a terminal: tqdm's counting interface
    (``update``, ``close``, a context manager, ``n`` and ``total``) without importing tqdm, whose
    import (with its ``importlib.metadata`` version lookup) costs a command about 0.05 s."""

    def __init__(self, total: int | None = None):
        self.total = total
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int | None = None, desc: str = "", unit: str = "page", **kw):
    """A progress bar (tqdm) on stderr; a :class:`SilentBar` when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return SilentBar(total)
    from tqdm import tqdm  # not tqdm.auto: it warns in Jupyter without ipywidgets; bars show on terminals only

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        leave=False,
        **kw,
    )
