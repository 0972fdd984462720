"""Page contents for the replay's content-based sharing (paper §4.2): content ids per guest page.

The simulator never sees page bytes. A page's *content id* (int64) stands for its bytes and its
64-bit hash at once: equal ids are identical pages (the hash matched and the full comparison
agreed, §4.2), ``0`` is the all-zero page, ``-1`` means "no content given". The engine takes
``contents={vm_name: ids}``, one id per gpfn: what the datum holds when the guest first touches
it in its own frame (loaded at boot, or present in a snapshot); the trace's writes then give
pages fresh unique content (zero-filling writes: zeros). See :func:`pagecore.sim.simulate`.

Two sources:

:func:`contents_from_page_tables`
    real guests: page tables (``vm``, ``gpfn``, ``hash``, ``zero``; DESIGN.md) mapped to dense
    content ids, equal hashes to equal ids (what ``pagecore host`` feeds the replay);
    :func:`load_trace` reads each such page once so the replay starts from the snapshot.
:func:`synthetic_contents`
    the synthetic scenarios of Figures 6-8: a content model per OS kind (config ``sim.contents``).
    The first ``boot.os_mb`` MB of a guest are what its OS loads at boot (kernel, drivers,
    libraries and their data; :mod:`pagecore.synth.workloads`). A fraction ``os_shared[os]`` of
    those pages is code and read-only data identical in every guest of the same OS kind (the
    paper's "redundant code and read-only data", §4.3/Figure 4), placed at random frames of the
    OS region (seeded); guests with a smaller OS region hold the first part of the same list.
    Every other page gets unique content when first written (no id: ``-1``). The fraction is
    UNCONFIRMED (an assumption, swept by ``snakemake sensitivity``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pagecore.errors import ConfigError, InputError

#: Content ids of synthetic OS pages: ``1 + (os kind index << OS_ID_SHIFT) + page index``.
OS_ID_SHIFT = 40


def check_contents(contents: Mapping | None, pages: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Validate ``contents`` (VM name -> content id per gpfn) against the VMs' sizes in pages.

    Returns int64 arrays of exactly ``pages[name]`` entries (a shorter array is padded with -1:
    no content given for the frames past its end). Raises :class:`~pagecore.errors.InputError`
    for an unknown VM, a longer array, non-integer ids or ids below -1.
    """
    out: dict[str, np.ndarray] = {}
    for name, ids in (contents or {}).items():
        if name not in pages:
            raise InputError(
                None, f"contents name VM {name!r}, which is not in the scenario", expected=f"one of {sorted(pages)}"
            )
        a = np.asarray(ids)
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
            raise InputError(
                None, f"contents of VM {name!r}: need a 1-D integer array, got {a.dtype} of shape {a.shape}"
            )
        n = int(pages[name])
        if a.size > n:
            raise InputError(
                None,
                f"contents of VM {name!r} has {a.size} pages, the VM only {n}",
                expected="one id per gpfn < max_mb·256",
            )
        a = a.astype(np.int64)
        if a.size and int(a.min()) < -1:
            raise InputError(
                None,
                f"contents of VM {name!r}: content id {int(a.min())} < -1",
                expected="-1 (none), 0 (zero page) or > 0",
            )
        full = np.full(n, -1, np.int64)
        full[: a.size] = a
        out[name] = full
    return out


def contents_from_page_tables(table, pages: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Content ids from page tables: equal hashes get equal ids, zero pages id 0.

    Parameters
    ----------
    table : pandas.DataFrame
        Page-table rows (``vm``, ``gpfn``, ``hash``, ``zero``), one or many VMs; e.g.
        :func:`pagecore.pages.page_table_frame`.
    pages : mapping of VM name to int, optional
        Each VM's size in pages (default: its largest gpfn + 1). Frames without a row get -1.

    Returns
    -------
    dict of str to numpy.ndarray of int64
        Per VM, one content id per gpfn: 0 for zero pages, 1… for the distinct hashes of the
        other pages (numbered in hash order, so the same tables give the same ids), -1 where the
        table has no row. Pass it as ``contents`` to :func:`pagecore.sim.simulate`.

    Notes
    -----
    A hash stands for the page content as in ESX (§4.3: "all shared pages are assumed to have
    unique hashes"); verify page tables (``pagecore hash --verify``) to rule out collisions.
    """
    for col in ("vm", "gpfn", "hash", "zero"):
        if col not in table.columns:
            raise InputError(None, f"page table lacks column {col!r}", expected="columns vm, gpfn, hash, zero")
    vm = table["vm"].astype(str).to_numpy()
    gpfn = table["gpfn"].to_numpy().astype(np.int64)
    h = table["hash"].to_numpy().astype(np.uint64)
    zero = table["zero"].to_numpy().astype(bool)
    ids = np.zeros(len(h), np.int64)
    nz = ~zero
    _, inv = np.unique(h[nz], return_inverse=True)
    ids[nz] = inv.astype(np.int64) + 1
    out = {}
    for name in sorted(set(vm)):
        sel = vm == name
        g = gpfn[sel]
        n = int(pages[name]) if pages and name in pages else int(g.max(initial=-1)) + 1
        if g.size and (int(g.min()) < 0 or int(g.max()) >= n):
            raise InputError(None, f"page table of VM {name!r} has gpfn {int(g.max())}, the VM only {n} pages")
        a = np.full(n, -1, np.int64)
        a[g] = ids[sel]
        out[name] = a
    return out


def load_trace(contents: Mapping[str, np.ndarray], t: float = 0.0):
    """An access trace that reads every page with a content id once at VM time ``t``, so a
    replay starts from the snapshot the contents describe (each read backs the frame with its
    content). Concatenate it before a workload trace (both sorted by ``t``).

    Returns
    -------
    pandas.DataFrame
        Columns ``t``, ``vm``, ``gpfn``, ``write`` (False), ``zero`` (False), VMs in name order.
    """
    import pandas as pd

    parts = []
    for name in sorted(contents):
        g = np.flatnonzero(np.asarray(contents[name]) >= 0).astype(np.uint64)
        parts.append(pd.DataFrame({"t": float(t), "vm": name, "gpfn": g, "write": False, "zero": False}))
    if not parts:
        return pd.DataFrame({"t": [], "vm": [], "gpfn": np.zeros(0, np.uint64), "write": [], "zero": []})
    return pd.concat(parts, ignore_index=True)


def synthetic_contents(scenario, model: Mapping, seed: int) -> dict[str, np.ndarray]:
    """Content ids of a synthetic scenario's guests from the content model per OS kind.

    Parameters
    ----------
    scenario : pagecore.synth.workloads.Scenario
        Its VMs give ``name``, ``os``, ``pages`` and ``os_pages`` (the boot-loaded OS region).
    model : mapping
        The ``sim.contents`` config section: ``os_shared`` maps each OS kind to the fraction of
        its OS region identical in every guest of that kind (in [0, 1]).
    seed : int
        Seeds where each guest places its shared pages (a permutation of its OS region).

    Returns
    -------
    dict of str to numpy.ndarray of int64
        Per VM, ``pages`` ids: the shared OS pages' ids, -1 elsewhere (unique content when
        first written). See the module docstring.
    """
    frac = dict((model or {}).get("os_shared") or {})
    kinds = sorted(frac)
    out = {}
    for i, v in enumerate(scenario.vms):
        if v.os not in frac:
            raise ConfigError(f"config key sim.contents.os_shared: no fraction for OS kind {v.os!r} of VM {v.name!r}")
        f = float(frac[v.os])
        if not 0.0 <= f <= 1.0:
            raise ConfigError(f"config key sim.contents.os_shared.{v.os}: must be in [0, 1], got {f}")
        os_pages = min(int(v.os_pages), int(v.pages))
        k = round(f * os_pages)
        rng = np.random.default_rng([int(seed), 0x5C0, i])
        where = rng.permutation(os_pages)[:k]
        ids = np.full(int(v.pages), -1, np.int64)
        ids[where] = 1 + (kinds.index(v.os) << OS_ID_SHIFT) + np.arange(k, dtype=np.int64)
        out[v.name] = ids
    return out
