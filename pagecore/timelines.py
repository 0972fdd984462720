"""Arrow schemas and Parquet read/write for the simulator's outputs (DESIGN.md "Timeline").

:func:`pagecore.sim.simulate` returns DataFrames; workflow scripts store them with
:func:`write_timeline` and read them back with :func:`read_timeline`, which checks columns
and types. Memory quantities are MB (= MiB = pages · 4096 / 2²⁰, exact to 1/256 MB); each
field's unit is also in its Arrow field metadata (``unit``), and the file's provenance in the
schema metadata (``pagecore``).

VM timeline (``kind="vm"``): one row per running VM every ``record_s`` of host time
-------------------------------------------------------------------------------------
==================  ====================  =====================================================
column              type                  meaning
==================  ====================  =====================================================
t                   float64               host time, s
vm                  dictionary<string>    VM name
vm_time             float64               the VM's execution time since power-on, s
alloc               float64               machine-backed frames, shared included (paper: Alloc)
target              float64               allocation target (§5–§6.3)
active_true         float64               distinct frames touched in the last sampling period
active_est          float64               the estimate: max of the three averages (§5.3)
active_slow         float64               slow moving average × VM size
active_fast         float64               fast moving average × VM size
active_fast_cur     float64               fast average including the current period
active_sample       float64               the last period's raw sample, f = t/n, × VM size
balloon             float64               frames held by the balloon driver (§3.2)
balloon_target      float64               balloon size the driver is steered toward
swapped             float64               frames on ESX swap (§3.3)
shared              float64               frames mapped copy-on-write to a shared page: the zero page,
                                          or (content sharing) a shared content's page
zero                float64               frames whose contents are zero (shared or not)
private             float64               frames with a private machine page and data
blocked             bool                  VM blocked in the low state (§6.3)
swap_out            float64               cumulative MB written to ESX swap
swap_in             float64               cumulative MB swapped back in on touch
share_before_swap   float64               cumulative pages shared by the swap daemon instead of written
                                          (zero pages; with content sharing, any content)
scan_shared         float64               cumulative machine pages the scanner reclaimed by sharing
guest_faults        float64               cumulative MB of data the guest re-homed
guest_pageouts      float64               cumulative MB of in-use data the guest evicted
cow_breaks          float64               cumulative MB of shared frames a write made private again
                                          (copy-on-write, §4.1; a guest re-homing data into a
                                          shared free frame included)
balloon_shared      float64               cumulative MB of shared frames (zero page or a shared
                                          content) the guest gave its balloon: ESX reclaimed no
                                          machine page for them (§3.2: the guest picks the pages)
events              int64                 cumulative trace events replayed
==================  ====================  =====================================================

Host timeline (``kind="host"``): one row every ``record_s``
-----------------------------------------------------------
``t`` (float64 s), ``free`` (MB of free machine memory), ``state`` (dictionary: high, soft,
hard, low), ``tau`` (float64), ``vm_machine`` (MB held by VMs alone), ``overhead`` (MB of VM
overhead in use), ``esx`` (MB), ``system`` (MB), ``shared_machine`` (MB of machine pages backing
shared non-zero contents, one page per content; 0 unless ``sim.mechanisms.sharing: content``).
Conservation: ``system = free + vm_machine + overhead + esx + shared_machine`` in every row.

Event log (``kind="events"``)
-----------------------------
``t`` (float64 s), ``vm`` (string, empty for host events), ``event`` (power_on, refused,
power_on_wait, power_off, tau, state, block, unblock), ``detail`` (string: the reason for a refusal, the
state transition, the new τ).
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pagecore._util import atomic_path
from pagecore.errors import InputError, not_a_file

_D = pa.dictionary(pa.int32(), pa.string())
_F = pa.float64()

VM_TIMELINE_SCHEMA = pa.schema(
    [pa.field("t", _F), pa.field("vm", _D), pa.field("vm_time", _F)]
    + [
        pa.field(c, _F)
        for c in (
            "alloc",
            "target",
            "active_true",
            "active_est",
            "active_slow",
            "active_fast",
            "active_fast_cur",
            "active_sample",
            "balloon",
            "balloon_target",
            "swapped",
            "shared",
            "zero",
            "private",
        )
    ]
    + [pa.field("blocked", pa.bool_())]
    + [
        pa.field(c, _F)
        for c in (
            "swap_out",
            "swap_in",
            "share_before_swap",
            "scan_shared",
            "guest_faults",
            "guest_pageouts",
            "cow_breaks",
            "balloon_shared",
        )
    ]
    + [pa.field("events", pa.int64())]
)

HOST_TIMELINE_SCHEMA = pa.schema(
    [
        pa.field("t", _F),
        pa.field("free", _F),
        pa.field("state", _D),
        pa.field("tau", _F),
        pa.field("vm_machine", _F),
        pa.field("overhead", _F),
        pa.field("esx", _F),
        pa.field("system", _F),
        pa.field("shared_machine", _F),
    ]
)

EVENTS_SCHEMA = pa.schema(
    [pa.field("t", _F), pa.field("vm", pa.string()), pa.field("event", pa.string()), pa.field("detail", pa.string())]
)

#: Units of the columns that have one, stored in each Arrow field's metadata (``unit``).
#: MiB = 2^20 bytes, what the paper (and these column docs) call MB.
UNITS = {
    "t": "s",
    "vm_time": "s",
    "tau": "fraction of idle memory",
    "events": "trace events",
    **{
        c: "MiB"
        for c in (
            "alloc", "target", "active_true", "active_est", "active_slow", "active_fast", "active_fast_cur",
            "active_sample", "balloon", "balloon_target", "swapped", "shared", "zero", "private", "swap_out",
            "swap_in", "share_before_swap", "scan_shared", "guest_faults", "guest_pageouts", "cow_breaks",
            "balloon_shared", "free", "vm_machine",
            "overhead", "esx", "system", "shared_machine",
        )
    },
}  # fmt: skip


def _with_units(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_metadata({"unit": UNITS[f.name]}) if f.name in UNITS else f for f in schema])


VM_TIMELINE_SCHEMA = _with_units(VM_TIMELINE_SCHEMA)
HOST_TIMELINE_SCHEMA = _with_units(HOST_TIMELINE_SCHEMA)
EVENTS_SCHEMA = _with_units(EVENTS_SCHEMA)
SCHEMAS = {"vm": VM_TIMELINE_SCHEMA, "host": HOST_TIMELINE_SCHEMA, "events": EVENTS_SCHEMA}
META_KEY = b"pagecore"
#: Columns added after the first release, with the value that holds where they are absent
#: (timelines written before content sharing have no shared content pages; those written before
#: the sharing-loss counters do not know them: NaN).
OPTIONAL = {"host": {"shared_machine": 0.0}, "vm": {"cow_breaks": float("nan"), "balloon_shared": float("nan")}}


def to_table(df: pd.DataFrame, kind: str) -> pa.Table:
    """A DataFrame from :class:`pagecore.sim.SimResult` as an Arrow table of ``kind``."""
    schema = SCHEMAS[kind]
    fill = {c: v for c, v in OPTIONAL.get(kind, {}).items() if c not in df.columns}
    if fill:
        df = df.assign(**fill)
    missing = [f.name for f in schema if f.name not in df.columns]
    if missing:
        raise ValueError(f"{kind} timeline lacks columns {missing}")
    return pa.Table.from_pandas(df[[f.name for f in schema]], schema=schema, preserve_index=False)


def write_timeline(path: str | os.PathLike, df: pd.DataFrame, kind: str, provenance: dict | None = None) -> None:
    """Write a timeline or event log as Parquet (atomically).

    The schema metadata (key ``pagecore``, JSON) records ``kind``, ``pagecore_version`` and
    ``provenance`` (e.g. the scenario, the trace it replayed, the simulator settings);
    :func:`read_timeline` returns it in ``DataFrame.attrs["pagecore"]``.
    """
    from pagecore import __version__

    meta = {"kind": kind, "pagecore_version": __version__, **(provenance or {})}
    table = to_table(df, kind)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta, sort_keys=True, default=str)}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_timeline(path: str | os.PathLike, kind: str) -> pd.DataFrame:
    """Read a timeline written by :func:`write_timeline`, checking its columns and types."""
    if not os.path.isfile(path):
        raise not_a_file(path, f"{kind} timeline", hint="run the simulation rule first")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet timeline ({exc})") from None
    for f in SCHEMAS[kind]:
        if f.name not in table.column_names and f.name in OPTIONAL.get(kind, {}):
            table = table.append_column(f, pa.array([OPTIONAL[kind][f.name]] * table.num_rows, f.type))
        if f.name not in table.column_names:
            raise InputError(path, f"missing column {f.name!r}", expected=f"a {kind} timeline")
        got = table.schema.field(f.name).type
        ok = got == f.type or (
            pa.types.is_dictionary(f.type) and (pa.types.is_dictionary(got) or pa.types.is_string(got))
        )
        if not ok:
            raise InputError(path, f"column {f.name!r} has type {got}", expected=str(f.type))
    meta = (table.schema.metadata or {}).get(META_KEY)
    df = table.to_pandas()
    for c in ("vm", "state"):
        if c in df and isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
    df.attrs["pagecore"] = json.loads(meta) if meta else {}
    return df
