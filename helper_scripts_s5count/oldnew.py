"""Old against new count_sharing in one process (helper of HELPER_NOTES_s5count.md).

OLD_DIR holds oldcounts.py = `git show 3db99a5:pagecore/sharing/counts.py` (samesame.py: also a
copy oldcounts2.py, the control: identical code loaded twice). Usage: PYTHONPATH=<worktree>
python oldnew.py PAGES REPEATS. Modules alternate order each repetition; best CPU time.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("OLD_DIR", "/tmp/s5count"))
import oldcounts as old

from pagecore.bench.count import make_pages
from pagecore.sharing import counts as new
from pagecore.sharing.salting import salt_domains

n = int(float(sys.argv[1]))
reps = int(sys.argv[2])
h, z, vm = make_pages(n, 100)
names = [f"vm{i:03d}" for i in range(100)]
dom = salt_domains(names, 2, {nm: str(i // 2) for i, nm in enumerate(names)})
salt = dom[vm]
for mod in (old, new):
    for s in (None, salt):
        mod.count_sharing(h[:1000], z[:1000], vm[:1000], names, salt=None if s is None else s[:1000])
a = old.count_sharing(h, z, vm, names).to_dict()
b = new.count_sharing(h, z, vm, names).to_dict()
assert a == b
a = old.count_sharing(h, z, vm, names, salt=salt).to_dict()
b = new.count_sharing(h, z, vm, names, salt=salt).to_dict()
assert a == b
print("outputs identical (to_dict ==)")
res = {}
for rep in range(reps):
    for name, mod in (("old", old), ("new", new)) if rep % 2 else (("new", new), ("old", old)):
        for s in (None, salt):
            c0 = time.process_time()
            mod.count_sharing(h, z, vm, names, salt=s)
            t = time.process_time() - c0
            key = name + (" salts" if s is not None else "")
            res[key] = min(res.get(key, 9e9), t)
    c0 = time.process_time()
    np.unique(h, return_counts=True)
    res["unique"] = min(res.get("unique", 9e9), time.process_time() - c0)
for k, t in res.items():
    print(
        f"{k:<16} {t:.3f} s CPU {n / t / 1e6:6.1f} M/s  {1e9 * t / n:5.1f} ns/page  unique/this {res['unique'] / t:.2f}"
    )
