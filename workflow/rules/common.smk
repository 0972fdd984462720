# Helpers shared by the rules: config validation and the lists of files rules ask for.
# Only functions live here (STYLE.md); rules live in one .smk per stage.

from pagecore.config import validate_config


validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

FIG04 = config["synth"]["fig04"]


wildcard_constraints:
    idx=r"\d\d+",
    vm=r"[A-Za-z0-9._-]+",


def fig04_vm_ids():
    """Zero-padded guest numbers 01..NN of the Figure 4 set."""
    return [f"{i:02d}" for i in range(1, FIG04["vms"] + 1)]


def fig04_page_tables(wildcards=None):
    return expand("results/pages/fig04/vm{idx}.parquet", idx=fig04_vm_ids())


def fig04_dump(path):
    """The synthetic dump output, temporary unless synth.fig04.keep_dumps is true."""
    return path if FIG04["keep_dumps"] else temp(path)


def user_dumps():
    return {d["vm"]: d for d in config["dumps"]}


def user_dump_path(wildcards):
    return user_dumps()[wildcards.vm]["path"]


def user_dump_format(wildcards):
    return user_dumps()[wildcards.vm].get("format", "auto")


def user_page_tables(wildcards=None):
    return expand("results/pages/user/{vm}.parquet", vm=sorted(user_dumps()))


def final_outputs():
    """Everything `snakemake` builds by default."""
    out = [
        "results/figures/fig04_page_sharing.png",
        "results/figures/fig04_page_sharing.pdf",
        "results/numbers/fig04.json",
    ]
    if config["dumps"]:
        out.append("results/sharing/user.json")
    return out
