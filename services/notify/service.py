"""Webhook delivery: the Kafka handler that fills the outbox, and the workers that drain it.

The handler only records what is to be sent (`deliveries`, idempotent by webhook id) and
commits, so a slow department never holds up the consumer. The `Deliverer` sends: each
department's endpoint has its own concurrency limit and circuit breaker, so one slow or dead
department never delays another; a case's messages to a department go one at a time in their
order (the next waits until the previous is delivered or dead-lettered). Every attempt is
logged; an exhausted delivery is dead-lettered (`status: dead`) and can be replayed.

Round trips, the one database being what limits the loop: a poll of events is one read of
their cases and one write of their deliveries; each round of the `Deliverer` claims what it
is about to post with one update (leased: two workers never post the same delivery at once;
a worker that dies mid-attempt leaves it to be posted again when the lease runs out), and
the outcomes of posts are recorded together, two writes for those finished by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import get_args
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter, Gauge, Histogram

from gridloop import tracing
from gridloop.cases.reader import CaseReader
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack
from gridloop.citypack.messages import TOLD, EmailChannel
from gridloop.contacts import ContactKeyError
from gridloop.contacts.store import ContactStore
from gridloop.kafka import Retry
from gridloop.medialinks import LinkSigner
from gridloop.mongo import Document
from schemas.envelope import Envelope
from services.notify.addresses import address_problem, pinned, url_problem
from services.notify.channels import channel_endpoints, mail
from services.notify.core import (
    Answer,
    Breaker,
    Next,
    Notice,
    Result,
    RetrySchedule,
    Telling,
    concerns_departments,
    encode_body,
    next_step,
    notices,
    retry_after_seconds,
    signed_headers,
    webhook_id,
)
from services.notify.reporters import (
    REPORTER,
    Untold,
    address_of,
    addressed,
    channel_for,
    concerns_reporters,
    recipient,
    reporter_message,
)
from services.notify.store import DEAD, DELIVERED, PENDING, DeliveryStore, Endpoint, Outcome

log = logging.getLogger(__name__)
WEBHOOKS = Counter(
    "gridloop_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, failed, exhausted, gone, refused)",
    ["department", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "gridloop_webhook_attempt_seconds", "Duration of one webhook attempt", ["department"]
)
DELIVERY_LAG = Histogram(
    "gridloop_webhook_delivery_lag_seconds",
    "From the message being queued to its delivery",
    ["department"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000),
)
PENDING_GAUGE = Gauge("gridloop_webhook_pending", "Messages waiting for delivery", ["department"])
ENDPOINT_UP = Gauge(
    "gridloop_webhook_endpoint_up",
    "1 if the last attempt to the endpoint succeeded",
    ["department"],
)
CONSECUTIVE_FAILURES = Gauge(
    "gridloop_webhook_consecutive_failures",
    "Failed attempts since the last success",
    ["department"],
)
CIRCUIT_OPEN = Gauge(
    "gridloop_webhook_circuit_open",
    "1 while the endpoint's circuit breaker is open",
    ["department"],
)
ENDPOINT_DISABLED = Gauge(
    "gridloop_webhook_endpoint_disabled", "1 if the endpoint is disabled (410 Gone)", ["department"]
)


def zero(departments: Iterable[str]) -> None:
    """Every department's series from the start, so that a quiet notify's dashboard shows
    0, not "no data": no attempt yet, no failure in a row, circuit closed (this process's
    breaker starts so); whether its endpoint is up is not known before an attempt (NaN).
    Pending and disabled are measured by the first round (`Deliverer.tick`)."""
    for department in departments:
        for outcome in get_args(Result):
            WEBHOOKS.labels(department, outcome)
        ATTEMPT_SECONDS.labels(department)
        DELIVERY_LAG.labels(department)
        ENDPOINT_UP.labels(department).set(math.nan)
        CONSECUTIVE_FAILURES.labels(department).set(0)
        CIRCUIT_OPEN.labels(department).set(0)


def _seq(env: Envelope, wid: str) -> str:
    """Sort key of a message: its event time (UTC, fixed width), then its id."""
    return f"{env.time.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%f')}|{wid}"


Following = Callable[[str], str]  # a case id → the reporter's link to follow and rate it
ORDER_WAIT = timedelta(minutes=1)  # how long a reporter's message waits for an earlier one


class Notify:
    """The consumer's handler: every event that concerns a department becomes deliveries,
    and every one a reporter is told of (with `contacts` and a pack that tells) one more."""

    def __init__(
        self,
        pack: CityPack,
        cases: CaseReader,
        store: DeliveryStore,
        wake: asyncio.Event | None = None,
        links: LinkSigner | None = None,
        contacts: ContactStore | None = None,
        following: Following | None = None,
    ) -> None:
        self.pack, self.cases, self.store = pack, cases, store
        self.wake = wake or asyncio.Event()
        self.telling = Telling(pack, links)  # photo links only where a signer is given
        self.contacts, self.following = contacts, following
        self.untold = Untold()  # cases with no reporter to tell: not read for them

    async def on_event(self, env: Envelope) -> Sequence[Envelope]:
        """One event: the pipeline's record-by-record fallback (and the tests')."""
        await self.on_events([env])
        return []

    async def on_events(self, envs: Sequence[Envelope]) -> None:
        """A poll's events: one read of their cases, one write of their deliveries.

        The deliveries of the cases found are written even when some case is not projected
        yet (`Retry`): the poll handled again finds them there and adds only the rest."""
        telling = self.contacts is not None and self.pack.messages is not None
        if telling:
            self.untold.learn(envs)
        concerned = [
            env
            for env in envs
            if concerns_departments(env)
            or (telling and concerns_reporters(env) and env.data.case_id not in self.untold)
        ]
        if not concerned:
            return  # most events concern no department
        wanted = {env.data.case_id for env in concerned}
        cases = await self.cases.records(wanted)
        # A message says what the case was at its event (its number, its department): a
        # projection behind the event (catching up, or restarted) is waited for, not told.
        behind = {env.data.case_id for env in concerned if not _caught_up(env, cases)}
        ready = [env for env in concerned if env.data.case_id not in behind]
        now = datetime.now(UTC)
        deliveries = [
            _delivery(env, notice, now)
            for env in ready
            for notice in notices(env, cases[env.data.case_id], self.telling, now)
        ]
        held: list[str] = []
        if telling:
            told, held = await self._in_order(await self._to_reporters(ready, cases, now))
            deliveries += told
        if await self.store.enqueue(deliveries):
            self.wake.set()
        if missing := sorted(behind):
            raise Retry(f"cases not projected up to their events yet: {', '.join(missing[:5])}")
        if held:
            raise Retry(f"reporters' earlier messages not read yet: {', '.join(held[:5])}")

    async def _in_order(self, told: list[Document]) -> tuple[list[Document], list[str]]:
        """The reporters' deliveries that may be queued now, and the cases of those held: a
        message waits (the poll is handled again) while a message of an earlier event of
        its case that the case's timeline shows is not queued yet — the topics are read in
        no order between them, and a case's messages go out in the order they are queued.
        It waits `ORDER_WAIT` at most from its event: an earlier message that never comes
        (told nothing then) holds nothing up for good."""
        ids = {doc["_id"] for doc in told}
        before = {i for doc in told for i in doc["after"] if i not in ids}
        queued = await self.store.existing(list(before)) if before else set()
        now = datetime.now(UTC)
        ready, held = [], []
        for doc in told:
            waits = [i for i in doc.pop("after") if i not in ids and i not in queued]
            if waits and now - doc["created_from"] < ORDER_WAIT:
                held.append(doc["case_id"])
            else:
                ready.append(doc)
            doc.pop("created_from")
        return ready, held

    async def _to_reporters(
        self, envs: Sequence[Envelope], cases: dict[str, CaseRecord], now: datetime
    ) -> list[Document]:
        """The reporters' deliveries of a poll: one read of their contacts, to choose each
        one's channel (or none: opted out, erased, no address a channel takes). The
        delivery keeps the contact's reference, never its address."""
        assert self.contacts is not None and self.pack.messages is not None
        told: list[tuple[Envelope, CaseRecord, str]] = []
        for env in envs:
            case = cases.get(env.data.case_id)
            if case and case.reporter and case.reporter.contact and concerns_reporters(env):
                told.append((env, case, case.reporter.contact))
        if not told:
            return []
        try:
            contacts = await self.contacts.get_many(list({ref for _, _, ref in told}))
        except ContactKeyError as exc:  # misconfigured keys must not hold up departments
            log.error("reporters not told: their contacts do not open here (%s)", exc)
            return []
        found = []
        for env, case, ref in told:
            channel = channel_for(self.pack.messages, contacts.get(ref))
            follow = self.following(case.case_id) if self.following else ""
            message = reporter_message(env, case, self.pack, follow)
            if channel is None or message is None:
                continue
            doc = _reporter_delivery(env, Notice(recipient(channel), message), now, ref)
            found.append(doc | {"after": _told_before(env, case), "created_from": env.time})
        return found


def _caught_up(env: Envelope, cases: dict[str, CaseRecord]) -> bool:
    """Whether the case is projected at least up to `env`'s version (a case event's
    `version`, an annotation's `case_version`; an event with neither: projected at all)."""
    case = cases.get(env.data.case_id)
    if case is None:
        return False
    version = getattr(env.data, "version", None) or getattr(env.data, "case_version", None)
    return not isinstance(version, int) or case.version >= version


def _delivery(env: Envelope, notice: Notice, now: datetime) -> Document:
    wid = webhook_id(env.id, notice.department)
    # The event's trace context, when it came with one: each attempt is a span of its trace.
    traced = {"traceparent": env.traceparent} if env.traceparent else {}
    return traced | {
        "_id": wid,
        "event_id": env.id,
        "type": notice.message["type"],
        "department": notice.department,
        "case_id": env.data.case_id,
        "seq": _seq(env, wid),
        "body": encode_body(notice.message),
        "status": PENDING,
        "attempts": 0,
        "next_at": now,
        "created_at": now,
        "lease_until": None,
    }


def _told_before(env: Envelope, case: CaseRecord) -> list[str]:
    """The delivery ids of the reporter's messages of the case's earlier events (as far as
    its timeline shows them)."""
    version = getattr(env.data, "version", 0)
    return [
        webhook_id(e.event_id, REPORTER)
        for e in case.timeline
        if e.type in TOLD and e.version < version
    ]


def _reporter_delivery(env: Envelope, notice: Notice, now: datetime, contact: str) -> Document:
    """A reporter's delivery: its id stands for the event and the reporter whatever the
    channel (a redelivered event chooses again, and must find it there)."""
    wid = webhook_id(env.id, REPORTER)
    channel = notice.department.removeprefix(f"{REPORTER}:")
    doc = _delivery(env, notice, now) | {"_id": wid, "seq": _seq(env, wid)}
    return doc | {"contact": contact, "channel": channel}


def _held(pending: Sequence[Document], chosen: set[str]) -> bool:
    """Whether a round left a delivery due that no worker holds: one behind its case's
    earlier message, its department's limit or circuit. (Not one under a lease: its own
    worker's attempt is under way.)"""
    now = datetime.now(UTC)
    return any(
        doc["_id"] not in chosen
        and doc["next_at"] <= now
        and (doc.get("lease_until") is None or doc["lease_until"] <= now)
        for doc in pending
    )


@dataclass
class _EndpointState:
    breaker: Breaker
    in_flight: set[str] = field(default_factory=set)  # case ids being sent to


@dataclass(frozen=True)
class DeliveryPolicy:
    schedule: RetrySchedule
    timeout: float = 10.0  # seconds per attempt
    concurrency: int = 4  # attempts in flight per endpoint
    circuit_threshold: int = 5  # consecutive failures that open the circuit
    circuit_cooldown: float = 30.0  # seconds the circuit stays open before one probe
    poll: float = 0.5  # seconds between scans of the outbox when nothing wakes the workers


class Deliverer:
    def __init__(
        self,
        pack: CityPack,
        store: DeliveryStore,
        http: httpx.AsyncClient,
        policy: DeliveryPolicy,
        wake: asyncio.Event | None = None,
        rng: random.Random | None = None,
        contacts: ContactStore | None = None,
    ) -> None:
        self.pack, self.store, self.http, self.policy = pack, store, http, policy
        self.contacts = contacts  # where reporters' addresses are looked up, at each attempt
        self.wake = wake or asyncio.Event()
        self.rng = rng or random.Random()
        self.owner = f"notify-{uuid.uuid4().hex[:8]}"
        self.allow_private = pack.routing.webhooks.allow_private_addresses
        self._state: dict[str, _EndpointState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rounds = 0  # numbers each round's lease
        # Whether the last round left a delivery waiting that an attempt's end may free (its
        # case or its department busy), or a round is under way: only then does an attempt's
        # end start a round. Otherwise it would read the outbox for nothing, a read a
        # delivery (`_held`).
        self._waiting = False
        self._ticking = False
        # Outcomes posted but not yet recorded, each with what its attempt waits on.
        self._unrecorded: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self.wake.clear()
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken(stop), self.policy.poll)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._recorder is not None:
                # Posts already made are recorded, even of attempts just stopped: else
                # they would be posted again when their leases run out.
                await self._recorder

    async def _woken(self, stop: asyncio.Event) -> None:
        waits = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def tick(self) -> None:
        """Start every attempt that is due and allowed, claimed together; never wait for
        one to finish."""
        self._ticking = True
        try:
            await self._round()
        finally:
            self._ticking = False

    async def _round(self) -> None:
        endpoints = await self.store.all_endpoints(self.pack) | channel_endpoints(self.pack)
        pending = await self.store.pending()
        chosen = self._choose(pending, endpoints)
        self._waiting = _held(pending, {doc["_id"] for doc, _ in chosen})
        if not chosen:
            return
        self._rounds += 1
        claim = f"{self.owner}/{self._rounds}"
        lease = timedelta(seconds=self.policy.timeout + 30)
        won = await self.store.claim([doc for doc, _ in chosen], claim, lease)
        for doc, endpoint in chosen:
            if doc["_id"] not in won:
                continue  # another notify instance has it
            state = self._state[endpoint.department]
            state.in_flight.add(doc["case_id"])
            task = asyncio.create_task(self._attempt(doc, endpoint, state, claim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _choose(
        self, pending: list[Document], endpoints: dict[str, Endpoint]
    ) -> list[tuple[Document, Endpoint]]:
        """The deliveries to attempt now: the head of each (department, case), if due,
        within its endpoint's concurrency and not behind its open circuit."""
        now, mono = datetime.now(UTC), time.monotonic()
        heads: dict[tuple[str, str], Document] = {}
        counts: dict[str, int] = {}
        for doc in pending:  # sorted by seq: the first of each (department, case) is its head
            heads.setdefault((doc["department"], doc["case_id"]), doc)
            counts[doc["department"]] = counts.get(doc["department"], 0) + 1
        for code in endpoints.keys() | counts.keys():
            PENDING_GAUGE.labels(code).set(counts.get(code, 0))
            ENDPOINT_DISABLED.labels(code).set(
                1 if code in endpoints and endpoints[code].disabled else 0
            )
        chosen: list[tuple[Document, Endpoint]] = []
        picked: dict[str, int] = {}  # per department, this round
        for (department, case_id), doc in heads.items():
            endpoint = endpoints.get(department)
            if endpoint is None or endpoint.disabled:
                continue  # waits until the department has an enabled endpoint again
            state = self._endpoint_state(department)
            if not state.breaker.admits(mono):
                continue
            limit = state.breaker.limit(self.policy.concurrency)
            busy = len(state.in_flight) + picked.get(department, 0)
            if case_id in state.in_flight or busy >= limit or doc["next_at"] > now:
                continue
            picked[department] = picked.get(department, 0) + 1
            chosen.append((doc, endpoint))
        return chosen

    def _endpoint_state(self, department: str) -> _EndpointState:
        if (state := self._state.get(department)) is None:
            breaker = Breaker(self.policy.circuit_threshold, self.policy.circuit_cooldown)
            state = self._state[department] = _EndpointState(breaker)
        return state

    async def _attempt(
        self, doc: Document, endpoint: Endpoint, state: _EndpointState, claim: str
    ) -> None:
        try:
            await self._attempt_once(doc, endpoint, state, claim)
        except Exception:
            # Unrecorded: its lease runs out and it is attempted again, same webhook id.
            log.exception("webhook %s: attempt not recorded", doc["_id"])
        finally:
            # Only once the outcome is recorded may the case's next message (or this one's
            # retry) be considered.
            state.in_flight.discard(doc["case_id"])
            if self._waiting or self._ticking:
                self.wake.set()

    async def _record(self, outcome: Outcome) -> None:
        """Record an attempt with every other outcome ready by the time the write before
        is done (a group commit): under load, two writes for many posts instead of two for
        each; alone, at once. Returns when this one is written."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unrecorded.append((outcome, written))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._recording())
        await written

    async def _recording(self) -> None:
        """Write what waits, all of it at each write, until nothing does."""
        while self._unrecorded:
            batch, self._unrecorded = self._unrecorded, []
            try:
                await self.store.record([outcome for outcome, _ in batch])
            except Exception as exc:  # each attempt logs it; their leases run out
                _settle(batch, exc)
            except BaseException:
                _settle(batch, None, cancel=True)
                raise
            else:
                _settle(batch, None)

    async def _attempt_once(
        self, doc: Document, endpoint: Endpoint, state: _EndpointState, claim: str
    ) -> None:
        """One attempt: call, decide what follows (the core's `next_step`), move the
        breaker, disable an endpoint that is gone, count, and record."""
        number = doc["attempts"] + 1
        started, at = time.perf_counter(), datetime.now(UTC)
        span = tracing.attempting(
            doc.get("traceparent", ""), doc["case_id"], endpoint.department, number
        )
        answer = await self._call(doc, endpoint, at)
        seconds = time.perf_counter() - started
        step = next_step(answer, number, self.policy.schedule, self.rng)
        tracing.attempted(span, step.result, answer.status)
        state.breaker = state.breaker.after(step.result, time.monotonic())
        if step.result == "gone":
            await self.store.disable(endpoint.department, f"410 Gone at {at.isoformat()}")
            log.warning("department %s answered 410 Gone: endpoint disabled", endpoint.department)
        _count(doc, endpoint.department, step, state.breaker, seconds)
        if step.result != "delivered":
            log.warning(
                "webhook %s to %s attempt %d: %s (%s)",
                doc["_id"],
                endpoint.department,
                number,
                step.result,
                answer.status or answer.problem,
            )
        attempt = _attempt_log(doc, endpoint, number, at, answer, step, seconds)
        await self._record(Outcome(attempt, _change(number, answer, step), claim))

    async def _call(self, doc: Document, endpoint: Endpoint, at: datetime) -> Answer:
        """Check the addresses, then POST the signed message to one of them: what came of
        it, never raising. A reporter's message is first given its address (`_tell`)."""
        body = doc["body"]
        if doc.get("contact"):
            told = await self._tell(doc, endpoint)
            if isinstance(told, Answer):
                return told
            body = told
        try:
            checked = await self._checked(endpoint.url)
            if isinstance(checked, Answer):
                return checked
            headers = signed_headers(endpoint.secrets, doc["_id"], at, body)
            response = await asyncio.wait_for(
                self._post(endpoint.url, checked, body.encode(), headers),
                self.policy.timeout,
            )
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return Answer(error=_error(exc))
        except Exception as exc:  # never lose the worker to one odd answer
            log.exception("webhook %s: unexpected error", doc["_id"])
            return Answer(error=_error(exc))
        retry_after = retry_after_seconds(response.headers.get("retry-after"), at)
        return Answer(status=response.status_code, retry_after=retry_after)

    async def _tell(self, doc: Document, endpoint: Endpoint) -> str | Answer:
        """A reporter's message as sent to its provider (with the address looked up now), or
        the answer of an attempt that cannot be made: the contact erased or opted out since
        (dead for good: nothing is sent), or the email sent already (SMTP)."""
        try:
            contact = await self.contacts.get(doc["contact"]) if self.contacts else None
        except Exception as exc:  # the database: tried again on the schedule
            return Answer(error=f"the contact store: {type(exc).__name__}")
        if contact is None:
            return Answer(refused="the reporter's contact is not kept (erased)")
        if contact.opted_out:
            return Answer(refused="the reporter opted out of messages")
        address = address_of(doc["channel"], contact)
        if address is None:
            return Answer(refused=f"the reporter's contact has no {doc['channel']} address")
        channel = self.pack.messages.channel(doc["channel"]) if self.pack.messages else None
        if isinstance(channel, EmailChannel):
            return await mail(channel, doc, address, self.policy.timeout)
        if channel is None:
            return Answer(refused=f"the pack has no {doc['channel']} channel")
        return addressed(doc["body"], doc["channel"], address)

    async def _checked(self, url: str) -> list[str] | Answer:
        """The addresses the URL's host resolves to now, each checked (SSRF), or the
        answer of an attempt that cannot be made."""
        if problem := url_problem(url):
            return Answer(refused=problem)
        parts = urlsplit(url)
        addresses = await resolve(parts.hostname or "", parts.port)
        if not addresses:
            return Answer(error="the host does not resolve")  # now: retried
        if problem := address_problem(addresses, self.allow_private):
            return Answer(refused=problem)
        return addresses

    async def _post(
        self, url: str, addresses: list[str], body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """POST to the addresses that were checked, never to what the host resolves to by
        then (DNS rebinding): the first that takes the connection, with the URL's own Host
        header and TLS server name."""
        for i, address in enumerate(addresses):
            to = pinned(url, address)
            extensions = {"sni_hostname": to.sni} if to.sni else None
            try:
                return await self.http.post(
                    to.url,
                    content=body,
                    headers=headers | ({"Host": to.host} if to.host else {}),
                    extensions=extensions,
                )
            except httpx.ConnectError:
                if i == len(addresses) - 1:
                    raise  # nothing was sent to any of them
        raise AssertionError("no address")  # `_checked` never returns none


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _attempt_log(
    doc: Document,
    endpoint: Endpoint,
    number: int,
    at: datetime,
    answer: Answer,
    step: Next,
    seconds: float,
) -> Document:
    return {
        "delivery_id": doc["_id"],
        "department": endpoint.department,
        "case_id": doc["case_id"],
        "attempt": number,
        "replay": doc.get("replays", 0),
        "at": at,
        "url": endpoint.url,
        "status_code": answer.status,
        "error": answer.problem,
        "retry_after": answer.retry_after,
        "seconds": round(seconds, 4),
        "outcome": step.result,
    }


def _change(number: int, answer: Answer, step: Next) -> Document:
    """The delivery after attempt `number`: delivered, dead, or due again."""
    now = datetime.now(UTC)
    change = {"attempts": number, "last_status": answer.status, "last_error": answer.problem}
    if step.result == "delivered":
        return change | {"status": DELIVERED, "delivered_at": now}
    if step.retry_in is not None:
        return change | {"next_at": now + timedelta(seconds=step.retry_in)}
    return change | {"status": DEAD, "dead_at": now, "dead_reason": step.result}


def _count(doc: Document, department: str, step: Next, breaker: Breaker, seconds: float) -> None:
    ATTEMPT_SECONDS.labels(department).observe(seconds)
    WEBHOOKS.labels(department, step.result).inc()
    ENDPOINT_UP.labels(department).set(1 if step.result == "delivered" else 0)
    CONSECUTIVE_FAILURES.labels(department).set(breaker.failures)
    CIRCUIT_OPEN.labels(department).set(1 if breaker.tripped else 0)
    if step.result == "delivered":
        lag = datetime.now(UTC) - doc["created_at"]
        DELIVERY_LAG.labels(department).observe(lag.total_seconds())


def _settle(
    batch: list[tuple[Outcome, asyncio.Future[None]]],
    error: Exception | None,
    cancel: bool = False,
) -> None:
    """Tell each attempt of `batch` still waiting (one stopped meanwhile is not) how its
    write went."""
    for _, written in batch:
        if written.done():
            continue
        if cancel:
            written.cancel()
        elif error is not None:
            written.set_exception(error)
        else:
            written.set_result(None)


async def resolve(host: str, port: int | None) -> list[str]:
    """The addresses `host` resolves to, once each, in the resolver's order of preference.
    An address written as one is itself, without the resolver (a thread hop each attempt,
    a twelfth of notify's CPU where the departments' endpoints are addresses)."""
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port or 443, type=socket.SOCK_STREAM
        )
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
