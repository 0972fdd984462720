"""Transparent vs cooperative reclamation on the Figure 4 page tables (pagecore.experiments.approaches)."""

from pagecore import atomic_path, job_log
from pagecore.experiments import compare_approaches, load_vms, settings_from_config, with_guest_free

with job_log(snakemake):
    settings = settings_from_config(dict(snakemake.params.host))
    pages = [snakemake.input.pages] if isinstance(snakemake.input.pages, str) else list(snakemake.input.pages)
    vms = load_vms([{"pages": p, "activity": settings.activity} for p in pages])
    # real guests carry their own free-page list; synthetic ones get the content model's, in
    # whole blocks at the top of memory (the upper bound)
    vms = with_guest_free(vms, rule="top")
    host_mb = max(settings.memory_mb)
    timeline, table, extra = compare_approaches(vms, settings, host_mb=host_mb, balloon=dict(snakemake.params.balloon))
    with atomic_path(snakemake.output.timeline) as tmp:
        timeline.to_parquet(tmp, index=False)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    print(table.to_string(index=False))
    print(extra)
