"""The report of a tiny experiment in a real browser at 1280x800: nothing wider than the window, the answer and
the forest plot on the first screen, no console errors."""

import os
from pathlib import Path

from helpers import browser_or_skip, launch_chromium

VIEWPORT = {"width": 1280, "height": 800}

# every element whose box reaches past the window's right edge (or starts left of it), with what it is
OVERFLOW = """() => [...document.querySelectorAll('body *')].map(e => [e, e.getBoundingClientRect()])
    .filter(([e, r]) => r.width > 0 && (r.right > window.innerWidth + 0.5 || r.left < -0.5))
    .map(([e, r]) => `${e.tagName.toLowerCase()} ${Math.round(r.left)}..${Math.round(r.right)}: `
                     + e.textContent.slice(0, 60))"""


def test_report_fits_the_window_with_the_answer_and_forest_above_the_fold(tiny_run, tmp_path):
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    out, _, _ = tiny_run
    shots = Path(os.environ.get("SYNTHAUG_SCREENSHOTS", tmp_path))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((out / "report.html").as_uri())
            page.wait_for_load_state("load")

            assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]  # no horizontal scroll
            assert page.evaluate(OVERFLOW) == []
            answer = page.locator("#answer")
            assert answer.inner_text().startswith(("Synthetic data", "No significant difference", "Too few seeds"))
            forest = page.locator("#forest img")
            assert forest.evaluate("img => img.complete && img.naturalWidth > 0")
            for box in (answer.bounding_box(), forest.bounding_box()):
                assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], box  # the first screen
            assert page.locator("table").count() >= 10  # the whole report rendered, not just its top
            page.screenshot(path=str(shots / "report.png"))
            assert errors == []
        finally:
            browser.close()
    assert (shots / "report.png").read_bytes().startswith(b"\x89PNG")
