"""The viewer in a real headless Chromium (the OS packages, driven by Selenium).

Skips when Chromium, its driver or Selenium is missing (``apt-get install chromium
chromium-driver``; CI installs them). With ``REFSEG_VIEWER_SCREENSHOT=PATH`` it also saves
the example page as a PNG (how docs/images/viewer-example.png is made).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_viewer import serving

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000")  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} missing: apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="refseg-view-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_filter_open_an_example_see_its_overlay_and_timeline(
    browser: Any, made_runs: dict[str, Path]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with serving(made_runs["loop"], made_runs["oneshot"]) as port:
        browser.get(f"http://127.0.0.1:{port}/")
        assert "mIoU" in browser.find_element(By.CSS_SELECTOR, "section.summary").text
        browser.find_element(By.NAME, "q").send_keys("the green star")
        Select(browser.find_element(By.NAME, "change")).select_by_value("unchanged")
        browser.find_element(By.ID, "apply").click()
        WebDriverWait(browser, 10).until(lambda d: "q=the+green+star" in d.current_url)
        shown = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.ex-link")]
        assert "scene-0:1:3" in shown and "scene-0:2:0" not in shown  # 'jade star' became 'the green star'
        browser.find_element(By.LINK_TEXT, "scene-0:1:3").click()
        WebDriverWait(browser, 10).until(lambda d: "/example" in d.current_url)
        loaded = "return arguments[0].complete && arguments[0].naturalWidth"
        pred = browser.find_element(By.ID, "pred-a")
        WebDriverWait(browser, 10).until(lambda d: d.execute_script(loaded, pred))
        assert browser.execute_script("return arguments[0].naturalWidth", pred) > 0
        timeline = browser.find_element(By.CSS_SELECTOR, "[data-testid=timeline]").text
        assert "region_propose" in timeline and "attribute_rank" in timeline and "episode_end" in timeline
        bars = browser.find_elements(By.CSS_SELECTOR, ".bar[data-w]")
        assert any(b.size["width"] > 0 for b in bars)  # the script ran (no inline code allowed)
        gt_toggle = browser.find_element(By.CSS_SELECTOR, "input.layer-toggle[data-layer=gt]")
        gt_layer = browser.find_element(By.CSS_SELECTOR, "img.overlay[data-layer=gt]")
        assert gt_layer.is_displayed()
        gt_toggle.click()
        assert not gt_layer.is_displayed() and pred.is_displayed()
        gt_toggle.click()
        shot = os.environ.get("REFSEG_VIEWER_SCREENSHOT")
        if shot:
            height = browser.execute_script("return document.body.scrollHeight")
            browser.set_window_size(1400, min(int(height) + 80, 2400))
            browser.save_screenshot(shot)
