"""A real browser on the running dashboard: ``streamlit run`` on a free loopback port, headless Chromium
(Debian's ``/usr/bin/chromium``) driven by Playwright. Logs in, opens every page through the sidebar,
opens a case from the alert list with one click, saves a review, checks that a new browser session must
log in again, and saves a screenshot of each page in the test's tmp folder.

Skipped only when Chromium or Playwright is truly absent and CI is not "true"; under ``CI=true`` a
missing browser fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from dashboard.launch import launch_dashboard, wait_for_dashboard
from monitor.store import get_case, make_engine, make_session_factory
from monitor.telemetry.server import free_port
from tests.dashboard.conftest import Seeded
from tests.requirements import skip_or_fail

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = os.environ.get("CMR_MONITOR_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-pw"
_TIMEOUT_MS = 45_000

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    """Skip (or fail under CI=true) when Chromium or Playwright is missing."""
    missing = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright; never `playwright install`)")
    if missing:
        skip_or_fail("browser test needs " + " and ".join(missing))


@pytest.fixture
def server(seeded_sqlite: Seeded, tmp_path: Path) -> Iterator[tuple[str, Seeded]]:
    """The dashboard on a private copy of the seeded SQLite database, behind a password."""
    _require_browser()
    target = tmp_path / "browser.db"
    with sqlite3.connect(sa.make_url(seeded_sqlite.url).database) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    db = Seeded(
        backend="sqlite",
        url=f"sqlite:///{target}",
        artifacts_dir=seeded_sqlite.artifacts_dir,
        summary=seeded_sqlite.summary,
    )
    port = free_port()
    log = (tmp_path / "streamlit.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
    process = launch_dashboard(
        db.url,
        port=port,
        host="127.0.0.1",
        artifacts_dir=db.artifacts_dir,
        password=PASSWORD,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_dashboard(base, timeout_s=60, process=process)
        yield base, db
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _settle(page: Page) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=_TIMEOUT_MS
    )
    page.wait_for_timeout(300)


def _heading(page: Page, text: str) -> None:
    page.get_by_role("heading", name=text, exact=True).first.wait_for(timeout=_TIMEOUT_MS)
    _settle(page)


def test_every_page_in_a_real_browser(server: tuple[str, Seeded], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, db = server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    outside_requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.on(
                "request",
                lambda r: (
                    outside_requests.append(r.url)
                    if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))
                    else None
                ),
            )
            # login: nothing but the form before the password
            page.goto(base + "/")
            page.get_by_label("Password", exact=True).wait_for(timeout=_TIMEOUT_MS)
            expect(page.get_by_text("Masks scored")).to_have_count(0)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()

            # overview
            _heading(page, "Overview")
            page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=_TIMEOUT_MS)
            metric = page.get_by_test_id("stMetric").filter(has_text="Masks scored")
            expect(metric).to_contain_text(f"{db.summary.scored:,}")
            expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(
                4
            )  # scored; 3 x one panel per structure
            page.get_by_test_id("stDataFrame").first.locator("canvas").first.wait_for(timeout=_TIMEOUT_MS)
            page.wait_for_timeout(1000)  # let the charts and the table paint
            page.screenshot(path=str(shots / "overview.png"), full_page=True)

            # alerts, then one click on the first row opens its case
            page.get_by_test_id("stSidebarNav").get_by_text("Alerts").click()
            _heading(page, "Alerts")
            expect(page.get_by_text(f"{db.summary.flagged:,} alerts")).to_be_visible()
            page.screenshot(path=str(shots / "alerts.png"), full_page=True)
            canvas = page.get_by_test_id("stDataFrame").locator("canvas").first
            canvas.wait_for(timeout=_TIMEOUT_MS)
            box = canvas.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # row marker of the first data row
            _heading(page, "Case")
            assert re.search(r"/case\?file_id=\d+$", page.url), page.url
            file_id = int(page.url.rsplit("=", 1)[1])
            expect(page.get_by_test_id("stMetric").filter(has_text="Flag")).to_contain_text(
                re.compile("suspicious|erroneous")
            )

            # a case with images: three panels over the MR image
            page.get_by_label("File id").fill(str(db.summary.artifact_file_ids[0]))
            page.get_by_label("File id").press("Enter")
            _settle(page)
            expect(page.get_by_test_id("stImage")).to_have_count(3)
            expect(page.get_by_text("over the MR image")).to_be_visible()
            page.screenshot(path=str(shots / "case.png"), full_page=True)

            # the review form stores a review
            reviewed_id = db.summary.artifact_file_ids[0]
            page.get_by_text("Unsure", exact=True).click()
            page.get_by_label("Your name").fill("dr.browser")
            page.get_by_label("Note").fill("checked in the browser test")
            page.get_by_role("button", name="Save review").click()
            expect(page.get_by_text("Review saved: unsure by dr.browser.")).to_be_visible(timeout=_TIMEOUT_MS)

            # segmenter versions
            page.get_by_test_id("stSidebarNav").get_by_text("Segmenter versions").click()
            _heading(page, "Segmenter versions")
            expect(page.get_by_text("Flag precision from reviews")).to_be_visible()
            page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=_TIMEOUT_MS)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "versions.png"), full_page=True)

            # a new browser session (direct link to a case) must log in again, and sees no data before
            other = browser.new_page()
            other.goto(f"{base}/case?file_id={file_id}")
            other.get_by_label("Password", exact=True).wait_for(timeout=_TIMEOUT_MS)
            expect(other.get_by_test_id("stImage")).to_have_count(0)
            expect(other.get_by_test_id("stMetric")).to_have_count(0)
            other.screenshot(path=str(shots / "login.png"))
        finally:
            browser.close()

    engine = make_engine(db.url)
    with make_session_factory(engine)() as session:
        record = get_case(session, reviewed_id)
    engine.dispose()
    assert record is not None
    assert [(r.verdict, r.reviewer) for r in record.reviews][-1] == ("unsure", "dr.browser")
    assert not outside_requests, outside_requests  # loopback only: nothing fetched from the internet
    for name in ("overview", "alerts", "case", "versions", "login"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
    keep = os.environ.get("CMR_MONITOR_TEST_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)


_CLIPPED_CHARTS = """() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]')).flatMap(chart => {
    // the chart's own element grows with its drawing; the column it sits in does not
    const box = chart.closest('[data-testid="stVerticalBlock"]').getBoundingClientRect();
    const drawn = chart.querySelector('svg, canvas');
    if (!drawn) return ['a chart without a drawing'];
    const inner = drawn.getBoundingClientRect();
    return inner.right > box.right + 1 || inner.width > window.innerWidth
        ? [`${chart.innerText.slice(0, 40)}: drawn to ${inner.right}px, shown to ${box.right}px`] : [];
})"""


def _login(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Password", exact=True).wait_for(timeout=_TIMEOUT_MS)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_page_urls_and_layout_at_1400_px(server: tuple[str, Seeded]) -> None:
    """Each page opens at its own URL (the overview too), also through the login; no chart is drawn
    wider than its frame (a legend on the right of three panels was cut off); the alerts' reasons are
    in view."""
    from playwright.sync_api import expect, sync_playwright

    base, db = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            _login(page, base + "/overview")
            _heading(page, "Overview")
            page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=_TIMEOUT_MS)
            expect(page.get_by_text("Page not found")).to_have_count(0)
            assert page.url == base + "/overview"
            for path, heading in (("versions", "Segmenter versions"), ("alerts", "Alerts"), ("case", "Case")):
                _login(page, f"{base}/{path}")  # a new browser session: the link survives the login
                _heading(page, heading)
                assert page.url == f"{base}/{path}"
                expect(page.get_by_text("Page not found")).to_have_count(0)
                if path == "versions":
                    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4, timeout=_TIMEOUT_MS)
                    page.wait_for_timeout(1000)
                    assert page.evaluate(_CLIPPED_CHARTS) == []
                if path == "alerts":
                    grid = page.get_by_test_id("stDataFrame").first
                    grid.locator("canvas").first.wait_for(timeout=_TIMEOUT_MS)
                    # the grid renders only the columns in view, also in its accessible table
                    grid.get_by_role("columnheader", include_hidden=True).first.wait_for(
                        state="attached", timeout=_TIMEOUT_MS
                    )
                    headers = grid.get_by_role("columnheader", include_hidden=True).all_text_contents()
                    assert "reasons" in [h.strip() for h in headers], headers
            _login(page, base + "/overview")
            _heading(page, "Overview")
            expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4, timeout=_TIMEOUT_MS)
            page.wait_for_timeout(1000)
            assert page.evaluate(_CLIPPED_CHARTS) == []
            page.goto(base + "/no-such-page")  # the check above can see the message
            expect(page.get_by_text("Page not found")).to_be_visible(timeout=_TIMEOUT_MS)
        finally:
            browser.close()
    assert db.summary.flagged > 0
