"""Request and response models at the API edge (the OpenAPI contract)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from actors.recorder.config import RecorderSettings
from actors.store import Recorder


class RecorderIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    symbol: str = Field(default="MNQ1!", description="default ticker, e.g. MNQ1! or MNQZ6")
    enabled: bool = True
    settings: RecorderSettings = Field(default_factory=RecorderSettings)


class RecorderPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    symbol: str | None = None
    enabled: bool | None = None
    settings: RecorderSettings | None = None


class AlertTemplates(BaseModel):
    indicator: str = Field(description="alert message for indicator alerts (one per action)")
    strategy: str = Field(description="alert message for Pine strategy alerts")


class RecorderOut(BaseModel):
    id: int
    name: str
    symbol: str
    enabled: bool
    settings: RecorderSettings
    webhook_url: str
    alerts: AlertTemplates
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, r: Recorder, base_url: str) -> RecorderOut:
        assert r.id is not None
        return cls(
            id=r.id,
            name=r.name,
            symbol=r.symbol,
            enabled=r.enabled,
            settings=RecorderSettings.model_validate(r.settings or {}),
            webhook_url=f"{base_url}/webhook/{r.token}",
            alerts=alert_templates(r.name),
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


def alert_templates(name: str) -> AlertTemplates:
    """Ready-to-paste TradingView alert messages (placeholders are TradingView's own)."""
    indicator = {
        "recorder": name,
        "action": "buy",
        "ticker": "{{ticker}}",
        "price": "{{close}}",
        "time": "{{timenow}}",
    }
    strategy = {
        "recorder": name,
        "action": "{{strategy.order.action}}",
        "ticker": "{{ticker}}",
        "price": "{{strategy.order.price}}",
        "contracts": "{{strategy.order.contracts}}",
        "position_size": "{{strategy.position_size}}",
        "market_position": "{{strategy.market_position}}",
        "prev_market_position": "{{strategy.prev_market_position}}",
        "id": "{{strategy.order.id}}",
        "time": "{{timenow}}",
    }
    return AlertTemplates(indicator=json.dumps(indicator), strategy=json.dumps(strategy))


class TickIn(BaseModel):
    symbol: str
    price: float = Field(gt=0)
    ts: float | None = Field(default=None, description="epoch seconds; default now")


class TicksIn(BaseModel):
    ticks: list[TickIn] = Field(max_length=100_000)
    wait: bool = Field(default=True, description="answer after every host has applied them")


class SignalOut(BaseModel):
    id: int
    received_at: float
    status: str
    reason: str | None
    detail: str | None
    action: str | None
    ticker: str | None
    symbol: str | None
    price: float | None
    quantity: int | None
    body: str
    parsed: dict[str, Any] | None


class TradeOut(BaseModel):
    id: int
    pair_key: str
    symbol: str
    side: str
    quantity: int
    entry_price: float
    exit_price: float
    pnl: float
    reason: str
    opened_at: float
    closed_at: float
    mfe_points: float
    mae_points: float
    mfe_usd: float
    mae_usd: float
