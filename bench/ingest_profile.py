"""A small in-process profiler for the ingest bench's API server (no packages to install).

Two views over one window (SIGUSR1 starts it, SIGUSR2 stops it and writes a JSON report):

* **CPU per OS thread** from ``/proc/self/task/*/stat``: Python threads by their Python name,
  native threads (Ray's core worker, gRPC) by their kernel name. This is where CPU goes.
* **Stack samples** of every Python thread every ``interval`` s (``sys._current_frames``): per
  thread group the share of samples spent idle (event loop in epoll, pool worker waiting for
  work, see :data:`WAIT_LEAVES`) and, over the rest, what the thread was doing, bucketed by the markers in
  :data:`CATEGORIES` (first match on the stack wins), plus top leaf and inclusive frames. This
  is wall time: a thread blocked in a C call (a SQLite lock wait) counts as much as one running.
* **cProfile of the event-loop thread** (the main thread: HTTP, FastAPI, the webhook coroutine,
  Ray call submission): exact per-function own and cumulative time. It roughly doubles that
  thread's cost while on, so figures from a ``--profile`` run are not the bench's figures.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import re
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import FrameType

CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Leaves where a thread waits (for work, I/O or a condition). A sample there is idle unless a
#: category marker is on its stack (a wait for a pooled database connection is not idle).
WAIT_LEAVES = frozenset(
    {"selectors.py:select", "threading.py:wait", "queue.py:get", "thread.py:_worker",
     "worker.py:listen_error_messages",
     "runners.py:run"}  # uvloop: its loop (epoll included) is C under Runner.run
)  # fmt: skip

#: (category, marker) in priority order: a busy sample goes to the first category whose marker
#: (``file:function``, or a bare file name) is on its stack.
CATEGORIES: list[tuple[str, str]] = [
    ("SQLite: BEGIN IMMEDIATE (waiting for the write lock)", "engine.py:_on_begin"),
    ("SQLite: opening a connection (pool overflow)", "engine.py:_on_connect"),
    ("SQLAlchemy: waiting for a pooled connection", "impl.py:_do_get"),
    ("SQLite: COMMIT", "default.py:do_commit"),
    ("SQLite: ROLLBACK/close", "default.py:do_rollback"),
    ("store: insert_signal (dedupe SELECT + INSERT)", "signals.py:insert_signal"),
    ("signal writer: group commit (dedupe + INSERT)", "signal_writer.py:_write"),
    ("store: token lookup", "ingest.py:_query"),
    ("Ray: actor call submit", "actor.py:_actor_method_call"),
    ("Ray: awaiting/receiving actor results", "_raylet.pyx"),
    ("parse body / intent", "parse.py:parse_body"),
    ("webhook handler (other)", "webhook.py:asgi_webhook"),
    ("FastAPI/Starlette routing + responses", "routing.py:app"),
    ("uvicorn h11 protocol", "h11_impl.py"),
    ("uvicorn httptools protocol", "httptools_impl.py"),
    ("asyncio event loop", "base_events.py:_run_once"),
]


def _frame_name(frame: FrameType) -> str:
    code = frame.f_code
    return f"{Path(code.co_filename).name}:{code.co_name}"


def _group(name: str) -> str:
    if name.startswith(("AnyIO", "asyncio_", "ThreadPoolExecutor")):
        return "ThreadPool"
    return re.sub(r"[-_ ]?\d+$", "", name) or name


def thread_cpu() -> dict[int, tuple[str, float]]:
    """tid → (kernel thread name, CPU seconds) for every thread of this process."""
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                raw = f.read()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            parts = raw.rsplit(")", 1)[1].split()
            out[int(tid)] = (comm, (int(parts[11]) + int(parts[12])) / CLK_TCK)
        except (OSError, ValueError, IndexError):
            continue
    return out


class Sampler:
    def __init__(self, path: str, interval: float = 0.005) -> None:
        self.path, self.interval = path, interval
        self.on = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self.rounds = 0
        self.samples: Counter[str] = Counter()
        self.idle: Counter[str] = Counter()
        self.cats: dict[str, Counter[str]] = defaultdict(Counter)
        self.leaf: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.cprofile = cProfile.Profile()

    def install(self) -> None:
        self.thread.start()
        signal.signal(signal.SIGUSR1, self._start)
        signal.signal(signal.SIGUSR2, self._stop)

    def _start(self, *_: object) -> None:
        # Signal handlers run on the main thread, the event loop's: cProfile covers it exactly.
        self.cprofile.enable()
        self.on.set()

    def _stop(self, *_: object) -> None:
        self.cprofile.disable()
        self.done.set()

    def _main_thread_top(self, n: int = 25) -> dict[str, list[list[object]]]:
        """Top functions of the event-loop thread by own time and by cumulative time (ms)."""
        st = pstats.Stats(self.cprofile)
        rows = [
            (f"{Path(file).name}:{line}({func})", nc, tt * 1000, ct * 1000)
            for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items()  # type: ignore[attr-defined]
        ]
        by_tt = sorted(rows, key=lambda r: -r[2])[:n]
        by_ct = sorted(rows, key=lambda r: -r[3])[: n * 2]
        return {"tottime": [list(r) for r in by_tt], "cumtime": [list(r) for r in by_ct]}

    def _sample(self, me: int, names: dict[int, str]) -> None:
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            if ident not in names:
                names.update({t.ident: t.name for t in threading.enumerate() if t.ident})
            group = _group(names.get(ident, str(ident)))
            self.samples[group] += 1
            stack: list[str] = []
            f: FrameType | None = frame
            while f is not None:
                stack.append(_frame_name(f))
                f = f.f_back
            on_stack = set(stack)
            files = {s.split(":")[0] for s in stack}
            cat = next(
                (c for c, m in CATEGORIES if (m in on_stack if ":" in m else m in files)), None
            )
            if stack[0] in WAIT_LEAVES and cat in (None, "asyncio event loop"):
                self.idle[group] += 1
                continue
            cat = cat or "other"
            self.cats[group][cat] += 1
            self.leaf[f"{group} | {stack[0]}"] += 1
            for name in on_stack:
                self.inclusive[f"{group} | {name}"] += 1

    def _run(self) -> None:
        self.on.wait()
        t0, cpu0 = time.monotonic(), thread_cpu()
        me = threading.get_ident()
        names: dict[int, str] = {}
        while not self.done.is_set():
            self._sample(me, names)
            self.rounds += 1
            time.sleep(self.interval)
        seconds, cpu1 = time.monotonic() - t0, thread_cpu()
        by_native = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        cpu: Counter[str] = Counter()
        for tid, (comm, sec) in cpu1.items():
            label = _group(by_native[tid]) if tid in by_native else f"native:{_group(comm)}"
            cpu[label] += sec - cpu0.get(tid, (comm, 0.0))[1]
        report = {
            "seconds": seconds,
            "rounds": self.rounds,
            "cpu": {k: v for k, v in cpu.most_common() if v > 0},
            "threads": {
                g: {"samples": n, "idle": self.idle[g], "busy": dict(self.cats[g].most_common())}
                for g, n in self.samples.items()
            },
            "self": self.leaf.most_common(25),
            "inclusive": self.inclusive.most_common(60),
            "main_thread": self._main_thread_top(),
        }
        Path(self.path).write_text(json.dumps(report))
