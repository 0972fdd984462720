"""Config checks that need the models themselves, run by the Snakefile right after
:func:`pagecore.config.validate_config` (a base module, which may not import the stages): each
value is given to the code that will use it, so a value that code refuses is refused here, in one
line naming the key, before any job runs, and the rule lives in one place.

- every workload scenario's VMs are built (no trace): a VM that cannot be (``boot.os_mb`` above
  ``max_mb``, a foreground that does not fit above it) is refused;
- ``host.activity`` goes through :func:`pagecore.experiments.host.parse_activity`;
- every guest size of ``reclaim`` goes through
  :meth:`pagecore.sim.guestcache.LRUGuest.cache_pages`: each must leave page cache, and host
  paging must leave some of it.
"""

from __future__ import annotations

from pagecore.errors import ConfigError


def check_models(config: dict) -> None:
    """Refuse (``ConfigError``, one line naming the key) what the models would refuse in a job."""
    _check_workloads(config)
    _check_host(config)
    _check_reclaim_guest(config)


def _check_workloads(config: dict) -> None:
    from pagecore.synth.workloads import scenario

    w = config.get("workloads") or {}
    for name, section in w.items():
        if isinstance(section, dict) and "vms" in section:
            scenario(name, section, seed=w["seed"], chunk_s=w["chunk_s"])


def _check_host(config: dict) -> None:
    from pagecore.experiments.host import parse_activity

    host = config.get("host") or {}
    if "activity" in host:
        try:
            parse_activity(host["activity"])
        except ConfigError as e:
            raise ConfigError(f"config key host.activity: {e}") from None


def _check_reclaim_guest(config: dict) -> None:
    from pagecore.sim.guestcache import LRUGuest

    reclaim = config.get("reclaim") or {}
    if not reclaim:
        return
    guest = LRUGuest(**(reclaim.get("guest") or {}))

    def cache(key: str, vm_mb: float, boot_mb: float | None = None) -> int:
        try:
            return guest.cache_pages(vm_mb, boot_mb)
        except ValueError as e:
            booted = f" (a guest booted with {boot_mb:g} MB)" if boot_mb is not None else ""
            raise ConfigError(f"config key {key}: {e}{booted}") from None

    f = reclaim.get("fig02") or {}
    for m in f.get("fit_mb") or []:
        cache("reclaim.fig02.fit_mb", m)
    for m in f.get("sizes_mb") or []:
        cache("reclaim.fig02.sizes_mb", m)
        if isinstance(f.get("boot_mb"), int | float) and m < f["boot_mb"]:
            cache("reclaim.fig02.sizes_mb", m, f["boot_mb"])
    p = reclaim.get("paging") or {}
    for boot in p.get("boot_mb") or []:
        cap = cache("reclaim.paging.boot_mb", boot, boot)
        for r in p.get("reclaim_mb") or []:
            if r > boot:
                raise ConfigError(
                    f"config key reclaim.paging.reclaim_mb: {r:g} MB is more than the {boot:g} MB guest "
                    "(reclaim.paging.boot_mb)"
                )
            cache("reclaim.paging.reclaim_mb", boot - r, boot)
            if int(r * 256) >= cap:
                raise ConfigError(
                    f"config key reclaim.paging.reclaim_mb: host paging of {r:g} MB from the {boot:g} MB guest "
                    f"takes its whole page cache ({cap / 256:g} MB); reclaim less"
                )
