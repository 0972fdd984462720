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

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pagecore")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

PAGE_SIZE = 4096
"""Bytes per guest page (IA-32 small page; paper §4.3 footnote 3)."""

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

__all__ = ["PAGE_SIZE", "__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pagecore' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
