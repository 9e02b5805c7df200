"""The one exception the signal parser raises, and its machine-readable reasons.

A :class:`SignalError` becomes a 4xx whose ``reason`` is stable (API answers, metrics), so the
set of reasons lives here, next to the exception, and every other module of the package imports
both from here.
"""

from __future__ import annotations

from typing import Final

#: Every ``SignalError.reason`` this package raises.
REASONS: Final[frozenset[str]] = frozenset(
    {
        "empty_body",
        "body_too_large",
        "unparseable_body",
        "missing_action",
        "unknown_action",
        "missing_ticker",
        "unreplaced_placeholder",
        "invalid_number",
        "invalid_quantity",
        "invalid_time",
        "inconsistent_position",
    }
)


class SignalError(ValueError):
    """A webhook body that cannot become a signal.

    ``reason`` is one of :data:`REASONS` (stable, for API answers and metrics), ``field`` the
    lower-cased body key at fault when there is one, ``message`` a sentence for humans. Messages
    never echo secret-bearing fields.
    """

    reason: str
    field: str | None
    message: str

    def __init__(self, reason: str, field: str | None = None, message: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.message = message if message is not None else reason.replace("_", " ")
        super().__init__(f"{reason}: {self.message}")

    def __reduce__(self) -> tuple[type[SignalError], tuple[str, str | None, str]]:
        # Exceptions pickle via ``self.args`` by default, which would lose reason/field when the
        # error crosses a Ray actor boundary.
        return (type(self), (self.reason, self.field, self.message))


def _clip(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
