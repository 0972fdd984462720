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
from pagecore.dumps.dumplevel import bias_of
from pagecore.errors import PagecoreError
from pagecore.pages.tables import page_table_metadata, read_page_tables, vm_index, warn_damaged
from pagecore.pages.verify import unavailable_reason, verify_tables
from pagecore.sharing import count_sharing
from pagecore.sharing.salting import salt_domains
from pagecore.vocab import HOST_VIEW_COLUMNS, ksm_eligibility


def hash_guarantee(keyed: bool, hash_bits: int, verified: bool) -> str:
    """What the sharing numbers can be trusted for, in one sentence (README "What pagecore guarantees")."""
    if verified:
        return "exact: every page counted as shared was byte-compared with its copies in the dump that was hashed"
    if hash_bits < 64:
        return (
            f"unverified {hash_bits}-bit hashes: expected_false_matches is the expectation for random-like "
            "contents; equal hashes may be different pages"
        )
    if keyed:
        return (
            "unverified, keyed pcx64: expected_false_matches is the expectation for random-like contents; "
            "no way is known to construct colliding pages without the secret key, but no bound is proven"
        )
    return (
        "unverified, unkeyed pcx64: expected_false_matches holds for random-like contents only; pages can be "
        "constructed to collide (the default key is public), so verify against the dumps or hash with a secret key"
    )


def load_pages(paths: Sequence[str | os.PathLike]):
    """Concatenated (hash, zero, vm index) arrays, the VM names and per-table metadata."""
    table = read_page_tables(paths, columns=["vm", "hash", "zero"])
    names, vm_idx = vm_index(table["vm"])  # uint8 for up to 256 VMs: less to read and hold
    metas = [page_table_metadata(p) for p in paths]
    return table["hash"].to_numpy(), table["zero"].to_numpy(zero_copy_only=False), vm_idx, names, metas


def host_view_mask(paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray | None, str | None]:
    """Pages KSM can see, from the host-view columns of live page tables, in row order.

    Returns ``(mask, note)``: ``mask`` is ``host_present & ~host_zero_page`` over the
    concatenated tables (the order :func:`load_pages` reads them in) when *every* table carries
    the host-view columns (:data:`pagecore.vocab.HOST_VIEW_COLUMNS`, written by ``pagecore
    live``), else ``None``. A page that is not present has no rmap item and is never scanned; a
    page mapped to the host's zero page is not an anonymous page, which ksmd skips (mm/ksm.c,
    ``scan_get_next_rmap_item``: ``PageAnon``). ``note`` says why the host view was not used
    when only some tables have it.
    """
    import pyarrow.parquet as pq

    have = [set(HOST_VIEW_COLUMNS) <= set(pq.ParquetFile(p).schema_arrow.names) for p in paths]
    if not any(have):
        return None, None
    if not all(have):
        missing = [str(p) for p, h in zip(paths, have, strict=True) if not h]
        return None, (
            f"host view ignored: {len(missing)} of {len(paths)} page tables have no host-view columns "
            f"({', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}); KSM counted over all pages"
        )
    parts = []
    for p in paths:
        t = pq.read_table(p, columns=["host_present", "host_zero_page"])
        present = t["host_present"].to_numpy(zero_copy_only=False).astype(bool)
        zp = t["host_zero_page"].to_numpy(zero_copy_only=False).astype(bool)
        parts.append(present & ~zp)
    return np.concatenate(parts), None


def mechanism_savings(counts: dict, zero_pages: int, zero_vms: int) -> dict:
    """Saved pages per mechanism key (:data:`pagecore.vocab.MECHANISMS`): ``zero``,
    ``share_intra``, ``share_inter``.

    The counting kernel attributes every saved page to intra- or inter-VM sharing, zero pages
    included; the vocabulary keeps zero pages apart. All eligible zero pages are one content
    (``zero_pages`` copies in ``zero_vms`` VMs), of which ``zero_pages − zero_vms`` saved pages
    are intra-VM and ``zero_vms − 1`` inter-VM; those leave the ``share_*`` keys.
    """
    zero_saved = int(counts["zero_saved_pages"])
    zi, zx = (zero_pages - zero_vms, zero_vms - 1) if zero_pages else (0, 0)
    if zi + zx != zero_saved:  # zero pages split over several contents (salting): keep the sum exact
        zi, zx = zero_saved, 0
    return {
        "zero": zero_saved,
        "share_intra": int(counts["intra_vm_saved_pages"]) - zi,
        "share_inter": int(counts["inter_vm_saved_pages"]) - zx,
    }


def _large_pages(paths, hashes, zero, vm_idx) -> dict:
    """The large-page section, from the tables' guest frames (and ``host_thp`` where every table has it)."""
    import pyarrow.parquet as pq

    from pagecore.sharing.largepages import large_page_report

    gpfn = np.concatenate([pq.read_table(p, columns=["gpfn"])["gpfn"].to_numpy() for p in paths])
    thp = None
    if all("host_thp" in pq.ParquetFile(p).schema_arrow.names for p in paths):
        thp = np.concatenate(
            [pq.read_table(p, columns=["host_thp"])["host_thp"].to_numpy(zero_copy_only=False) for p in paths]
        ).astype(bool)
    return large_page_report(vm_idx, gpfn, hashes, zero, thp=thp)


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
    key=None,
    dump_dir: str | os.PathLike | None = None,
    rehash=None,
    large_pages: bool = True,
    threads: int = 1,
) -> dict:
    """Full sharing analysis of a set of page tables.

    Parameters
    ----------
    paths : page tables (one or more per VM).
    verify : {"auto", "yes", "no"}
        Byte-compare equal-hash pages in the source dumps: ``auto`` when every dump is still
        there unchanged, ``yes`` always (error if a dump is missing), ``no`` never (the report
        is then flagged unverified, with the expected number of false matches). A dump that
        is missing or changed since hashing is never verified against: ``auto`` reports the
        tables unverified with that reason when the change shows before verifying (size, path,
        the 64 sampled pages), ``yes`` fails with it; a change only the page-by-page re-hash
        finds (a page outside the sample) fails under both, "dump changed since hashing".
    salting_mode : {None, 0, 1, 2}
        Also report ESXi ``Mem.ShareForceSalting`` at this mode (salts per VM in ``salts``):
        savings with and without salting and the cross-VM shared pages an attacker in another
        VM could probe.
    use_zero_pages, max_page_sharing : KSM settings for the ``ksm`` counters.
    key : PageKey, optional
        The key keyed tables were hashed with (needed to verify them).
    dump_dir : path, optional
        Where to look for dumps that moved since hashing (by file name).
    rehash : callable, optional
        The page hash the tables were made with, if not pcx64 (see :func:`verify_tables`).
    large_pages : bool
        Add the ``large_pages`` section (:func:`pagecore.sharing.largepages.large_page_report`:
        2 MiB regions, how many a large page can back, the savings backing them loses).
    threads : int
        Counting threads (:func:`pagecore.sharing.count_sharing`; 0 = all cores). The report
        does not depend on it.

    Returns
    -------
    dict
        ``pagecore_version``, ``inputs`` (each page table with its VM and source dump, see
        :func:`input_list`), then :meth:`pagecore.sharing.SharingCounts.to_dict` plus
        ``verification``, ``biased_inputs`` (page tables of filtered kdumps, with the page classes
        they miss; see :func:`pagecore.dumps.dumplevel.bias_of`), ``damaged_inputs`` (tables
        hashed from damaged dumps: :func:`pagecore.pages.tables.warn_damaged`), ``split_parts``
        (tables of one part of a ``makedumpfile --split`` dump), ``sharing_underestimated`` and,
        when asked, ``salting``. ``savings_pages``/``savings_mb`` hold the saved memory by
        mechanism key (:data:`pagecore.vocab.MECHANISMS`: ``zero``, ``share_intra``,
        ``share_inter``); ``ksm["eligibility"]`` says which pages the KSM counters considered
        (``all``, or the ``host_view`` of live tables: see :func:`host_view_mask`).
    """
    if verify not in ("auto", "yes", "no"):
        raise ValueError(f"verify must be auto, yes or no, got {verify!r}")
    paths = list(paths)
    hashes, zero, vm_idx, names, metas = load_pages(paths)
    hash_bits = min(int(m.get("hash_bits", 64)) for m in metas) if metas else 64
    reason = unavailable_reason(paths, dump_dir, key) if verify != "no" else "not asked (--no-verify)"
    if verify == "yes" and reason is not None:
        raise PagecoreError(f"cannot verify: {reason}")
    do_verify = reason is None
    eligible = None
    ver = {"verified": False, "reason": reason}
    false_matches = 0
    if do_verify:
        v = verify_tables(paths, key=key, dump_dir=dump_dir, show_progress=show_progress, rehash=rehash)
        hashes = v.content_keys(hashes)
        eligible = ~v.ineligible
        ver = v.as_dict()
        false_matches = v.false_match_pages
    kw = dict(
        use_zero_pages=use_zero_pages,
        max_page_sharing=max_page_sharing,
        top_n=top_n,
        verified=do_verify,
        false_matches=false_matches,
        hash_bits=hash_bits,
        eligible=eligible,
        threads=threads,
    )
    counts = count_sharing(hashes, zero, vm_idx, names, **kw)
    out = {"pagecore_version": __version__, "inputs": input_list(paths, metas)}
    out.update(counts.to_dict())
    zmask = zero if eligible is None else zero & eligible
    zero_vms = int(np.unique(vm_idx[zmask]).size)
    saved = mechanism_savings(out, int(zmask.sum()), zero_vms)
    out["savings_pages"] = saved  # mechanism keys (pagecore.vocab); they add up to reclaimed_pages
    out["savings_mb"] = {k: v * out["page_size"] / 2**20 for k, v in saved.items()}
    host, note = host_view_mask(paths)
    if host is not None:  # KSM sees only the pages present in the host (pagecore live)
        el = None if eligible is None else eligible[host]
        sub = count_sharing(hashes[host], zero[host], vm_idx[host], names, **{**kw, "eligible": el})
        out["ksm"] = sub.to_dict()["ksm"]
        out["ksm"]["pages_not_eligible"] = int((~host).sum())
    out["ksm"]["eligibility"] = ksm_eligibility(HOST_VIEW_COLUMNS if host is not None else ())
    if note:
        out["ksm"]["eligibility_note"] = note
    if large_pages:
        out["large_pages"] = _large_pages(paths, hashes, zero, vm_idx)
    keyed = any(m.get("hash_key_id", "none") != "none" for m in metas)
    ver["hash_guarantee"] = hash_guarantee(keyed, hash_bits, do_verify)
    out["verification"] = ver
    zeros_by_vm = dict(zip(names, np.bincount(vm_idx[zero], minlength=len(names)).tolist(), strict=True))
    biased = [b for b in (bias_of(m, zeros_by_vm.get(m.get("vm"))) for m in metas) if b is not None]
    out["biased_inputs"] = biased  # filtered kdumps: the classes they miss; every count is then a lower bound
    out["damaged_inputs"] = warn_damaged(paths, metas)  # hashed with --skip-bad-pages from damaged dumps
    # one part of a makedumpfile --split dump: the guest's other frames are in the other parts' files
    out["split_parts"] = [
        {"vm": m.get("vm"), "path": str(p), **m["split_part"]}
        for p, m in zip(paths, metas, strict=True)
        if isinstance(m.get("split_part"), dict)
    ]
    # imported traces (zero_known: false) mark no zero page: their zero counts read 0 without a word
    out["zero_unknown"] = [str(p) for p, m in zip(paths, metas, strict=True) if m.get("zero_known") is False]
    out["sharing_underestimated"] = bool(biased)
    fuzzy = sorted({m.get("vm", "?") for m in metas if m.get("snapshot") == "unverified (fuzzy)"})
    if fuzzy:
        out["fuzzy_snapshots"] = fuzzy  # live reads of running guests (pagecore live without --pause)
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
