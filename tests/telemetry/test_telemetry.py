"""Tests of ``monitor.telemetry``: metric names, units and bounded labels in a fresh registry, the label
budget, the database-backed queue gauges (SQLite and PostgreSQL), and the HTTP endpoint."""

from __future__ import annotations

import math
import platform
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.store import (
    claim_batch,
    enqueue_file,
    make_engine,
    make_session_factory,
    record_rejection,
    record_scores,
    register_model,
)
from monitor.store.queue import QueueState, queue_state
from monitor.telemetry import (
    DATABASE_OPERATIONS,
    OTHER,
    PDSC_BUCKETS,
    PHD_BUCKETS_MM,
    QUEUE_METRICS,
    LabelBudget,
    QueueCollector,
    build_metrics,
    serve_http,
)
from tests.telemetry._helpers import structure_score, volume_score

#: Labels that may appear on any metric; anything naming a case, patient, file or path must not.
ALLOWED_LABELS = frozenset(
    {
        "segmenter",
        "segmenter_version",
        "flag",
        "level",
        "structure",
        "reason",
        "kind",
        "status",
        "operation",
        "errno",  # bounded: monitor.telemetry.ARTIFACT_ERRNOS and "other"
        "loop",  # bounded: monitor.telemetry.LOOPS
        "outcome",  # bounded: monitor.io.images.IMAGE_OUTCOMES and "other"
        "le",
    }
)
INFO_LABELS = {
    "cmr_monitor_build_info": {"version", "python_version"},
    "cmr_monitor_model_info": {
        "checkpoint_sha256",
        "checkpoint_created",
        "trained_with",
        "device",
        "precision",
        "model_id",
    },
}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


#: LV missing from the mask (pDSC 0, pHD undefined), RV fine, MYO suspicious.
BAD = volume_score(
    structure_score(Structure.LV, 0.0, math.nan, FlagLevel.ERRONEOUS),
    structure_score(Structure.RV, 0.91, 6.0, FlagLevel.OK),
    structure_score(Structure.MYO, 0.42, 61.0, FlagLevel.SUSPICIOUS),
)
GOOD = volume_score(
    structure_score(Structure.LV, 0.93, 4.0, FlagLevel.OK),
    structure_score(Structure.RV, 0.88, 9.0, FlagLevel.OK),
    structure_score(Structure.MYO, 0.81, 5.0, FlagLevel.OK),
)


def test_record_scored_counts_flags_and_observes_defined_scores() -> None:
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    metrics.record_scored("unet", "1.2", BAD, latency_s=0.3)
    metrics.record_scored("unet", "1.2", GOOD, latency_s=1.2)
    metrics.record_claimed(0.2)
    value = registry.get_sample_value
    seg = {"segmenter": "unet", "segmenter_version": "1.2"}
    assert value("cmr_monitor_files_scored_total", {**seg, "flag": "erroneous"}) == 1
    assert value("cmr_monitor_files_scored_total", {**seg, "flag": "ok"}) == 1
    assert value("cmr_monitor_flags_total", {**seg, "structure": "LV", "level": "erroneous"}) == 1
    assert value("cmr_monitor_flags_total", {**seg, "structure": "LV", "level": "ok"}) == 1
    assert value("cmr_monitor_flags_total", {**seg, "structure": "MYO", "level": "suspicious"}) == 1
    # pDSC 0 of the missing LV is observed, its undefined pHD is not (as the database stores NULL)
    assert value("cmr_monitor_pdsc_ratio_count", {**seg, "structure": "LV"}) == 2
    assert value("cmr_monitor_pdsc_ratio_bucket", {**seg, "structure": "LV", "le": "0.1"}) == 1
    assert value("cmr_monitor_phd_millimeters_count", {**seg, "structure": "LV"}) == 1
    assert value("cmr_monitor_phd_millimeters_bucket", {**seg, "structure": "MYO", "le": "50.0"}) == 1
    assert value("cmr_monitor_phd_millimeters_sum", {**seg, "structure": "MYO"}) == 66.0
    assert value("cmr_monitor_scoring_latency_seconds_count") == 2
    assert value("cmr_monitor_scoring_latency_seconds_bucket", {"le": "0.5"}) == 1
    assert value("cmr_monitor_queue_wait_seconds_count") == 1
    # reason codes, by structure, under the bounded label ``reason``
    assert value("cmr_monitor_flag_reasons_total", {**seg, "structure": "LV", "reason": "missing"}) == 1
    assert value("cmr_monitor_flag_reasons_total", {**seg, "structure": "MYO", "reason": "phd_high"}) == 1
    assert value("cmr_monitor_flag_reasons_total", {**seg, "structure": "RV", "reason": "phd_high"}) == 0


def test_flag_reasons_are_bounded_by_the_codes() -> None:
    """A reason that is not a code (a record built by hand) is counted as ``other``, never as itself."""
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    odd = replace(BAD.structures[0], reasons=("LV looks odd, patient Smith",))
    metrics.record_scored("unet", "1.2", replace(BAD, structures=(odd, *BAD.structures[1:])), latency_s=0.1)
    reasons = {
        s.labels["reason"]
        for f in registry.collect()
        if f.name == "cmr_monitor_flag_reasons"
        for s in f.samples
        if s.name.endswith("_total")
    }
    assert reasons == {*(str(code) for code in ReasonCode), "other"}


def test_new_segmenter_version_series_start_at_zero() -> None:
    """Once a version's first file is received, every flag level, structure and histogram of it is
    exposed at 0, so that rate() and increase() see its first flagged mask."""
    registry = CollectorRegistry()
    build_metrics(registry).record_received("unet", "3.0")
    value = registry.get_sample_value
    seg = {"segmenter": "unet", "segmenter_version": "3.0"}
    for level in ("ok", "suspicious", "erroneous"):
        assert value("cmr_monitor_files_scored_total", {**seg, "flag": level}) == 0
        for structure in ("LV", "RV", "MYO"):
            assert value("cmr_monitor_flags_total", {**seg, "structure": structure, "level": level}) == 0
    for code in ReasonCode:
        assert value("cmr_monitor_flag_reasons_total", {**seg, "structure": "RV", "reason": str(code)}) == 0
    assert value("cmr_monitor_pdsc_ratio_count", {**seg, "structure": "MYO"}) == 0
    assert value("cmr_monitor_phd_millimeters_bucket", {**seg, "structure": "RV", "le": "+Inf"}) == 0


def test_names_units_and_bounded_labels() -> None:
    """Every metric is cmr_monitor_*, counters end in _total, histograms name a unit, and no label
    could carry a case, patient or file name."""
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    metrics.record_received("unet", "1.2")
    metrics.record_rejected("unet", "1.2", "corrupt")
    metrics.record_scored("unet", "1.2", BAD, latency_s=0.1)
    metrics.transient_errors.labels(kind="database").inc()
    metrics.set_model(checkpoint_sha256="ab" * 32, created="2026-01-01", device="cpu", model_id=1)
    registry.register(QueueCollector(lambda: QueueState(pending=1, scoring=0, oldest_pending_received_at=None, last_scored_at=None)))  # fmt: skip
    families = list(registry.collect())
    assert {f.name for f in families} >= {"cmr_monitor_flags", "cmr_monitor_pdsc_ratio", *QUEUE_METRICS}
    for family in families:
        assert family.name.startswith("cmr_monitor_"), family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_ratio", "_millimeters")), family.name
        for sample in family.samples:
            if family.type == "counter" and not sample.name.endswith("_created"):
                assert sample.name.endswith("_total"), sample.name
            if sample.name in INFO_LABELS:
                assert set(sample.labels) == INFO_LABELS[sample.name]
            else:
                assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
    assert registry.get_sample_value(
        "cmr_monitor_files_rejected_total", {"segmenter": "unet", "segmenter_version": "1.2", "reason": "corrupt"}
    ) == 1  # fmt: skip
    build = {"version": __version__, "python_version": platform.python_version()}
    assert registry.get_sample_value("cmr_monitor_build_info", build) == 1
    model = registry.get_sample_value(
        "cmr_monitor_model_info",
        {"checkpoint_sha256": "ab" * 32, "checkpoint_created": "2026-01-01", "trained_with": "", "device": "cpu", "precision": "", "model_id": "1"},
    )  # fmt: skip
    assert model == 1


def test_database_call_observes_successful_calls_only() -> None:
    """Every operation's series exists from the start at zero; a block that returns is observed, one
    that raises is not; an operation outside the bounded set is refused."""
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    value = registry.get_sample_value
    for operation in DATABASE_OPERATIONS:
        assert value("cmr_monitor_database_seconds_count", {"operation": operation}) == 0
    with metrics.database_call("claim"):
        time.sleep(0.01)
    with pytest.raises(OSError), metrics.database_call("claim"):
        raise OSError("connection lost")
    assert value("cmr_monitor_database_seconds_count", {"operation": "claim"}) == 1
    assert 0.01 <= value("cmr_monitor_database_seconds_sum", {"operation": "claim"}) < 1.0
    assert value("cmr_monitor_database_seconds_bucket", {"operation": "claim", "le": "0.001"}) == 0
    assert value("cmr_monitor_database_seconds_bucket", {"operation": "claim", "le": "+Inf"}) == 1
    with pytest.raises(ValueError, match="operation"), metrics.database_call("drop_table"):  # type: ignore[arg-type]
        pass


def test_buckets_cover_the_flag_thresholds() -> None:
    """The default flag thresholds (pDSC 0.5, pHD 50 mm) are bucket bounds, so that the share of
    values beyond them is exact."""
    assert 0.5 in PDSC_BUCKETS and PDSC_BUCKETS[-1] == 1.0
    assert 50 in PHD_BUCKETS_MM
    assert list(PDSC_BUCKETS) == sorted(PDSC_BUCKETS) and list(PHD_BUCKETS_MM) == sorted(PHD_BUCKETS_MM)


def test_label_budget_folds_extra_values_into_other() -> None:
    budget = LabelBudget(max_segmenters=2, max_versions=2, max_reasons=1)
    assert budget.segmenter("unet", "1.0") == ("unet", "1.0")
    assert budget.segmenter("unet", "1.1") == ("unet", "1.1")
    assert budget.segmenter("unet", "1.2") == ("unet", OTHER)
    assert budget.segmenter("unet", "1.0") == ("unet", "1.0")  # known values stay themselves
    assert budget.segmenter("nnunet", "2") == ("nnunet", "2")
    assert budget.segmenter("third", "1") == (OTHER, OTHER)
    assert budget.segmenter("x" * 300, "1") == (OTHER, OTHER)
    assert budget.reason("corrupt") == "corrupt"
    assert budget.reason("truncated") == OTHER
    long = LabelBudget()
    assert long.segmenter("s" * 300, "v" * 300) == ("s" * 64, "v" * 64)
    with pytest.raises(ValueError, match="max_versions"):
        LabelBudget(max_versions=0)


def test_label_budget_bounds_series_of_every_metric() -> None:
    """1,000 segmenter versions and 1,000 reasons from a misbehaving source give a bounded number of
    series, and the same folding on every metric."""
    registry = CollectorRegistry()
    metrics = build_metrics(registry, LabelBudget(max_segmenters=3, max_versions=4, max_reasons=5))
    for i in range(1000):
        name, version = f"seg{i % 7}", f"v{i}"
        metrics.record_received(name, version)
        metrics.record_rejected(name, version, f"reason{i}")
        metrics.record_scored(name, version, GOOD, latency_s=0.1)
    pairs = {
        (s.labels["segmenter"], s.labels["segmenter_version"])
        for family in registry.collect()
        if family.name in ("cmr_monitor_files_received", "cmr_monitor_files_scored", "cmr_monitor_flags")
        for s in family.samples
    }
    assert len(pairs) == 3 * (4 + 1) + 1
    rejected = next(f for f in registry.collect() if f.name == "cmr_monitor_files_rejected")
    assert {s.labels["reason"] for s in rejected.samples} == {f"reason{i}" for i in range(5)} | {OTHER}
    total = sum(s.value for s in rejected.samples if s.name.endswith("_total"))
    assert total == 1000  # folded, never dropped


def test_label_budget_is_thread_safe() -> None:
    budget = LabelBudget(max_segmenters=1, max_versions=10)
    seen: list[tuple[str, str]] = []

    def work(offset: int) -> None:
        seen.extend(budget.segmenter("unet", f"v{offset + i}") for i in range(50))

    threads = [threading.Thread(target=work, args=(100 * k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({v for _, v in seen if v != OTHER}) == 10


class _Reader:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def __call__(self) -> QueueState:
        self.calls += 1
        if self.fail:
            raise OSError("database down")
        return QueueState(
            pending=3,
            scoring=1,
            oldest_pending_received_at=datetime(2026, 1, 1, tzinfo=UTC),
            last_scored_at=None,
        )


def test_queue_collector_caches_and_reports_failure() -> None:
    reader = _Reader()
    registry = CollectorRegistry()
    registry.register(QueueCollector(reader, max_age_s=60))
    assert reader.calls == 0  # registering does not query the database
    value = registry.get_sample_value
    assert value("cmr_monitor_queue_files", {"status": "pending"}) == 3
    assert value("cmr_monitor_queue_files", {"status": "scoring"}) == 1
    assert value("cmr_monitor_queue_oldest_pending_timestamp_seconds") == datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # fmt: skip
    assert value("cmr_monitor_last_scored_timestamp_seconds") is None  # nothing scored yet: absent
    assert value("cmr_monitor_database_up") == 1
    assert reader.calls == 1  # five reads, one query

    failing = _Reader()
    failing.fail = True
    registry = CollectorRegistry()
    registry.register(QueueCollector(failing, max_age_s=0))
    assert registry.get_sample_value("cmr_monitor_database_up") == 0
    assert registry.get_sample_value("cmr_monitor_queue_files", {"status": "pending"}) is None
    failing.fail = False
    assert registry.get_sample_value("cmr_monitor_database_up") == 1
    with pytest.raises(ValueError, match="max_age_s"):
        QueueCollector(failing, max_age_s=-1)


def test_queue_state_reads_the_database(db_url: str) -> None:
    """The gauges come from the rows (any daemon's), so a fresh collector over an existing database
    (a restarted daemon) is right at once."""
    sessions = make_session_factory(make_engine(db_url))
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with sessions() as session:
        assert queue_state(session) == QueueState(
            pending=0, scoring=0, oldest_pending_received_at=None, last_scored_at=None
        )
        ids = [
            enqueue_file(
                session,
                path=f"/in/unet/1.0/case{i}_ED.nii.gz",
                content_hash=f"{i:064x}",
                case_key=f"case{i}",
                phase="ED",
                segmenter_name="unet",
                segmenter_version="1.0",
                received_at=t0 + timedelta(minutes=i),
            )[0]
            for i in range(5)
        ]
        model_id = register_model(session, "c" * 64, {})
        claimed = claim_batch(session, worker_id="w", limit=2, lease_s=60)
        assert [c.file_id for c in claimed] == ids[:2]
        record_scores(session, ids[0], GOOD, model_id=model_id, artifacts={})
        record_rejection(session, ids[2], "corrupt", "bad")
        state = queue_state(session)
    assert (state.pending, state.scoring) == (2, 1)
    assert state.oldest_pending_received_at == t0 + timedelta(minutes=3)
    assert state.last_scored_at is not None
    assert abs((datetime.now(UTC) - state.last_scored_at).total_seconds()) < 60
    registry = CollectorRegistry()

    def read() -> QueueState:
        with sessions() as session:
            return queue_state(session)

    registry.register(QueueCollector(read))
    assert registry.get_sample_value("cmr_monitor_queue_files", {"status": "pending"}) == 2
    assert (
        registry.get_sample_value("cmr_monitor_queue_oldest_pending_timestamp_seconds")
        == (t0 + timedelta(minutes=3)).timestamp()
    )


def test_endpoint_serves_metrics_and_health() -> None:
    registry = CollectorRegistry()
    build_metrics(registry).record_received("unet", "1.0")
    server = serve_http(registry, healthz=lambda: (True, "ok"), readyz=lambda: (False, "starting"), port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, body = _get(f"{server.url}/metrics")
        assert status == 200
        assert 'cmr_monitor_files_received_total{segmenter="unet",segmenter_version="1.0"} 1.0' in body
        assert _get(f"{server.url}/healthz") == (200, "ok\n")
        assert _get(f"{server.url}/readyz") == (503, "starting\n")
        assert _get(f"{server.url}/other")[0] == 404
    finally:
        server.close()
        server.close()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/healthz", timeout=2)


def test_failing_check_is_unhealthy_not_fatal() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server = serve_http(CollectorRegistry(), healthz=broken, readyz=broken, port=0)
    try:
        assert _get(f"{server.url}/healthz") == (503, "check failed: RuntimeError\n")
    finally:
        server.close()
