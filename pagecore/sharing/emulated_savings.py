"""What the KSM emulator and the ESX scanner saved at the end of a run, by mechanism key.

Both emulators count saved pages without asking where the copies came from. At the end of a
run every saved page belongs to one shared machine page (a KSM page, a shared ESX frame) or to
the zero page; this module reads those owners from the emulator's state and splits the savings
with the vocabulary of :mod:`pagecore.vocab`: an owner with ``c`` copies in ``k`` VMs saves
``c − 1`` pages, ``c − k`` of them within VMs (``share_intra``) and ``k − 1`` across VMs
(``share_inter``); an owner holding the all-zero content saves ``zero`` pages instead, as do
pages KSM mapped to the kernel's zero page (``use_zero_pages``). The three add up to the
emulator's own total (``pages_sharing + ksm_zero_pages``, ``reclaimed_pages``), which the
tests check.
"""

from __future__ import annotations

import numpy as np

from pagecore.sharing.ksm import STABLE, ZEROMAP, KsmEmulator
from pagecore.sharing.scanner import EsxScanner


def split_by_owner(owner: np.ndarray, vm: np.ndarray, zero_owner: np.ndarray) -> dict:
    """Saved pages per mechanism key from each page's owner (-1: none) and VM.

    ``zero_owner[o]`` is true when owner ``o`` holds the all-zero content.
    """
    owner = np.asarray(owner, np.int64)
    sel = owner >= 0
    out = {"zero": 0, "share_intra": 0, "share_inter": 0}
    if not sel.any():
        return out
    o, v = owner[sel], np.asarray(vm, np.int64)[sel]
    ids, copies = np.unique(o, return_counts=True)
    pairs = np.unique(np.stack([o, v], axis=1), axis=0)
    vms = np.bincount(np.searchsorted(ids, pairs[:, 0]), minlength=len(ids))
    z = np.asarray(zero_owner, bool)[ids]
    out["zero"] = int((copies[z] - 1).sum())
    out["share_intra"] = int((copies[~z] - vms[~z]).sum())
    out["share_inter"] = int((vms[~z] - 1).sum())
    return out


def ksm_savings(em: KsmEmulator) -> dict:
    """Saved pages by mechanism key at the emulator's current state (after :meth:`KsmEmulator.run`)."""
    h = em.h
    vm = np.asarray(h.vm, np.int64)
    if em._pos is not None:  # state arrays are in address order
        vm_pos = np.empty_like(vm)
        vm_pos[em._pos] = vm
        vm = vm_pos
    owner = np.where(em.state == STABLE, em.node, -1).astype(np.int64)
    n_nodes = int(owner.max()) + 1 if len(owner) and owner.max() >= 0 else 0
    zero_owner = em.node_cid[:n_nodes] == em._zero if em._zero >= 0 else np.zeros(n_nodes, bool)
    out = split_by_owner(owner, vm, zero_owner)
    out["zero"] += int((em.state == ZEROMAP).sum())
    return out


def scanner_savings(sc: EsxScanner) -> dict:
    """Saved pages by mechanism key at the scanner's current state (after :meth:`EsxScanner.run`)."""
    owner = sc.page_frames()
    zc = sc.h.zero_content
    zero_owner = (sc.fr["pay"] == zc) if zc >= 0 else np.zeros(len(sc.fr), bool)
    return split_by_owner(owner, sc.h.vm, zero_owner)
