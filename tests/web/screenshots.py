"""`make screenshots`: PNGs of the main web pages, wide and at 360 px, into a directory (not committed).

    python -m tests.web.screenshots screenshots/

Starts its own gateway (demo seed, SQLite in a temporary directory) and headless Chromium; stops both.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.integration.conftest import HOST, start_gateway, stop_gateway
from tests.integration.live_kit import admin_token
from tests.web.browser_kit import Page, missing_browser, start_browser

PAGES = ("numbers", "queues", "employees", "trunks", "crm", "mailboxes", "calls", "simulate", "card")
WIDTHS = {"wide": (1280, 900), "360px": (360, 800)}


def shoot(target: Path) -> list[Path]:
    """Every page of PAGES (plus the first number's form and the sign-in page) at every width."""
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="web-screenshots-") as scratch:
        gateway = start_gateway(Path(scratch))
        driver = start_browser()
        try:
            page = Page(driver, f"http://{HOST}:{gateway.admin_port}")
            page.open("/ui/sign-in")
            written.append(_save(page, target / "sign-in.png"))
            page.sign_in(admin_token(gateway))
            first_number = page.all("main table a")
            paths = [f"/ui/{name}" for name in PAGES]
            if first_number:
                paths.append(first_number[0].get_attribute("href").removeprefix(page.base))
            for label, (width, height) in WIDTHS.items():
                driver.set_window_size(width, height)
                for path in paths:
                    driver.set_window_size(width, height)
                    page.open(path)
                    name = path.removeprefix("/ui/").replace("/", "-")
                    written.append(_save(page, target / f"{name}-{label}.png"))
        finally:
            driver.quit()
            stop_gateway(gateway)
    return written


def _save(page: Page, path: Path) -> Path:
    height = page.driver.execute_script("return document.documentElement.scrollHeight")
    window = page.driver.get_window_size()
    inner = page.driver.execute_script("return window.innerHeight")
    # The whole page in one picture: the window grows by what the page is taller than the viewport.
    page.driver.set_window_size(window["width"], window["height"] + max(0, height - inner))
    page.driver.save_screenshot(str(path))
    return path


def main(argv: list[str]) -> int:
    why = missing_browser()
    if why is not None:
        print(why, file=sys.stderr)
        return 1
    written = shoot(Path(argv[0] if argv else "screenshots"))
    print(f"{len(written)} screenshots in {written[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
