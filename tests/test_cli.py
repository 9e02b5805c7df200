"""The ``justtrades`` command: demo recorder, banner, and the simulator sub-command."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.settings import Settings
from api.cli import banner, ensure_demo_recorder, main


def test_demo_recorder_is_created_once_and_the_banner_has_a_working_curl(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'jt.db'}", port=8123)
    token = ensure_demo_recorder(settings)
    assert ensure_demo_recorder(settings) == token  # idempotent: same recorder on a restart
    text = banner(settings, token)
    assert f"curl -s -X POST http://127.0.0.1:8123/webhook/{token}" in text
    assert "http://127.0.0.1:8123/docs" in text and "/api/positions" in text


def test_sqlite_paths_are_made_absolute_for_actor_processes() -> None:
    url = Settings(database_url="sqlite:///./var/x.db").resolved_database_url()
    assert url.startswith("sqlite:////") and url.endswith("/var/x.db")
    pg = "postgresql+psycopg://u@h/db"
    assert Settings(database_url=pg).resolved_database_url() == pg


def test_sim_tradovate_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sim-tradovate", "--help"])
    assert exc.value.code == 0
    assert "--faults" in capsys.readouterr().out


def test_sim_tradingview_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sim-tradingview", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--walk" in out and "--heartbeat" in out and "--http-port" in out
