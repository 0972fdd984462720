"""A scatter file shaped like the full bigcount's largest partition: every zero page of the set
(72.5 M, one hash) beside 15.6 M other pages, 1024 VMs in blocks; one row group (bits 0)."""

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagecore.bench.count import make_pages
from pagecore.sharing.partition import META_KEY, SCATTER_SCHEMA, SCATTER_WRITE_OPTIONS

out = sys.argv[1]  # directory: 16 scatter files (one per shard of 64 VMs), one partition each
n_other, n_zero, nvm = 15_600_000, 72_500_000, 1024
h, _, _ = make_pages(n_other, nvm, seed=1, zero_fraction=0.0)
n = n_other + n_zero
names = [f"vm{v:05d}" for v in range(1, nvm + 1)]
rng = np.random.default_rng(2)
per = n // nvm
at_o = 0
for s in range(16):  # one file per 64 VMs (one shard), each VM's rows contiguous
    if True:
        hs, zs, vs = [], [], []
        for v in range(s * 64, (s + 1) * 64):
            k = per if v < nvm - 1 else n - per * (nvm - 1)
            ko = min(n_other - at_o, round(k * n_other / n)) if v < nvm - 1 else n_other - at_o
            hh = np.full(k, np.uint64(0x5A5A5A5A12345678))
            zz = np.ones(k, bool)
            pos = rng.choice(k, ko, replace=False)
            hh[pos] = h[at_o : at_o + ko]
            zz[pos] = False
            at_o += ko
            hs.append(hh)
            zs.append(zz)
            vs.append(np.full(k, v, np.uint32))
        t = pa.table(
            {"hash": np.concatenate(hs), "zero": np.concatenate(zs), "vm": np.concatenate(vs)}, schema=SCATTER_SCHEMA
        )
        meta = {
            "partitions": 1,
            "bits": 0,
            "rows": [t.num_rows],
            "vm_names": names,
            "source_table": "synthetic",
            "hash_algorithm": "synthetic",
            "hash_bits": 64,
        }
        with pq.ParquetWriter(f"{out}/shard{s:04d}.parquet", SCATTER_SCHEMA, **SCATTER_WRITE_OPTIONS) as w:
            w.write_table(t, row_group_size=t.num_rows)
            w.add_key_value_metadata({META_KEY: json.dumps(meta)})
        del t, hs, zs, vs
print("wrote", n, "rows")
