"""The paper's own numbers — for overlays and comparison only.

C. A. Waldspurger, "Memory Resource Management in VMware ESX Server", OSDI '02. Values come
from the project's specification of the paper (``shared/reference/esx2002.md``): **TEXT**
numbers are stated in the paper; **GRAPH** numbers were read off the vector figures (about
±0.5 % of the axis range). This module is the only place they are typed in. Nothing in
:mod:`pagecore.sim` or :mod:`pagecore.synth.fig04` may import it: models take parameters and their
outputs are compared against these numbers afterwards.
"""

from __future__ import annotations

import pandas as pd

CITATION = (
    'C. A. Waldspurger. "Memory Resource Management in VMware ESX Server." '
    "Proc. 5th Symposium on Operating Systems Design and Implementation (OSDI '02), 2002."
)

# --------------------------------------------------------------------------- Figure 2 (GRAPH)
#: Figure 2, dbench throughput (MB/s) by VM size (MB): configured vs ballooned from 256 MB.
FIG02 = pd.DataFrame(
    {
        "vm_mb": [128, 160, 192, 224, 256],
        "configured_mbps": [11.47, 13.70, 15.63, 17.04, 17.80],
        "ballooned_mbps": [10.96, 13.46, 15.29, 16.80, float("nan")],
    }
)
#: TEXT: the workload, dbench simulating a file server with 40 clients.
FIG02_SETUP = {"dbench_clients": 40}
#: TEXT: ballooning overhead 4.4 % at 128 MB down to 1.4 % at 224 MB.
FIG02_TEXT = {"overhead_pct_128": 4.4, "overhead_pct_224": 1.4}

# --------------------------------------------------------------------------- Figure 4 (GRAPH)
#: Figure 4 top and bottom graphs, digitized: MB and % of VM memory by number of VMs.
FIG04 = pd.DataFrame(
    {
        "vms": list(range(1, 11)),
        "vm_mb": [38.8, 78.1, 117.2, 156.6, 195.6, 234.5, 273.4, 312.6, 351.9, 390.8],
        "shared_mb": [6.6, 47.7, 76.0, 103.3, 130.2, 156.7, 181.7, 210.6, 235.6, 262.0],
        "reclaimed_mb": [4.9, 28.4, 53.8, 79.9, 106.2, 130.9, 155.6, 183.2, 208.0, 234.1],
        "zero_mb": [2.7, 5.2, 8.0, 10.3, 13.0, 15.6, 17.2, 19.9, 22.0, 24.4],
        "shared_pct": [16.9, 61.1, 64.8, 66.0, 66.6, 66.8, 66.4, 67.4, 67.0, 67.0],
        "reclaimed_pct": [12.6, 36.4, 45.9, 51.0, 54.3, 55.8, 56.9, 58.6, 59.1, 59.9],
        "shared_minus_reclaimed_pct": [4.3, 24.7, 19.0, 14.9, 12.3, 11.0, 9.6, 8.8, 7.9, 7.1],
    }
)
#: TEXT: Figure 4 setup and claims.
FIG04_TEXT = {
    "vm_mb_configured": 40,
    "max_vms": 10,
    "shared_pct_asymptote": 67.0,  # "sharing approaches 67 %"
    "reclaimed_pct_asymptote": 60.0,  # "nearly 60 % of all VM memory is reclaimed"
    "reclaimed_mb_1vm": 5.0,  # "nearly 5 MB"
    "zero_share_of_reclaimed_1vm": 0.55,  # "about 55 % of it from copies of the zero page"
}

# --------------------------------------------------------------------------- Figure 5 (TEXT)
#: Figure 5, real-world page sharing (a table printed as a figure).
FIG05 = pd.DataFrame(
    {
        "workload": ["A", "B", "C"],
        "guests": ["10 WinNT", "9 Linux", "5 Linux"],
        "vms": [10, 9, 5],
        "total_mb": [2048, 1846, 1658],
        "shared_mb": [880, 539, 165],
        "shared_pct": [42.9, 29.2, 10.0],
        "reclaimed_mb": [673, 345, 120],
        "reclaimed_pct": [32.9, 18.7, 7.2],
        "zero_reclaimed_mb": [float("nan"), 70.0, 25.0],
    }
)

# --------------------------------------------------------------------------- Figure 6 (GRAPH)
#: Figure 6 toucher schedule: (from_min, to_min, MB touched).
FIG06_TOUCHER = pd.DataFrame(
    [
        (0.0, 8.5, 0),
        (8.5, 10.5, 50),
        (10.5, 12.5, 150),
        (12.5, 14.5, 200),
        (14.5, 17.6, 250),
        (17.6, 19.5, 200),
        (19.5, 21.5, 100),
        (21.5, 23.5, 200),
        (23.5, 27.5, 150),
        (27.5, 38.5, 0),
        (38.5, 40.5, 50),
        (40.5, 42.5, 150),
        (42.5, 44.5, 200),
        (44.5, 45.0, 250),
    ],
    columns=["from_min", "to_min", "mb"],
)
FIG06 = {
    "baseline_mb": (6.0, 16.0),  # estimate while the toucher is idle
    "background_text_mb": (10.0, 20.0),  # TEXT: "10-20 MB" of background activity
    "peak_estimate_mb": 285.0,  # around 16–17 min, touching 250 MB
    "zpt_spike_mb": 224.0,  # at 27.6–28.5 min
    "zpt_spike_min": (27.6, 28.5),
    # slow average after the spike, steps 0.5 min apart starting 28.5 min
    "slow_decay_mb": [141, 109, 83, 61, 48, 38, 29, 26, 22, 16, 13],
    "slow_decay_from_min": 28.5,  # GRAPH: the first slow-average point after the spike
    "slow_decay_step_min": 0.5,  # GRAPH: "steps about 0.5 min (30 s) apart"
    "sample_pages": 100,  # TEXT
    "sample_period_s": 30.0,  # TEXT
}

# --------------------------------------------------------------------------- Figure 7 (GRAPH)
FIG07 = {
    "system_mb": 512.0,  # TEXT: the host's memory
    "available_mb": 360.0,  # TEXT: about 360 MB available for VMs
    "vm_max_mb": 256.0,  # TEXT
    "tau_change_min": 30.9,  # GRAPH
    "data_end_min": 65.0,  # GRAPH: "data runs to about 65" min
    "vm1_boot_min": 1.6,  # GRAPH: "VM1 boots" 0-1.6 min (then its usage spikes as Windows zeroes memory)
    "vm2_start_min": 5.2,  # GRAPH: VM2 (dbench) starts "a few minutes later"
    "alloc_tau0_mb": 179.0,  # TEXT: both VMs at tau = 0
    "tau0_steady_from_min": 8.7,  # GRAPH: both allocations steady at 179 MB from about 8.7 min
    "tau75_steady_from_min": 33.0,  # GRAPH: the tau = 75 % means are over 33-65 min
    "alloc_idle_tau75_mb": 101.3,  # GRAPH mean, VM1 (idle) after tau = 75 %
    "alloc_active_tau75_mb": 242.5,  # GRAPH mean, VM2 (dbench) after tau = 75 %
    "usage_idle_tau0_mb": 9.5,
    "usage_active_tau0_mb": 171.0,
    "usage_idle_tau75_mb": 9.9,
    "usage_active_tau75_mb": 198.0,
    "throughput_gain_pct_min": 30.0,  # TEXT: "over 30 %"
}

# --------------------------------------------------------------------------- Figure 8 (GRAPH)
#: Figure 8 VMs (TEXT): max and min MB; shares proportional to max.
FIG08_VMS = pd.DataFrame(
    {
        "vm": ["exchange", "exchange_client", "citrix", "citrix_client", "sql"],
        "guest": [
            "Windows 2000 Server",
            "Windows 2000 Professional",
            "Windows 2000 Advanced Server",
            "Windows 2000 Server",
            "Windows 2000 Advanced Server",
        ],
        "max_mb": [256, 256, 320, 320, 320],
        "min_mb": [128, 128, 160, 160, 160],
    }
)
FIG08_TEXT = {
    "host_mb": 1024,  # "only 1 GB is available for VMs"
    "overhead_mb": 160,
    "zero_pages_reclaimed_mb": 325,
    "paged_nonzero_mb": 35,
    "swapped_rest_max_mb": 20,
    "alloc_peak_mb": 1200,  # "approaches 1200 MB"
    "sharing_saved_mb": 200,
    "sql_min_mb": 160,
}
_T = [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90]
_NA = float("nan")
#: Figure 8 panels (b)-(d) at 5-minute marks (GRAPH; "0" read at 0.3 min), MB.
FIG08 = pd.DataFrame(
    {
        "t_min": _T,
        "total_alloc": [
            50,
            1107,
            1056,
            1145,
            902,
            919,
            930,
            925,
            953,
            975,
            1003,
            1023,
            1025,
            1030,
            991,
            1022,
            1024,
            1018,
            1015,
        ],
        "total_active": [44, 769, 282, 139, 459, 365, 349, 366, 384, 305, 291, 263, 306, 321, 398, 374, 349, 330, 290],
        "total_balloon": [0, 343, 399, 310, 547, 450, 525, 529, 404, 384, 359, 341, 345, 344, 459, 433, 434, 438, 391],
        "total_shared": [0, 254, 236, 335, 104, 109, 134, 140, 169, 200, 221, 240, 244, 247, 225, 230, 232, 233, 235],
        "citrix_alloc": [27, 164, 187, 199, 195, 235, 246, 254, 284, 259, 264, 271, 287, 286, 258, 271, 291, 280, 289],
        "citrix_active": [25, 94, 52, 24, 96, 130, 133, 150, 188, 127, 125, 123, 152, 150, 144, 148, 169, 146, 150],
        "citrix_balloon": [0, 152, 129, 117, 121, 83, 73, 64, 35, 59, 55, 48, 32, 33, 61, 48, 28, 39, 30],
        "citrix_shared": [0, 7, 16, 28, 19, 22, 27, 31, 34, 38, 41, 45, 47, 49, 43, 45, 46, 48, 48],
        "sql_alloc": [_NA, 317, 230, 252, 204, 171, 167, 160, 160, 160, 167, 170, 168, 184, 213, 208, 192, 178, 171],
        "sql_active": [_NA, 279, 51, 23, 119, 50, 38, 23, 17, 15, 17, 12, 17, 66, 104, 96, 64, 41, 23],
        "sql_balloon": [_NA, 0, 88, 66, 114, 147, 151, 158, 158, 158, 151, 148, 150, 135, 104, 108, 127, 141, 148],
        "sql_shared": [_NA, 91, 58, 81, 16, 15, 14, 14, 15, 16, 17, 18, 19, 17, 11, 11, 11, 11, 11],
    }
)
#: Figure 8 (GRAPH): the minute the panels' "0" column is read at.
FIG08_ZERO_READ_MIN = 0.3
#: Figure 8 (d) (GRAPH): minutes over which SQL Server's allocation is flat at its 160-MB min.
FIG08_SQL_IDLE_MIN = (22.0, 45.0)
#: Figure 8 (a) state timeline (GRAPH): (from_min, to_min, state); flicker simplified to its
#: dominant state.
FIG08_STATES = pd.DataFrame(
    [
        (0.0, 2.3, "high"),
        (2.36, 3.5, "soft"),
        (3.5, 16.9, "high"),
        (16.95, 17.2, "hard"),
        (17.2, 18.7, "soft"),
        (18.7, 30.2, "high"),
        (30.2, 30.4, "soft"),
        (30.4, 90.0, "high"),
    ],
    columns=["from_min", "to_min", "state"],
)

# ----------------------------------------------------------------------- parameters (TEXT)
#: Mechanism parameters the paper states (§3–§6); defaults for pagecore.sim live in its own
#: config, these are for documentation and comparison.
PARAMETERS = {
    "tax_rate": 0.75,
    "sample_pages": 100,
    "sample_period_s": 30.0,
    "balloon_poll_s": 1.0,
    "overhead_mb": 32,
    "free_thresholds_pct": {"high": 6, "soft": 4, "hard": 2, "low": 1},
    "hash_bits": 64,
    "frame_bytes": 16,
    "sharing_overhead_pct_max": 0.5,
}

# ------------------------------------------------------------- Figures 6-8, more (pagecore.sim)
#: Figure 7 [INFER]: at τ = 75 % the idle and the active VM's idle-adjusted prices ρ agree to
#: about 0.1 % (reference, Figure 7 check), so their ratio is 1.
FIG07_INFER = {"rho_idle_over_active_tau75": 1.0}
#: Figure 8 extremes [GRAPH]: (MB, minute). The SQL long-query values are "about".
FIG08_EXTREMES = {
    "total_alloc_max": (1194.0, 2.4),
    "total_alloc_min": (832.0, 23.2),
    "total_active_max": (1030.0, 2.4),
    "total_shared_max": (345.0, 3.3),
    "total_shared_min": (95.0, 21.0),
    "total_balloon_max": (577.0, 21.4),
    "sql_query_active_peak": (260.0, 68.8),
    "sql_query_alloc_peak": (260.0, 69.0),
    "sql_query_balloon_min": (0.0, 68.3),
    "citrix_alloc_min": (163.0, 5.0),
}
