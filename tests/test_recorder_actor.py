"""The recorder host's Ray shell: it delegates the host's whole remote interface and stays
light to import (processes holding a handle import it)."""

from __future__ import annotations

import inspect
import subprocess
import sys

from actors.recorder.actor import METHODS, RecorderActor
from actors.recorder.host import RecorderHost


def test_every_public_host_coroutine_is_delegated() -> None:
    public = {
        name
        for name, fn in inspect.getmembers(RecorderHost, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert public == set(METHODS)
    assert all(inspect.iscoroutinefunction(getattr(RecorderActor, m)) for m in METHODS)


def test_handle_holders_do_not_import_the_recording_core() -> None:
    code = (
        "import sys, actors.recorder.actor, actors.supervisor, actors.feed.actor;"
        "heavy = [m for m in ('numpy', 'sqlalchemy', 'actors.recorder.host') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
