"""Sharing of the first 1..N VMs (paper Figure 4), byte-verified when the dumps are there."""

import numpy as np

from pagecore import atomic_path, job_log
from pagecore.pages import dumps_available, read_page_tables, verify_tables
from pagecore.sharing import vm_count_sweep

with job_log(snakemake):
    tables = list(snakemake.input.pages)
    pages = read_page_tables(tables, columns=["vm", "hash", "zero"]).to_pandas()
    mode = snakemake.params.verify
    if mode is True or (mode == "auto" and dumps_available(tables)):
        v = verify_tables(tables)
        pages["hash"] = v.content_keys(pages["hash"].to_numpy())  # one key per true content
        pages["eligible"] = ~v.ineligible
        print("verification:", v.as_dict())
    else:
        print("not verified: equal hashes counted as equal pages")
    sweep = vm_count_sweep(pages)
    with atomic_path(snakemake.output.sweep) as tmp:
        sweep.to_csv(tmp, index=False, float_format="%.10g")
    print(sweep.to_string())
    assert np.all(sweep["total_pages"].diff().dropna() > 0)
