"""Request and response models of the accounts and traders routes (the OpenAPI contract).

No response model has a credentials field: an account says only ``has_credentials``. Request
credentials are validated by :func:`parse_tradovate_credentials` rather than by the body model,
so a validation error names the bad fields without echoing the submitted values (FastAPI's
422 body would otherwise include the password it was sent).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from actors.recorder.config import StopLoss, TakeProfit
from actors.store import Account, SubAccount, Trader

Broker = Literal["paper", "tradovate"]
Environment = Literal["demo", "live", "paper"]


class TradovateCredentials(BaseModel):
    """The ``accesstokenrequest`` fields a user supplies (reference/tradovate.md §2.1).
    ``repr`` hides ``password`` and ``sec`` (SecretStr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=200)
    password: SecretStr = Field(min_length=1)
    app_id: str = Field(min_length=1, max_length=200)
    app_version: str = Field(default="1.0", min_length=1, max_length=50)
    cid: int | str = Field(description="API key id (a number in every official example)")
    sec: SecretStr = Field(min_length=1, description="API secret")

    def plain(self) -> dict[str, Any]:
        """The dict that is sealed (secrets revealed: only ever passed to the box)."""
        return {
            "username": self.username,
            "password": self.password.get_secret_value(),
            "app_id": self.app_id,
            "app_version": self.app_version,
            "cid": self.cid,
            "sec": self.sec.get_secret_value(),
        }


def parse_tradovate_credentials(raw: Any) -> TradovateCredentials:
    """Validate submitted credentials; ``ValueError`` naming only the bad fields."""
    try:
        return TradovateCredentials.model_validate(raw)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "credentials" for e in exc.errors()})
        raise ValueError(", ".join(fields)) from None


class AccountIn(BaseModel):
    broker: Broker = "paper"
    name: str = Field(min_length=1, max_length=120)
    environment: Environment = "paper"
    credentials: dict[str, Any] | None = Field(
        default=None,
        description="tradovate: username, password, app_id, app_version, cid, sec. "
        "Stored encrypted; never returned.",
    )


class SubAccountOut(BaseModel):
    id: int
    account_id: int
    broker_account_id: str
    name: str

    @classmethod
    def of(cls, s: SubAccount) -> SubAccountOut:
        assert s.id is not None
        return cls(
            id=s.id, account_id=s.account_id, broker_account_id=s.broker_account_id, name=s.name
        )


class AccountOut(BaseModel):
    id: int
    broker: str
    name: str
    environment: str
    has_credentials: bool
    created_at: float
    sub_accounts: list[SubAccountOut] = Field(default_factory=list)

    @classmethod
    def of(cls, a: Account, subs: list[SubAccount]) -> AccountOut:
        assert a.id is not None
        return cls(
            id=a.id,
            broker=a.broker,
            name=a.name,
            environment=a.environment,
            has_credentials=a.credentials_encrypted is not None,
            created_at=a.created_at,
            sub_accounts=[SubAccountOut.of(s) for s in subs],
        )


class TraderOverrides(BaseModel):
    """Per-trader exits replacing the recorder's (same models as the recorder's settings)."""

    model_config = ConfigDict(extra="forbid")

    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None


ReconcilePolicy = Literal["alert", "adopt", "correct"]
_POLICY_DOC = (
    "what the reconciler does when the broker position differs from the pair's: alert only, "
    "adopt the broker's position, or correct the broker with a market order"
)


class TraderIn(BaseModel):
    recorder_id: int
    account_id: int
    sub_account_id: int | None = Field(
        default=None, description="may be omitted when the account has exactly one sub-account"
    )
    enabled: bool = True
    multiplier: float = Field(default=1.0, gt=0, le=1000)
    max_contracts: int | None = Field(default=None, ge=1)
    close_only: bool = False
    overrides: TraderOverrides = Field(default_factory=TraderOverrides)
    reconcile_policy: ReconcilePolicy = Field(default="alert", description=_POLICY_DOC)


class TraderPatch(BaseModel):
    """Fields left out are unchanged; ``max_contracts: null`` removes the cap."""

    model_config = ConfigDict(extra="forbid")

    sub_account_id: int | None = None
    enabled: bool | None = None
    multiplier: float | None = Field(default=None, gt=0, le=1000)
    max_contracts: int | None = Field(default=None, ge=1)
    close_only: bool | None = None
    overrides: TraderOverrides | None = None
    reconcile_policy: ReconcilePolicy | None = Field(default=None, description=_POLICY_DOC)


class TraderOut(BaseModel):
    id: int
    recorder_id: int
    account_id: int
    sub_account_id: int | None
    enabled: bool
    multiplier: float
    max_contracts: int | None
    close_only: bool
    overrides: TraderOverrides
    reconcile_policy: str = "alert"
    created_at: float

    @classmethod
    def of(cls, t: Trader) -> TraderOut:
        assert t.id is not None
        return cls(
            id=t.id,
            recorder_id=t.recorder_id,
            account_id=t.account_id,
            sub_account_id=t.sub_account_id,
            enabled=t.enabled,
            multiplier=t.multiplier,
            max_contracts=t.max_contracts,
            close_only=t.close_only,
            overrides=TraderOverrides.model_validate(
                {k: v for k, v in (t.overrides or {}).items() if k != "reconcile_policy"}
            ),
            reconcile_policy=str((t.overrides or {}).get("reconcile_policy", "alert")),
            created_at=t.created_at,
        )
