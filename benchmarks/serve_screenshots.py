"""Screenshots of the three pages of a running `synthaug serve` for docs/serving.md (headless Debian Chromium).

    python benchmarks/serve_screenshots.py --url http://127.0.0.1:8000 --image some.png --out docs/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--image", required=True, help="an image file to classify")
    p.add_argument("--class-name", help="class to generate (default: the generator's third class)")
    p.add_argument("--out", default="docs/img")
    args = p.parse_args()
    from playwright.sync_api import expect, sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.goto(args.url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        classes = page.locator("#class option").evaluate_all("os => os.map(o => o.value)")
        page.select_option("#class", args.class_name or classes[min(2, len(classes) - 1)])
        page.fill("#count", "24")
        page.click("#generate")
        expect(page.locator("#grid img")).to_have_count(24)
        page.screenshot(path=str(out / "serve-generate.png"))
        page.click("#tab-classify")
        page.set_input_files("#file", args.image)
        expect(page.locator("#predicted")).not_to_be_empty()
        page.screenshot(path=str(out / "serve-classify.png"))
        page.click("#tab-reports")
        runs = page.locator("#runs a")
        expect(runs.first).to_be_visible()
        runs.first.click()
        page.wait_for_timeout(500)  # let the report's images lay out before the picture
        page.screenshot(path=str(out / "serve-reports.png"))
        browser.close()
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
