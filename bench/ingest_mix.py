"""The ingest bench's workload: recorder configurations and the webhook request mix.

Shared by the server launcher (which creates the recorders and seeds one price per symbol) and
the load generator (which builds the request stream). The stream is deterministic for a seed, so
the real system and the bare-FastAPI baseline receive the same bodies in the same order.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Continuous symbols the recorders trade: (TradingView ticker, seed price, tick size, decimals).
SYMBOLS: list[tuple[str, float, float, int]] = [
    ("MNQ1!", 21000.0, 0.25, 2),
    ("MES1!", 6000.0, 0.25, 2),
    ("NQ1!", 21000.0, 0.25, 2),
    ("ES1!", 6000.0, 0.25, 2),
    ("M2K1!", 2200.0, 0.1, 1),
    ("MYM1!", 44000.0, 1.0, 0),
    ("CL1!", 70.0, 0.01, 2),
    ("GC1!", 2600.0, 0.1, 1),
]

#: Share of each request kind in the stream (the rest of the weights are documented in notes).
RESEND_SHARE = 0.02
BAD_SHARE = 0.02
KIND_WEIGHTS = {"indicator": 0.55, "strategy": 0.27, "text": 0.18}


def recorder_symbol(index: int) -> str:
    return SYMBOLS[index % len(SYMBOLS)][0]


def recorder_settings(index: int) -> dict[str, Any]:
    """Realistic, varied recorder settings (RecorderSettings as JSON) for recorder ``index``."""
    two_targets = index % 2 == 0
    targets = (
        [{"value": 20, "trim": 50}, {"value": 40, "trim": 50}]
        if two_targets
        else [{"value": 30, "trim": 100}]
    )
    out: dict[str, Any] = {
        "take_profit": {"unit": "ticks", "targets": targets},
        "stop_loss": {"unit": "ticks", "value": 30 + 5 * (index % 3)},
    }
    if index % 4 == 0:
        out["trailing_stop"] = {"unit": "ticks", "trigger": 24, "distance": 12}
    if index % 7 == 3:
        out["break_even"] = {"unit": "ticks", "trigger": 16, "offset": 2}
    if index % 5 == 1:
        out["dca"] = {"unit": "ticks", "step": 10, "add_size": 1, "max_quantity": 4}
    filters: dict[str, Any] = {}
    if index % 6 == 5:
        filters["direction"] = "long"
    if index % 9 == 2:
        filters["cooldown_seconds"] = 2
    if index % 11 == 4:
        filters["max_contracts"] = 2
    if filters:
        out["filters"] = filters
    return out


def seed_ticks() -> list[dict[str, Any]]:
    """One tick per symbol so signals without a price can fill."""
    return [{"symbol": s, "price": p} for s, p, _, _ in SYMBOLS]


@dataclass(slots=True)
class Request:
    seq: int
    token: str
    body: bytes
    content_type: str
    kind: str  # indicator | strategy | text | bad | resend


def _now_iso() -> str:
    """``{{timenow}}``-style UTC time, with milliseconds so two genuine alerts differ."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Mix:
    """An endless, seeded stream of webhook requests for ``tokens`` (recorder i has token i)."""

    def __init__(self, tokens: list[str], seed: int = 7, resend_gap: int = 128) -> None:
        self.tokens = tokens
        self.rng = random.Random(seed)
        self.seq = 0
        self.resend_gap = resend_gap  # a resend repeats a body answered well before it
        self.recent: deque[Request] = deque(maxlen=resend_gap + 2000)
        self.strategy_pos = [0] * len(tokens)
        self.kinds = list(KIND_WEIGHTS)
        self.weights = list(KIND_WEIGHTS.values())

    def next(self) -> Request:
        rng, seq = self.rng, self.seq
        self.seq += 1
        roll = rng.random()
        if roll < RESEND_SHARE and len(self.recent) > self.resend_gap:
            old = self.recent[rng.randrange(0, len(self.recent) - self.resend_gap)]
            return Request(seq, old.token, old.body, old.content_type, "resend")
        index = rng.randrange(len(self.tokens))
        token = self.tokens[index]
        if roll < RESEND_SHARE + BAD_SHARE:
            body, ctype = self._bad(index)
            return Request(seq, token, body, ctype, "bad")
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "indicator":
            body, ctype = self._indicator(index)
        elif kind == "strategy":
            body, ctype = self._strategy(index)
        else:
            body, ctype = self._text(index)
        req = Request(seq, token, body, ctype, kind)
        self.recent.append(req)
        return req

    def _price(self, index: int) -> str:
        _, base, tick, decimals = SYMBOLS[index % len(SYMBOLS)]
        return f"{base + self.rng.randint(-20, 20) * tick:.{decimals}f}"

    def _ticker(self, index: int) -> str:
        sym = recorder_symbol(index)
        return f"CME_MINI:{sym}" if self.rng.random() < 0.2 and sym.startswith("M") else sym

    def _indicator(self, index: int) -> tuple[bytes, str]:
        rng = self.rng
        action = rng.choices(["buy", "sell", "close", "exit", "flat"], [40, 40, 12, 5, 3])[0]
        body: dict[str, Any] = {"action": action, "ticker": self._ticker(index)}
        if rng.random() < 0.7:
            body["price"] = self._price(index)
        if action in ("buy", "sell"):
            qty = rng.choice([1, 1, 1, 2, 3])
            body["quantity"] = str(qty) if rng.random() < 0.5 else qty
        body["time" if rng.random() < 0.5 else "timenow"] = _now_iso()
        if rng.random() < 0.3:
            body["recorder"] = f"bench-{index}"
        return json.dumps(body).encode(), "application/json"

    def _strategy(self, index: int) -> tuple[bytes, str]:
        """A Pine strategy alert: the stated position is authoritative."""
        rng = self.rng
        prev = self.strategy_pos[index]
        target = rng.choice([t for t in (-2, -1, 0, 1, 2) if t != prev])
        self.strategy_pos[index] = target

        def mp(p: int) -> str:
            return "long" if p > 0 else "short" if p < 0 else "flat"

        body: dict[str, Any] = {
            "ticker": self._ticker(index),
            "action": "buy" if target > prev else "sell",
            "contracts": str(abs(target - prev)),
            "position_size": str(target),
            "market_position": mp(target),
            "prev_market_position": mp(prev),
            "timenow": _now_iso(),
        }
        if rng.random() < 0.8:
            body["price"] = self._price(index)
        if rng.random() < 0.3:
            body["id"] = "Long" if target > prev else "Short"  # {{strategy.order.id}} repeats
        return json.dumps(body).encode(), "application/json"

    def _text(self, index: int) -> tuple[bytes, str]:
        """CrossTrade-style ``key=value;`` text (sent as text/plain)."""
        rng = self.rng
        sym = recorder_symbol(index)
        if rng.random() < 0.5:
            action = rng.choice(["BUY", "SELL"])
            text = f"command=PLACE;instrument={sym};action={action};qty={rng.choice([1, 2])};"
        else:
            action = rng.choice(["buy", "sell", "close"])
            text = f"action={action};ticker={sym};price={self._price(index)};"
        text += f"timenow={_now_iso()};"
        return text.encode(), "text/plain; charset=utf-8"

    def _bad(self, index: int) -> tuple[bytes, str]:
        """Unknown action, an unreplaced placeholder, or a body that is not an alert."""
        which = self.rng.randrange(3)
        sym = recorder_symbol(index)
        if which == 0:
            body = {"action": "hold", "ticker": sym, "time": _now_iso()}
        elif which == 1:
            body = {"action": "buy", "ticker": sym, "price": "{{close}}", "time": _now_iso()}
        else:
            return b"Price crossed the upper band", "text/plain; charset=utf-8"
        return json.dumps(body).encode(), "application/json"
