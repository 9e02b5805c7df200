"""Finding, measuring and ending the processes a bench started (Linux ``/proc``).

Shared by :mod:`bench.memory`, :mod:`bench.ingest` and :mod:`bench.startup`: free ports, the
process tree under a pid or in a session, processes tagged through their environment
(``RUN_ENV``), PSS, and killing trees, groups and leftovers by pid. Only processes a bench
started are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from typing import Any

RUN_ENV = "JT_BENCH_RUN"  # marks every process a bench launched (inherited by Ray's processes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2 :].split()  # state, ppid, ...


def ppid_map() -> dict[int, int]:
    """Every live (non-zombie) process and its parent."""
    out: dict[int, int] = {}
    for pid in _proc_pids():
        try:
            fields = _stat_fields(pid)
        except (OSError, ValueError):
            continue
        if fields[0] != "Z":
            out[pid] = int(fields[1])
    return out


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (not ``root`` itself), parents first."""
    children: dict[int, list[int]] = {}
    for pid, ppid in ppid_map().items():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes that map them."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def pids_with_env(*matches: tuple[str, str]) -> list[int]:
    """Live processes (other than this one) whose environment has any ``key=value`` of
    ``matches``. Our launches carry a tag (``JT_BENCH_RUN``) that Ray's workers inherit; Ray's
    agents get an environment of the raylet's making, with ``RAY_RAYLET_PID`` of their raylet."""
    needles = {f"{k}={v}".encode() for k, v in matches}
    out = []
    for pid in ppid_map():
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needles.intersection(env):
            out.append(pid)
    return out


def raylet_matches(procs: dict[int, str]) -> list[tuple[str, str]]:
    """``RAY_RAYLET_PID`` matches for the raylets among ``procs`` (pid -> command line): what
    finds their agents."""
    return [("RAY_RAYLET_PID", str(pid)) for pid, cmd in procs.items() if "raylet/raylet" in cmd]


def kill_tree(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> dict[int, str]:
    """Kill ``proc`` (started with ``start_new_session=True``) and everything it started.

    The process group alone is not enough: Ray's raylet starts its workers as session leaders
    (own session, own group), so after ``killpg`` of the launched group the actor processes
    would survive. So every group found among ``proc``'s descendants (snapshotted before
    anything dies) gets SIGTERM, then SIGKILL after ``grace_s``. Returns the processes seen
    (pid -> command line, as they were before the kill)."""
    seen = {pid: cmdline(pid) for pid in [proc.pid, *descendants(proc.pid)]}
    groups: set[int] = set()
    for pid in seen:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()
            if not _groups_alive(groups):
                break
            time.sleep(0.1)
        if not _groups_alive(groups):
            break
    proc.poll()
    return seen


def _groups_alive(groups: set[int]) -> bool:
    for pid in ppid_map():
        try:
            if os.getpgid(pid) in groups:
                return True
        except ProcessLookupError:
            continue
    return False


def _running(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, ValueError):
        return False


def shutdown_ray_fully(grace_s: float = 5.0) -> list[str]:
    """``ray.shutdown()`` of a Ray this process started, then SIGKILL whatever of the processes
    under it outlived the shutdown by ``grace_s`` (seen: the dashboard and runtime-env agents
    sometimes stay up); returns those."""
    import ray

    seen = descendants(os.getpid())
    ray.shutdown()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_running(p) for p in seen):
        time.sleep(0.2)
    left = [p for p in seen if _running(p)]
    names = [f"{pid} {cmdline(pid)[:60]}" for pid in left]
    signal_pids(left, signal.SIGKILL)
    return names


def reap_env(
    matches: list[tuple[str, str]], grace_s: float = 5.0, settle_s: float = 0.0
) -> list[str]:
    """Kill processes still carrying any of ``matches`` in their environment (processes a bench
    started that escaped their group), after giving them ``settle_s`` to exit by themselves
    (Ray's workers notice a stopped raylet within ~2 s); returns what had to be killed."""
    if not matches:
        return []
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and pids_with_env(*matches):
        time.sleep(0.2)
    leaked = pids_with_env(*matches)
    found = [f"{pid} {cmdline(pid)[:80]}" for pid in leaked]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signal_pids(leaked, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and pids_with_env(*matches):
            time.sleep(0.1)
        leaked = pids_with_env(*matches)
        if not leaked:
            break
    return found


def session_argv(sid: int) -> dict[int, list[str]]:
    """Every process in session ``sid`` (a process started with ``start_new_session=True`` and
    all it started that stayed in its session) and its argv."""
    out: dict[int, list[str]] = {}
    for pid in _proc_pids():
        try:
            if int(_stat_fields(pid)[3]) != sid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except (OSError, IndexError, ValueError):
            continue
        out[pid] = argv
    return out


def signal_pids(pids: Iterable[int], sig: int) -> None:
    """Send ``sig`` to each of ``pids`` (those already gone are skipped)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
