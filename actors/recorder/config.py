"""Recorder settings: sizing, exits and filters (SPEC §3–4).

These pydantic models are the one schema for a recorder's behaviour. The API validates them at
the edge, the store keeps them as JSON on the recorder row, and the pure core reads them. Every
distance is expressed in a :class:`Unit` and converted to ticks against the position's average
entry by :mod:`actors.recorder.levels`; see ``docs/recording-semantics.md`` for the exact rules.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Unit(StrEnum):
    """How a distance is given. ``dollars`` is USD per contract."""

    ticks = "ticks"
    points = "points"
    percent = "percent"
    dollars = "dollars"


class DcaUnit(StrEnum):
    ticks = "ticks"
    points = "points"
    percent = "percent"
    atr = "atr"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TakeProfitTarget(_Strict):
    value: float = Field(gt=0, description="distance from the average entry, in the TP unit")
    trim: float = Field(default=100, gt=0, le=100, description="% of the base quantity to close")


class TakeProfit(_Strict):
    unit: Unit = Unit.ticks
    targets: list[TakeProfitTarget] = Field(min_length=1, max_length=10)

    @field_validator("targets")
    @classmethod
    def _ascending(cls, targets: list[TakeProfitTarget]) -> list[TakeProfitTarget]:
        values = [t.value for t in targets]
        if values != sorted(values) or len(set(values)) != len(values):
            raise ValueError("take-profit target values must be strictly ascending")
        return targets


class StopLoss(_Strict):
    """Fixed protective stop at ``value`` (in ``unit``) against the position from its average."""

    unit: Unit = Unit.ticks
    value: float = Field(gt=0)


class TrailingStop(_Strict):
    """Once price has gone ``trigger`` in favour of the average, trail ``distance`` behind the
    best price seen; the trailing level only ever tightens."""

    unit: Unit = Unit.ticks
    trigger: float = Field(ge=0)
    distance: float = Field(gt=0)


class BreakEven(_Strict):
    """Once price has gone ``trigger`` in favour, move the stop to average ± ``offset``
    (positive offset locks in profit)."""

    unit: Unit = Unit.ticks
    trigger: float = Field(gt=0)
    offset: float = 0.0


class Dca(_Strict):
    """Add ``add_size`` contracts at each level i × ``step`` against the first entry's price,
    never beyond ``max_quantity`` open. ``atr`` steps are multiples of the ATR of the last
    ``atr_period`` one-minute bars, frozen when the position opens."""

    unit: DcaUnit = DcaUnit.ticks
    step: float = Field(gt=0)
    add_size: int = Field(default=1, ge=1)
    max_quantity: int = Field(ge=1)
    atr_period: int = Field(default=14, ge=1, le=500)


class Sizing(_Strict):
    initial_size: int = Field(
        default=1, ge=1, description="contracts for an entry without quantity"
    )
    add_size: int = Field(
        default=1, ge=1, description="contracts for a same-side add without quantity"
    )
    allow_add: bool = Field(default=True, description="same-side signals add to the position")
    close_only: bool = Field(default=False, description="an opposite signal closes, never reverses")


class TimeWindow(_Strict):
    """A window in exchange time (America/Chicago). ``end`` before ``start`` wraps midnight."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6],
        description="weekdays the window applies on, Monday=0",
    )


class Filters(_Strict):
    direction: Literal["both", "long", "short"] = "both"
    time_windows: list[TimeWindow] = Field(default_factory=list, max_length=8)
    cme_session_only: bool = False
    cooldown_seconds: float = Field(default=0, ge=0)
    max_signals_per_session: int | None = Field(default=None, ge=1)
    signal_delay_seconds: float = Field(default=0, ge=0, le=60)
    max_contracts: int | None = Field(default=None, ge=1)
    max_daily_loss: float | None = Field(default=None, gt=0, description="USD; stop entering after")
    stale_after_seconds: float | None = Field(default=None, gt=0)


class RecorderSettings(_Strict):
    sizing: Sizing = Field(default_factory=Sizing)
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    trailing_stop: TrailingStop | None = None
    break_even: BreakEven | None = None
    dca: Dca | None = None
    filters: Filters = Field(default_factory=Filters)

    @model_validator(mode="after")
    def _dca_cap(self) -> RecorderSettings:
        if self.dca is not None and self.dca.max_quantity < self.sizing.initial_size:
            raise ValueError("dca.max_quantity must be at least sizing.initial_size")
        return self
