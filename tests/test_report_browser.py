"""The report of a tiny experiment in a real browser at 1280x800: nothing wider than the window, the answer and
the forest plot on the first screen, no console errors."""

import os
from pathlib import Path

import pytest

from helpers import browser_or_skip, launch_chromium

VIEWPORT = {"width": 1280, "height": 800}

# every element whose box reaches past the window's right edge (or starts left of it), with what it is
OVERFLOW = """() => [...document.querySelectorAll('body *')].map(e => [e, e.getBoundingClientRect()])
    .filter(([e, r]) => r.width > 0 && (r.right > window.innerWidth + 0.5 || r.left < -0.5))
    .map(([e, r]) => `${e.tagName.toLowerCase()} ${Math.round(r.left)}..${Math.round(r.right)}: `
                     + e.textContent.slice(0, 60))"""


def _wide_constructed_run(tmp_path: Path) -> Path:
    """5 seeds (so the effect size joins the summary table), long arm names, a second view and a pool study."""
    from synthaug.experiments.arms import Arm
    from synthaug.report.build import build_report
    from test_report import CGAN, DIFFUSION, PLAIN, _p_real, _run_folder, _summary

    pool = [(Arm(f"fashion-diffusion-pool (pool + labelled) variations t={t:g} M={m}", "pool", "fashion-diffusion-pool",
                 "p_real", 0.5, strength=t, per_image=m), 0.01 * t - 0.004) for t in (0.25, 0.5, 0.75) for m in (2, 10)]
    summary = _summary({"compare": [(PLAIN, -0.015), (CGAN, -0.064), (DIFFUSION, -0.03)],
                        "compare @ tuned": [(PLAIN, -0.015), (CGAN, -0.07), (DIFFUSION, -0.028)],
                        "p-real": [(_p_real(g, p), -0.02 * (1 - p)) for g in ("cgan", "diffusion") for p in (0.0, 0.5, 0.75)],
                        "unlabelled": pool})
    out = _run_folder(tmp_path, summary)
    build_report(out)
    return out


@pytest.mark.parametrize("which", ["tiny run", "wide constructed run"])
def test_report_fits_the_window_with_the_answer_and_forest_above_the_fold(which, tiny_run, tmp_path):
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    out = tiny_run[0] if which == "tiny run" else _wide_constructed_run(tmp_path)
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
            flags = page.locator("td abbr").evaluate_all("els => els.map(e => [e.textContent, e.title])")
            assert flags and all(len(word) <= 20 and len(title) > len(word) for word, title in flags)  # word + tooltip
            assert page.locator("table").count() >= (10 if which == "tiny run" else 4)  # the whole report rendered
            if which == "tiny run":
                page.screenshot(path=str(shots / "report.png"))
            assert errors == []
        finally:
            browser.close()
    if which == "tiny run":
        assert (shots / "report.png").read_bytes().startswith(b"\x89PNG")
