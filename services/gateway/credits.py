"""Credits: per-second metering of the trimmed source at the model's rate, reserved up front, charged once.

One account per owner (all of an owner's keys share it), a JSON document `account.<owner>` in the
`vbg_keys` bucket, changed only by compare-and-set. Amounts are kept in integer milli-credits, so sums
never drift; the API shows credits with three decimals.

    account = {owner, balance_milli, used_milli, reservations: {job_id: {milli, at}}, created, updated}
    available = balance - sum(reservations)

The life of a metered job:

1. submit: the reservation is the job's longest possible cost, `rate x seconds`, where seconds is the
   trimmed span when the request gives an `end`, else `max_duration_s` (VIDEOBG_MAX_DURATION_S, the
   longest input ingest accepts: one setting for both): the length of a video is unknown until ingest has probed it, and a reservation that covers
   the worst case means a job that was admitted can always be paid for. If `available` is short the
   request is refused with 403 insufficient_api_credits and nothing is created. The reservation is
   keyed by job id, so reserving twice (an idempotent retry racing itself) holds it once. A draft job
   (removebgvideo `auto_start: false`) is only checked; its reservation is made when it is started.
2. completed: the charge is `rate x billed_seconds` (written by ingest: the trimmed span measured from
   the packets; decoding stops there), never the estimate. Compute already spent is not free: a job
   cancelled after processing started, or failed on a stage deadline (`deadline_exceeded`), is charged
   for `processed_seconds` (the span the segmenter has matted, on the record). Other failures are
   ours and free: the reservation is released. No charge exceeds the reservation, so settling never
   overdraws an account.
3. settling is two idempotent steps, so any replica may run it any number of times:
   a) the job record's `billing.state` moves reserved -> charged | released by compare-and-set, with
      the amount (`credits` on the record); only one writer wins, and every racer computes the same
      amount from the same record;
   b) the account drops the job's reservation entry and, for a charge, moves the amount from balance
      to used, in one compare-and-set; a second run finds no entry and changes nothing. The metric
      `videobg_credits_charged_total` is counted by the run that removed the entry.
   Settling runs when a job-ending event arrives (services/gateway/jobs.py subscribes to them), when
   the gateway itself ends a job (cancel, a failed publish), before `GET /v1/usage` answers, and in a
   periodic sweep over all open reservations, which also releases a reservation whose job was never
   created (a gateway that died between reserving and creating).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.common.jobstore import JobStore, now_iso
from services.common.record import BillingRecord, Job, JobSpec, ReserveBasis, Status
from services.gateway.api_keys import BUCKET, check_owner, get_doc, iter_docs, open_bucket, update_doc
from videobg import metrics
from videobg.errors import InsufficientCredits, InvalidInput, NotFound

INSUFFICIENT_MESSAGE = "Insufficient credits available"  # the Pixelcut contract's wording

# billing.state on a job record
ESTIMATED: Final = "estimated"  # a draft: checked, nothing held
RESERVED: Final = "reserved"
CHARGED: Final = "charged"
RELEASED: Final = "released"


def to_milli(credits: float) -> int:
    return int(round(credits * 1000))


def from_milli(milli: int) -> float:
    return round(milli / 1000, 3)


def cost_milli(seconds: float, credits_per_minute: float) -> int:
    """Credits for `seconds` of source at a per-minute rate, rounded up to the milli-credit."""
    return int(math.ceil(max(0.0, seconds) * credits_per_minute * 1000 / 60 - 1e-9))


@dataclass(frozen=True)
class Rates:
    per_minute: Mapping[str, float]
    default_model: str  # what "" (the service's default model) is billed as
    reserve_s: float  # seconds reserved for a job of unknown length

    def rate(self, model: str) -> float:
        name = model or self.default_model
        if name not in self.per_minute:
            raise InvalidInput(f"no credit rate is configured for model {name!r}")
        return float(self.per_minute[name])

    def reserve_seconds(self, spec: JobSpec) -> float:
        """The seconds a job may bill at most, from its request alone (no probe)."""
        if spec.trim.end is not None:
            return min(max(0.0, spec.trim.end - spec.trim.start), self.reserve_s)
        return self.reserve_s


@dataclass(frozen=True)
class Account:
    owner: str
    balance_milli: int = 0
    used_milli: int = 0
    reserved_milli: int = 0
    reservations: int = 0

    @property
    def available_milli(self) -> int:
        return self.balance_milli - self.reserved_milli

    def view(self) -> dict[str, Any]:
        return {
            "balance": from_milli(self.balance_milli),
            "reserved": from_milli(self.reserved_milli),
            "available": from_milli(self.available_milli),
            "used": from_milli(self.used_milli),
            "open_reservations": self.reservations,
        }


def _account_of(owner: str, doc: Mapping[str, Any] | None) -> Account:
    doc = doc or {}
    held = doc.get("reservations") or {}
    return Account(
        owner=owner,
        balance_milli=int(doc.get("balance_milli") or 0),
        used_milli=int(doc.get("used_milli") or 0),
        reserved_milli=sum(int(r.get("milli") or 0) for r in held.values()),
        reservations=len(held),
    )


def _new_account(owner: str) -> dict[str, Any]:
    return {"owner": owner, "balance_milli": 0, "used_milli": 0, "reservations": {}, "created": now_iso()}


def _doc_key(owner: str) -> str:
    return f"account.{owner}"


def age_s(iso: str) -> float:
    try:
        at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return math.inf
    return (datetime.now(UTC) - at).total_seconds()


class Ledger:
    def __init__(self, js: JetStreamContext, bucket: str = BUCKET):
        self._js = js
        self._bucket_name = bucket
        self._kv: KeyValue | None = None

    async def bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await open_bucket(self._js, self._bucket_name)
        return self._kv

    async def account(self, owner: str) -> Account:
        try:
            doc, _ = await get_doc(await self.bucket(), _doc_key(owner))
        except NotFound:
            doc = None
        return _account_of(owner, doc)

    async def reservations(self, owner: str) -> dict[str, dict[str, Any]]:
        try:
            doc, _ = await get_doc(await self.bucket(), _doc_key(owner))
        except NotFound:
            return {}
        return dict(doc.get("reservations") or {})

    async def add(self, owner: str, credits: float) -> Account:
        """Grant (or, negative, take back) credits; creates the account."""
        check_owner(owner)
        milli = to_milli(credits)
        if not math.isfinite(credits) or milli == 0:
            raise InvalidInput(f"credits must be a non-zero number, got {credits!r}")

        def add(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = doc or _new_account(owner)
            doc["balance_milli"] = int(doc.get("balance_milli") or 0) + milli
            return doc

        return _account_of(owner, await update_doc(await self.bucket(), _doc_key(owner), add))

    async def check(self, owner: str, milli: int) -> None:
        """InsufficientCredits unless `milli` is available now (holds nothing)."""
        if (await self.account(owner)).available_milli < milli:
            raise InsufficientCredits(INSUFFICIENT_MESSAGE)

    async def reserve(self, owner: str, job_id: str, milli: int) -> None:
        """Hold `milli` for the job, or raise InsufficientCredits. Holding it again is a no-op."""
        short = False

        def reserve(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            nonlocal short
            short = False
            doc = doc or _new_account(owner)
            held = doc.setdefault("reservations", {})
            if job_id in held:
                return None
            if _account_of(owner, doc).available_milli < milli:
                short = True
                return None
            held[job_id] = {"milli": milli, "at": now_iso()}
            return doc

        await update_doc(await self.bucket(), _doc_key(owner), reserve)
        if short:
            raise InsufficientCredits(INSUFFICIENT_MESSAGE)

    async def settle(self, owner: str, job_id: str, charge_milli: int) -> bool:
        """Drop the job's reservation and charge `charge_milli` (0: release). True if this call did it;
        False if the job holds no reservation (settled before, or never reserved)."""
        done = False

        def settle(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            nonlocal done
            done = False
            if doc is None or job_id not in (doc.get("reservations") or {}):
                return None
            del doc["reservations"][job_id]
            doc["balance_milli"] = int(doc.get("balance_milli") or 0) - charge_milli
            doc["used_milli"] = int(doc.get("used_milli") or 0) + charge_milli
            done = True
            return doc

        await update_doc(await self.bucket(), _doc_key(owner), settle)
        return done

    async def open_reservations(self) -> list[tuple[str, str, str]]:
        """(owner, job id, reserved at) of every reservation held, for the sweep."""
        out = []
        async for _, doc in iter_docs(self._js, self._bucket_name, "account."):
            for job_id, held in (doc.get("reservations") or {}).items():
                out.append((str(doc.get("owner")), job_id, str(held.get("at") or "")))
        return out

    async def accounts(self) -> list[Account]:
        return [
            _account_of(str(doc.get("owner")), doc)
            async for _, doc in iter_docs(self._js, self._bucket_name, "account.")
        ]


class Billing:
    """The job side of credits: what a job reserves, and settling it once it has ended."""

    def __init__(self, ledger: Ledger, jobs: JobStore, rates: Rates):
        self.ledger = ledger
        self.jobs = jobs
        self.rates = rates

    def plan(self, spec: JobSpec, model: str, probed_s: float | None = None) -> BillingRecord:
        """The `billing` block of a new metered job's record (state `estimated`: nothing held yet).
        `probed_s`: the trimmed length the submit probe measured on the whole file (precheck.py), when
        it did; the reservation is then that, not the worst case."""
        rate = self.rates.rate(model)
        seconds = self.rates.reserve_seconds(spec)
        basis: ReserveBasis = "worst_case" if seconds >= self.rates.reserve_s else "trim"
        if probed_s is not None:
            seconds, basis = min(seconds, probed_s), "probed"
        return BillingRecord(
            basis=basis,
            state=ESTIMATED,
            account=spec.owner,
            model=model or self.rates.default_model,
            credits_per_minute=rate,
            reserved_seconds=round(seconds, 3),
            reserved_milli=cost_milli(seconds, rate),
        )

    async def hold(self, job_id: str, billing: BillingRecord, *, draft: bool) -> BillingRecord:
        """Check (a draft) or reserve the job's credits; InsufficientCredits when they are not there."""
        if draft:
            await self.ledger.check(billing.account, billing.reserved_milli)
            return billing
        await self.ledger.reserve(billing.account, job_id, billing.reserved_milli)
        return billing.model_copy(update={"state": RESERVED})

    async def release(self, billing: BillingRecord, job_id: str) -> None:
        """Drop a reservation made for a job that was then not created."""
        await self.ledger.settle(billing.account, job_id, 0)

    async def settle(self, job_id: str) -> Job | None:
        """Charge a completed job, release a failed or cancelled one; idempotent (module docstring).
        Returns the record (None if it does not exist)."""
        try:
            job = await self.jobs.get(job_id)
        except NotFound:
            return None
        if job.billing is None or not job.terminal:
            return job
        if job.billing.state in (ESTIMATED, RESERVED):
            job = await self.jobs.update(job_id, _final)
        billing = job.billing
        if billing is None or billing.state not in (CHARGED, RELEASED):
            return job
        charge = billing.charged_milli if billing.state == CHARGED else 0
        if await self.ledger.settle(billing.account, job_id, charge) and charge:
            labels = metrics.job_labels(job.dialect, billing.model, None)
            metrics.CREDITS_CHARGED.labels(dialect=labels["dialect"], model=labels["model"]).inc(
                from_milli(charge)
            )
        return job

    async def sweep(self, orphan_after_s: float, owner: str | None = None) -> int:
        """Settle every reservation whose job has ended; release those whose job never came to be (or
        stayed a draft) after `orphan_after_s`. Returns how many reservations it looked at."""
        held = await self.ledger.open_reservations()
        n = 0
        for account, job_id, at in held:
            if owner is not None and account != owner:
                continue
            n += 1
            job = await self.settle(job_id)
            stale = age_s(at) >= orphan_after_s
            if (job is None or job.status == Status.DRAFT) and stale:
                await self.ledger.settle(account, job_id, 0)
        return n


# A failure that spent compute on the caller's behalf: charged for the seconds processed. Every other
# failure (ours: a crash, S3 or NATS away, a bug) stays free.
CHARGED_FAILURES = frozenset({"deadline_exceeded"})


def chargeable_seconds(job: Job) -> float:
    """Seconds of source a job that has ended is billed for: the validated span if it completed; the
    span processed so far if it was cancelled after processing started or failed on a stage deadline;
    else 0. The caller caps the charge at the reservation."""
    if job.status == Status.COMPLETED:
        seconds = job.billed_seconds
        if seconds is None:  # ingest always writes it; should it be missing, bill what was reserved
            seconds = job.billing.reserved_seconds if job.billing is not None else 0.0
        return seconds
    charged_failure = job.status == Status.FAILED and job.error_code in CHARGED_FAILURES
    if job.status == Status.CANCELLED or charged_failure:
        return min(job.processed_seconds, job.billed_seconds or job.processed_seconds)
    return 0.0


def _final(job: Job) -> Job | None:
    """The record once its billing is final: charged for `chargeable_seconds`, never more than was
    reserved (settling cannot overdraw the account), else released. A pure function of the record, as
    JobStore.update wants."""
    billing = job.billing
    if billing is None or billing.state not in (ESTIMATED, RESERVED) or not job.terminal:
        return None
    seconds = chargeable_seconds(job)
    charge = cost_milli(seconds, billing.credits_per_minute)
    if billing.state == RESERVED:
        charge = min(charge, billing.reserved_milli)
    else:
        charge = 0  # nothing was held (a draft): nothing can be taken
    if charge > 0:
        job.billing = billing.model_copy(
            update={"state": CHARGED, "charged_milli": charge, "billed_seconds": round(seconds, 3)}
        )
    else:
        charge = 0
        job.billing = billing.model_copy(update={"state": RELEASED, "charged_milli": 0})
    job.credits = from_milli(charge)
    return job
