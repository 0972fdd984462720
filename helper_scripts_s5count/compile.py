"""Compile time of count_sharing (both signatures) in a fresh NUMBA_CACHE_DIR: python compile.py TREE."""

import sys
import time

sys.path.insert(0, sys.argv[1])
import numpy as np

t0 = time.process_time()
from pagecore.sharing import count_sharing  # noqa: E402 (timed)

h = np.arange(1000, dtype=np.uint64)
vm = (np.arange(1000) // 100).astype(np.uint8)
names = [f"v{i}" for i in range(10)]
count_sharing(h, h == 0, vm, names)
count_sharing(h, h == 0, vm, names, salt=(vm // 2).astype(np.int64))
print(sys.argv[1], "compile+import CPU s", round(time.process_time() - t0, 2))
