"""SPEC C4 on the call path: one call's journal jobs run in order, retried while the database is down."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from gateway.calls.keyed_work import KeyedWork


async def test_c4_jobs_of_one_key_run_in_submission_order_even_when_the_first_is_slow() -> None:
    work = KeyedWork()
    done: list[str] = []

    async def job(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        done.append(name)

    work.submit("call-1", lambda: job("start", 0.05))
    work.submit("call-1", lambda: job("end", 0.0))
    assert await work.idle(5.0)
    assert done == ["start", "end"]


async def test_c4_keys_do_not_wait_for_each_other() -> None:
    work = KeyedWork()
    done: list[str] = []
    release = asyncio.Event()

    async def blocked() -> None:
        await release.wait()
        done.append("slow")

    async def quick() -> None:
        done.append("quick")

    work.submit("call-1", blocked)
    work.submit("call-2", quick)
    await asyncio.sleep(0.01)
    assert done == ["quick"]
    release.set()
    assert await work.idle(5.0)
    assert done == ["quick", "slow"]


async def test_c4_a_database_error_is_retried_until_the_write_succeeds_and_later_jobs_wait() -> None:
    work = KeyedWork(first_delay=0.01, max_delay=0.02)
    attempts = 0
    done: list[str] = []

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database down"))
        done.append("start")

    async def after() -> None:
        done.append("end")

    work.submit("call-1", flaky)
    work.submit("call-1", after)
    assert await work.idle(5.0)
    assert (attempts, done, work.retries) == (4, ["start", "end"], 3)


async def test_a_job_with_a_bug_is_skipped_loudly_and_the_key_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    work = KeyedWork()
    done: list[str] = []

    async def broken() -> None:
        raise KeyError("bug")

    async def after() -> None:
        done.append("end")

    work.submit("call-1", broken)
    work.submit("call-1", after)
    assert await work.idle(5.0)
    assert done == ["end"] and work.failures == 1
    assert "journal job failed" in caplog.text
    assert len(work) == 0


async def test_c4_postponed_writes_show_in_the_metrics_until_they_are_made() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from gateway.metrics import JournalCollector

    work = KeyedWork(first_delay=0.01, max_delay=0.02)
    registry = CollectorRegistry()
    registry.register(JournalCollector(work))
    database_up = asyncio.Event()

    async def write() -> None:
        if not database_up.is_set():
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database down"))

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name)

    work.submit("call-1", write)
    work.submit("call-1", write)
    await asyncio.sleep(0.1)
    assert sample("gateway_call_journal_pending") == 2
    retried = sample("gateway_call_journal_retries_total")
    assert retried is not None and retried >= 2
    database_up.set()
    assert await work.idle(5.0)
    assert sample("gateway_call_journal_pending") == 0 and sample("gateway_call_journal_failures_total") == 0
    assert b"gateway_call_journal_retries_total" in generate_latest(registry)
