"""Real QEMU guests on this host: the only package that starts processes or touches host settings.

Owns: booting Debian's kernel with a busybox workload and dumping it in every format
(:mod:`.capture`), N identical guests for the real-guest Figure 4 (:mod:`.realguests`) and the
check of the KSM emulator against the host's real KSM (:mod:`.ksmcheck`); free page reporting
measured on guests with it on and off against the cooperative model (:mod:`.freereport`). Must not: be needed by
the pipeline's default run; change a host setting without saving it first and restoring it;
end any process it did not start (by PID).
"""

from pagecore.qemu.realguests import capture_identical

__all__ = ["capture_identical"]
