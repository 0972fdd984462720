"""Library functions notebook users call, given hostile arguments (audit api5/api6).

Each bad argument is refused with a :class:`ConfigError` (a ``ValueError``) naming it, before any
work: ``HostSettings`` took NaN, infinite, negative and out-of-range values and answered 0 or 16
VMs; ``max_vms=4.5`` never ended the consolidation search; ``scenarios.run(sample_pages=10)``
ran without the override; ``hash_dump(vm=5)`` failed deep in the table writer.
"""

from __future__ import annotations

import contextlib
import signal

import numpy as np
import pandas as pd
import pytest

from pagecore.errors import ConfigError
from pagecore.experiments import host as H

NAN, INF = float("nan"), float("inf")


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail, not hang, when the code under test loops forever (no pytest-timeout here)."""

    def _expired(signum, frame):
        raise AssertionError(f"did not return within {seconds} s")

    old = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------ HostSettings
BAD_SETTINGS = [
    ({"memory_mb": [NAN]}, r"memory_mb: .*finite number > 0"),
    ({"memory_mb": [INF]}, r"memory_mb: .*finite number > 0"),
    ({"memory_mb": [512, -1]}, r"memory_mb: .*finite number > 0"),
    ({"memory_mb": [0]}, r"memory_mb: .*> 0"),
    ({"memory_mb": ["4G"]}, r"memory_mb: .*finite number"),
    ({"memory_mb": [True]}, r"memory_mb: .*finite number"),
    ({"memory_mb": "1024"}, r"memory_mb must be a host size"),
    ({"memory_mb": []}, r"memory_mb: give at least one host size"),
    ({"vm_overhead_mb": NAN}, r"vm_overhead_mb must be a finite number >= 0"),
    ({"vm_overhead_mb": -5}, r"vm_overhead_mb must be a finite number >= 0, got -5"),
    ({"vm_overhead_mb": INF}, r"vm_overhead_mb must be a finite number >= 0"),
    ({"hypervisor_mb": -100}, r"hypervisor_mb must be a finite number >= 0, got -100"),
    ({"hypervisor_mb": NAN}, r"hypervisor_mb must be a finite number >= 0"),
    ({"hypervisor_mb": "0"}, r"hypervisor_mb must be"),
    ({"balloon_max_pct": 500}, r"balloon_max_pct must be in \[0, 100\], got 500"),
    ({"balloon_max_pct": -5}, r"balloon_max_pct must be in \[0, 100\]"),
    ({"balloon_max_pct": NAN}, r"balloon_max_pct must be in \[0, 100\]"),
    ({"esx2002_hard_pct": 101}, r"esx2002_hard_pct must be in \[0, 100\]"),
    ({"esxi_memzip_max_pct": NAN}, r"esxi_memzip_max_pct must be in \[0, 100\]"),
    ({"esxi_hard_pct_of_minfree": -1}, r"esxi_hard_pct_of_minfree must be a finite number >= 0"),
    ({"esxi_high_pct_of_minfree": INF}, r"esxi_high_pct_of_minfree must be a finite number >= 0"),
    ({"esxi_high_pct_of_minfree": 10.0}, r"esxi_high_pct_of_minfree \(10\) is below esxi_hard_pct_of_minfree"),
    ({"tau": NAN}, r"tau must be in \[0, 1\)"),
    ({"tau": 1.0}, r"tau must be in \[0, 1\)"),
    ({"tau": True}, r"tau must be in \[0, 1\)"),
    ({"verify": "maybe"}, r"verify must be one of auto, yes, no, got 'maybe'"),
    ({"compress_algorithm": "lz5"}, r"compress_algorithm must be one of lzo-rle, lzo, lz4, zstd, got 'lz5'"),
    ({"replicas": "clones"}, r"replicas must be one of distinct, identical"),
    ({"kvm_thp": "yes"}, r"kvm_thp must be True or False"),
    ({"max_vms": 4.5}, r"max_vms must be a whole number of VMs, got 4.5"),
    ({"max_vms": 4.0}, r"max_vms must be a whole number of VMs"),
    ({"max_vms": True}, r"max_vms must be a whole number of VMs, got True"),
    ({"max_vms": NAN}, r"max_vms must be a whole number"),
    ({"max_vms": 0}, r"max_vms must be in \[1, 16,384\]"),
    ({"emulate_vms": 2.5}, r"emulate_vms must be a whole number of VMs"),
    ({"emulate_vms": 0}, r"emulate_vms must be in \[1, 16,384\]"),
    ({"seed": -1}, r"seed must be a whole number >= 0, got -1"),
    ({"seed": 1.5}, r"seed must be a whole number >= 0"),
    ({"seed": False}, r"seed must be a whole number >= 0"),
    ({"policies": "esxi"}, r"policies must be a list of policy names, got the string 'esxi'"),
    ({"activity": True}, r"activity: .*boolean"),
    ({"ksm": {"pages_to_scan": 2.5}}, r"host\.ksm\.pages_to_scan: expected a whole number, got 2\.5"),
    ({"ksm": {"pages_to_scan": NAN}}, r"host\.ksm\.pages_to_scan: expected a whole number"),
    ({"ksm": {"pages_to_scn": 100}}, r"host\.ksm: .*pages_to_scn"),
    ({"ksm": {"use_zero_pages": "no"}}, r"host\.ksm\.use_zero_pages: expected True or False"),
    ({"ksm": {"scan_us_per_page": NAN}}, r"host\.ksm\.scan_us_per_page: expected a finite number"),
    ({"ksm": {"advisor_target_scan_time": 0.0}}, r"host\.ksm\.advisor_target_scan_time: must be > 0"),
    (
        {"ksm": {"advisor_min_pages_to_scan": 900, "advisor_max_pages_to_scan": 800}},
        r"advisor_min_pages_to_scan <= advisor_max_pages_to_scan",
    ),
    ({"ksm": "fast"}, r"host: ksm must be a mapping"),
    ({"scanner": {"scan_rate_vm": NAN}}, r"host\.scanner\.scan_rate_vm: expected a finite number"),
    ({"scanner": {"scan_rate_vn": 5}}, r"host\.scanner: .*scan_rate_vn"),
    ({"reporting": {"delay_s": NAN}}, r"host\.reporting\.delay_s: expected a finite number"),
    ({"reporting": {"capacity": 2.5}}, r"host\.reporting\.capacity: expected a whole number"),
]


@pytest.mark.parametrize(("kw", "match"), BAD_SETTINGS, ids=[f"{next(iter(k))}={v!r}" for k, _ in BAD_SETTINGS
                                                            for v in [next(iter(k.values()))]])  # fmt: skip
def test_host_settings_refuse_bad_values(kw, match):
    """Each value the audit found accepted (0 or 16 VMs "fit", an endless search) is refused,
    naming the field, before any work."""
    with pytest.raises(ConfigError, match=match):
        H.HostSettings(**kw)
    assert issubclass(ConfigError, ValueError)  # what a notebook user catches


def test_host_settings_take_what_notebooks_pass():
    """Plain and numpy numbers, a single host size and the bounds themselves are accepted."""
    st = H.HostSettings(memory_mb=np.array([256, 512.5]), max_vms=np.int64(64), vm_overhead_mb=np.float32(4),
                        balloon_max_pct=100, esxi_memzip_max_pct=0, tau=0.0, seed=np.int32(3), emulate_vms=2,
                        ksm={"pages_to_scan": 500, "use_zero_pages": True}, scanner={"scan_rate_vm": 10},
                        reporting={"order": 8})  # fmt: skip
    assert st.memory_mb == [256.0, 512.5] and all(type(m) is float for m in st.memory_mb)
    assert st.max_vms == 64 and type(st.max_vms) is int
    assert H.HostSettings(memory_mb=1024).memory_mb == [1024.0]
    H.HostSettings()  # the defaults pass their own checks
    H.HostSettings(esxi_high_pct_of_minfree=32.0)  # high == hard: allowed


def _tiny_vms():
    frame = pd.DataFrame({"vm": "a", "gpfn": np.arange(256, dtype=np.uint64),
                          "hash": np.arange(256, dtype=np.uint64) % 7, "zero": np.zeros(256, bool)})  # fmt: skip
    return [H.HostVM(name="a", frame=frame, size_mb=1.0, source="a.raw")]


def test_max_vms_assigned_later_is_refused_not_an_endless_search():
    """``settings.max_vms = 4.5`` after construction: the binary search in `consolidation`
    looped for ever (mid = 4.0 kept fitting); host_report and consolidation check again."""
    vms = _tiny_vms()
    st = H.HostSettings(memory_mb=[64], policies=("esx2002",), verify="no", vm_overhead_mb=1)
    st.max_vms = 4.5
    with _deadline(60), pytest.raises(ConfigError, match=r"max_vms must be a whole number of VMs, got 4\.5"):
        H.host_report(vms, st)
    keys = [v.frame["hash"].to_numpy(np.uint64) for v in vms]
    with _deadline(60), pytest.raises(ConfigError, match=r"max_vms must be a whole number"):
        H.consolidation(vms, keys, "esx2002", 64.0, st)
    st.max_vms = 5
    with _deadline(60):
        n, _ = H.consolidation(vms, keys, "esx2002", 64.0, st)
    assert n == 5  # 5 VMs of 1 MiB + 1 MiB overhead fit in 64 MiB: the search ends at the bound
    st.vm_overhead_mb = float("nan")
    with pytest.raises(ConfigError, match="vm_overhead_mb"):
        H.host_report(vms, st)
    with pytest.raises(ConfigError, match="settings must be a HostSettings"):
        H.host_report(vms, {"memory_mb": [64]})


# ------------------------------------------------------------------ scenarios.run overrides
class _Scenario:
    name = "hostile"
    duration_s = 60.0
    tau_schedule_min = ()


@pytest.fixture(scope="module")
def sim_cfg():
    from pagecore.config import load_config

    return load_config()["sim"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sample_pages": 10}, r"sample_pages=: not a setting .*sampling=\{'sample_pages': \.\.\.\}"),
        ({"mechanism": {"sampling": "oracle"}}, r"mechanism=: not a setting .*did you mean mechanisms=\?"),
        ({"taus": 0.5}, r"taus=: .*did you mean tau=\?"),
        ({"overrides": {}}, r"overrides=: not a setting the simulator reads"),
        ({"zzz": 1}, r"zzz=: not a setting the simulator reads; overrides are tau, seed"),
        ({"sampling": 10}, r"sampling=: expected a mapping of sampling settings"),
    ],
)
def test_scenario_run_refuses_unknown_overrides(sim_cfg, kw, match):
    """An override keyword the simulator does not read was merged into a dict nobody read: the
    run gave the answer of no override. Refused before the trace is touched (it is None here)."""
    from pagecore.sim import scenarios

    with pytest.raises(ConfigError, match=match):
        scenarios.run(_Scenario, sim_cfg, None, **kw)
    with pytest.raises(ConfigError, match=match):
        scenarios.sim_params(sim_cfg, _Scenario, **kw)


def test_scenario_overrides_that_exist_still_apply(sim_cfg):
    from pagecore.sim import scenarios

    p = scenarios.sim_params(sim_cfg, _Scenario, sampling={"sample_pages": 10}, tau=0.5,
                             mechanisms={"sampling": "oracle"})  # fmt: skip
    assert p.settings["sampling"]["sample_pages"] == 10 and p.tau == 0.5
    assert p.mechanisms["sampling"] == "oracle"
    for key in scenarios.OVERRIDE_KEYS:  # every documented key is one the run reads
        scenarios.check_overrides(sim_cfg, {key: {} if key in scenarios.SECTION_KEYS else 1})


# ------------------------------------------------------------------ hash_dump vm
@pytest.fixture()
def raw_dump(tmp_path):
    dump = tmp_path / "g.raw"
    dump.write_bytes(bytes(4096) + bytes(range(256)) * 16 * 3)
    return dump


@pytest.mark.parametrize(("vm", "match"), [(5, r"vm: expected a VM name \(non-blank text\), got 5"),
                                           ("", r"got ''"), ("  ", r"got '  '"), (None, r"got None"),
                                           (b"web", r"got b'web'"),
                                           ("\udcff", r"not valid text")])  # fmt: skip
def test_hash_dump_refuses_a_bad_vm_name(raw_dump, tmp_path, vm, match):
    """``vm=5`` gave AttributeError from the writer, ``vm=""`` wrote a nameless VM's table; both
    refused before the dump is opened, and no output appears."""
    from pagecore.pages import hash_dump

    out = tmp_path / "g.parquet"
    with pytest.raises(ConfigError, match=match):
        hash_dump(raw_dump, out, vm, show_progress=False)
    assert not out.exists()


def test_hash_dump_takes_any_text_name_as_the_cli_does(raw_dump, tmp_path):
    """`pagecore hash --vm` takes any text; so does the library (spaces, non-ASCII)."""
    from pagecore.pages import hash_dump
    from pagecore.pages.tables import read_page_table

    out = tmp_path / "g.parquet"
    meta = hash_dump(raw_dump, out, "web 1 é", show_progress=False)
    assert meta["vm"] == "web 1 é" and meta["pages"] == 4
    assert set(read_page_table(out, ["vm"]).column("vm").to_pylist()) == {"web 1 é"}


def test_host_vm_list_with_a_numeric_name_hashes_its_dump(raw_dump):
    """A VM list's ``name: 5`` (an int in YAML) reached hash_dump as an int and failed there."""
    vm = H.load_vm({"dump": str(raw_dump), "name": 5}, 0)
    assert vm.name == "5" and set(vm.frame["vm"]) == {"5"}
