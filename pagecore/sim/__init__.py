"""pagecore.sim: ESX Server's memory manager and the guest models, replayed over access traces
(paper §3, §5, §6, §7).

Owns: the engine, one module per mechanism, the guest page cache and I/O remapping models.
Must not: read or write files, or import the experiments that drive it.

One module per mechanism, each behind a contract in :mod:`.contracts` and registered by its
config name:

==============  ===================  =========================================================
kind            default              module
==============  ===================  =========================================================
sampling        ``esx``              :mod:`.sampling` — active memory by sampling (§5.3)
allocation      ``idle_tax``         :mod:`.allocation` — shares + idle memory tax (§5.1–5.2)
admission       ``reservation``      :mod:`.admission` — min + overhead, swap max − min (§6.2)
states          ``esx``              :mod:`.states` — high/soft/hard/low with hysteresis (§6.3)
balloon         ``esx``              :mod:`.balloon` — polling driver, adaptive rate (§3.2)
paging          ``random``           :mod:`.paging` — random victims, share before swap (§3.3)
sharing         ``zero``             :mod:`.sharing` — background sharing: zero pages, or ``content``
                                     (hint and shared frames, copy-on-write; §4.2–4.3)
guest_cache     ``lru``              :mod:`.guestcache` — guest LRU cache, balloon vs host paging (§3, Fig. 2)
io_remap        ``cost_benefit``     :mod:`.ioremap` — hot I/O page remapping to low memory (§7)
==============  ===================  =========================================================

:mod:`.memory` holds per-VM page state, the content table and the Numba kernels;
:mod:`.contents` page contents per VM (from page tables or a content model per OS kind);
:mod:`.state` the host and VM state the mechanisms see; :mod:`.engine` steps time.
The simulator never reads or writes files: it takes a trace (frames or Arrow batches) and
returns DataFrames (:class:`SimResult`).
"""

from pagecore.sim import admission, allocation, balloon, guestcache, ioremap, paging, sampling, sharing, states  # noqa: F401  (register)
from pagecore.sim.contents import contents_from_page_tables, load_trace, synthetic_contents
from pagecore.sim.contracts import CONTRACTS, KINDS, REGISTRY, create, parameters, register
from pagecore.sim.engine import DEFAULT_MECHANISMS, PreparedTrace, SimParams, SimResult, Simulator, simulate
from pagecore.synth.specs import HostSpec, VMSpec

__all__ = [
    "CONTRACTS",
    "DEFAULT_MECHANISMS",
    "KINDS",
    "REGISTRY",
    "HostSpec",
    "PreparedTrace",
    "SimParams",
    "SimResult",
    "Simulator",
    "VMSpec",
    "contents_from_page_tables",
    "create",
    "load_trace",
    "parameters",
    "register",
    "simulate",
    "synthetic_contents",
]
