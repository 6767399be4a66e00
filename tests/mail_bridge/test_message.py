"""Parsing one raw message (pure): robust to broken input, addresses normalised (O5), times in UTC (M6)."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

from mail_bridge.message import parse_message, synthetic_key


def raw(headers: str, body: bytes = b"hello\r\n") -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body


def test_o5_addresses_are_normalised_and_display_names_decoded() -> None:
    parsed = parse_message(raw(
        "From: =?utf-8?q?Ann=C3=A9e_Dupont?= <Annee.Dupont@Client.EXAMPLE>\n"
        "To: Sales <SALES@ourco.example>, bob@x.example\nCc: \"C, D\" <c@d.example>\n"
        "Message-ID: <abc@client.example>\nSubject: =?iso-8859-1?q?Devis_r=E9vis=E9?=\n"
    ))
    assert parsed.from_address == "annee.dupont@client.example"
    assert parsed.from_name == "Année Dupont"
    assert parsed.to == ("sales@ourco.example", "bob@x.example") and parsed.cc == ("c@d.example",)
    assert parsed.subject == "Devis révisé"
    assert parsed.message_key == "<abc@client.example>" and parsed.defects == ()


def test_m6_received_time_from_the_date_header_in_utc_with_its_zone() -> None:
    parsed = parse_message(raw("From: a@b.example\nDate: Fri, 04 Dec 2026 10:30:00 +0200\nMessage-ID: <d@b>\n"))
    assert parsed.received_at == datetime(2026, 12, 4, 8, 30, tzinfo=UTC)
    assert parsed.received_zone == "+02:00"
    broken = parse_message(raw("From: a@b.example\nDate: yesterday-ish\nMessage-ID: <d@b>\n"))
    assert broken.received_at is None and any("Date" in d for d in broken.defects)


def test_m12_no_message_id_gets_a_stable_synthetic_key() -> None:
    message = raw("From: a@b.example\nSubject: no id\n")
    first, second = parse_message(message), parse_message(message)
    assert first.message_id is None and first.message_key == second.message_key == synthetic_key(message)
    assert first.message_key != parse_message(raw("From: a@b.example\nSubject: other\n")).message_key


def test_m12_thread_references_and_root() -> None:
    parsed = parse_message(raw(
        "From: a@b.example\nMessage-ID: <3@b>\nIn-Reply-To: <2@b>\nReferences: <1@b>\n <2@b>\n"
    ))
    assert parsed.thread_refs == ("<2@b>", "<1@b>") and parsed.thread_key == "<1@b>"
    alone = parse_message(raw("From: a@b.example\nMessage-ID: <9@b>\n"))
    assert alone.thread_refs == () and alone.thread_key == "<9@b>"


def test_eight_bit_headers_are_read_not_refused() -> None:
    latin = b"From: Ren\xe9 <rene@b.example>\r\nSubject: caf\xe9\r\nMessage-ID: <8@b>\r\n\r\nbody"
    parsed = parse_message(latin)
    assert parsed.subject == "café" and parsed.from_address == "rene@b.example"
    utf8 = parse_message("From: a@b.example\r\nSubject: café\r\n\r\n".encode())
    assert utf8.subject == "café"


def test_broken_mime_and_garbage_never_raise() -> None:
    broken = raw(
        "From: a@b.example\nMessage-ID: <m@b>\nContent-Type: multipart/mixed; boundary=\"never-closed\"\n"
        "Subject: =?unknown-charset?q?x?=\n",
        b"--never-closed\r\nContent-Type: text/plain\r\n\r\nhalf a part",
    )
    parsed = parse_message(broken)
    assert parsed.message_key == "<m@b>" and parsed.from_address == "a@b.example"
    assert any("Subject" in d for d in parsed.defects)
    for junk in (b"", b"\x00\xff\xfe", b"no headers at all", b":\r\n\r\n", b"From: <<<>>>\r\n\r\n"):
        assert parse_message(junk).message_key.startswith("synthetic:")


def test_a_20_mb_attachment_is_not_parsed_or_copied() -> None:
    body = b"--b\r\nContent-Type: application/octet-stream\r\n\r\n" + b"A" * (20 * 1024 * 1024) + b"\r\n--b--\r\n"
    message = raw("From: a@b.example\nMessage-ID: <big@b>\nContent-Type: multipart/mixed; boundary=b\n", body)
    tracemalloc.start()
    parsed = parse_message(message)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert parsed.message_key == "<big@b>" and parsed.size == len(message)
    assert peak < 1024 * 1024, f"parsing allocated {peak} bytes for a 20 MB message"
