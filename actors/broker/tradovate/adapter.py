"""``TradovateBroker``: the :class:`~actors.broker.base.Broker` adapter for Tradovate.

Section numbers (§) refer to ``reference/tradovate.md``.

Orders go out over REST (``order/placeorder`` with ``isAutomated: true``, ``clOrdId``,
``accountId`` and ``accountSpec``, §4.1); everything the broker does comes back over the user
websocket: a ``user/syncrequest`` snapshot on every (re)connect, then ``props`` events (§5.6).
The synced state and the event mapping live in :class:`~.sync.SyncBook`; this module does the
I/O: login, account and contract lookups (cached), the socket, placement and cancellation.

Errors
------
``place`` raises only when the outcome is unknown (a transport failure after the request may
have reached Tradovate; the order stays ``pending`` and the sync stream settles it through its
``Command.clOrdId``). A ``failureReason`` (§4.1), a penalty longer than the client may wait, a
captcha, a 401 after re-login, an unknown account/contract, or a 429 back-off beyond
``rate_limit_retry_s`` all mean "not executed": the order is ``rejected`` with the reason. A 429
within that budget is waited out and resent (a 429 is never executed, §3.2); a ``p-ticket``
penalty is waited out and resent with the ticket by the REST client (§3.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from actors.broker.base import (
    TERMINAL_STATUSES,
    BrokerPosition,
    EventListener,
    OrderRequest,
    OrderState,
    UnknownOrder,
)
from actors.broker.tradovate.auth import Credentials, Endpoints, OAuthApp, Token, TradovateAuth
from actors.broker.tradovate.errors import CommandRejected, RateLimited, TradovateError
from actors.broker.tradovate.frames import Event, parse_props, snapshot_entities
from actors.broker.tradovate.rest import PenaltyLimiter, Throttle, TradovateRest
from actors.broker.tradovate.sync import OrderRecord, SyncBook
from actors.broker.tradovate.ws import TradovateSocket
from actors.instruments import UnknownSymbol, normalize

__all__ = ["TradovateBroker", "TradovateConfig", "tradovate_symbol"]

log = logging.getLogger("justtrades.broker.tradovate")


@dataclass(slots=True)
class TradovateConfig:
    """What :meth:`TradovateBroker.from_config` needs.

    ``endpoints`` defaults to the ``env`` hosts (§1). ``accounts`` limits the sync to those
    account names (None: every account of the login, by user id). ``renew_margin_s``: renew
    this long before ``expirationTime`` (§2.3 says ~15 min). ``stale_s``: reconnect after this
    long without any frame; ``reconnect_*``: exponential back-off between reconnects.
    ``cancel_wait_s``: how long ``cancel`` waits for the stream to confirm.
    ``rate_limit_retry_s``: total 429 back-off a ``place``/``cancel`` waits out before giving
    up. ``on_token``: persist tokens (encrypted; must be picklable to cross Ray).
    """

    env: str = "demo"
    credentials: Credentials | None = None
    oauth: OAuthApp | None = None
    token: Token | None = None
    endpoints: Endpoints | None = None
    accounts: list[str] | None = None
    renew_margin_s: float = 15 * 60
    heartbeat_s: float = 2.5
    stale_s: float = 15.0
    reconnect_initial_s: float = 0.25
    reconnect_max_s: float = 30.0
    request_timeout_s: float = 15.0
    start_timeout_s: float = 30.0
    cancel_wait_s: float = 3.0
    rate_limit_retry_s: float = 30.0
    max_penalty_wait_s: float = 120.0
    rate_limit_base_s: float = 10.0
    on_token: Callable[[Token], None] | None = None


def tradovate_symbol(symbol: str) -> str:
    """Tradovate contract name (§4.7): continuous forms map to our front month, explicit
    contracts to one year digit; anything else passes through upper-cased."""
    try:
        return normalize(symbol, datetime.now(UTC).date())
    except (UnknownSymbol, ValueError):
        return symbol.strip().upper()


class TradovateBroker:
    """Tradovate adapter (module docstring). Build with :meth:`from_config` or from parts.

    :meth:`start` logs in, loads accounts, opens the websocket and waits for the first sync.
    Every Broker method calls it, so calling it is optional, but calling it early delivers the
    existing positions and orders sooner. ``limiter`` (or :meth:`set_limiter`) is told about
    penalties and 429 back-offs.
    """

    kind = "tradovate"

    def __init__(
        self,
        auth: TradovateAuth,
        rest: TradovateRest,
        config: TradovateConfig | None = None,
        *,
        limiter: PenaltyLimiter | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.auth = auth
        self.rest = rest
        self.config = config or TradovateConfig()
        self.limiter = limiter
        self._sleep = sleep
        self._listener: EventListener | None = None
        self.book = SyncBook(self._emit, self._request_contract, clock)
        self._lookups: set[asyncio.Task[None]] = set()
        self._socket: TradovateSocket | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self.synced = asyncio.Event()
        self.counts: dict[str, int] = dict.fromkeys(("syncs", "retries_429", "rejected"), 0)

    @classmethod
    def from_config(
        cls, config: TradovateConfig, client: httpx.AsyncClient | None = None
    ) -> TradovateBroker:
        endpoints = config.endpoints or Endpoints.for_env(config.env)
        throttle = Throttle(
            max_penalty_wait_s=config.max_penalty_wait_s, rate_limit_base_s=config.rate_limit_base_s
        )
        http = client or httpx.AsyncClient(timeout=config.request_timeout_s)
        auth = TradovateAuth(
            http, endpoints, config.credentials, oauth=config.oauth, token=config.token,
            renew_margin_s=config.renew_margin_s, throttle=throttle, on_token=config.on_token,
        )  # fmt: skip
        return cls(auth, TradovateRest(http, auth, endpoints.rest, throttle), config)

    # ------------------------------------------------------------------ lifecycle

    def set_listener(self, listener: EventListener | None) -> None:
        self._listener = listener

    def set_limiter(self, limiter: PenaltyLimiter | None) -> None:
        self.limiter = limiter

    @property
    def socket(self) -> TradovateSocket | None:
        return self._socket

    async def start(self) -> None:
        """Log in, load accounts (§4.6), connect and wait for the first sync (idempotent)."""
        async with self._start_lock:
            if self._socket is None:
                await self.auth.token(self.limiter)
                for account in await self.rest.list_accounts(self.limiter):
                    self.book.learn_account(account)
                cfg = self.config
                self._socket = TradovateSocket(
                    self.auth.endpoints.ws, self._ws_token, self._on_ws_event,
                    refresh=self._ws_refresh, on_open=self._on_open,
                    heartbeat_s=cfg.heartbeat_s, stale_s=cfg.stale_s,
                    backoff_initial_s=cfg.reconnect_initial_s, backoff_max_s=cfg.reconnect_max_s,
                    request_timeout_s=cfg.request_timeout_s,
                    max_penalty_wait_s=cfg.max_penalty_wait_s, sleep=self._sleep,
                )  # fmt: skip
                self._socket.start()
                self._renewer = asyncio.get_running_loop().create_task(self._keep_token())
        if not self.synced.is_set():
            await asyncio.wait_for(self.synced.wait(), self.config.start_timeout_s)

    async def close(self) -> None:
        """Stop the socket and background tasks and close the HTTP client."""
        for task in [self._renewer, *self._lookups]:
            if task is not None:
                task.cancel()
        if self._socket is not None:
            await self._socket.close()
        await self.rest.client.aclose()

    # ------------------------------------------------------------------ Broker

    async def place(self, order: OrderRequest) -> OrderState:
        """Broker contract: idempotent by ``cl_ord_id``; rejections are states (module doc)."""
        known = self.book.by_cl.get(order.cl_ord_id)
        if known is not None:
            return known.state()
        unavailable: str | None = None
        try:
            await self.start()
        except Exception as exc:  # nothing was sent: a refusal, not an unknown outcome
            log.warning("tradovate unavailable for %s: %r", order.cl_ord_id, exc)
            unavailable = f"broker_unavailable: {exc!r}"[:200]
        known = self.book.by_cl.get(order.cl_ord_id)  # the sync may have brought it
        if known is not None:
            return known.state()
        rec = self.book.new_order(order.cl_ord_id, order.account, order.symbol, order.qty)
        if unavailable is not None:
            return self._reject(rec, unavailable)
        account_id = self.book.account_ids.get(order.account)
        if account_id is None:
            return self._reject(rec, "unknown_account")
        rec.account_id = account_id
        self.book.sending[rec.cl_ord_id] = rec
        try:
            return await self._send_order(rec, order, account_id)
        finally:
            del self.book.sending[rec.cl_ord_id]
            self.book.pump()

    async def cancel(self, cl_ord_id: str) -> OrderState:
        """Cancel by ``cl_ord_id`` → ``orderId`` (§4.3); waits up to ``cancel_wait_s`` for the
        stream to report the final state. A refused cancel (e.g. ``TooLate``) is not an error."""
        await self.start()  # a fresh session knows earlier orders only after the sync
        rec = self.book.by_cl.get(cl_ord_id)
        if rec is None:
            raise UnknownOrder(cl_ord_id)
        if rec.status in TERMINAL_STATUSES:
            return rec.state()
        if rec.order_id is None:  # placement still in flight
            await self._wait_for(rec, lambda: rec.order_id is not None)
            if rec.order_id is None:
                raise TradovateError(f"{cl_ord_id}: no Tradovate order id yet, cannot cancel")
        order_id = rec.order_id
        try:
            await self._retry_429(lambda: self.rest.cancel_order(order_id, None, self.limiter))
        except CommandRejected as exc:
            log.info("cancel of %s refused: %s", cl_ord_id, exc.reason)
        await self._wait_for(rec, lambda: rec.status in TERMINAL_STATUSES)
        return rec.state()

    async def positions(self, account: str) -> list[BrokerPosition]:
        await self.start()
        return sorted(
            (p for p in self.book.positions.values() if p.account == account and p.net_pos),
            key=lambda p: p.symbol,
        )

    async def orders(self, account: str) -> list[OrderState]:
        await self.start()
        return [r.state() for r in self.book.by_cl.values() if r.account == account]

    # ------------------------------------------------------------------ extras

    async def contract_info(self, symbol: str) -> dict[str, Any] | None:
        """Contract id and name plus its ``Product`` (``tickSize``, ``valuePerPoint``, §4.7), or
        None. The product name is the contract name minus month code and year digit ([S4])."""
        name = tradovate_symbol(symbol)
        contract_id = await self._contract_id(name)
        if contract_id is None:
            return None
        product = await self.rest.find_product(name[:-2], self.limiter)
        return {"id": contract_id, "name": name, "product": product}

    async def liquidate(self, account: str, symbol: str) -> dict[str, Any]:
        """``order/liquidateposition`` for one (account, contract) (§4.3)."""
        await self.start()
        contract_id = await self._contract_id(tradovate_symbol(symbol))
        account_id = self.book.account_ids.get(account)
        if contract_id is None or account_id is None:
            raise TradovateError(f"unknown account/contract {account}/{symbol}")
        return await self.rest.liquidate_position(account_id, contract_id, self.limiter)

    def status(self) -> dict[str, Any]:
        """Counters for ``/status`` and metrics."""
        sock = self._socket
        return {
            "connected": bool(sock and sock.ready.is_set()),
            "synced": self.synced.is_set(),
            "inbox": self.book.waiting,
            "book": dict(self.book.counts),
            "socket": dict(sock.counts) if sock else {},
            "auth": dict(self.auth.counts),
            "throttle": dict(self.rest.throttle.counts),
            **self.counts,
        }

    # ------------------------------------------------------------------ internals

    async def _send_order(
        self, rec: OrderRecord, order: OrderRequest, account_id: int
    ) -> OrderState:
        try:
            contract_id = await self._contract_id(tradovate_symbol(order.symbol))
        except TradovateError as exc:  # a lookup, nothing sent yet
            return self._reject(rec, f"contract_lookup_failed: {exc.message}"[:200])
        if contract_id is None:
            return self._reject(rec, "InvalidContract: unknown contract")
        rec.account_id, rec.contract_id = account_id, contract_id
        fields = {
            "account_id": account_id,
            "account_spec": order.account,
            "symbol": self.book.contract_names[contract_id],
            "action": "Buy" if order.side == "buy" else "Sell",
            "qty": order.qty,
            "order_type": "Stop" if order.order_type == "stop" else "Market",
            "cl_ord_id": order.cl_ord_id,
            "stop_price": order.stop_price,
        }
        try:
            order_id = await self._retry_429(lambda: self.rest.place_order(self.limiter, **fields))
        except CommandRejected as exc:
            if exc.order_id is not None:
                self.book.link(rec, exc.order_id)
            return self._reject(rec, exc.reason)
        except TradovateError as exc:
            if exc.executed_unknown:
                rec.reason = f"unknown_outcome: {exc.message}"[:200]
                raise
            return self._reject(rec, f"{type(exc).__name__}: {exc.message}"[:200])
        if rec.order_id is None:  # a Command event may have linked it already
            self.book.link(rec, order_id)
        self.book.pump()
        self.book.refresh(rec)
        return rec.state()

    def _reject(self, rec: OrderRecord, reason: str) -> OrderState:
        self.counts["rejected"] += 1
        return self.book.finish(rec, "rejected", reason)

    async def _retry_429(self, call: Callable[[], Awaitable[Any]]) -> Any:
        waited = 0.0
        while True:
            try:
                return await call()
            except RateLimited as exc:
                waited += exc.retry_after
                if waited > self.config.rate_limit_retry_s:
                    raise
                self.counts["retries_429"] += 1
                await self._sleep(exc.retry_after)

    async def _wait_for(self, rec: OrderRecord, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.config.cancel_wait_s
        while not done() and (left := deadline - time.monotonic()) > 0:
            rec.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rec.changed.wait(), left)

    async def _contract_id(self, name: str) -> int | None:
        """``contract/find`` by name, cached for the life of the adapter (§4.7)."""
        if name in self.book.contract_ids:
            return self.book.contract_ids[name]
        contract = await self.rest.find_contract(name, self.limiter)
        if contract is not None:
            self.book.learn_contract(contract)
        return self.book.contract_ids.get(name)

    def _request_contract(self, contract_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._lookup_contract(contract_id))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _lookup_contract(self, contract_id: int) -> None:
        """Name a contract id seen in a sync event (``contract/item``, cached)."""
        try:
            contract = await self.rest.contract_item(contract_id, self.limiter)
        except Exception as exc:
            log.warning("contract/item %s failed: %r", contract_id, exc)
            contract = None
        if contract is None or not isinstance(contract.get("name"), str):
            contract = {"id": contract_id, "name": f"contract-{contract_id}"}
        self.book.learn_contract(contract)
        self.book.pump()

    async def _ws_token(self) -> str:
        return await self.auth.token(self.limiter)

    async def _ws_refresh(self, old: str) -> str:
        return await self.auth.recover(old, 1, self.limiter)

    async def _keep_token(self) -> None:
        """Renew before expiry even when no REST call needs the token (§2.3), so the session
        behind the socket never lapses while idle."""
        while True:
            delay = self.auth.seconds_until_renewal()
            await asyncio.sleep(max(1.0, delay if delay is not None else 60.0))
            try:
                await self.auth.token(self.limiter)
            except Exception as exc:
                log.warning("background token renewal failed: %r", exc)
                await asyncio.sleep(30.0)

    async def _on_open(self, sock: TradovateSocket) -> None:
        """After every authorize: ``user/syncrequest`` (§5.6) by user id, or by account ids when
        limited to some accounts; events arriving meanwhile are held until it is applied."""
        tok = self.auth.current
        if self.config.accounts is not None or tok is None or tok.user_id is None:
            names = self.config.accounts or list(self.book.account_ids)
            ids = [self.book.account_ids[n] for n in names if n in self.book.account_ids]
            body: dict[str, Any] = {"accounts": ids}
        else:
            body = {"users": [tok.user_id]}
        with sock.hold():
            data = await sock.request("user/syncrequest", body)
            self.counts["syncs"] += 1
            self.book.push_snapshot(snapshot_entities(data))
        # Synced means applied: a snapshot naming contracts we have not looked up yet waits in
        # the book's inbox, and a place() deciding "unknown client order id" before it is
        # applied would send again an order the previous session of this actor had sent.
        deadline = time.monotonic() + self.config.start_timeout_s
        while self.book.waiting and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.synced.set()

    def _on_ws_event(self, event: Event) -> None:
        if event.kind == "props":
            self.book.push_props(parse_props(event.data))

    def _emit(self, event: Any) -> None:
        if self._listener is not None:
            self._listener(event)
