"""Real guests and real kernel devices: capture, live reads, real-KSM and real-zram checks."""
