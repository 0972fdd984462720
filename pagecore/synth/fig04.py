"""Deterministic synthetic guests: page contents written as real raw dump files.

The Figure 4 content model
--------------------------
The paper's Figure 4 runs 1–10 identical Red Hat Linux 7.2 VMs of 40 MB (SPEC95 workloads).
:class:`Fig04Model` stands in for one such guest with five content classes, given as fractions
of the VM's pages (all parameters live in the workflow config, with their sources):

``zero``
    all-zero pages (free pages the guest zeroed).
``intra_dup``
    non-zero pages that repeat *within* a guest, in ``intra_dup_groups`` distinct contents
    (e.g. pages filled with one pattern); the same contents occur in every VM, as the guests
    are identical.
``common``
    pages identical across all VMs and unique within one (kernel text and read-only data,
    shared libraries and binaries, page cache of files from the same disk image).
``variant``
    per-boot variation: page slots whose content is one of ``variants`` near-identical
    versions (a base page with a few relocated/randomized 64-bit words), drawn independently
    per VM; two VMs share such a page only if they drew the same version.
``private``
    everything else: per-VM data unique to one VM.

Page contents come from a counter-based generator (SplitMix64 over a content id and word
index), so any page is a pure function of ``(seed, class, id)``: generation streams in chunks,
needs no state, and the same seed gives the same bytes on every machine.

:meth:`Fig04Model.expected` gives the model's exact expectation of the Figure 4 metrics, used
both to calibrate (:func:`calibrate_fig04`) and to test that generated guests match their own
parameters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numba import njit

from pagecore import PAGE_SIZE, PAGES_PER_MB
from pagecore._defaults import FIG04_DEFAULTS as _FIG04_DEFAULTS
from pagecore._jit import INLINE, SERIAL
from pagecore._util import atomic_path

WORDS = PAGE_SIZE // 8
MB = 1 << 20

# class tags mixed into content ids
ZERO, INTRA_DUP, COMMON, VARIANT, PRIVATE = 0, 1, 2, 3, 4
CLASS_NAMES = ("zero", "intra_dup", "common", "variant", "private")
#: 64-bit words rewritten in a variant page (relocated pointers / randomized fields)
VARIANT_WORDS = 8
#: most versions per variant slot: each slot's versions take ``variants`` patch ids, which must
#: stay in 64 bits for any guest (2^63 was a traceback from numpy's draw)
MAX_VARIANTS = 2**32


@njit(**INLINE)
def _splitmix(x):
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**SERIAL)
def _fill_pages(out, content, patch, patch_pos):
    """out[p] = page of content id ``content[p]`` (0 = zero page), XOR-patched at
    ``VARIANT_WORDS`` positions by ``patch[p]`` when it is non-zero."""
    for p in range(out.shape[0]):
        c = content[p]
        if c == np.uint64(0):
            for w in range(WORDS):
                out[p, w] = np.uint64(0)
            continue
        base = _splitmix(c) * np.uint64(WORDS)
        for w in range(WORDS):
            out[p, w] = _splitmix(base + np.uint64(w))
        q = patch[p]
        if q != np.uint64(0):
            start = patch_pos[p]
            for i in range(VARIANT_WORDS):
                w = (start + i * 61) % WORDS
                out[p, w] ^= _splitmix(q + np.uint64(i)) | np.uint64(1)


@njit(**SERIAL)
def _content_hash(content, patch, out):
    for i in range(content.shape[0]):
        out[i] = _splitmix(_splitmix(content[i] ^ np.uint64(0x5EED)) ^ patch[i])


#: name recorded in the metadata of page tables made by :meth:`Fig04Model.page_table`
CONTENT_HASH = "synthetic-content-id-v1"


def content_hash(content: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """64-bit hash of a synthetic page from its content and variant-patch ids (hash-only tables)."""
    content = np.ascontiguousarray(content, dtype=np.uint64)
    patch = np.ascontiguousarray(patch, dtype=np.uint64)
    out = np.empty(content.shape[0], np.uint64)
    _content_hash(content, patch, out)
    return out


def _content_id(seed: int, cls: int, vm: int, idx: np.ndarray) -> np.ndarray:
    """Distinct non-zero 64-bit content ids for (seed, class, vm, index).

    The low 32 bits hold ``index + 1``, the high 32 the seed's low 8 bits, the class and the
    VM's low 20 bits; the rest of the seed and of the VM number pick a 64-bit constant XORed
    into every id (0 when both are 0, so seeds below 256 keep their ids). Without it only the
    seed's low 8 bits reached the ids: ``--seed 0`` and ``--seed 256`` wrote the same pages in
    another order. XOR with one constant keeps which ids are equal, so every sharing count of a
    guest set is unchanged; the constant has bit 31 set, so no id of an index below 2^31 - 1 is
    0 (the zero page).
    """
    idx = np.asarray(idx, dtype=np.uint64)
    tag = np.uint64(((seed & 0xFF) << 24 | (cls & 0xF) << 20 | (vm & 0xFFFFF)) & 0xFFFFFFFF)
    rest = ((seed >> 8) & (2**64 - 1), vm >> 20)  # a negative seed too
    mix = np.uint64(0)
    if rest != (0, 0):
        mix = np.random.SeedSequence([0xC0_47E4_7, *rest]).generate_state(1, np.uint64)[0] | np.uint64(1 << 31)
    with np.errstate(over="ignore"):
        return (tag << np.uint64(32)) ^ (idx + np.uint64(1)) ^ np.uint64(1 << 63) ^ mix


class ContentLayout:
    """A guest's pages as four parallel arrays, built class by class: content id, patch word,
    patch position and content class (the inputs of :func:`_fill_pages`)."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, cls: int, content, patch=None, pos=None) -> None:
        """Append ``len(content)`` pages of class ``cls`` (no patch unless ``patch``/``pos``)."""
        k = len(content)
        self.parts.append(
            (
                np.asarray(content, np.uint64),
                np.zeros(k, np.uint64) if patch is None else np.asarray(patch, np.uint64),
                np.zeros(k, np.int64) if pos is None else np.asarray(pos, np.int64),
                np.full(k, cls, np.int8),
            )
        )

    def permuted(self, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(content, patch, pos, cls)``, concatenated and placed at frames by ``perm``."""
        return tuple(np.concatenate([p[i] for p in self.parts])[perm] for i in range(4))


@dataclass(frozen=True)
class Fig04Model:
    """Content model of one Figure 4 guest; fractions are of the VM's pages.

    Parameters
    ----------
    mem_mb : float
        Guest "physical" memory (paper: 40 MB).
    zero, intra_dup, common, variant : float
        Fractions of pages in each class; ``private`` is the rest.
    intra_dup_groups : float
        Distinct contents among the ``intra_dup`` pages, as a fraction of the VM's pages.
    variants : int
        Versions per variant page slot.
    seed : int
        Seed for contents, layout and variant draws.
    """

    mem_mb: float = 40.0
    zero: float = 0.0
    intra_dup: float = 0.0
    intra_dup_groups: float = 0.0
    common: float = 0.0
    variant: float = 0.0
    variants: int = 8
    seed: int = 0

    def __post_init__(self):
        for name in ("zero", "intra_dup", "intra_dup_groups", "common", "variant"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {v}")
        if self.zero + self.intra_dup + self.common + self.variant > 1.0 + 1e-12:
            raise ValueError("zero + intra_dup + common + variant must not exceed 1")
        if self.intra_dup_groups > self.intra_dup:
            raise ValueError("intra_dup_groups cannot exceed intra_dup (a group has at least one page)")
        if not 1 <= self.variants <= MAX_VARIANTS:  # numpy's draw of a version is int64
            raise ValueError(f"variants must be in [1, {MAX_VARIANTS:,}], got {self.variants:,}")
        if self.pages < 1:
            raise ValueError(f"mem_mb={self.mem_mb} gives no pages")

    # -- sizes --------------------------------------------------------------------------
    @property
    def pages(self) -> int:
        return round(self.mem_mb * PAGES_PER_MB)

    def counts(self) -> dict[str, int]:
        """Pages per class for one VM (rounded; ``private`` takes the remainder)."""
        n = self.pages
        c = {k: round(getattr(self, k) * n) for k in ("zero", "intra_dup", "common", "variant")}
        c["private"] = n - sum(c.values())
        # rounding overflow: take it from the classes in turn (taken from common alone, common went
        # negative: 3 pages of half zero, half intra_dup gave 2 + 2 + common -1, and the layout
        # dropped a random one of its 4 pages)
        for k in ("common", "variant", "intra_dup", "zero"):
            take = min(max(0, -c["private"]), c[k])
            c[k] -= take
            c["private"] += take
        return c

    def dup_groups(self) -> int:
        d = self.counts()["intra_dup"]
        return min(d, max(1 if d else 0, round(self.intra_dup_groups * self.pages)))

    # -- layout ---------------------------------------------------------------------------
    def layout(self, vm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Content of every guest frame of VM number ``vm`` (0-based).

        Returns ``(content, patch, patch_pos, cls)``, each of length :attr:`pages`, indexed by
        gpfn: content id (0 = zero page), patch id (0 = none), first patched word, class tag.
        """
        counts = self.counts()
        rng = np.random.default_rng([self.seed, 0xF16_04, vm])
        layout = ContentLayout()
        add = layout.add

        add(ZERO, np.zeros(counts["zero"], np.uint64))
        d, g = counts["intra_dup"], self.dup_groups()
        add(INTRA_DUP, _content_id(self.seed, INTRA_DUP, 0, np.arange(d) % max(g, 1)))
        add(COMMON, _content_id(self.seed, COMMON, 0, np.arange(counts["common"])))
        v = counts["variant"]
        slots = np.arange(v)
        draw = rng.integers(0, self.variants, size=v)
        patch = np.where(draw == 0, 0, _content_id(self.seed, VARIANT, 1, slots * self.variants + draw))
        pos = (slots * 7) % WORDS
        add(VARIANT, _content_id(self.seed, VARIANT, 0, slots), patch, pos)
        add(PRIVATE, _content_id(self.seed, PRIVATE, vm + 1, np.arange(counts["private"])))
        # guests place contents at different physical frames: a per-VM permutation
        return layout.permuted(rng.permutation(self.pages))

    def iter_pages(self, vm: int, chunk_pages: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(gpfn, pages uint8[k, 4096])`` for VM ``vm``, in gpfn order, chunk by chunk."""
        content, patch, pos, _ = self.layout(vm)
        buf = np.empty((chunk_pages, WORDS), np.uint64)
        for lo in range(0, self.pages, chunk_pages):
            hi = min(self.pages, lo + chunk_pages)
            out = buf[: hi - lo]
            _fill_pages(out, content[lo:hi], patch[lo:hi], pos[lo:hi])
            yield np.arange(lo, hi, dtype=np.uint64), out.view(np.uint8)

    def write_raw(self, vm: int, path: str | os.PathLike, chunk_pages: int = 4096) -> int:
        """Write VM ``vm`` as a raw physical image (offset = guest-physical address), atomically.

        Returns the number of bytes written.
        """
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            for _, pages in self.iter_pages(vm, chunk_pages):
                fh.write(pages.tobytes())
        return self.pages * PAGE_SIZE

    def page_table(self, vm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(gpfn, hash, zero)`` of VM ``vm`` without generating page bytes.

        For scales where writing page bytes is pointless (billions of pages): the hash is
        :func:`content_hash` of the page's content and variant ids, so equal pages get equal
        hashes exactly as with real bytes, with the same class distribution. Such tables are
        hash-only: they cannot be byte-verified.
        """
        content, patch, _, _ = self.layout(vm)
        return np.arange(self.pages, dtype=np.uint64), content_hash(content, patch), content == 0

    def content_classes(self, n_vms: int) -> list[tuple[int, int]]:
        """The pages of ``n_vms`` guests by class as (pages, distinct contents), covering them: the
        zero page one content; intra-VM duplicates, common and variant pages contents every guest
        shares (groups, pages, slots × variants); private pages each their own. What the memory of
        a hash-prefix partition job depends on (:func:`pagecore.sharing.bigplan.largest_partition_pages`)."""
        c = self.counts()
        return [
            (c["zero"] * n_vms, 1),
            (c["intra_dup"] * n_vms, self.dup_groups()),
            (c["common"] * n_vms, c["common"]),
            (c["variant"] * n_vms, c["variant"] * self.variants),
            (c["private"] * n_vms, c["private"] * n_vms),
        ]

    # -- the model's own expectation -------------------------------------------------------
    def expected(self, n_vms: int) -> dict[str, float]:
        """Expected Figure 4 metrics (in pages) for ``n_vms`` identical guests.

        Exact for every class but ``variant``, whose shared and distinct counts are
        expectations over the independent per-VM draws.
        """
        c = self.counts()
        n = n_vms
        m = self.variants
        z, d, k, cm, v = c["zero"], c["intra_dup"], self.dup_groups(), c["common"], c["variant"]
        q = 1.0 - 1.0 / m
        # intra-dup groups: a group of size s per VM is shared if n*s >= 2
        sizes = np.bincount(np.arange(d) % max(k, 1), minlength=k) if d else np.zeros(0, int)
        shared = (n * z if n * z >= 2 else 0) + int(sizes[sizes * n >= 2].sum() * n)
        shared += n * cm if n >= 2 else 0
        shared += v * n * (1.0 - q ** (n - 1))
        distinct = (1 if z else 0) + k + cm + v * m * (1.0 - q**n) + n * c["private"]
        total = n * self.pages
        return {
            "total_pages": total,
            "zero_pages": n * z,
            "shared_pages": shared,
            "reclaimed_pages": total - distinct,
            "distinct_pages": distinct,
        }


def calibrate_fig04(
    *,
    mem_mb: float,
    zero_1: float,
    shared_1: float,
    reclaimed_1: float,
    shared_2: float,
    shared_pct_n: float,
    n: int,
    variants: int,
) -> dict[str, float]:
    """Fit the Figure 4 model's fractions to a few measured points.

    Parameters are MB for 1- and 2-VM points (``zero_1``, ``shared_1``, ``reclaimed_1``,
    ``shared_2``) and the shared percentage at ``n`` VMs; ``variants`` is fixed beforehand.
    Everything the model reports at other VM counts is then a prediction.

    Returns the fractions for :class:`Fig04Model` (``zero``, ``intra_dup``,
    ``intra_dup_groups``, ``common``, ``variant``).

    Notes
    -----
    With per-VM counts z, d (in k groups), c, v (slots of m versions), the model gives
    zero(1) = z, shared(1) = z + d, reclaimed(1) = (z − 1) + (d − k), shared(2) = 2(z + d + c)
    + 2v/m, and shared(n)/n = z + d + c + v·(1 − (1 − 1/m)^(n−1)).
    """
    P = mem_mb * PAGES_PER_MB
    z = zero_1 * PAGES_PER_MB
    d = shared_1 * PAGES_PER_MB - z
    k = (z - 1) + d - reclaimed_1 * PAGES_PER_MB
    c_plus = shared_2 * PAGES_PER_MB / 2 - z - d  # c + v/m
    m = variants
    per_vm_n = shared_pct_n / 100.0 * P
    a = 1.0 - (1.0 - 1.0 / m) ** (n - 1)
    v = (per_vm_n - z - d - c_plus) / (a - 1.0 / m)
    c = c_plus - v / m
    return {
        "zero": z / P,
        "intra_dup": d / P,
        "intra_dup_groups": k / P,
        "common": c / P,
        "variant": v / P,
    }


FIG04_DEFAULTS = _FIG04_DEFAULTS  # defined in pagecore._defaults (the CLI reads it without numba)


def write_hash_only_tables(source, indices, names, path: str | os.PathLike, generator: dict) -> int:
    """Write hash-only page tables of several VMs into one Parquet file.

    ``source.page_table(i)`` gives ``(gpfn, hash, zero)`` of VM ``i`` (e.g.
    :meth:`Fig04Model.page_table`, :meth:`pagecore.synth.guests.GuestSet.page_table`); ``names[k]`` is
    the name of ``indices[k]``. No page bytes exist, so the tables are flagged ``hash_only``
    and carry ``generator`` (the model's parameters) in their metadata. Returns rows written.
    """
    from pagecore.pages.tables import PageTableWriter

    meta = {
        "format": "synthetic",
        "source_path": None,
        "hash_algorithm": CONTENT_HASH,
        "hash_key_id": "none",
        "hash_only": True,
        "verified": False,
        "generator": generator,
        "vms": list(names),
    }
    with PageTableWriter(path, names[0] if len(names) else "", meta) as w:
        for i, name in zip(indices, names, strict=True):
            gpfn, h, z = source.page_table(i)
            w.write(gpfn, h, z, vm=name)
        w.metadata["pages"] = w.rows
    return w.rows


def write_hash_only_shard(model: Fig04Model, vms: range, path: str | os.PathLike, name: str = "vm{:05d}") -> int:
    """Hash-only page tables of Figure 4 model VMs ``vms`` (0-based) in one file."""
    generator = {"model": "Fig04Model", **{k: getattr(model, k) for k in model.__dataclass_fields__}}
    return write_hash_only_tables(model, list(vms), [name.format(v + 1) for v in vms], path, generator)
