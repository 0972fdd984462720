"""Free-memory states with hysteresis (paper §6.3).

Four states by free machine memory as a percentage of system memory: **high** (6 %),
**soft** (4 %), **hard** (2 %), **low** (1 %). Free memory dropping below a lower state's
threshold moves the system down to it (possibly several states at once); moving back up one
state needs free memory "significantly" above that higher state's threshold. The margin is
UNCONFIRMED: ``hysteresis_pct = 1.0`` percentage point (BSD's 5 %/7 % analogy in §6.3 suggests
a couple of points; smaller margins make the state flicker, as Figure 8 shows around 3 min).
In soft the engine balloons, in hard it pages, in low it pages and blocks VMs above target.
"""

from __future__ import annotations

from dataclasses import field

from pagecore.sim.contracts import mechanism

STATES = ("high", "soft", "hard", "low")


@mechanism("states", "esx")
class EsxStates:
    """The paper's four-state machine."""

    high_pct: float = 6.0
    soft_pct: float = 4.0
    hard_pct: float = 2.0
    low_pct: float = 1.0
    hysteresis_pct: float = 1.0
    state: str = field(default="high", init=False)

    def __post_init__(self):
        if not 100 >= self.high_pct > self.soft_pct > self.hard_pct > self.low_pct >= 0:
            raise ValueError(
                "thresholds must satisfy 100 >= high_pct > soft_pct > hard_pct > low_pct >= 0, got "
                f"{self.high_pct}, {self.soft_pct}, {self.hard_pct}, {self.low_pct}"
            )
        if not 0 <= self.hysteresis_pct < 100:  # NaN: a state below high was never left
            raise ValueError(f"hysteresis_pct must be >= 0 (percentage points), got {self.hysteresis_pct}")

    def update(self, free_pages, system_pages):
        pct = 100.0 * free_pages / system_pages
        th = (self.high_pct, self.soft_pct, self.hard_pct, self.low_pct)
        i = STATES.index(self.state)
        # down: the lowest state whose threshold free memory is below
        j = i
        for s in range(3, i, -1):
            if pct < th[s]:
                j = s
                break
        if j == i and i > 0 and pct > th[i - 1] + self.hysteresis_pct:
            j = i - 1
        self.state = STATES[j]
        return self.state
