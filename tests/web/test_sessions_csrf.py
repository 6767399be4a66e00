"""The web pages' sign-in, session cookie and CSRF rules, in-process (httpx against the admin app)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from gateway.web import sessions
from gateway.web.words import WORDS
from tests.admin.conftest import User

FORM = {"content-type": "application/x-www-form-urlencoded"}
TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "web" / "templates"


async def sign_in(client: httpx.AsyncClient, user: User) -> str:
    """Sign in through the form; returns the session's CSRF token read from a page."""
    page = await client.get("/ui/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    done = await client.post("/ui/sign-in", data={"csrf": csrf, "token": user.token})
    assert done.status_code == 303 and done.headers["location"] == "/ui/", done.text
    return csrf_of((await client.get("/ui/numbers")).text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def a_number(client: httpx.AsyncClient, admin: User) -> dict:
    answer = await client.post("/numbers", headers=admin.headers, json={
        "kind": "rented", "number": "+33 1 84 88 00 10", "name": "Sales line", "default_region": "FR"})
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_t2_sign_in_exchanges_the_token_for_an_httponly_samesite_strict_cookie(
        client: httpx.AsyncClient, admin: User) -> None:
    page = await client.get("/ui/sign-in")
    csrf = csrf_of(page.text)
    done = await client.post("/ui/sign-in", data={"csrf": csrf, "token": admin.token})
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith(sessions.SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes and "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain http on loopback: a Secure cookie would never come back
    assert admin.token not in cookie
    numbers = await client.get("/ui/numbers")
    assert numbers.status_code == 200 and "Alice Admin" in numbers.text


async def test_a_secure_cookie_on_https(app, admin: User) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://admin") as client:
        page = await client.get("/ui/sign-in")
        done = await client.post("/ui/sign-in", data={"csrf": csrf_of(page.text), "token": admin.token})
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith(sessions.SESSION_COOKIE + "="))
    assert "secure" in cookie.lower()


async def test_a_wrong_token_gets_no_session(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/sign-in")
    refused = await client.post("/ui/sign-in", data={"csrf": csrf_of(page.text), "token": "gwt_wrong"})
    assert refused.status_code == 401 and WORDS["bad_token"] in refused.text.replace("&#39;", "'")
    assert sessions.SESSION_COOKIE not in refused.cookies
    assert (await client.get("/ui/numbers")).headers["location"].startswith("/ui/sign-in")


async def test_the_sign_in_form_without_its_csrf_token_is_refused(client: httpx.AsyncClient, admin: User) -> None:
    await client.get("/ui/sign-in")
    refused = await client.post("/ui/sign-in", data={"token": admin.token})
    assert refused.status_code == 403 and sessions.SESSION_COOKIE not in refused.cookies


@pytest.mark.parametrize("csrf", [None, "", "not-the-token"])
async def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, admin: User, csrf: str | None) -> None:
    number = await a_number(client, admin)
    await sign_in(client, admin)
    fields = {"unknown_caller_action": "offer_in_card", "create_for": "all", "responsible_ring_time_s": "20"}
    if csrf is not None:
        fields["csrf"] = csrf
    refused = await client.post(f"/ui/numbers/{number['id']}", data=fields)
    assert refused.status_code == 403 and "security token" in refused.text
    after = (await client.get(f"/numbers/{number['id']}", headers=admin.headers)).json()
    assert after["unknown_caller_action"] == "auto_lead"


async def test_t4_the_number_form_with_its_csrf_token_changes_the_number(client: httpx.AsyncClient, admin: User) -> None:
    number = await a_number(client, admin)
    csrf = await sign_in(client, admin)
    done = await client.post(f"/ui/numbers/{number['id']}", data={
        "csrf": csrf, "unknown_caller_action": "offer_in_card", "create_for": "all", "responsible_ring_time_s": "30",
        "route_known_to_responsible": "on"})
    assert done.status_code == 303, done.text
    after = (await client.get(f"/numbers/{number['id']}", headers=admin.headers)).json()
    assert (after["unknown_caller_action"], after["create_for"], after["responsible_ring_time_s"]) == (
        "offer_in_card", "all", 30)
    assert after["route_known_to_responsible"] is True and after["change_responsible_on_transfer"] is False


async def test_the_api_s_validation_message_is_shown_on_the_form(client: httpx.AsyncClient, admin: User) -> None:
    number = await a_number(client, admin)
    csrf = await sign_in(client, admin)
    refused = await client.post(f"/ui/numbers/{number['id']}", data={
        "csrf": csrf, "unknown_caller_action": "auto_lead", "responsible_ring_time_s": "2"})
    assert refused.status_code == 422 and "responsible_ring_time_s" in refused.text


async def test_after_sign_out_the_old_cookie_no_longer_works(client: httpx.AsyncClient, admin: User) -> None:
    csrf = await sign_in(client, admin)
    old = client.cookies.get(sessions.SESSION_COOKIE)
    done = await client.post("/ui/sign-out", data={"csrf": csrf})
    assert done.status_code == 303
    client.cookies.set(sessions.SESSION_COOKIE, old, path="/ui")  # a copy kept by an attacker
    for path in ("/ui/numbers", "/ui/card/stream", "/ui/calls"):
        again = await client.get(path)
        assert again.status_code == 303 and again.headers["location"].startswith("/ui/sign-in"), path
    refused = await client.post("/ui/card/create", data={"csrf": csrf, "call_id": "x", "type": "lead"})
    assert refused.status_code == 303


async def test_sign_out_itself_needs_the_csrf_token(client: httpx.AsyncClient, admin: User) -> None:
    await sign_in(client, admin)
    assert (await client.post("/ui/sign-out", data={})).status_code == 403
    assert (await client.get("/ui/numbers")).status_code == 200


async def test_a_revoked_token_ends_its_session(client: httpx.AsyncClient, admin: User, plain: User) -> None:
    await sign_in(client, plain)
    tokens = (await client.get("/tokens", headers=admin.headers)).json()["items"]
    [token] = [t for t in tokens if t["employee_id"] == plain.employee_id]
    assert (await client.delete(f"/tokens/{token['id']}", headers=admin.headers)).status_code == 200
    assert (await client.get("/ui/numbers")).headers["location"] == "/ui/sign-in?message=again"


async def test_t2_a_plain_employee_sees_no_form_no_trunk_and_cannot_post_one(
        client: httpx.AsyncClient, admin: User, plain: User) -> None:
    trunk = await client.post("/trunks", headers=admin.headers, json={
        "name": "Provider secret-trunk", "kind": "provider", "host": "sip.example.net", "username": "u",
        "secret": "trunk-secret-42"})
    assert trunk.status_code == 201, trunk.text
    number = await a_number(client, admin)
    await client.patch(f"/numbers/{number['id']}", headers=admin.headers, json={"trunk_id": trunk.json()["id"]})
    csrf = await sign_in(client, plain)
    page = await client.get(f"/ui/numbers/{number['id']}")
    assert page.status_code == 200 and 'id="read-only"' in page.text
    assert "<form" not in page.text.replace('<form class="sign-out"', "")
    assert "trunk-secret-42" not in page.text and "secret-trunk" not in page.text
    refused = await client.post(f"/ui/numbers/{number['id']}", data={"csrf": csrf, "unknown_caller_action": "offer_in_card"})
    assert refused.status_code == 403
    assert (await client.get("/ui/trunks")).status_code == 403


def test_every_word_a_template_uses_is_in_words_py() -> None:
    used = {m for path in TEMPLATES.glob("*.html") for m in re.findall(r"\bw\.(\w+)", path.read_text())}
    assert used and used <= set(WORDS), sorted(used - set(WORDS))
