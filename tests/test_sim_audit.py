"""Hand-worked checks of the replayed memory manager against the paper's rules (helper audit,
session 18): each test states the scenario and the numbers computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pagecore.errors import InputError
from pagecore.sim import HostSpec, SimParams, Simulator, VMSpec, simulate
from pagecore.sim import memory as m


def _writes_then_rereads(vm, mb, rereads):
    """``vm`` writes ``mb`` MB at 1 MB/s of VM time, then reads all of it ``rereads`` times at
    4 MB/s."""
    n = int(mb * 256)
    w = pd.DataFrame({"t": np.arange(n) / 256.0, "vm": vm, "gpfn": np.arange(n, dtype=np.uint64), "write": True})
    r = pd.DataFrame(
        {
            "t": mb + np.arange(rereads * n) / 1024.0,
            "vm": vm,
            "gpfn": np.tile(np.arange(n, dtype=np.uint64), rereads),
            "write": False,
        }
    )
    return pd.concat([w, r], ignore_index=True)


def test_swap_slots_are_returned_when_pages_come_back():
    """§3.3: swap holds the pages that are swapped out now. ``a`` (max 20 MB, min 18 MB, so
    admission reserves 2 MB of swap) fills a 20-MB host with private data; its balloon driver
    never loads (a booting guest), so the swap daemon pages it down to its target (20 MB − 7 %
    = 18.6 MB: 1.4 MB swapped). Then ``a`` reads all its data three times: every read of a
    swapped page swaps it in and the daemon pages another out. The host has 2 MB (512 slots)
    of swap. A swap-in frees its slot, so free swap + pages swapped out = 512 at the end, and
    the daemon writes far more than 512 pages over the run (about 8 MB). Before the fix a
    swapped-in page kept its slot: free swap fell with every page ever written and the daemon
    stopped writing after 512 pages (2 MB), with 49 pages out: the host sat in the low state
    with ``a`` blocked from 26 s to the end."""
    vms = [VMSpec("a", max_mb=20, min_mb=18, overhead_mb=0, balloon_driver_s=1e9)]
    p = SimParams(
        duration_s=60,
        seed=7,
        tau=0.0,
        record_s=10,
        check=True,
        settings={"sharing": {"rate_vm_pages_s": 0.0}, "paging": {"swap_rate_mb_s": 1.0}},
    )
    sim = Simulator(vms, HostSpec(system_mb=20, swap_mb=2, overhead_used_mb=0), p, _writes_then_rereads("a", 20, 3))
    res = sim.run()
    a = sim.by_name["a"].mem
    assert not res.vms["blocked"].iloc[-1] and res.host["state"].iloc[-1] == "high"
    assert sim.host.swap_pages == 512
    assert int(sim.host.swap_free[0]) + a.count(m.SWAPPED) == 512
    assert a.c[m.C_SWAP_IN] > 0 and a.c[m.C_SWAP_OUT] > 512


def _trace(t, vm="a"):
    return pd.DataFrame(
        {"t": np.asarray(t, float), "vm": vm, "gpfn": np.arange(len(t), dtype=np.uint64), "write": True}
    )


@pytest.mark.parametrize("wrap", ["frame", "batches", "prepared"])
@pytest.mark.parametrize(
    ("times", "match"),
    [
        ([5.0, 0.1], r"not sorted by time within VM 'a': t = 0\.1"),  # was replayed at 5 s, after the 5-s event
        ([np.nan, 1.0, 2.0], "event 0 has time t = nan"),  # the replay stopped at the NaN: nothing replayed
        ([0.5, np.nan, 2.0], "event 1 has time t = nan"),
        ([-3.0, 1.0], r"event 0 has time t = -3\.0"),
        ([1.0, np.inf], "event 1 has time t = inf"),
    ],
)
def test_trace_times_out_of_order_or_not_finite_are_refused(times, match, wrap):
    """A trace is sorted by each VM's time since power-on (>= 0, finite). Within one batch an
    event earlier than the one before it was replayed late without a word (``[5, 0.1]``: both
    at 5 s), and a NaN time stopped the VM's replay there (every later event silently lost)."""
    from pagecore.sim import PreparedTrace

    trace = _trace(times)
    trace = {"frame": trace, "batches": [trace], "prepared": None}[wrap]
    if wrap == "prepared":
        with pytest.raises(InputError, match=match):
            PreparedTrace(_trace(times))
        return
    p = SimParams(duration_s=8, record_s=1, settings={"sharing": {"rate_vm_pages_s": 0.0}})
    with pytest.raises(InputError, match=match):
        simulate([VMSpec("a", max_mb=4, overhead_mb=0)], HostSpec(system_mb=64), p, trace)


def test_trace_without_a_column_is_a_clear_error():
    p = SimParams(duration_s=2, record_s=1)
    trace = pd.DataFrame({"t": [0.0], "vm": "a", "gpfn": np.array([1], np.uint64)})
    with pytest.raises(InputError, match=r"lacks column\(s\) write"):
        simulate([VMSpec("a", max_mb=4, overhead_mb=0)], HostSpec(system_mb=64), p, trace)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"shares": -5}, "shares must be >= 0"),  # was taken as 0 shares: pinned at min
        ({"shares": NAN}, "shares must be >= 0"),
        ({"shares": INF}, "shares must be >= 0"),
        ({"overhead_mb": -8}, "overhead_mb must be >= 0"),  # reserved less than min
        ({"max_mb": INF}, "max_mb must be > 0 and finite"),  # an OverflowError deep in the engine
        ({"start_s": NAN}, "start_s must be >= 0"),  # the VM never powered on, silently
        ({"start_s": -5}, "start_s must be >= 0"),
        ({"start_s": 2, "stop_s": 1}, "stop_s must be after start_s"),  # ran one step anyway
        ({"stop_s": NAN}, "stop_s must be after start_s"),  # never stopped
        ({"balloon_driver_s": NAN}, "balloon_driver_s must be >= 0"),  # the driver never loaded
    ],
)
def test_vm_spec_refuses_careless_values(kw, match):
    from pagecore.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        VMSpec("a", **{"max_mb": 4, **kw})


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"system_mb": NAN}, "system_mb must be > 0"),
        ({"esx_mb": -4}, "esx_mb must be >= 0"),  # created 4 MB of machine memory
        ({"swap_mb": -1}, "swap_mb must be >= 0"),  # every VM refused for want of swap
        ({"overhead_used_mb": -4}, "overhead_used_mb must be >= 0"),  # each power-on created memory
    ],
)
def test_host_spec_refuses_careless_values(kw, match):
    from pagecore.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        HostSpec(**{"system_mb": 64, **kw})


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tau": 1.0}, r"tax rate must be in \[0, 1\)"),  # k = 1/(1 − τ) undefined
        ({"tau": NAN}, r"tax rate must be in \[0, 1\)"),
        ({"tau_schedule": [(NAN, 0.5), (10, 0.75)]}, "tau_schedule entries"),  # held back every later change
        ({"tau_schedule": [(10, 1.0)]}, "tau_schedule entries"),  # failed at 10 s, deep in the run
        ({"duration_s": -1}, "duration_s must be >= 0"),  # an empty timeline
        ({"duration_s": NAN}, "duration_s must be >= 0"),
        ({"record_s": 0}, "record_s must be > 0"),  # a row every step
        ({"record_s": -1}, "record_s must be > 0"),
        ({"rebalance_s": -1}, "rebalance_s must be > 0"),  # a rebalance every step
        ({"target_pool": "all"}, "target_pool must be"),
    ],
)
def test_sim_params_refuse_careless_values(kw, match):
    from pagecore.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        SimParams(**{"duration_s": 10, **kw})


def test_empty_vm_list_and_record_interval_off_the_step_are_refused():
    """No VMs gave a host timeline of an idle host; ``record_s = 0.3`` with 1-s steps gave a row
    every 1 s (``round(0.3)`` clipped to one step), ``2.5`` a row every 2 s."""
    from pagecore.errors import ConfigError

    with pytest.raises(ConfigError, match="no VMs to simulate"):
        simulate([], HostSpec(system_mb=64), SimParams(duration_s=2))
    for rec, every in ((0.3, "1"), (2.5, "2")):
        with pytest.raises(ConfigError, match=f"record_s = {rec} s is not a whole number.*a row every {every} s"):
            simulate([VMSpec("a", max_mb=4)], HostSpec(system_mb=64), SimParams(duration_s=2, record_s=rec))
    # the rebalance period likewise: the sensitivity sweep's 7.5 and 22.5 s ran as 8 and 22 s
    for reb, every in ((7.5, "8"), (22.5, "22")):
        match = f"rebalance_s = {reb} s is not a whole number.*rebalanced every {every} s"
        with pytest.raises(ConfigError, match=match):
            simulate([VMSpec("a", max_mb=4)], HostSpec(system_mb=64), SimParams(duration_s=2, rebalance_s=reb))


@pytest.mark.parametrize(
    ("kind", "name", "kw"),
    [
        ("sampling", "esx", {"period_s": NAN}),  # no period ever ended: the estimate never moved
        ("sampling", "esx", {"initial_fraction": 2.0}),  # an estimate of twice the VM
        ("sampling", "oracle", {"period_s": NAN}),
        ("states", "esx", {"hysteresis_pct": NAN}),  # a state below high was never left
        ("states", "esx", {"hysteresis_pct": -1.0}),
        ("states", "esx", {"high_pct": 150.0}),  # targets below every min
        ("balloon", "esx", {"poll_s": 0.0}),  # ZeroDivisionError in the engine
        ("balloon", "esx", {"poll_s": -1.0}),  # no step at all: an empty timeline
        ("paging", "random", {"swap_rate_mb_s": -1.0}),  # paging off without a word
        ("paging", "random", {"swap_rate_mb_s": NAN}),
        ("sharing", "zero", {"rate_vm_pages_s": NAN}),
        ("sharing", "content", {"rate_total_pages_s": -1.0}),
        ("allocation", "idle_tax", {"max_transfers": -1}),
        ("guest_cache", "lru", {"kernel_bytes_per_page": -1000.0}),  # ballooned cache > configured cache
        ("guest_cache", "lru", {"fixed_mb": -5.0}),
        ("guest_cache", "lru", {"warmup_fraction": 2.0}),
    ],
)
def test_mechanism_parameters_refuse_careless_values(kind, name, kw):
    from pagecore.sim import create

    with pytest.raises(ValueError, match=next(iter(kw))):
        create(kind, name, kw)


@pytest.mark.parametrize(
    ("gpfn", "match"),
    [(np.array([1.5]), r"gpfn not an integer \(float64\)"), (np.array([-1]), r"gpfn -1 \(int64\)")],
)
def test_trace_gpfn_must_be_a_non_negative_integer(gpfn, match):
    """A float gpfn 1.5 was truncated to frame 1 without a word; -1 was refused as gpfn
    18446744073709551615."""
    p = SimParams(duration_s=2, record_s=1)
    trace = pd.DataFrame({"t": [0.0], "vm": "a", "gpfn": gpfn, "write": [True]})
    with pytest.raises(InputError, match=match):
        simulate([VMSpec("a", max_mb=4, overhead_mb=0)], HostSpec(system_mb=64), p, trace)


@pytest.mark.parametrize(("balloon_in_high", "balloon_mb"), [(None, 0.0), (False, 0.0), (True, 53.5)])
def test_no_reclamation_in_the_high_state_by_default(balloon_in_high, balloon_mb):
    """§6.3's table: in the high state "free memory is sufficient and no reclamation is
    performed". Two 100-MB VMs, equal shares, τ = 0, on a 100-MB host: targets (100 − 7) / 2 =
    46.5 MB each. ``a`` writes 60 MB (10 MB/s), 13.5 MB above its target, but free memory stays
    at 40 % (high), so by default nothing inflates; ``balloon_in_high=True`` (the
    figure-informed reading) balloons it down to 46.5 MB: a balloon of 40 + 13.5 = 53.5 MB, as
    the guest first gives up its 40 MB of never-touched (free, unbacked) pages (§3.2: the
    guest's own policy), which reclaim nothing. The library default was True while the
    workflow config (false) and its README say false."""
    from pagecore.sim.scenarios import sim_params

    n = 60 * 256
    trace = pd.DataFrame({"t": np.arange(n) / 2560.0, "vm": "a", "gpfn": np.arange(n, dtype=np.uint64), "write": True})
    kw = {} if balloon_in_high is None else {"balloon_in_high": balloon_in_high}
    p = SimParams(duration_s=20, tau=0.0, record_s=1, check=True, settings={"sharing": {"rate_vm_pages_s": 0.0}}, **kw)
    vms = [VMSpec("a", max_mb=100, overhead_mb=0), VMSpec("b", max_mb=100, overhead_mb=0)]
    res = simulate(vms, HostSpec(system_mb=100, overhead_used_mb=0), p, trace)
    a = res.vms[res.vms["vm"] == "a"].iloc[-1]
    assert set(res.host["state"]) == {"high"}
    assert a["target"] == 46.5 and a["balloon"] == balloon_mb
    assert a["alloc"] == (60.0 if balloon_mb == 0 else 46.5)

    class _Sc:
        name, duration_s = "x", 1.0

    assert sim_params({}, _Sc()).balloon_in_high is False


def test_a_vm_starts_only_once_its_overhead_memory_is_free():
    """§6.2: admission reserves min + overhead, but the memory may be held by other VMs' pages
    above their reservations; it must be reclaimed before the VM runs, and free memory never
    goes below zero. A 64-MB host, 8 MB of overhead in use per VM. ``a`` (64 MB, min 0, driver
    never loads) writes 62 MB at 2 MB/s; the swap daemon (1 MB/s) holds it at its target
    64 − 8 − ceil(7 % of 64 MB) = 51.52 MB, leaving 4.48 MB free (7 %, high). ``b`` (16 MB,
    8-MB reservation) is admitted at 40 s and takes the 4.48 MB free; the host drops to low, ``a``
    (new target 43.52 MB) is paged 1 MB per step, and ``b`` takes it: 5.48, 6.48, 7.48, 8 MB, so
    it powers on at 44 s. Before the fix ``b`` powered on at 40 s with free memory at −3.5 MB."""
    n = 62 * 256
    trace = pd.DataFrame({"t": np.arange(n) / 512.0, "vm": "a", "gpfn": np.arange(n, dtype=np.uint64), "write": True})
    vms = [
        VMSpec("a", max_mb=64, overhead_mb=0, balloon_driver_s=1e9),
        VMSpec("b", max_mb=16, overhead_mb=8, start_s=40),
    ]
    p = SimParams(
        duration_s=50,
        record_s=1,
        tau=0.0,
        check=True,
        settings={"sharing": {"rate_vm_pages_s": 0.0}, "paging": {"swap_rate_mb_s": 1.0}},
    )
    res = simulate(vms, HostSpec(system_mb=64, swap_mb=1024, overhead_used_mb=8), p, trace)
    h = res.host.set_index("t")
    assert (h["free"] >= 0).all()
    assert h.loc[40.0, "free"] == pytest.approx(64 - 8 - 51.52, abs=0.01)
    ev = res.events[res.events["vm"] == "b"]
    assert ev[["t", "event"]].values.tolist() == [[40.0, "power_on_wait"], [44.0, "power_on"]]
    assert ev["detail"].iloc[0] == "needs 8.0 MB of overhead in use, found 4.5 MB free"
    assert h.loc[44.0, "overhead"] == pytest.approx(8 + 7.48, abs=0.01) and h.loc[45.0, "overhead"] == 16.0


def test_two_tau_changes_at_one_time_the_later_listed_holds():
    """A τ schedule [(2 s, 0.75), (2 s, 0.0)] ends at τ = 0 (the later entry), as it reads; it
    was sorted by (time, τ), so 0.75 was applied last and held."""
    p = SimParams(duration_s=4, record_s=1, tau_schedule=[(2, 0.75), (2, 0.0)])
    res = simulate([VMSpec("a", max_mb=4)], HostSpec(system_mb=64), p)
    assert res.events[res.events["event"] == "tau"]["detail"].tolist() == ["0.75", "0"]
    assert res.host["tau"].iloc[-1] == 0.0
