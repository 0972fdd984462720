"""pagecore: how much memory can a virtualized host win back by sharing identical pages,
ballooning and taxing idle memory, and what does it cost?

A trace-driven reproduction of C. A. Waldspurger, "Memory Resource Management in VMware ESX
Server", OSDI '02, on real guest memory dumps and on synthetic guests.

Packages, one per pipeline stage, in the order they may import each other
(:mod:`pagecore._layers`):

=============  ==============================================================================
dumps          read guest memory dumps as streams of page chunks (``open_dump``)
pages          hash every page (Numba), dump → page table, hash-then-compare verification
sharing        exact sharing in every vocabulary; the ESX scanner and KSM over time
synth          synthetic guests, access traces, published-trace importers
sim            the ESX memory manager and guest models, replayed over traces
experiments    one module per figure family: paper-vs-ours records
plotting       one function per figure
qemu           real QEMU guests: capture, real-guest Figure 4, the real-KSM check
bench          benchmarks of the paths users run
cli            the ``pagecore`` command
=============  ==============================================================================

The public API is what these packages export (their ``__all__``) plus the names below, which
``pagecore`` itself re-exports lazily (importing ``pagecore`` stays cheap). Notebooks and
workflow scripts import only these, so modules can move without breaking them.
"""


def _version() -> str:
    """The installed version, looked up on first use.

    Read from the first ``pagecore-*.dist-info/METADATA`` on ``sys.path`` (where
    ``importlib.metadata`` looks too), since importing ``importlib.metadata`` costs every
    ``pagecore hash`` 20-40 ms of start-up (issue 18); ``importlib.metadata`` when that fails.
    """
    import os
    import sys

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip file, a missing directory
            continue
        for name in names:
            if name.startswith("pagecore-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry or ".", name, "METADATA"), encoding="utf-8") as fh:
                        for line in fh:
                            if line.startswith("Version:"):
                                return line.split(":", 1)[1].strip()
                            if not line.strip():  # end of the headers
                                break
                except OSError:
                    pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pagecore")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


def _numba_cache_fallback() -> str | None:
    """Point Numba's cache at a temporary directory when it could write nowhere else.

    Numba caches compiled kernels beside their source (``__pycache__``), else under
    ``$HOME/.cache``; with neither writable (a read-only install and home) every import would
    fail. Returns the directory chosen, or ``None`` when Numba's own choice works.
    """
    import os
    import sys

    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    here = os.path.dirname(os.path.abspath(__file__))
    cache = os.path.join(here, "__pycache__")
    home = os.path.join(os.path.expanduser("~"), ".cache")
    if os.access(cache if os.path.isdir(cache) else here, os.W_OK):
        return None
    if os.access(home if os.path.isdir(home) else os.path.expanduser("~"), os.W_OK):
        return None
    import stat
    import tempfile  # not at the top: it costs every start-up 10-20 ms

    # One directory per user, reused: a new one per run was left behind by every run (and
    # recompiled every kernel). Used only when it is a real directory of this user that no one
    # else can write (a cache of compiled code another user planted would run as ours).
    path = os.path.join(tempfile.gettempdir(), f"pagecore-numba-cache-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except OSError:
        pass
    try:
        st = os.lstat(path)
        ours = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
    except OSError:
        ours = False
    if not ours:
        path = tempfile.mkdtemp(prefix="pagecore-numba-cache-")
    os.environ["NUMBA_CACHE_DIR"] = path
    if "numba" in sys.modules:  # already imported by the caller: its config was read then
        sys.modules["numba"].config.CACHE_DIR = path
    return path


_numba_cache_fallback()

PAGE_SIZE = 4096
"""Bytes per guest page (IA-32 small page; paper §4.3 footnote 3)."""
PAGES_PER_MB = (1 << 20) // PAGE_SIZE
"""Pages per MiB (the paper's MB): 256."""

#: Public names re-exported from the packages, imported on first use.
_LAZY = {
    "open_dump": "pagecore.dumps",
    "detect_format": "pagecore.dumps",
    "hash_dump": "pagecore.pages",
    "hash_pages": "pagecore.pages",
    "PageKey": "pagecore.pages",
    "read_page_table": "pagecore.pages",
    "read_page_tables": "pagecore.pages",
    "page_table_metadata": "pagecore.pages",
    "page_table_frame": "pagecore.pages",
    "verify_tables": "pagecore.pages",
    "count_sharing": "pagecore.sharing",
    "vm_count_sweep": "pagecore.sharing",
    "emulate_ksm": "pagecore.sharing",
    "emulate_scanner": "pagecore.sharing",
    "PageHistory": "pagecore.sharing",
    "Fig04Model": "pagecore.synth",
    "GuestSet": "pagecore.synth",
    "simulate": "pagecore.sim",
    "analyze_page_tables": "pagecore.experiments",
    "load_config": "pagecore.config",
    "read_timeline": "pagecore.timelines",
    "write_timeline": "pagecore.timelines",
    "atomic_path": "pagecore._util",
    "write_json_atomic": "pagecore._util",
    "job_log": "pagecore._smk",
}

__all__ = ["PAGES_PER_MB", "PAGE_SIZE", "__version__", *sorted(_LAZY)]


def lazy_exports(package: str, table: dict, namespace: dict):
    """``(__getattr__, __dir__)`` for ``package`` (PEP 562), whose public names are imported on
    first use: ``table`` maps each name to the module that defines it, or to ``(module, its name
    there)``; a module name without a dot is a submodule of ``package``. A name, once imported, is
    kept in ``namespace`` (the package's ``globals()``), so each is looked up once. Used by
    ``pagecore`` and the stage packages so a job imports only what it uses (issue 18)."""
    import importlib

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        where = table[name]
        module, attr = where if isinstance(where, tuple) else (where, name)
        value = getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), attr)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__


_lazy_getattr, __dir__ = lazy_exports("pagecore", _LAZY, globals())


def __getattr__(name: str):
    if name == "__version__":
        globals()["__version__"] = v = _version()
        return v
    return _lazy_getattr(name)
