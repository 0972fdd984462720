"""Count one partition of scatter files (DIR/*.parquet, PARTITION) as a bigcount count job does, for /usr/bin/time."""

import glob
import sys
import time

from pagecore.sharing import count_partition

files = sorted(glob.glob(sys.argv[1] + "/*.parquet"))
t0, c0 = time.perf_counter(), time.process_time()
c = count_partition(files, int(sys.argv[2]))
print(
    f"{int(c.totals[0]):,} pages: wall {time.perf_counter() - t0:.2f} s, CPU {time.process_time() - c0:.2f} s"
    " (in process, after imports)"
)
