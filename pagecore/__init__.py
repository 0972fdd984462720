"""pagecore: how much memory can a virtualized host win back by sharing identical pages,
ballooning and taxing idle memory, and what does it cost?

A trace-driven reproduction of C. A. Waldspurger, "Memory Resource Management in VMware ESX
Server", OSDI '02, on real guest memory dumps and on synthetic guests.

Modules
-------
dumps     read guest memory dumps as streams of page chunks (``open_dump``)
hashing   Numba page-hash kernels (64-bit hash + zero-page flag)
traces    Arrow schemas, readers and atomic writers for page tables
sharing   content-based sharing metrics in the paper's vocabulary (Figures 4, 5)
synth     deterministic synthetic guests standing in for the paper's machines
paper     the paper's own reported numbers, for comparison only
plotting  one function per figure
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pagecore")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

PAGE_SIZE = 4096
"""Bytes per guest page (IA-32 small page; paper §4.3 footnote 3)."""

__all__ = ["PAGE_SIZE", "__version__"]
