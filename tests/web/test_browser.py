"""The web pages in a real headless Chromium (Debian's, through Selenium) against a real `gateway run`
with the demo seed; live calls come from SIPp as the trunk, the callee's phone is SIPp too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from gateway.web.words import CHOICES, WORDS
from tests.integration.conftest import HOST, GatewayProcess, phones, trunk  # noqa: F401  (fixtures)
from tests.integration.live_kit import Admin, LiveWorld, module_gateway, wait_for
from tests.integration.phones import Phones
from tests.integration.trunk import Trunk
from tests.web.browser_kit import Page, missing_browser, start_browser


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    why = missing_browser()
    if why is not None:
        pytest.skip(why)
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from module_gateway(tmp_path_factory, "web-pages")


@pytest.fixture(scope="module")
def api(gateway: GatewayProcess) -> Admin:
    return Admin(gateway)


@pytest.fixture
def world(gateway: GatewayProcess, api: Admin, phones: Phones, trunk: Trunk) -> LiveWorld:  # noqa: F811
    return LiveWorld(gateway, api, phones, trunk)


@pytest.fixture
def page(browser: WebDriver, gateway: GatewayProcess) -> Page:
    browser.delete_all_cookies()
    return Page(browser, f"http://{HOST}:{gateway.admin_port}")


def token_of(api: Admin, employee_id: int) -> str:
    return str(api.post("/tokens", {"employee_id": employee_id, "name": "web"})["token"])


def simulate(page: Page, e164: str, caller: str) -> tuple[str, str]:
    """The simulate form filled and sent by keyboard; the answer's action and explanation."""
    page.open("/ui/simulate")
    page.find("#sim-number").send_keys(e164)
    page.find("#sim-from").send_keys(caller)
    page.find("#sim-from").send_keys(Keys.ENTER)
    page.wait("the simulated answer", lambda d: page.all("#result"))
    return page.text("#plan-action"), page.text("#plan-explanation")


def test_sign_in_shows_the_employee_and_the_menu(page: Page, api: Admin) -> None:
    page.sign_in(api.token)
    assert page.path() == "/ui/numbers" and page.text("#who")
    assert {a.text for a in page.all("nav a")} >= {WORDS["nav_numbers"], WORDS["nav_calls"], WORDS["nav_simulate"]}


def test_t4_changing_a_numbers_scenario_changes_what_simulate_answers(page: Page, world: LiveWorld) -> None:
    number = world.number(None, unknown_caller_action="auto_lead")
    page.sign_in(world.admin.token)
    action, why = simulate(page, number.e164, "0655001001")
    assert "T4a" in why and "T4b" not in why
    page.open(f"/ui/numbers/{number.id}")
    page.find("#t4-offer_in_card").click()
    page.find("#number-settings button[type=submit]").click()
    page.wait("saved", lambda d: page.all("#saved"))
    assert page.find("#t4-offer_in_card").is_selected()
    assert world.admin.get(f"/numbers/{number.id}")["unknown_caller_action"] == "offer_in_card"
    action_after, why_after = simulate(page, number.e164, "0655001001")
    assert "T4b" in why_after and "T4a" not in why_after and action_after != action


def test_t2_a_plain_employee_sees_no_settings_form(page: Page, world: LiveWorld) -> None:
    number = world.number(None)
    plain = world.employee("Paula")
    page.sign_in(token_of(world.admin, plain.id))
    page.open(f"/ui/numbers/{number.id}")
    assert page.all("#read-only") and not page.all("#number-settings") and not page.all("#add-source")
    assert page.text("#number-read-only").count(CHOICES["unknown_caller_action"]["auto_lead"]) == 1
    assert WORDS["nav_calls"] not in {a.text for a in page.all("nav a")}
    page.open("/ui/trunks")
    assert WORDS["needs_right"] in page.text("#message")


def test_a_form_posted_without_its_csrf_token_is_refused(page: Page, world: LiveWorld) -> None:
    number = world.number(None, unknown_caller_action="auto_lead")
    page.sign_in(world.admin.token)
    page.open(f"/ui/numbers/{number.id}")
    page.driver.execute_script("document.querySelector('#number-settings input[name=csrf]').remove()")
    page.find("#t4-offer_in_card").click()
    page.find("#number-settings button[type=submit]").click()
    page.wait("the refusal", lambda d: page.all("#message"))
    assert WORDS["csrf_refused"] in page.text("#message")
    assert world.admin.get(f"/numbers/{number.id}")["unknown_caller_action"] == "auto_lead"


def test_the_session_cookie_does_not_work_after_sign_out(page: Page, api: Admin) -> None:
    page.sign_in(api.token)
    kept = page.driver.get_cookie("gw_session")
    assert kept is not None and kept["httpOnly"] and kept["sameSite"] == "Strict"
    page.sign_out()
    page.driver.add_cookie({k: kept[k] for k in ("name", "value", "path", "httpOnly", "sameSite")})
    page.open("/ui/numbers")
    assert page.path().startswith("/ui/sign-in") and page.all("#sign-in") and not page.all("#who")


def test_r8_t4b_a_live_call_pops_the_card_the_lead_is_created_and_the_log_explains_it(
        page: Page, world: LiveWorld) -> None:
    alice = world.staff("Alice")
    world.admin.patch(f"/employees/{alice.id}", {"rights": [{"item_type": "lead", "view": "own", "edit": "own"}]})
    number = world.number(world.queue([alice]), unknown_caller_action="offer_in_card")
    page.sign_in(token_of(world.admin, alice.id))
    page.open("/ui/card")
    page.wait("the card stream connected", lambda d: page.text("#card-status") == WORDS["card_connected"])
    running = world.start_call(number, "0655001201", talk_ms=4000)
    card = page.wait("the ringing card", lambda d: page.all("article.card"))[0]
    call_id = card.get_attribute("data-call-id")
    assert "+33655001201" in card.text and number.e164 in card.text and WORDS["card_unknown"] in card.text
    card.find_element("css selector", "button[data-create=lead]").click()
    page.wait("the lead created", lambda d: card.find_element("css selector", ".offer-result").text)
    assert card.find_element("css selector", ".offer-result").text == WORDS["card_created"]
    page.wait("the call answered, then ended", lambda d: card.get_attribute("data-state") == "ended", timeout=20)
    assert running.wait().successes == 1
    entry = world.logged(call_id)
    [(kind, lead_id)] = world.items(entry, "created")
    assert kind == "lead" and world.item("lead", lead_id)["responsible_id"] == alice.id
    page.sign_in(world.admin.token)
    page.open("/ui/calls")
    row = wait_for("the call in the log", lambda: [r for r in page.all("#calls tbody tr")
                                                   if r.get_attribute("data-call-id") == call_id])[0]
    row.find_element("css selector", "a").click()
    page.wait("the call's page", lambda d: page.all("#explanation"))
    explanation = page.text("#explanation")
    assert "T4b" in explanation and "R2" in explanation
    assert f"lead {lead_id} (created)" in page.text("#items")


@pytest.mark.parametrize("path", ["/ui/numbers", "/ui/simulate", "/ui/card", "/ui/employees"])
def test_pages_are_readable_at_360_px_wide(page: Page, api: Admin, path: str) -> None:
    page.sign_in(api.token)
    page.driver.set_window_size(360, 800)
    try:
        page.open(path)
        width = page.driver.execute_script("return window.innerWidth")
        overflow = page.driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400 and overflow <= width, (width, overflow)
        for field in page.all("main input:not([type=hidden]), main select, main textarea"):
            field_id = field.get_attribute("id")
            assert field_id and page.all(f"label[for='{field_id}']"), f"{path}: a field without a label"
    finally:
        page.driver.set_window_size(1280, 900)
