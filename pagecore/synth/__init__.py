"""Deterministic generators and importers: what stands in for the paper's machines.

Owns: the Figure 4 content model written as real raw dumps or hash-only tables
(:mod:`.fig04`), Figure 5 guests composed from a catalogue (:mod:`.guests`), access traces of
the paper's workloads (:mod:`.workloads`), the workload spec shared with the simulator
(:mod:`.specs`) and the Memory Buddies trace importer (:mod:`.memorybuddies`). Must not: know
policies or replay anything (the simulator consumes what this package writes), or read the
paper's results (parameters come from the config, each with its source).
"""

from pagecore import lazy_exports

# Names are imported on first use (PEP 562), so a job that needs one generator does not import
# the others' dependencies: the workload traces import pandas and pyarrow.parquet, about 0.8 s of
# CPU in each of the ten Figure 4 guest jobs, which need only the content model.
#: public name -> module that defines it
_LAZY = {
    "ACCESS_TRACE_SCHEMA": "pagecore.synth.workloads",
    "FIG04_DEFAULTS": "pagecore.synth.fig04",
    "Fig04Model": "pagecore.synth.fig04",
    "Guest": "pagecore.synth.guests",
    "GuestSet": "pagecore.synth.guests",
    "HostSpec": "pagecore.synth.specs",
    "OSKind": "pagecore.synth.guests",
    "Scenario": "pagecore.synth.workloads",
    "VMSpec": "pagecore.synth.specs",
    "VMWorkload": "pagecore.synth.workloads",
    "calibrate_fig04": "pagecore.synth.fig04",
    "content_hash": "pagecore.synth.fig04",
    "generate": "pagecore.synth.workloads",
    "import_trace": "pagecore.synth.memorybuddies",
    "read_trace": "pagecore.synth.workloads",
    "scenario": "pagecore.synth.workloads",
    "trace_frame": "pagecore.synth.workloads",
    "write_hash_only_shard": "pagecore.synth.fig04",
    "write_hash_only_tables": "pagecore.synth.fig04",
    "write_trace": "pagecore.synth.workloads",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports("pagecore.synth", _LAZY, globals())
