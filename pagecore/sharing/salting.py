"""ESXi page-sharing salting: which VMs may share pages with each other.

After cross-VM cache attacks ("Wait a minute!", Irazoqui et al.), ESXi 5.5 U2d / 6.0 made
inter-VM transparent page sharing opt-in with ``Mem.ShareForceSalting`` (default 2); only
pages with equal *salt* may share (formats-ksm-esxi.md, "TPS policy change"):

``0``  legacy: every VM shares with every other (salt ignored).
``1``  salt from the VM's ``sched.mem.pshare.salt`` if set, else the default salt 0: VMs
       without a salt share with each other.
``2``  salt from ``sched.mem.pshare.salt`` if set, else ``vc.uuid`` — unique per VM — so a
       VM without a salt shares only with itself (intra-VM sharing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pagecore.errors import ConfigError

MODES = (0, 1, 2)


def salt_domains(vm_names: Sequence[str], mode: int, salts: Mapping[str, str] | None = None) -> np.ndarray:
    """Sharing domain (an integer) of each VM under ``Mem.ShareForceSalting = mode``.

    Parameters
    ----------
    vm_names : sequence of str
    mode : {0, 1, 2}
    salts : mapping, optional
        ``sched.mem.pshare.salt`` per VM name; VMs not in it have no salt.

    Returns
    -------
    numpy.ndarray
        ``int64[len(vm_names)]``; VMs with equal values may share pages.
    """
    if mode not in MODES:
        raise ConfigError(f"Mem.ShareForceSalting must be one of {MODES}, got {mode!r}")
    salts = dict(salts or {})
    unknown = set(salts) - set(vm_names)
    if unknown:
        raise ConfigError(
            f"--salt names VMs that are not in the page tables: {', '.join(sorted(unknown))}"
            f" (VMs: {', '.join(vm_names)})"
        )
    if mode == 0:
        return np.zeros(len(vm_names), np.int64)
    ids: dict[str, int] = {}
    out = np.empty(len(vm_names), np.int64)
    for i, vm in enumerate(vm_names):
        if vm in salts:
            key = "salt:" + str(salts[vm])
        elif mode == 1:
            key = "salt:0"  # the default salt: unsalted VMs share with each other
        else:
            key = "uuid:" + vm  # vc.uuid: unique per VM
        out[i] = ids.setdefault(key, len(ids))
    return out
