"""Shared conventions for benchmark scripts.

Every script in ``bench/`` prints its figures as it goes and ends with one ``RESULT {json}``
line: ``{"bench": name, "figures": [{"metric", "value", "unit", "target", "baseline",
"ratio", "ok"}...], "notes": [...]}``. ``bench/run_all.py`` runs each script in its own process
and writes ``bench/RESULTS.md``. Figures that depend on machine speed are reported next to a
baseline measured in the same run, so ratios stay meaningful on a noisy machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    metric: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    baseline: float | None = None
    ratio: float | None = None


@dataclass
class Report:
    bench: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, value: float, unit: str, target: str = "", ok: bool | None = None,
            baseline: float | None = None) -> Figure:  # fmt: skip
        ratio = value / baseline if baseline else None
        fig = Figure(metric, value, unit, target, ok, baseline, ratio)
        self.figures.append(fig)
        extra = f"  (baseline {baseline:,.1f}, ratio {ratio:.2f})" if baseline else ""
        verdict = "" if ok is None else ("  OK" if ok else "  MISSED")
        print(f"  {metric:<48} {value:>14,.2f} {unit:<8} {target}{extra}{verdict}", flush=True)
        return fig

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def emit(self) -> None:
        payload = {
            "bench": self.bench,
            "figures": [asdict(f) for f in self.figures],
            "notes": self.notes,
        }
        print("RESULT " + json.dumps(payload), flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        with open("/proc/meminfo") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
        model = subprocess.run(
            ["grep", "-m1", "model name", "/proc/cpuinfo"], capture_output=True, text=True
        )
        info["cpu"] = model.stdout.split(":", 1)[-1].strip()
    except OSError:
        pass
    return info


def speed_probe(rounds: int = 7) -> float:
    """Milliseconds of thread CPU for a fixed pure-Python workload (JSON, dicts, Fractions: what
    the hosts spend their time on), the median of ``rounds``. The machine's speed swung about
    2x within hours (shared host): a run's figures are comparable with another run's only
    next to this probe, and with their same-run baselines."""
    from fractions import Fraction

    def once() -> float:
        t = time.thread_time()
        acc: dict[int, str] = {}
        x = Fraction(0)
        for i in range(4_000):
            acc[i] = json.dumps({"i": i, "p": [i, i + 1], "s": str(i)})
            x += Fraction(i, 4)
        assert x > 0 and len(acc) == 4_000
        return (time.thread_time() - t) * 1000

    return statistics.median(once() for _ in range(rounds))


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (Linux)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def python() -> str:
    return sys.executable
