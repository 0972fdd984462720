"""One plotting function per paper figure: DataFrames in, a matplotlib Figure out.

Functions never compute results and never save files; callers save with :func:`save_figure`
(PNG and PDF, atomically, without timestamps so the same data gives the same bytes, inside the
style so its dpi and TrueType fonts apply). The package never chooses a matplotlib backend:
that would switch a Jupyter kernel off inline plots; workflow jobs and tests run with
``MPLBACKEND=Agg`` in their environment instead. Every figure uses the committed style
``pagecore.mplstyle`` and draws the paper's own data as labelled overlay markers ("paper")
beside ours ("pagecore").

Owns: the style, :func:`save_figure` and one function per figure. Must not: compute results,
read pipeline files, or set a backend.
"""

from __future__ import annotations

import contextlib
import os
from importlib.resources import files
from pathlib import Path

import matplotlib.pyplot as plt

from pagecore._util import atomic_path

STYLE = str(files(__package__) / "pagecore.mplstyle")

#: How the paper's own data is drawn in every figure.
PAPER_STYLE = dict(linestyle="none", marker="o", markerfacecolor="none", markersize=6, alpha=0.9)
OURS_STYLE = dict(linestyle="-", marker=".")


@contextlib.contextmanager
def style():
    """Context manager applying pagecore's style."""
    with plt.style.context(STYLE):
        yield


def plot_vs_paper(ax, ours_x, ours_y, paper_x, paper_y, label: str, color, marker: str) -> None:
    """Our series as a line and the paper's as hollow markers, same colour and marker, labelled."""
    ax.plot(
        ours_x, ours_y, color=color, label=f"{label} (pagecore)", **{**OURS_STYLE, "marker": marker, "markersize": 4}
    )
    if paper_x is not None:
        ax.plot(paper_x, paper_y, color=color, label=f"{label} (paper)", **{**PAPER_STYLE, "marker": marker})


def finish_time_axes(ax, xlim, ylim, title: str) -> None:
    """Limits, the time/memory axis labels, the title and a legend below the plot."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("Time (min)")
    ax.set_ylabel("Memory (MB)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=7, ncol=3)


#: the formats a figure file may have (its name's suffix), as :func:`save_figure_file` writes them
FIGURE_FORMATS = ("png", "pdf")


def _save(fig, path: Path, fmt: str) -> None:
    """``fig`` into ``path`` as ``fmt`` (atomically, no timestamps)."""
    meta = {"Software": None} if fmt == "png" else {"Creator": None, "Producer": None, "CreationDate": None}
    with atomic_path(path) as tmp, style():
        fig.savefig(tmp, format=fmt, metadata=meta)


def save_figure(fig, stem: str | os.PathLike, formats=FIGURE_FORMATS) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` (atomically, no timestamps); close it."""
    stem = Path(stem)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        _save(fig, path, fmt)
        written.append(path)
    plt.close(fig)
    return written


def figure_format(path: str | os.PathLike) -> str:
    """The format of a figure file named ``path`` (its suffix, one of :data:`FIGURE_FORMATS`);
    ValueError for any other name, so a command can refuse it before its work."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        ends = " or ".join(f".{f}" for f in FIGURE_FORMATS)
        raise ValueError(f"{os.fspath(path)!r}: a figure file must end in {ends}")
    return fmt


def save_figure_file(fig, path: str | os.PathLike) -> Path:
    """Save ``fig`` into exactly ``path`` (format from its suffix, :func:`figure_format`;
    atomically, no timestamps); close it."""
    path = Path(path)
    fmt = figure_format(path)
    try:
        _save(fig, path, fmt)
    finally:
        plt.close(fig)
    return path


from pagecore.plotting.compression import compression_ladder  # noqa: E402 - they use style() above
from pagecore.plotting.duplicate_lifetime import scan_duplicate_lifetime  # noqa: E402 - they use style() above
from pagecore.plotting.fig02 import fig02_balloon_performance  # noqa: E402 - they use style() above
from pagecore.plotting.fig04 import fig04_page_sharing, fig04_real_guests  # noqa: E402 - they use style() above
from pagecore.plotting.fig05 import fig05_real_world_sharing  # noqa: E402 - they use style() above
from pagecore.plotting.fig06 import fig06_active_memory_sampling  # noqa: E402 - they use style() above
from pagecore.plotting.fig07 import fig07_idle_memory_tax  # noqa: E402 - they use style() above
from pagecore.plotting.fig08 import fig08_dynamic_reallocation  # noqa: E402 - they use style() above
from pagecore.plotting.host import host_whatif, reclamation_approaches  # noqa: E402 - they use style() above
from pagecore.plotting.largepages import large_page_breaking  # noqa: E402 - they use style() above
from pagecore.plotting.reclaim import io_remapping, reclaim_balloon_vs_paging  # noqa: E402 - they use style() above
from pagecore.plotting.sensitivity import sensitivity_tornado  # noqa: E402 - they use style() above
from pagecore.plotting.sharing_over_time import scan_sharing_over_time  # noqa: E402 - they use style() above
from pagecore.plotting.whatif_sim import whatif_memory_manager  # noqa: E402 - they use style() above

__all__ = [
    "FIGURE_FORMATS",
    "PAPER_STYLE",
    "STYLE",
    "compression_ladder",
    "fig02_balloon_performance",
    "fig04_page_sharing",
    "fig04_real_guests",
    "fig05_real_world_sharing",
    "fig06_active_memory_sampling",
    "fig07_idle_memory_tax",
    "fig08_dynamic_reallocation",
    "figure_format",
    "host_whatif",
    "io_remapping",
    "large_page_breaking",
    "reclaim_balloon_vs_paging",
    "reclamation_approaches",
    "save_figure",
    "save_figure_file",
    "scan_duplicate_lifetime",
    "scan_sharing_over_time",
    "sensitivity_tornado",
    "style",
    "whatif_memory_manager",
]
