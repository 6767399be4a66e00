"""The `make bench` mail row runs end to end on a small inbox: every message becomes an activity."""

from __future__ import annotations

from bench.mail_bench import run_mail_bench


def test_mail_bench_turns_every_message_into_an_activity_and_reports_its_figures() -> None:
    result = run_mail_bench(20)
    assert (result.messages, result.activities) == (20, 20)
    assert 0 < result.sync_seconds <= result.total_seconds and result.peak_rss_mb > 0
    row = result.row()
    assert row.startswith("mail: messages=20 ") and f"messages_per_s={result.per_second:.0f}" in row
