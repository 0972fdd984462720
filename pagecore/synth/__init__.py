"""Deterministic generators and importers: what stands in for the paper's machines.

Owns: the Figure 4 content model written as real raw dumps or hash-only tables
(:mod:`.fig04`), Figure 5 guests composed from a catalogue (:mod:`.guests`), access traces of
the paper's workloads (:mod:`.workloads`), the workload spec shared with the simulator
(:mod:`.specs`) and the Memory Buddies trace importer (:mod:`.memorybuddies`). Must not: know
policies or replay anything (the simulator consumes what this package writes), or read the
paper's results (parameters come from the config, each with its source).
"""

from pagecore.synth.fig04 import (
    FIG04_DEFAULTS,
    Fig04Model,
    calibrate_fig04,
    content_hash,
    write_hash_only_shard,
    write_hash_only_tables,
)
from pagecore.synth.guests import Guest, GuestSet, OSKind
from pagecore.synth.memorybuddies import import_trace
from pagecore.synth.specs import HostSpec, VMSpec
from pagecore.synth.workloads import (
    ACCESS_TRACE_SCHEMA,
    Scenario,
    VMWorkload,
    generate,
    read_trace,
    scenario,
    trace_frame,
    write_trace,
)

__all__ = [
    "ACCESS_TRACE_SCHEMA",
    "FIG04_DEFAULTS",
    "Fig04Model",
    "Guest",
    "GuestSet",
    "HostSpec",
    "OSKind",
    "Scenario",
    "VMSpec",
    "VMWorkload",
    "calibrate_fig04",
    "content_hash",
    "generate",
    "import_trace",
    "read_trace",
    "scenario",
    "trace_frame",
    "write_hash_only_shard",
    "write_hash_only_tables",
    "write_trace",
]
