"""Debian's Chromium, headless, driven by Selenium through Debian's chromedriver — nothing downloads a
browser: the driver's path is given, the browser's binary is given, and Selenium Manager is told to stay
offline (SE_OFFLINE), so it never runs a download.

    driver = start_browser()
    page = Page(driver, "http://127.0.0.1:8081")
    page.sign_in(token)
    page.open("/ui/numbers")
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 15.0


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not binary.exists():
            return f"{binary} is missing: apt-get install {package} (make test installs it)"
    return None


def start_browser(width: int = 1280, height: int = 900) -> WebDriver:
    """A headless Chromium of its own profile; `driver.quit()` stops it and its driver."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="web-tests-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions", "--disable-background-networking",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    original_quit = driver.quit

    def quit_and_clean() -> None:
        original_quit()
        shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_clean  # type: ignore[method-assign]
    return driver


class Page:
    """The web pages of one gateway, in one browser."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self.driver, self.base = driver, base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, what: str, probe: Callable[[WebDriver], Any], timeout: float = WAIT_S) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(probe, message=f"not seen: {what}")

    def text(self, css: str) -> str:
        return self.find(css).text

    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.base)

    def sign_in(self, token: str) -> None:
        """Through the sign-in form, as a person would (token typed, form sent with Enter)."""
        self.driver.delete_all_cookies()
        self.open("/ui/sign-in")
        field = self.find("#token")
        field.send_keys(token)
        field.submit()
        self.wait("the signed-in pages", lambda d: self.all("#who"))

    def sign_out(self) -> None:
        self.find("form.sign-out button").click()
        self.wait("the sign-in page", lambda d: self.all("#sign-in"))
