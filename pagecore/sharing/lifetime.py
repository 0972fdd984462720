"""How long identical pages stay identical, from successive snapshots of the same guests.

A *duplicate episode* of a page starts at the first snapshot where its content has at least two
copies among all pages and ends at the first later snapshot where the page's content changed or
has no other copy left. From the episodes' lengths:

* :func:`duplicate_episodes` — one row per episode (start, end, length, whether still running at
  the last snapshot, i.e. right-censored);
* :func:`survival` — the fraction of episodes longer than x (censored ones count as at least
  their observed length, a lower bound);
* :func:`catchable_fraction` — the fraction of episodes a background scanner can ever catch.
  A scanner covering each VM once per pass of ``pages_per_vm / rate`` seconds, in random order,
  visits a given page at a uniform time within each pass, so it catches an episode of length L
  with probability min(1, L / pass). KSM needs a second visit (its checksum filter) before an
  unstable-tree merge, so with a full scan of T seconds it needs L ≥ T and catches
  min(1, max(0, L − T) / T) of them (:func:`ksm_catchable_fraction`).

Snapshot spacing bounds the resolution: an episode shorter than the interval is seen as one
interval or missed entirely.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pagecore.sharing.pagehistory import PageHistory


def contents_at(history: PageHistory, times) -> np.ndarray:
    """int64[len(times), pages]: every page's content id at each time (writes at t ≤ time)."""
    times = np.asarray(times, float)
    if np.any(np.diff(times) < 0):
        raise ValueError("times must be sorted")
    out = np.empty((len(times), history.pages), np.int64)
    cur = history.content.copy()
    j = 0
    for k, tk in enumerate(times):
        hi = int(np.searchsorted(history.t, tk, side="right"))
        if hi > j:
            cur[history.page[j:hi]] = history.new_content[j:hi]  # later writes win (sorted by t)
            j = hi
        out[k] = cur
    return out


def duplicate_episodes(history: PageHistory, times) -> pd.DataFrame:
    """Duplicate episodes seen at snapshot ``times`` (see the module docstring).

    Returns a DataFrame with columns ``page`` (int64), ``vm`` (int64), ``start`` and ``end``
    (float64 s; ``end`` = the snapshot where the episode was first seen over, or the last
    snapshot), ``length`` (s) and ``censored`` (bool).
    """
    times = np.asarray(times, float)
    snaps = contents_at(history, times)
    k_n, n = snaps.shape
    start = np.full(n, -1.0)
    prev = np.full(n, -1, np.int64)
    rows = []
    for k in range(k_n):
        c = snaps[k]
        counts = np.bincount(c, minlength=history.n_contents)
        dup = counts[c] >= 2
        alive = start >= 0
        ended = alive & (~dup | (c != prev))
        idx = np.flatnonzero(ended)
        if len(idx):
            rows.append((idx, start[idx], np.full(len(idx), times[k]), np.zeros(len(idx), bool)))
        start[ended] = -1.0
        new = dup & (start < 0)
        start[new] = times[k]
        prev = c
    idx = np.flatnonzero(start >= 0)
    rows.append((idx, start[idx], np.full(len(idx), times[-1]), np.ones(len(idx), bool)))
    page = np.concatenate([r[0] for r in rows]).astype(np.int64)
    df = pd.DataFrame(
        {
            "page": page,
            "vm": history.vm[page],
            "start": np.concatenate([r[1] for r in rows]),
            "end": np.concatenate([r[2] for r in rows]),
            "censored": np.concatenate([r[3] for r in rows]),
        }
    )
    df["length"] = df["end"] - df["start"]
    # an episode that starts at the last snapshot has no observed length
    df = df[~(df["censored"] & (df["length"] == 0))]
    return df.sort_values(["start", "page"], kind="stable").reset_index(drop=True)


def survival(episodes: pd.DataFrame, grid) -> pd.DataFrame:
    """Fraction of episodes with length > x for x in ``grid`` (columns ``x``, ``fraction``)."""
    lengths = np.sort(episodes["length"].to_numpy())
    grid = np.asarray(grid, float)
    n = max(1, len(lengths))
    frac = (len(lengths) - np.searchsorted(lengths, grid, side="right")) / n
    return pd.DataFrame({"x": grid, "fraction": frac})


def catchable_fraction(episodes: pd.DataFrame, pages_per_vm: float, rates) -> pd.DataFrame:
    """Fraction of duplicate episodes an ESX-style random scanner at per-VM ``rates`` (pages/s)
    can catch: mean of min(1, L / (pages_per_vm / rate)). Columns ``rate``, ``pass_s``, ``fraction``."""
    return _per_rate(episodes, pages_per_vm, rates, lambda lengths, t: np.minimum(1.0, lengths / t))


def ksm_catchable_fraction(episodes: pd.DataFrame, total_pages: float, rates) -> pd.DataFrame:
    """Same for KSM scanning ``rates`` pages/s over all ``total_pages`` (full scan T = pages /
    rate): mean of min(1, max(0, L − T) / T)."""
    return _per_rate(episodes, total_pages, rates, lambda lengths, t: np.minimum(1.0, np.maximum(0.0, lengths - t) / t))


def _per_rate(episodes: pd.DataFrame, pages: float, rates, caught) -> pd.DataFrame:
    """Mean of ``caught(lengths, pass_s)`` over the episodes for each rate (pass = pages / rate)."""
    lengths = episodes["length"].to_numpy()
    out = []
    for r in rates:
        if r <= 0:
            raise ValueError(f"scan rates must be > 0, got {r}")
        t = pages / r
        out.append((float(r), t, float(caught(lengths, t).mean()) if len(lengths) else float("nan")))
    return pd.DataFrame(out, columns=["rate", "pass_s", "fraction"])
