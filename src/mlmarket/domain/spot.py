"""Managed spot training (R10): when simulated capacity goes away, and for how long.

A policy reads `after=S times=N delay=D` (spaces or commas between; tag values allow no
commas): each training attempt is interrupted after S seconds of training, for the first N
attempts (all, if N is absent), and capacity returns D seconds later. `never` (the default)
never interrupts. The operator sets it for the server; a job may carry its own in the tag
`mlmarket:spot-interruptions`, which is how tests ask for one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

POLICY_TAG = "mlmarket:spot-interruptions"


class InvalidPolicy(ValueError):
    pass


@dataclass(frozen=True)
class InterruptionPolicy:
    after_seconds: float | None = None
    times: int | None = None
    restart_delay_seconds: float = 1.0

    def interrupt_after(self, attempt: int) -> float | None:
        """Seconds of training after which attempt `attempt` (1-based) is interrupted."""
        if self.after_seconds is None:
            return None
        if self.times is not None and attempt > self.times:
            return None
        return self.after_seconds

    @classmethod
    def parse(cls, text: str | None) -> InterruptionPolicy:
        if not text or text.strip() == "never":
            return cls()
        values: dict[str, float] = {}
        for part in re.split(r"[,\s]+", text.strip()):
            key, sep, raw = part.strip().partition("=")
            if not sep or key not in ("after", "times", "delay"):
                raise InvalidPolicy(f"unknown spot interruption setting '{part}'")
            try:
                values[key] = float(raw)
            except ValueError:
                raise InvalidPolicy(f"'{raw}' is not a number in '{part}'") from None
        if "after" not in values:
            raise InvalidPolicy("a spot interruption policy needs after=SECONDS")
        return cls(
            after_seconds=values["after"],
            times=int(values["times"]) if "times" in values else None,
            restart_delay_seconds=values.get("delay", 1.0),
        )
