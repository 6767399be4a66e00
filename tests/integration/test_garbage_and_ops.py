"""Bad input never stops the gateway; the admin port answers /healthz and /metrics over real HTTP."""

from __future__ import annotations

import os
import re
import socket
import urllib.request

from tests.integration.conftest import HOST, GatewayProcess, Sipp, wait_exit

REQUEST = (
    "INVITE sip:2000@{host} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{branch}\r\n"
    "From: <sip:mallory@{host}>;tag=m1\r\nTo: <sip:2000@{host}>\r\nCall-ID: {branch}@{host}\r\n"
    "CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
)


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(5)
    return sock


def _request(sock: socket.socket, branch: str, extra: str) -> bytes:
    return REQUEST.format(host=HOST, port=sock.getsockname()[1], branch=branch, extra=extra).encode()


def _status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def test_garbage_datagrams_do_not_stop_the_gateway(gateway: GatewayProcess, sipp: Sipp) -> None:
    target = (HOST, gateway.sip_port)
    with _udp_socket() as sock:
        sock.sendto(os.urandom(600), target)
        sock.sendto(b"\x00" * 10, target)
        sock.sendto(_request(sock, "trunc", "")[:70], target)  # an INVITE cut in its Via
        sock.sendto(b"INVITE sip:x SIP/2.0\r\n" + b"X-Pad: " + b"a" * 60000 + b"\r\n\r\n", target)
        sock.sendto(b"SIP/2.0 200 OK\r\n\r\n", target)  # a response to nothing
    # a malformed but answerable request gets 400 (RFC 3261 §21.4.1)
    with _udp_socket() as sock:
        sock.sendto(_request(sock, "badmf", "Max-Forwards: lots\r\nContact: <sip:m@127.0.0.1>\r\n"), target)
        answer = sock.recv(65535)
        assert _status_of(answer) == 400
    with _udp_socket() as sock:
        sock.sendto(_request(sock, "badcontact", "Contact: <<<\r\n"), target)
        statuses = [_status_of(sock.recv(65535)) for _ in range(2)]
        assert statuses == [100, 400]
    assert gateway.process.poll() is None
    callee = sipp.start("uas_answer.xml", port=gateway.trunk_port)
    caller = sipp.run("uac_call.xml", "-s", "2005", f"{HOST}:{gateway.sip_port}")
    assert caller.returncode == 0, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(callee) == 0


def test_garbage_on_tcp_closes_only_that_connection(gateway: GatewayProcess) -> None:
    with socket.create_connection((HOST, gateway.sip_port), timeout=5) as bad:
        bad.sendall(b"INVITE sip:x SIP/2.0\r\nContent-Length: banana\r\n\r\n")
        bad.settimeout(5)
        try:
            while bad.recv(65535):
                pass
        except OSError:
            pass
    with socket.create_connection((HOST, gateway.sip_port), timeout=5) as good:
        options = (
            f"OPTIONS sip:{HOST}:{gateway.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST}:{good.getsockname()[1]};branch=z9hG4bKtcpopt\r\n"
            f"From: <sip:probe@{HOST}>;tag=p1\r\nTo: <sip:{HOST}>\r\nCall-ID: tcpopt@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        good.sendall(options.encode())
        assert _status_of(good.recv(65535)) == 200


def test_healthz_is_200_when_sip_listens(gateway: GatewayProcess) -> None:
    with urllib.request.urlopen(f"http://{HOST}:{gateway.admin_port}/healthz", timeout=5) as answer:
        assert answer.status == 200
        assert b'"ok"' in answer.read()


def test_metrics_expose_gateway_collectors(gateway: GatewayProcess, sipp: Sipp) -> None:
    sipp.run("options_ping.xml", f"{HOST}:{gateway.sip_port}")
    with urllib.request.urlopen(f"http://{HOST}:{gateway.admin_port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    assert 'gateway_sip_requests_total{direction="in",method="OPTIONS"}' in text
    assert 'gateway_sip_responses_total{direction="out",status_class="2xx"}' in text
    for name in ("gateway_calls_active", "gateway_call_setup_seconds_bucket", "gateway_sip_transactions_total",
                 "gateway_sip_transaction_timeouts_total", "gateway_registrations_active"):
        assert name in text


def test_unreachable_tcp_trunk_is_503_at_once(gateway: GatewayProcess, sipp: Sipp) -> None:
    """Route "3xxx" goes to a TCP trunk nobody listens on: the refused connect is a 503 (RFC 3261
    §8.1.3.1, §18.4), not 100 Trying and a 408 after Timer B (SIPp's -timeout 20s is below 32 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex((HOST, gateway.tcp_trunk_port)) != 0  # the premise: nothing listens there
    caller = sipp.run("uac_expect_503.xml", "-s", "3001", f"{HOST}:{gateway.sip_port}")
    assert caller.returncode == 0, sipp.errors() + gateway.log()[-3000:]
    assert "tcp connect" in gateway.log()
    with urllib.request.urlopen(f"http://{HOST}:{gateway.admin_port}/metrics", timeout=5) as answer:
        failures = re.search(r"^gateway_sip_transport_errors_total (\S+)$", answer.read().decode(), re.MULTILINE)
    assert failures is not None and float(failures.group(1)) >= 1


def _out_of_dialog(sock: socket.socket, gw_port: int, method: str, branch: str, extra: str = "") -> bytes:
    request = (
        f"{method} sip:{HOST}:{gw_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{sock.getsockname()[1]};branch=z9hG4bK{branch}\r\n"
        f"From: <sip:probe@{HOST}>;tag=p{branch}\r\nTo: <sip:{HOST}>\r\nCall-ID: {branch}@{HOST}\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    return request.encode()


def _final(sock: socket.socket) -> bytes:
    while True:
        data = sock.recv(65535)
        if _status_of(data) >= 200:
            return data


def _header(data: bytes, name: str) -> str:
    for line in data.decode().split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


def test_out_of_dialog_answers_over_udp(gateway: GatewayProcess) -> None:
    """405 never allows the refused method (RFC 3261 §20.5), dialog-only methods are 481 (§15.1.2),
    and OPTIONS requiring an unknown extension is 420 (§8.2.2.3)."""
    target = (HOST, gateway.sip_port)
    with _udp_socket() as sock:
        sock.sendto(_out_of_dialog(sock, target[1], "MESSAGE", "oodmsg"), target)
        answer = _final(sock)
        allowed = {method.strip() for method in _header(answer, "Allow").split(",")}
        assert _status_of(answer) == 405 and "INVITE" in allowed and "MESSAGE" not in allowed
        for method in ("BYE", "INFO", "UPDATE"):
            sock.sendto(_out_of_dialog(sock, target[1], method, f"ood{method}"), target)
            assert _status_of(_final(sock)) == 481, method
        sock.sendto(_out_of_dialog(sock, target[1], "OPTIONS", "oodreq", "Require: foo\r\n"), target)
        answer = _final(sock)
        assert _status_of(answer) == 420 and _header(answer, "Unsupported") == "foo"
