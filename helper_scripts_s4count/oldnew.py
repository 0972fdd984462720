"""The previous counting kernel (commit 42133da, hash tables per sub-bucket) against this one and
numpy.unique, on the same pages in one process, alternating; best of N CPU seconds."""

import importlib.util
import sys
import time

import numpy as np

from pagecore.bench.count import make_pages
from pagecore.sharing import counts as new

spec = importlib.util.spec_from_file_location(
    "oldcounts", "/var/tmp/s4count/old/pagecore/sharing/counts.py"
)  # git archive 42133da pagecore | tar -x -C /var/tmp/s4count/old
old = importlib.util.module_from_spec(spec)
sys.modules["oldcounts"] = old
spec.loader.exec_module(old)
n = int(float(sys.argv[1]))
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
h, z, vm = make_pages(n, 100, seed=0)
names = [f"vm{i:03d}" for i in range(100)]
salt = (vm // 2).astype(np.int64)
runs = {
    "previous kernel": lambda: old.count_sharing(h, z, vm, names),
    "this kernel": lambda: new.count_sharing(h, z, vm, names),
    "previous kernel, salts": lambda: old.count_sharing(h, z, vm, names, salt=salt),
    "this kernel, salts": lambda: new.count_sharing(h, z, vm, names, salt=salt),
    "numpy.unique": lambda: np.unique(h, return_counts=True),
}
# compile / load caches outside the timing
old.count_sharing(h[:1000], z[:1000], vm[:1000], names)
new.count_sharing(h[:1000], z[:1000], vm[:1000], names)
old.count_sharing(h[:1000], z[:1000], vm[:1000], names, salt=salt[:1000])
new.count_sharing(h[:1000], z[:1000], vm[:1000], names, salt=salt[:1000])
a, b = old.count_sharing(h, z, vm, names), new.count_sharing(h, z, vm, names)
assert (
    (a.totals == b.totals).all()
    and (a.per_vm == b.per_vm).all()
    and a.top == b.top
    and np.allclose(a.shrdsvd, b.shrdsvd)
)
best = {}
for _ in range(reps):
    for k, f in runs.items():
        c0 = time.process_time()
        f()
        best[k] = min(best.get(k, 9e9), time.process_time() - c0)
u = best["numpy.unique"]
print(f"{n:,} pages over 100 VMs, best of {reps} CPU s (same process, alternating); results of both kernels equal")
for k, v in best.items():
    print(f"  {k:26s} {v:7.2f} s  {n / v / 1e6:6.1f} M pages/s  numpy.unique / this {u / v:5.2f}")
