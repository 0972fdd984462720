"""Defaults and limits the command line needs before it imports the numeric stack.

Each is defined here once and re-exported where it belongs (``pagecore.dumps.base``,
``pagecore.pages.compress``, ``pagecore.synth.fig04``), so ``pagecore --help`` and argument
parsing import neither numpy nor Numba.
"""

from __future__ import annotations

#: Default pages per chunk: 64 MiB of page data, large enough to amortize per-chunk work (each
#: chunk starts a parallel hashing region) and small enough that memory stays bounded.
DEFAULT_CHUNK_PAGES = 16384
#: Largest accepted ``chunk_pages`` (4 GiB of page data per chunk): a chunk is held in memory.
MAX_CHUNK_PAGES = 1 << 20

#: Compressors whose per-page sizes pagecore computes exactly as the kernel's (zram, zswap).
COMPRESS_ALGORITHMS = ("lzo-rle", "lzo", "lz4", "zstd")
#: zram's default since Linux 5.1 (CONFIG_ZRAM_DEF_COMP, drivers/block/zram/Kconfig).
DEFAULT_COMPRESS_ALGORITHM = "lzo-rle"

#: Defaults of the Figure 4 model, as in the workflow config (workflow/config/config.yaml,
#: ``synth.fig04``): fractions fitted by :func:`pagecore.synth.calibrate_fig04` to the paper's
#: 1-VM zero, shared and reclaimed MB, the 2-VM shared MB and the 10-VM shared percentage, with
#: ``variants`` = 8 chosen beforehand. tests/test_synth.py checks the two agree.
FIG04_DEFAULTS = {
    "mem_mb": 40.0,
    "zero": 0.0675,
    "intra_dup": 0.0975,
    "intra_dup_groups": 0.0424,
    "common": 0.4152,
    "variant": 0.1284,
    "variants": 8,
    "seed": 20021209,
}

#: Most VMs ``pagecore host --max-vms`` / ``--emulate-vms`` (``host.max_vms``, ``host.emulate_vms``)
#: may name: 16 x the 1,024 VMs per host of vSphere 8's configuration maximums, room for hosts of
#: thousands of microVMs. Every VM of a mix costs Python work in each evaluation; 16,384 copies of
#: a 40-page VM under the three default policies take about 7 s, while 100,000,000 ran for
#: CPU-minutes (re-exported as :data:`pagecore.experiments.host.MAX_VMS`).
MAX_VMS = 16384

#: The units of the numbers compared with the paper (``pagecore.experiments.records.Record.unit``;
#: records refuse any other), so the keys ``comparison.abs_floor`` may have (``pagecore.config``).
COMPARED_UNITS = ("MB", "%", "MB/s")
