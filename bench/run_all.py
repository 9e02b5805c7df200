"""``make bench``: run every benchmark in its own process and write bench/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine, speed_probe

BENCHES = ["tick_path", "ingest", "memory", "startup", "kill_switch", "live_latency", "hop"]
HERE = Path(__file__).parent


def run(name: str) -> dict:
    print(f"== {name}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{name}"], capture_output=True, text=True, timeout=1800
    )
    sys.stdout.write(proc.stdout)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if proc.returncode != 0 or result is None:
        sys.stdout.write(proc.stderr[-4000:])
        return {"bench": name, "figures": [], "notes": [f"FAILED (exit {proc.returncode})"]}
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| bench | figure | value | target | baseline (same run) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for f in r["figures"]:
            base = "" if f["baseline"] is None else f"{f['baseline']:,.1f} (ratio {f['ratio']:.2f})"
            verdict = "" if f["ok"] is None else ("met" if f["ok"] else "**missed**")
            lines.append(
                f"| {r['bench']} | {f['metric']} | {f['value']:,.2f} {f['unit']} | {f['target']} | {base} | {verdict} |"
            )
    return "\n".join(lines)


def main() -> None:
    names = sys.argv[1:] or BENCHES
    before = speed_probe()
    results = [run(n) for n in names]
    after = speed_probe()
    m = machine()
    notes = [f"- {r['bench']}: {n}" for r in results for n in r["notes"]]
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Machine: {m.get('cpu', '?')}, {m['cpus']} CPUs, {m.get('mem_gb', '?')} GB; Python {m['python']}; {m['date']}.",
            "Reproduce with `make bench` (or `python -m bench.<name>` for one).",
            f"Machine speed probe (`bench.common.speed_probe`, a fixed pure-Python workload; lower"
            f" is faster): {before:.1f} ms before the benches, {after:.1f} ms after.",
            "",
            table(results),
            "",
            "Notes:",
            *notes,
            "",
        ]
    )
    (HERE / "RESULTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
