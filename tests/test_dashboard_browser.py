"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

The page of a running job must add one row to its batch table per batch, without a
reload, and draw its charts. A screenshot is saved under the test's tmp dir. Without
chromium this test fails (``.ci/run`` installs it with apt); it is never skipped.
"""

from __future__ import annotations

import operator
import os
import shutil
from typing import TYPE_CHECKING

import pytest

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from pathlib import Path

    from asyncstream.testing import ManualClock

CHROMIUM = os.environ.get("ASYNCSTREAM_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROWS = "document.querySelectorAll('#batches tbody tr').length"

# Every canvas of a chart has pixels drawn on it (not only a blank bitmap).
DRAWN = """() => {
  const canvases = [...document.querySelectorAll('.uplot canvas')];
  return canvases.length === 2 && canvases.every((c) => {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
    return false;
  });
}"""


async def test_the_batch_table_grows_live_and_the_charts_are_drawn(
    clock: ManualClock, tmp_path: Path
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"chromium is not installed at {CHROMIUM}: install it with "
            "`apt-get install -y chromium` (.ci/run does) or set ASYNCSTREAM_CHROMIUM"
        )
    from playwright.async_api import async_playwright

    ssc = StreamingContext(1, clock=clock)
    lines = ssc.queue_stream([["a b", "b"], ["c"], ["a a a"], ["d"], ["b c"]])
    pairs = lines.flat_map(str.split).map(lambda w: (w, 1))
    pairs.reduce_by_key_and_window(operator.add, operator.sub, 3, 1).foreach_batch(
        lambda batch: None
    )
    ssc.iterable_stream(range(10**6), rate=10).count().foreach_batch(lambda batch: None)
    ui = await ssc.serve_ui(port=0)
    async with ssc, async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = await browser.new_page()
            loads: list[str] = []
            page.on("load", lambda p: loads.append(p.url))
            await page.goto(ui.url)
            await page.wait_for_selector(".uplot canvas")
            await page.evaluate("window.notReloaded = true")
            assert await page.evaluate(ROWS) == 0
            for n in range(1, 6):
                await clock.advance(1)
                await page.wait_for_function(f"{ROWS} === {n}", timeout=15_000)
                first = page.locator("#batches tbody tr").first
                assert await first.get_attribute("data-seq") == str(n)
            cells = await page.locator("#batches tbody tr").first.locator("td").all_inner_texts()
            assert cells[0] == "1970-01-01 00:00:05.000"
            assert cells[1] == "11"  # the line "b c", and 10 numbers (rate=10)
            assert "reduce_by_key_and_window(add)" in cells[5]
            await page.wait_for_function(DRAWN, timeout=15_000)
            points = await page.evaluate("window.asyncstreamCharts.rate.data.map(s => s.length)")
            assert points == [5, 5, 5]  # times, then one series per input stream
            await page.wait_for_function(
                "document.querySelector('#summary').textContent.startsWith('5 batches done')",
                timeout=15_000,
            )
            assert "reduce_by_key_and_window" in await page.inner_text("#state-keys")
            assert "10.0 records/s" in await page.inner_text("#rates")
            assert "1:iterable_stream(range)" in await page.inner_text("#sources")
            assert await page.evaluate("window.notReloaded") is True
            assert loads == [ui.url]
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            await browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
