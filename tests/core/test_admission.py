"""Backpressure on its own: the admission bound, the sink that gives back what failed, and the
decode budget that waits, then refuses."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future

import pytest

from core.admission import Admission, AdmittingSink, DecodeBudget
from core.errors import Overloaded
from core.model import OtlpRecord


def test_admission_takes_up_to_the_limit_and_refuses_past_it() -> None:
    admission = Admission(100)
    assert admission.try_take(60) and admission.held == 60
    assert not admission.try_take(41)  # 101 > 100
    assert (admission.held, admission.refused) == (60, 1)
    assert admission.try_take(40) and admission.held == 100  # exactly the limit is admitted
    assert not admission.try_take(1)
    assert (admission.held, admission.refused) == (100, 2)
    admission.give_back(30)
    assert admission.held == 70
    assert admission.try_take(30) and admission.held == 100


def test_one_oversized_request_is_admitted_when_nothing_is_held() -> None:
    admission = Admission(100)
    assert admission.try_take(500) and admission.held == 500
    assert not admission.try_take(1)
    admission.give_back(500)
    assert admission.held == 0
    assert admission.try_take(1)
    assert not admission.try_take(500)
    assert admission.refused == 2


def test_give_back_never_goes_below_zero_and_take_anyway_is_never_refused() -> None:
    admission = Admission(100)
    admission.take_anyway(250)  # a replayed log: already durable, counted past the limit
    assert (admission.held, admission.refused) == (250, 0)
    admission.give_back(1000)
    assert admission.held == 0


class FakeSink:
    """A DurableSink whose futures the test resolves."""

    def __init__(self) -> None:
        self.futures: list[Future[None]] = []
        self.records: list[OtlpRecord] = []

    def submit(self, record: OtlpRecord) -> Future[None]:
        future: Future[None] = Future()
        self.records.append(record)
        self.futures.append(future)
        return future


def test_the_admitting_sink_keeps_what_became_durable_and_gives_back_what_failed() -> None:
    inner, admission = FakeSink(), Admission(100)
    sink = AdmittingSink(inner, admission)
    durable, failed, cancelled = (sink.submit(OtlpRecord(b"x" * n)) for n in (10, 20, 30))
    assert admission.held == 60
    durable.set_result(None)
    assert admission.held == 60  # durable: held until the drain has converted it
    failed.set_exception(OSError(28, "No space left on device"))
    assert admission.held == 40
    assert cancelled.cancel()
    assert admission.held == 10
    assert [len(r.payload) for r in inner.records] == [10, 20, 30]


def test_the_admitting_sink_refuses_retryably_without_submitting() -> None:
    inner, admission = FakeSink(), Admission(100)
    sink = AdmittingSink(inner, admission)
    sink.submit(OtlpRecord(b"x" * 90))
    with pytest.raises(Overloaded) as refused:
        sink.submit(OtlpRecord(b"x" * 11))
    assert str(refused.value) == (
        "agentwatch is converting 90 bytes of acknowledged data (limit 100); retry shortly"
    )
    assert (len(inner.records), admission.held, admission.refused) == (1, 90, 1)


async def _hold_until(budget: DecodeBudget, size: int, entered: asyncio.Event, leave: asyncio.Event) -> None:
    async with budget.hold(size):
        entered.set()
        await leave.wait()


def test_the_decode_budget_makes_a_request_wait_for_room() -> None:
    async def scenario() -> None:
        budget = DecodeBudget(100, wait=5.0)
        first_in, first_out, second_in, second_out = (asyncio.Event() for _ in range(4))
        first = asyncio.create_task(_hold_until(budget, 60, first_in, first_out))
        await first_in.wait()
        second = asyncio.create_task(_hold_until(budget, 50, second_in, second_out))
        await asyncio.sleep(0.05)
        assert not second_in.is_set() and budget.held == 60  # 110 > 100: waiting
        first_out.set()
        await asyncio.wait_for(second_in.wait(), 1)
        assert budget.held == 50
        second_out.set()
        await asyncio.gather(first, second)
        assert (budget.held, budget.refused) == (0, 0)

    asyncio.run(scenario())


def test_the_decode_budget_refuses_after_its_wait() -> None:
    async def scenario() -> None:
        budget = DecodeBudget(100, wait=0.1)
        entered, leave = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(_hold_until(budget, 60, entered, leave))
        await entered.wait()
        started = time.monotonic()
        with pytest.raises(Overloaded) as refused:
            async with budget.hold(41):
                raise AssertionError("admitted past the limit")
        assert time.monotonic() - started >= 0.1
        assert str(refused.value) == "agentwatch is decoding 60 bytes of requests (limit 100); retry soon"
        assert (budget.held, budget.refused) == (60, 1)
        async with budget.hold(40):  # fits: no wait
            assert budget.held == 100
        leave.set()
        await holder
        assert budget.held == 0

    asyncio.run(scenario())


def test_the_decode_budget_admits_one_oversized_body_when_nothing_is_decoded() -> None:
    async def scenario() -> None:
        budget = DecodeBudget(100, wait=0.05)
        async with budget.hold(500):
            assert budget.held == 500
            with pytest.raises(Overloaded):
                async with budget.hold(1):
                    pass
        assert (budget.held, budget.refused) == (0, 1)
        async with budget.hold(500):
            assert budget.held == 500

    asyncio.run(scenario())
