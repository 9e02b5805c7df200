"""Start-up time: launching ``justtrades serve`` to the first webhook accepted.

``python -m bench.startup``

Each run launches the installed console script (``.venv/bin/justtrades serve``) in a fresh temp
working directory (so a fresh SQLite database and demo recorder), with ``JT_PORT`` set to a free
port and a unique ``JT_NAMESPACE``, reads the demo recorder's curl (URL with its token, and the
body) from the banner on stdout, and POSTs that alert every 50 ms until an answer is ``200`` with
``status: applied`` (before the simulated feed has given a price the host answers ``no_price``).
Milestones per run: banner printed, API answering, first alert applied.

Baseline in the same run: ``python -c "import ray; ray.init(); ray.shutdown()"`` (Ray's own
start and stop cost). Runs alternate (baseline, serve, baseline, ...) so machine noise hits both.

Every launched process gets its own session (``start_new_session=True``); afterwards the whole
process group is killed (SIGTERM, then SIGKILL), and ``ps`` must show none of the processes seen
under it, nor any process whose environment carries the run's namespace.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import Report, machine, median, python
from bench.procs import RUN_ENV, free_port, kill_tree, pids_with_env, raylet_matches, reap_env

RUNS = 3
POLL_S = 0.05
RUN_TIMEOUT_S = 120.0
RAY_BASELINE = "import ray; ray.init(); ray.shutdown()"


@dataclass
class Run:
    total_s: float = float("nan")  # launch -> first webhook applied
    banner_s: float = float("nan")  # launch -> banner (token) on stdout
    listening_s: float = float("nan")  # launch -> first HTTP answer of any kind
    attempts: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # "422 no_price": count
    seen_pids: int = 0
    leaked: list[str] = field(default_factory=list)


def justtrades_script() -> str:
    """The installed console script next to this interpreter (the venv's), else on PATH."""
    here = Path(python()).parent / "justtrades"
    if here.exists():
        return str(here)
    found = shutil.which("justtrades")
    if not found:
        raise SystemExit("the justtrades console script is not installed (make install)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any JT_* setting (embedded defaults), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JT_")}
    return {**env, **extra}


def ps_alive(pids: list[int]) -> list[str]:
    """``ps`` lines of the given pids that still run (zombies, dead and waiting for init to
    reap them, are excluded)."""
    if not pids:
        return []
    out = subprocess.run(
        ["ps", "-o", "pid=,stat=,args=", "-p", ",".join(map(str, pids))],
        capture_output=True,
        text=True,
    ).stdout
    return [ln.strip()[:120] for ln in out.splitlines() if not ln.split()[1].startswith("Z")]


def stop_and_verify(proc: subprocess.Popen[Any], tag: str, namespace: str | None = None) -> Run:
    """Kill everything ``proc`` started and check with ``ps`` that none of it survived, and that
    no process carries the run's namespace or tag (or its raylet's pid: Ray's agents) in its
    environment."""
    seen = kill_tree(proc)
    left: dict[int, str] = {}
    for line in ps_alive(list(seen)):
        left[int(line.split()[0])] = line
    matches = [(RUN_ENV, tag), *raylet_matches(seen)]
    if namespace is not None:
        matches.append(("JT_NAMESPACE", namespace))
    for pid in pids_with_env(*matches):
        left.setdefault(pid, f"{pid} (environment of this run)")
    for line in reap_env(matches):  # escaped every group: killed by pid, and reported
        left.setdefault(int(line.split()[0]), line)
    return Run(seen_pids=len(seen), leaked=[left[pid] for pid in sorted(left)])


def time_ray_baseline() -> tuple[float, Run]:
    tag = uuid.uuid4().hex
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [python(), "-c", RAY_BASELINE],
        env=clean_env(**{RUN_ENV: tag}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=RUN_TIMEOUT_S)
        elapsed = time.monotonic() - t0
    finally:
        run = stop_and_verify(proc, tag)
    if proc.returncode != 0:
        raise RuntimeError(f"ray baseline failed (exit {proc.returncode})")
    return elapsed, run


def _parse_banner(lines: list[str]) -> tuple[str, str] | None:
    """(webhook URL, JSON body) from the banner's curl line."""
    for line in lines:
        m = re.search(r"curl -s -X POST (\S+) .* -d '(.*)'\s*$", line)
        if m:
            return m.group(1), m.group(2)
    return None


def time_serve(workdir: Path) -> Run:
    tag = uuid.uuid4().hex
    namespace = f"jt-bench-start-{tag[:10]}"
    env = clean_env(JT_PORT=str(free_port()), JT_NAMESPACE=namespace, **{RUN_ENV: tag})
    lines: list[str] = []
    got_banner = threading.Event()
    banner_at: list[float] = []
    t0 = time.monotonic()
    with open(workdir / "serve.stderr", "w") as err:
        proc = subprocess.Popen(
            [justtrades_script(), "serve"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if not got_banner.is_set() and _parse_banner(lines[-1:]):
                banner_at.append(time.monotonic() - t0)
                got_banner.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    answers: dict[str, int] = {}
    attempts = 0
    total = listening = float("nan")
    try:
        if not got_banner.wait(RUN_TIMEOUT_S):
            raise RuntimeError("justtrades serve printed no webhook curl")
        parsed = _parse_banner(lines)
        assert parsed is not None
        url, body = parsed
        deadline = t0 + RUN_TIMEOUT_S
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    tail = (workdir / "serve.stderr").read_text()[-2000:]
                    raise RuntimeError(f"justtrades serve exited ({proc.returncode}): {tail}")
                attempts += 1
                try:
                    r = client.post(url, content=body, headers={"Content-Type": "application/json"})
                except httpx.TransportError:
                    time.sleep(POLL_S)
                    continue
                now = time.monotonic() - t0
                if math.isnan(listening):
                    listening = now
                try:
                    data = r.json()
                except ValueError:
                    data = {}
                status = data.get("status") if isinstance(data, dict) else None
                reason = data.get("reason") if isinstance(data, dict) else None
                key = f"{r.status_code} {status}/{reason}"
                answers[key] = answers.get(key, 0) + 1
                if r.status_code == 200 and status == "applied":
                    total = now
                    break
                time.sleep(POLL_S)
            else:
                raise RuntimeError(f"no webhook applied within {RUN_TIMEOUT_S}s: {answers}")
    finally:
        run = stop_and_verify(proc, tag, namespace)
        reader.join(timeout=5)
    run.total_s, run.banner_s, run.listening_s = total, banner_at[0], listening
    run.attempts, run.answers = attempts, answers
    return run


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.startup")
    ap.add_argument("--runs", type=int, default=RUNS)
    args = ap.parse_args()
    print(f"startup bench: {args.runs} runs of `justtrades serve`; {machine()}", flush=True)
    rep = Report("startup")
    base_times: list[float] = []
    serves: list[Run] = []
    leaks: list[str] = []
    for i in range(args.runs):
        b, brun = time_ray_baseline()
        base_times.append(b)
        leaks += brun.leaked
        with tempfile.TemporaryDirectory(prefix="jt-bench-start-") as tmp:
            run = time_serve(Path(tmp))
        serves.append(run)
        leaks += run.leaked
        print(
            f"  run {i + 1}: ray.init+shutdown {b:.2f}s; serve: banner {run.banner_s:.2f}s, "
            f"API answering {run.listening_s:.2f}s, first alert applied {run.total_s:.2f}s "
            f"({run.attempts} attempts: {run.answers}); {run.seen_pids} processes in the tree, "
            f"{len(run.leaked)} left after kill",
            flush=True,
        )
    totals = [r.total_s for r in serves]
    base_med = median(base_times)
    rep.add("ray.init() + shutdown, min", min(base_times), "s")
    rep.add("ray.init() + shutdown, median", base_med, "s")
    rep.add("serve -> banner printed, median", median([r.banner_s for r in serves]), "s")
    rep.add("serve -> API answering, median", median([r.listening_s for r in serves]), "s")
    rep.add("serve -> first webhook applied, min", min(totals), "s", baseline=min(base_times))
    rep.add("serve -> first webhook applied, median", median(totals), "s", baseline=base_med)
    rep.add("processes left after killing the group", len(leaks), "", target="0", ok=not leaks)
    for leak in leaks:
        rep.note(f"leaked (killed by pid): {leak}")
    rep.note(
        "serve = `justtrades serve` in a fresh temp dir (fresh SQLite, demo recorder, local Ray, "
        "simulated feed); the first alert is applied once the feed has quoted MNQ "
        "(earlier answers are 422 no_price)"
    )
    rep.emit()


if __name__ == "__main__":
    main()
