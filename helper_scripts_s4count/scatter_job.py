"""Scatter one shard page table (SHARD OUT BITS, 1024 VMs) as a bigcount scatter job does, for /usr/bin/time."""

import sys
import time

from pagecore.sharing import scatter_table

names = [f"vm{v:05d}" for v in range(1, 1025)]
t0, c0 = time.perf_counter(), time.process_time()
m = scatter_table(sys.argv[1], sys.argv[2], names, int(sys.argv[3]))
print(
    f"{sum(m['rows']):,} pages: wall {time.perf_counter() - t0:.2f} s, CPU {time.process_time() - c0:.2f} s"
    " (in process, after imports)"
)
