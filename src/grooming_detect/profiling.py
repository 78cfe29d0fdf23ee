"""Resource measurements for logs and benchmarks."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """Peak resident memory of this process, in MiB.

    Reads VmHWM from /proc (per address space, so a freshly started process does not inherit its
    parent's peak, as ``ru_maxrss`` does across exec on Linux); falls back to ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
