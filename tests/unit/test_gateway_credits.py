"""Credit arithmetic and the final billing of a job record (services/gateway/credits.py)."""

from __future__ import annotations

import pytest

from services.common.record import Job, JobSpec
from services.gateway.credits import Account, Rates, _final, cost_milli, from_milli, to_milli
from services.gateway.settings import DEFAULT_CREDITS_PER_MINUTE
from videobg.errors import InvalidInput

pytestmark = pytest.mark.unit

RATES = Rates(DEFAULT_CREDITS_PER_MINUTE, default_model="human", reserve_s=60.0)


def test_cost_is_per_second_at_the_model_rate() -> None:
    assert cost_milli(60, 60) == 60_000
    assert cost_milli(12.5, 45) == 9_375
    assert cost_milli(1.0, 180) == 3_000
    assert cost_milli(0.001, 60) == 1  # rounded up to the milli-credit, never to zero
    assert cost_milli(0, 60) == 0 and cost_milli(-3, 60) == 0
    assert from_milli(to_milli(90.625)) == 90.625


def test_rates_and_default_model() -> None:
    assert RATES.rate("original") == 60 and RATES.rate("pro") == 180
    assert RATES.rate("") == RATES.rate("human") == 45
    with pytest.raises(InvalidInput):
        RATES.rate("ultra")


@pytest.mark.parametrize(
    "trim, seconds",
    [
        ({"start": 0.0, "end": None}, 60.0),  # unknown length: the longest input accepted
        ({"start": 0.0, "end": 30.0}, 30.0),
        ({"start": 5.0, "end": 15.0}, 10.0),
        ({"start": 20.0, "end": None}, 60.0),
        ({"start": 0.0, "end": 600.0}, 60.0),  # never more than the limit: ingest refuses longer spans
        (None, 60.0),
    ],
)
def test_reservation_seconds(trim, seconds) -> None:
    assert RATES.reserve_seconds(JobSpec.model_validate({"trim": trim})) == seconds


def test_available_is_balance_minus_reservations() -> None:
    a = Account("acme", balance_milli=100_000, used_milli=5_000, reserved_milli=60_000, reservations=1)
    assert a.available_milli == 40_000
    assert a.view() == {
        "balance": 100.0,
        "reserved": 60.0,
        "available": 40.0,
        "used": 5.0,
        "open_reservations": 1,
    }


def _job(status: str, **kw) -> Job:
    billing = {"state": "reserved", "account": "acme", "model": "light", "credits_per_minute": 45.0,
               "reserved_seconds": 60.0, "reserved_milli": 45_000, "charged_milli": 0}  # fmt: skip
    return Job.model_validate({"id": "j", "status": status, "billing": billing, "credits": 0.0, **kw})


def test_final_charges_billed_seconds_of_a_completed_job() -> None:
    done = _final(_job("completed", billed_seconds=12.5))
    assert done is not None and done.billing is not None
    assert done.billing.state == "charged" and done.billing.charged_milli == 9_375
    assert done.credits == 9.375
    assert _final(done) is None, "settled twice"


def test_final_without_billed_seconds_bills_the_reservation() -> None:
    done = _final(_job("completed"))
    assert done is not None and done.billing is not None and done.billing.charged_milli == 45_000


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_final_releases_failed_and_cancelled(status: str) -> None:
    out = _final(_job(status, billed_seconds=30.0))
    assert out is not None and out.billing is not None
    assert out.billing.state == "released" and out.credits == 0.0


@pytest.mark.parametrize("status", ["draft", "queued", "processing"])
def test_final_leaves_live_jobs(status: str) -> None:
    assert _final(_job(status)) is None
