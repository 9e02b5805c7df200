"""The tick-path benchmark's machinery on a small scale: the host (columnar path, store and
all) must equal per-tick scalar processing. Asserts behaviour only, never timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import Report
from bench.tick_path import measure

pytestmark = pytest.mark.slow


def test_host_tick_path_is_exact_on_a_small_run(tmp_path: Path) -> None:
    (tmp_path / "check").mkdir()
    report = Report("tick_path")
    measure(report, 120, 12_000, 12_000, tmp_path)
    figures = {f.metric: f for f in report.figures}
    assert figures["exactness: positions differing @ 120"].value == 0
    assert figures["exactness: trades differing @ 120"].ok is True
    assert any(
        "exits in the reference" in n and not n.endswith(": 0 exits in the reference")
        for n in report.notes
    )
