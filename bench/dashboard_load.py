"""Dashboard load time on a large results database: 100,000 scored files by default.

Usage:
    python bench/dashboard_load.py [--files 100000] [--weeks 4] [--backend sqlite|postgresql]
                                   [--db URL] [--runs 3] [--browser] [--keep DIR]

Seeds a fresh database with a simulated history (``monitor.sim.plan_history``, written by
``monitor.store.bulk_insert_scored``, then a few files with NIfTI artifacts through ``seed_history``),
and reports each page's load time:

- AppTest: one ``streamlit.testing.v1.AppTest`` run per page, cold (empty caches) and warm (cached
  queries within their TTL), the median of ``--runs``;
- browser (``--browser``): a real ``streamlit run`` server and headless Chromium; time from clicking the
  page in the sidebar until its script run has finished and the page is drawn.

The default window of the dashboard (28 days ending on the last score) covers the whole history, so
every page aggregates all files. Target: under 2 s per page.

PostgreSQL: ``--backend postgresql`` creates a database ``cmrbench_<random>`` on the server at
127.0.0.1:5432 (admin URL ``CMR_MONITOR_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1/test``)
and drops it afterwards; ``--db URL`` uses an existing empty database instead.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitor.sim import HISTORY_CHECKPOINT_HASH, HistoryPlan, plan_history, seed_history  # noqa: E402
from monitor.store import (  # noqa: E402
    FinishedFile,
    NewReview,
    bulk_insert_scored,
    make_engine,
    make_session_factory,
    register_model,
    upgrade,
)
from monitor.telemetry.server import free_port  # noqa: E402

APP = ROOT / "dashboard" / "app.py"
PAGES = {
    "overview": None,
    "alerts": "views/alerts.py",
    "case": "views/case.py",
    "versions": "views/versions.py",
}


def bulk_write(url: str, plan: HistoryPlan) -> int:
    """Write a plan with ``monitor.store.bulk_insert_scored`` (one transaction, executemany inserts).

    Writes the rows ``monitor.sim.write_history`` writes through the per-file store API, minus
    artifacts. Returns: files written.
    """
    files = [
        FinishedFile(
            path=f"/watch/{item.segmenter_name}/{item.segmenter_version}/{item.case_key}_{item.phase}.nii.gz",
            content_hash=f"bench-{item.index:012d}".ljust(64, "0"),
            case_key=item.case_key,
            phase=item.phase,
            site=item.site,
            segmenter_name=item.segmenter_name,
            segmenter_version=item.segmenter_version,
            received_at=item.received_at,
            done_at=item.done_at,
            score=item.score,
            rejection=item.rejection if item.score is None else None,
            reviews=tuple(
                NewReview(verdict=r.verdict, reviewer=r.reviewer, note=r.note, reviewed_at=r.reviewed_at)
                for r in item.reviews
            )
            if item.score is not None
            else (),
        )
        for item in plan.files
    ]
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            model_id = register_model(session, HISTORY_CHECKPOINT_HASH + "b", {"bench": True})
            return len(bulk_insert_scored(session, files, model_id=model_id))
    finally:
        engine.dispose()


@contextmanager
def _database(backend: str, url: str | None, folder: Path) -> Iterator[str]:
    """A fresh, migrated database URL; a created PostgreSQL database is dropped afterwards."""
    if url is not None:
        upgrade(url)
        yield url
        return
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'bench.db'}"
        upgrade(url)
        yield url
        return
    admin_url = sa.make_url(
        os.environ.get("CMR_MONITOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    ).set(drivername="postgresql+psycopg")
    name = f"cmrbench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    created = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(created)
        yield created
    finally:
        import streamlit as st

        st.cache_resource.clear()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _apptest_times(url: str, artifacts: Path, case_id: int, runs: int) -> dict[str, tuple[float, float]]:
    """Median (cold, warm) seconds of one AppTest run per page."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["CMR_MONITOR_DATABASE_URL"] = url
    os.environ["CMR_MONITOR_ARTIFACTS_DIR"] = str(artifacts)
    os.environ.pop("CMR_MONITOR_DASHBOARD_PASSWORD", None)
    os.environ["CMR_MONITOR_DASHBOARD_WARM_CACHE_S"] = "0"  # measure the queries themselves
    results: dict[str, tuple[list[float], list[float]]] = {page: ([], []) for page in PAGES}
    for _ in range(runs):
        for page, path in PAGES.items():
            st.cache_data.clear()
            at = AppTest.from_file(APP, default_timeout=120)
            if path is None:
                timings = []
                for _ in range(2):
                    began = time.perf_counter()
                    at.run()
                    timings.append(time.perf_counter() - began)
            else:
                at.run()  # the entry page: the shared queries of the sidebar
                st.cache_data.clear()
                if page == "case":
                    at.query_params["file_id"] = str(case_id)
                at.switch_page(path)
                timings = []
                for _ in range(2):
                    began = time.perf_counter()
                    at.run()
                    timings.append(time.perf_counter() - began)
            if at.exception:
                raise RuntimeError(f"{page}: {at.exception[0].value}")
            results[page][0].append(timings[0])
            results[page][1].append(timings[1])
    return {page: (statistics.median(c), statistics.median(w)) for page, (c, w) in results.items()}


def _browser_times(url: str, artifacts: Path, case_id: int, chromium: str) -> dict[str, tuple[float, float]]:
    """(first, second) seconds from a sidebar click until the page is drawn, in headless Chromium.

    The server runs with its default settings, the cache warmer included; the first visit comes as soon
    as the server answers (while the warmer may still be at work).
    """
    from playwright.sync_api import sync_playwright

    from dashboard.launch import launch_dashboard, wait_for_dashboard

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
    process = launch_dashboard(
        url, port=port, artifacts_dir=artifacts, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    titles = {"overview": "Overview", "alerts": "Alerts", "case": "Case", "versions": "Segmenter versions"}
    out: dict[str, tuple[float, float]] = {}
    try:
        wait_for_dashboard(base, timeout_s=60, process=process)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1600})

            def settled(title: str) -> Callable[[], None]:
                def wait() -> None:
                    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
                    page.wait_for_function(
                        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000
                    )

                return wait

            nav = page.get_by_test_id("stSidebarNav")
            began = time.perf_counter()
            page.goto(base + "/")
            settled("Overview")()
            out["first visit (/), new session"] = (time.perf_counter() - began, math.nan)
            for name in ("alerts", "versions", "overview"):
                times = []
                for _ in range(2):
                    nav.get_by_text("Case", exact=True).click()  # a cheap page in between
                    settled("Case")()
                    began = time.perf_counter()
                    nav.get_by_text(titles[name], exact=True).click()
                    settled(titles[name])()
                    times.append(time.perf_counter() - began)
                out[name] = (times[0], times[1])
            times = []
            for _ in range(2):
                began = time.perf_counter()
                page.goto(f"{base}/case?file_id={case_id}")  # a link: new session, images
                settled("Case")()
                page.get_by_test_id("stImage").nth(2).wait_for(timeout=120_000)
                times.append(time.perf_counter() - began)
            out["case (link, new session)"] = (times[0], times[1])
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000, help="scored + rejected files to seed")
    parser.add_argument("--weeks", type=float, default=4.0)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--db", default=None, help="an existing, empty database to use instead")
    parser.add_argument("--runs", type=int, default=3, help="AppTest repetitions (median reported)")
    parser.add_argument("--browser", action="store_true", help="also time a real browser (headless Chromium)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--keep", type=Path, default=None, help="folder for the database and artifacts")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="cmr-dash-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # weekday volume, so that the weekend dip still gives about ``--files`` files in total
    per_day = args.files / (args.weeks * 7) / ((5 + 2 * 0.35) / 7)
    began = time.perf_counter()
    plan = plan_history(weeks=args.weeks, volumes_per_day=per_day, seed=0, end=end, artifact_files=0)
    planned_s = time.perf_counter() - began
    with _database(args.backend, args.db, folder) as url:
        began = time.perf_counter()
        written = bulk_write(url, plan)
        insert_s = time.perf_counter() - began
        extra = seed_history(
            url,
            weeks=1,
            volumes_per_day=1,
            seed=1,
            end=end,
            artifacts_dir=folder / "artifacts",
            artifact_files=3,
        )
        case_id = extra.artifact_file_ids[0]
        scored = sum(f.score is not None for f in plan.files)
        print(
            f"backend {make_engine(url).dialect.name}; {written:,} files ({scored:,} scored) over {args.weeks:g} weeks, "
            f"+{len(extra.file_ids)} with artifacts"
        )
        print(f"plan {planned_s:.1f} s, bulk insert {insert_s:.1f} s ({written / insert_s:,.0f} files/s)")
        load_before = os.getloadavg()[0]
        times = _apptest_times(url, folder / "artifacts", case_id, args.runs)
        print(
            f"\nAppTest, median of {args.runs} (seconds)      cold    warm"
            f"    (load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
        for page, (cold, warm) in times.items():
            print(f"  {page:<36} {cold:6.2f}  {warm:6.2f}")
        import streamlit as st

        from dashboard.data import warm_default_views

        st.cache_data.clear()
        began = time.perf_counter()
        warm_default_views(url)
        print(
            f"\nbackground warm-up of the default views (dashboard_warm_cache_s): {time.perf_counter() - began:.2f} s"
        )
        if args.browser:
            print("\nbrowser, headless Chromium (seconds)      first   second")
            for page, (first, second) in _browser_times(
                url, folder / "artifacts", case_id, args.chromium
            ).items():
                print(f"  {page:<36} {first:6.2f}  {second:6.2f}")


if __name__ == "__main__":
    main()
