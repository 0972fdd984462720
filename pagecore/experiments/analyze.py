"""Page tables -> the full sharing analysis: verification, every vocabulary, salting.

The one place that joins page tables (:mod:`pagecore.pages.tables`), byte verification against the
dumps (:mod:`pagecore.pages.verify`) and counting (:mod:`pagecore.sharing`), for the ``pagecore
share`` command and the workflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from pagecore import __version__
from pagecore.errors import InputError
from pagecore.pages.tables import page_table_metadata, read_page_tables
from pagecore.pages.verify import dumps_available, verify_tables
from pagecore.sharing import count_sharing
from pagecore.sharing.salting import salt_domains


def load_pages(paths: Sequence[str | os.PathLike]):
    """Concatenated (hash, zero, vm index) arrays, the VM names and per-table metadata."""
    table = read_page_tables(paths, columns=["vm", "hash", "zero"])
    vm_str = table["vm"].to_numpy(zero_copy_only=False).astype(str)
    names, vm_idx = np.unique(vm_str, return_inverse=True)
    metas = [page_table_metadata(p) for p in paths]
    return table["hash"].to_numpy(), table["zero"].to_numpy(zero_copy_only=False), vm_idx, list(names), metas


def input_list(paths: Sequence[str | os.PathLike], metas: Sequence[dict]) -> list[dict]:
    """What a report was computed from: each page table (as given) with its VM and source dump."""
    out = []
    for p, m in zip(paths, metas, strict=True):
        item = {"page_table": str(p), "vm": m.get("vm")}
        for k in ("source_path", "format", "hash_algorithm", "hash_key_id", "hash_only"):
            if k in m:
                item[k] = m[k]
        out.append(item)
    return out


def analyze_page_tables(
    paths: Sequence[str | os.PathLike],
    *,
    verify: str = "auto",
    salting_mode: int | None = None,
    salts: Mapping[str, str] | None = None,
    use_zero_pages: bool = False,
    max_page_sharing: int = 256,
    top_n: int = 10,
    show_progress: bool = False,
) -> dict:
    """Full sharing analysis of a set of page tables.

    Parameters
    ----------
    paths : page tables (one or more per VM).
    verify : {"auto", "yes", "no"}
        Byte-compare equal-hash pages in the source dumps: ``auto`` when every dump is still
        there unchanged, ``yes`` always (error if a dump is missing), ``no`` never (the report
        is then flagged unverified, with the expected number of false matches).
    salting_mode : {None, 0, 1, 2}
        Also report ESXi ``Mem.ShareForceSalting`` at this mode (salts per VM in ``salts``):
        savings with and without salting and the cross-VM shared pages an attacker in another
        VM could probe.
    use_zero_pages, max_page_sharing : KSM settings for the ``ksm`` counters.

    Returns
    -------
    dict
        ``pagecore_version``, ``inputs`` (each page table with its VM and source dump, see
        :func:`input_list`), then :meth:`pagecore.sharing.SharingCounts.to_dict` plus
        ``verification`` and, when asked, ``salting``.
    """
    if verify not in ("auto", "yes", "no"):
        raise ValueError(f"verify must be auto, yes or no, got {verify!r}")
    paths = list(paths)
    hashes, zero, vm_idx, names, metas = load_pages(paths)
    hash_bits = min(int(m.get("hash_bits", 64)) for m in metas) if metas else 64
    hash_only = any(m.get("hash_only") for m in metas)
    do_verify = verify == "yes" or (verify == "auto" and not hash_only and dumps_available(paths))
    if verify == "yes" and hash_only:
        raise InputError(
            paths[0], "page tables are hash-only (no dump behind them) and cannot be verified", hint="use --no-verify"
        )
    eligible = None
    ver = {"verified": False, "reason": "hash-only source" if hash_only else "source dumps not available or not asked"}
    false_matches = 0
    if do_verify:
        v = verify_tables(paths, show_progress=show_progress)
        eligible = ~v.ineligible
        ver = v.as_dict()
        false_matches = v.false_matches
    kw = dict(
        use_zero_pages=use_zero_pages,
        max_page_sharing=max_page_sharing,
        top_n=top_n,
        verified=do_verify,
        false_matches=false_matches,
        hash_bits=hash_bits,
        eligible=eligible,
    )
    counts = count_sharing(hashes, zero, vm_idx, names, **kw)
    out = {"pagecore_version": __version__, "inputs": input_list(paths, metas)}
    out.update(counts.to_dict())
    out["verification"] = ver
    if salting_mode is not None:
        dom = salt_domains(names, salting_mode, salts)
        salted = count_sharing(hashes, zero, vm_idx, names, salt=dom[vm_idx], **kw).to_dict()
        out["salting"] = {
            "mode": salting_mode,
            "domains": {n: int(d) for n, d in zip(names, dom, strict=True)},
            "reclaimed_pages_unsalted": out["reclaimed_pages"],
            "reclaimed_pages_salted": salted["reclaimed_pages"],
            "savings_lost_pages": out["reclaimed_pages"] - salted["reclaimed_pages"],
            "cross_vm_shared_pages_unsalted": out["inter_vm_shared_pages"],
            "cross_vm_shared_pages_salted": salted["inter_vm_shared_pages"],
            "salted": {
                k: salted[k]
                for k in ("shared_pages", "reclaimed_pages", "intra_vm_saved_pages", "inter_vm_saved_pages", "ksm")
            },
        }
    return out
