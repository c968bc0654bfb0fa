"""The load profile of one use case (pure): a synchronous run, a throughput run (everything at once: the server's
saturation), then constant rates evenly between the two, lowest first, stopping at the first over-saturated one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["sync", "throughput", "constant"]


@dataclass(frozen=True)
class Run:
    """One load-generator run."""

    mode: Mode
    rate: float | None
    """Target requests/s of a constant-rate run; None for sync (one at a time) and throughput (all at once)."""
    repeat: int = 1
    """1, 2, ...: the same run again, for the spread of its figures."""

    @property
    def label(self) -> str:
        base = self.mode if self.rate is None else f"{self.mode}@{self.rate:.4g}"
        return base if self.repeat == 1 else f"{base}#{self.repeat}"

    @classmethod
    def of_label(cls, label: str) -> Run:
        head, _, repeat = label.partition("#")
        mode, _, rate = head.partition("@")
        if mode not in ("sync", "throughput", "constant"):
            raise ValueError(label)
        return cls(mode, float(rate) if rate else None, int(repeat or 1))  # type: ignore[arg-type]


SYNC = Run("sync", None)
THROUGHPUT = Run("throughput", None)


def constant_rates(sync_rps: float, max_rps: float, n: int) -> list[float]:
    """`n` rates strictly between one stream's rate and saturation, evenly spaced (GuideLLM's sweep profile)."""
    if n <= 0 or max_rps <= sync_rps:
        return []
    step = (max_rps - sync_rps) / (n + 1)
    return [float(f"{sync_rps + step * i:.4g}") for i in range(1, n + 1)]  # as the run's label names it


def oversaturated(target_rps: float, achieved_rps: float, fraction: float) -> bool:
    """The server completes clearly less than it is offered: requests only queue from here on."""
    return achieved_rps < fraction * target_rps
