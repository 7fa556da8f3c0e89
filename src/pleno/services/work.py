"""CPU work for autoscaling demos: real hashing until the thread has used the asked CPU time."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

# hashlib releases the GIL for inputs over 2 KiB, so a burn in a worker thread leaves the event
# loop free to answer probes while the CPU is saturated.
_BLOCK = bytes(range(256)) * 256  # 64 KiB


@dataclass(frozen=True, slots=True)
class WorkResult:
    cpu_ms_requested: int
    cpu_ms_used: float
    rounds: int
    digest: str


def burn_cpu(cpu_ms: int) -> WorkResult:
    """Hash repeatedly until this thread has consumed ``cpu_ms`` of CPU time (at least 1 round)."""
    start = time.thread_time()
    deadline = start + cpu_ms / 1000
    digest = hashlib.sha256(b"pleno").digest()
    rounds = 0
    while True:
        digest = hashlib.sha256(digest + _BLOCK).digest()
        rounds += 1
        if time.thread_time() >= deadline:
            break
    used_ms = (time.thread_time() - start) * 1000
    return WorkResult(cpu_ms, round(used_ms, 3), rounds, digest.hex())
