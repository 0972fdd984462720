"""Figure 4 on real QEMU guests: two identical guests share much more than one alone.

Needs qemu-system-x86_64, a Debian kernel in /boot and a static busybox (CI installs them);
skips with the reason otherwise. Boots two small guests under TCG (about 40 s)."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pagecore.pages.hashing import hash_pages
from pagecore.sharing import count_sharing

QEMU = shutil.which("qemu-system-x86_64")
KERNELS = sorted(Path("/boot").glob("vmlinuz-*"))
pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"),
    pytest.mark.skipif(not KERNELS, reason="no kernel in /boot (apt-get install linux-image-amd64)"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="no /bin/busybox (apt-get install busybox-static)"),
]


def test_two_identical_real_guests(tmp_path):
    from pagecore.qemu.realguests import capture_identical

    m = capture_identical(2, tmp_path, ram_mb=128, accel="tcg")
    assert set(m["guests"]) == {"guest01", "guest02"}
    pages, hs, zs, vs = [], [], [], []
    for i, name in enumerate(("guest01", "guest02")):
        raw = (tmp_path / f"{name}.raw").read_bytes()
        assert hashlib.sha256(raw).hexdigest() == m["guests"][name]["sha256"]
        arr = np.frombuffer(raw, np.uint8).reshape(-1, 4096)
        h, z = hash_pages(arr)
        hs.append(h)
        zs.append(z)
        vs.append(np.full(len(h), i))
        pages += [arr[k].tobytes() for k in range(len(arr))]
    one = count_sharing(hs[0], zs[0], vs[0], ["guest01", "guest02"]).to_dict()
    two = count_sharing(np.concatenate(hs), np.concatenate(zs), np.concatenate(vs), ["guest01", "guest02"]).to_dict()
    # exact against grouping the real bytes
    groups = Counter(hashlib.sha256(p).digest() for p in pages)
    assert two["reclaimed_pages"] == len(pages) - len(groups)
    # identical guests: most non-zero pages of one have a twin in the other
    assert two["inter_vm_saved_pages"] > 0.2 * len(hs[0])
    assert two["reclaimed_pages"] / two["total_pages"] > one["reclaimed_pages"] / one["total_pages"]
