"""The viewer in a real headless Chromium (the OS packages, driven by Selenium).

Skips when Chromium, its driver or Selenium is missing (``apt-get install chromium
chromium-driver``; CI installs them). With ``REFSEG_VIEWER_SCREENSHOT=PATH`` it also saves
an agent run's example page as a PNG (how docs/images/viewer-example.png is made).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from helpers_viewer import serving

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000")  # fmt: skip


@pytest.fixture(scope="module")
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


def test_an_agent_example_shows_its_ranking_steps_and_what_the_vlm_saw(browser: Any, agent_run: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    records = [json.loads(line) for line in (agent_run / "samples.jsonl").read_text().splitlines()]
    rec = next(r for r in records if r["stop_reason"] == "agent_submit")
    with serving(agent_run) as port:
        browser.set_window_size(1400, 1000)
        browser.get(f"http://127.0.0.1:{port}/example?" + urlencode({"id": rec["example_id"]}))
        loaded = "return Array.from(arguments[0]).every(i => i.complete && i.naturalWidth > 0)"
        thumbs = browser.find_elements(By.CSS_SELECTOR, ".rank-step img")
        shown = browser.find_elements(By.CSS_SELECTOR, "details.vlm[open] img.vlm-img")
        assert len(thumbs) == sum(len(s["candidates"]) for s in rec["rank_steps"]) and len(shown) >= 2
        WebDriverWait(browser, 10).until(lambda d: d.execute_script(loaded, thumbs + shown))
        assert all(t.size["width"] > 0 for t in thumbs)
        vlm = browser.find_element(By.CSS_SELECTOR, "details.vlm[open]").text
        assert "You segment the single object" in vlm and "→ region_prompt(" in vlm
        timeline = browser.find_element(By.CSS_SELECTOR, "[data-testid=timeline]").text
        assert "vlm" in timeline and "agent turn" in timeline and "attribute_rank" in timeline
        shot = os.environ.get("REFSEG_VIEWER_SCREENSHOT")
        if shot:  # docs/images/viewer-example.png
            save_small_screenshot(browser, Path(shot))


def save_small_screenshot(browser: Any, path: Path, height: int = 1700) -> None:
    """The top ``height`` pixels of the page as a 128-colour PNG (the README's stays < 300 KB)."""
    from PIL import Image as PILImage

    browser.set_window_size(1400, height)
    full = path.with_suffix(".full.png")
    browser.save_screenshot(str(full))
    picture = PILImage.open(full).convert("RGB")
    picture.quantize(colors=128, method=PILImage.Quantize.FASTOCTREE, dither=PILImage.Dither.NONE).save(
        path, optimize=True
    )
    full.unlink()


def test_cost_tables_fit_their_column_on_the_compare_page(browser: Any, made_runs: dict[str, Path]) -> None:
    with serving(made_runs["loop"], made_runs["oneshot"]) as port:
        browser.set_window_size(1200, 1000)
        try:
            browser.get(f"http://127.0.0.1:{port}/")
            widths = browser.execute_script(
                "return [...document.querySelectorAll('table.costs')]"
                ".map(t => [t.scrollWidth, t.parentElement.clientWidth])"
            )
        finally:
            browser.set_window_size(1400, 1000)
    assert len(widths) == 4 and all(table <= column for table, column in widths)  # no horizontal scrolling
