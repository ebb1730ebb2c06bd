"""Tests of monitor/store/migrate.py and migrations/: one head, up/down/up, models == migrated schema,
and the data migration of reason codes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import monitor
from monitor.errors import StoreError
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.records import StructureScore, VolumeScore
from monitor.store import (
    check_at_head,
    current,
    downgrade,
    head_revision,
    make_engine,
    make_session_factory,
    record_scores,
    register_model,
    upgrade,
)
from monitor.store.migrate import alembic_config, migrations_dir
from monitor.store.models import Base, StructureScoreRow

REPO_ROOT = Path(monitor.__file__).resolve().parent.parent
TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    assert head_revision() == heads[0]


def test_migrations_found_from_any_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert migrations_dir() == REPO_ROOT / "migrations"
    assert (migrations_dir() / "env.py").is_file()


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    assert current(empty_url) is None
    upgrade(empty_url)
    assert current(empty_url) == head_revision()
    assert _tables(empty_url) == TABLES
    check_at_head(empty_url)

    downgrade(empty_url, "base")
    assert current(empty_url) is None
    assert _tables(empty_url) == set()

    upgrade(empty_url, "head")
    assert current(empty_url) == head_revision()
    assert _tables(empty_url) == TABLES


def test_models_match_migrated_schema(db_url: str) -> None:
    assert _schema_diff(db_url) == []


def test_check_at_head_on_empty_database_says_how_to_fix(empty_url: str) -> None:
    with pytest.raises(StoreError) as caught:
        check_at_head(empty_url)
    message = str(caught.value)
    assert f"this version needs {head_revision()}" in message
    assert "database schema is at nothing" in message
    assert "run `cmr-monitor db upgrade --db " in message


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_check_at_head_hides_password(empty_url: str) -> None:
    url = sa.make_url(empty_url)
    with_password = url.set(password="s3cret-pw").render_as_string(hide_password=False)
    with pytest.raises(StoreError) as caught:
        check_at_head(with_password)  # trust auth ignores the password
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_check_at_head_on_unknown_revision(empty_url: str) -> None:
    upgrade(empty_url)
    engine = make_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    engine.dispose()
    with pytest.raises(StoreError, match="database schema is at ffffffffffff, which this version"):
        check_at_head(empty_url)


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect to database"):
        current("postgresql://postgres:pw@127.0.0.1:1/nothing")


def test_alembic_command_line_check(db_url: str) -> None:
    """Developers' path: `alembic check` from the repository root with alembic.ini (no drift)."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db={db_url}", "check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_current_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    assert current(f"sqlite:///{missing}") is None
    with pytest.raises(StoreError, match="database schema is at nothing"):
        check_at_head(f"sqlite:///{missing}")
    assert not missing.exists()


#: Structure rows as the revision before reason codes stored them: (structure, pdsc, phd_mm, flag, prose).
_PROSE_ROWS = (
    (Structure.LV, 0.0, math.nan, FlagLevel.ERRONEOUS, ["LV missing from the mask"]),
    (Structure.RV, 0.42, 61.25, FlagLevel.SUSPICIOUS, ["RV pHD 61.2 mm > 50 mm", "RV pDSC 0.42 < 0.5"]),
    (
        Structure.MYO,
        0.0,
        math.nan,
        FlagLevel.ERRONEOUS,
        ["MYO vanished from the pseudo ground truth (shape not recognised)", "MYO left unchanged"],
    ),
)
_BEFORE_CODES = "61c25f1ea3a9"


def _stored_reasons(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(StructureScoreRow.structure, StructureScoreRow.reasons))
            return {str(structure): list(reasons) for structure, reasons in rows}
    finally:
        engine.dispose()


def _old_file_row(
    engine: sa.Engine,
    path: str = "/w/p1_ED.nii.gz",
    content_hash: str = "h" * 64,
    received_at: datetime | None = None,
) -> int:
    """A pending file row written with the columns of an older schema (no ``superseded_at``)."""
    now = received_at or datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # naive UTC text, as UTCDateTime stores it
    with engine.begin() as connection:
        segmenter = connection.execute(
            sa.text("SELECT id FROM segmenters WHERE name = 'unet' AND version = '1'")
        ).scalar()
        if segmenter is None:
            connection.execute(
                sa.text("INSERT INTO segmenters (name, version, created_at) VALUES ('unet', '1', :now)"),
                {"now": now},
            )
            segmenter = connection.execute(sa.text("SELECT id FROM segmenters")).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO mask_files (path, content_hash, case_key, phase, segmenter_id, status, attempts,"
                " received_at) VALUES (:path, :hash, 'p1', 'ED', :segmenter, 'pending', 0, :now)"
            ),
            {"path": path, "hash": content_hash, "segmenter": segmenter, "now": now},
        )
        return int(
            connection.execute(
                sa.text("SELECT id FROM mask_files WHERE path = :path AND content_hash = :hash"),
                {"path": path, "hash": content_hash},
            ).scalar_one()
        )


def _old_structure_rows(
    engine: sa.Engine, file_id: int, rows: list[tuple[Structure, float, float, FlagLevel]]
) -> None:
    """Structure rows with the columns every revision since the first has (``record_scores`` writes
    today's columns, which an older schema lacks); the file is marked scored."""
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE mask_files SET status = 'scored', flag = 'erroneous' WHERE id = :id"),
            {"id": file_id},
        )
        for structure, pdsc, phd, flag in rows:
            connection.execute(
                sa.text(
                    "INSERT INTO structure_scores (file_id, structure, pdsc, phd_mm, flag, reasons,"
                    " mask_voxels, pgt_voxels, mask_volume_ml)"
                    " VALUES (:file_id, :structure, :pdsc, :phd, :flag, '[]', 10, 10, 1.0)"
                ),
                {
                    "file_id": file_id,
                    "structure": str(structure),
                    "pdsc": None if math.isnan(pdsc) else pdsc,
                    "phd": None if math.isnan(phd) else phd,
                    "flag": str(flag),
                },
            )


def test_reason_codes_migration_converts_prose_and_back(empty_url: str) -> None:
    """Rows written with prose reasons become codes on upgrade, and prose again on downgrade."""
    upgrade(empty_url, _BEFORE_CODES)
    engine = make_engine(empty_url)
    try:
        file_id = _old_file_row(engine)  # enqueue_file writes today's columns
        _old_structure_rows(engine, file_id, [(s, pdsc, phd, flag) for s, pdsc, phd, flag, _ in _PROSE_ROWS])
        with engine.begin() as connection:  # the prose the revision before wrote
            for structure, *_, prose in _PROSE_ROWS:
                connection.execute(
                    sa.update(StructureScoreRow)
                    .where(StructureScoreRow.structure == structure)
                    .values(reasons=prose)
                )
    finally:
        engine.dispose()

    upgrade(empty_url)
    assert _stored_reasons(empty_url) == {
        "LV": ["missing"],
        "RV": ["phd_high", "pdsc_low"],
        "MYO": ["vanished", "MYO left unchanged"],  # unknown prose is kept
    }
    check_at_head(empty_url)

    downgrade(empty_url, _BEFORE_CODES)
    assert _stored_reasons(empty_url) == {str(s): prose for s, *_, prose in _PROSE_ROWS}
    upgrade(empty_url)  # and up again: the same codes
    assert _stored_reasons(empty_url)["RV"] == ["phd_high", "pdsc_low"]


_BEFORE_CURRENT = "ffe6b88b15b0"


def test_current_row_migration_supersedes_all_but_the_latest_row_of_each_path(empty_url: str) -> None:
    """Upgrade: each path's latest row is current, each earlier one superseded when the next arrived;
    the downgrade drops the column and the upgrade computes it again."""
    upgrade(empty_url, _BEFORE_CURRENT)
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    engine = make_engine(empty_url)
    try:
        ids = [
            _old_file_row(engine, "/w/a.nii.gz", "1" * 64, t0),
            _old_file_row(engine, "/w/b.nii.gz", "2" * 64, t0 + timedelta(minutes=1)),
            _old_file_row(engine, "/w/a.nii.gz", "3" * 64, t0 + timedelta(minutes=2)),
            _old_file_row(engine, "/w/a.nii.gz", "4" * 64, t0 + timedelta(minutes=3)),
        ]
    finally:
        engine.dispose()

    def superseded() -> dict[int, datetime | None]:
        engine = make_engine(empty_url)
        try:
            with make_session_factory(engine)() as session:
                from monitor.store.models import MaskFile

                return {i: s for i, s in session.execute(sa.select(MaskFile.id, MaskFile.superseded_at))}
        finally:
            engine.dispose()

    for _ in range(2):
        upgrade(empty_url)
        assert superseded() == {
            ids[0]: t0 + timedelta(minutes=2),
            ids[1]: None,
            ids[2]: t0 + timedelta(minutes=3),
            ids[3]: None,
        }
        assert not _schema_diff(empty_url)
        downgrade(empty_url, _BEFORE_CURRENT)


_BEFORE_EVIDENCE = "24fccc99a2e1"


def _evidence_columns(url: str) -> tuple[set[str], set[str]]:
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        return (
            {c["name"] for c in inspector.get_columns("structure_scores")},
            {c["name"] for c in inspector.get_columns("mask_files")},
        )
    finally:
        engine.dispose()


def test_evidence_migration_keeps_old_rows_and_round_trips_new_ones(empty_url: str) -> None:
    """Upgrade: rows scored before read back with no evidence (nan, (), None); new rows keep their
    evidence and image columns; downgrade drops exactly those columns, keeping the plain scores."""
    from monitor.io.images import ImagePairing
    from monitor.qc.reasons import ReasonCode
    from monitor.qc.records import Check
    from monitor.store import get_case

    upgrade(empty_url, _BEFORE_EVIDENCE)
    engine = make_engine(empty_url)
    try:
        old_id = _old_file_row(engine, "/w/old.nii.gz", "1" * 64)
        _old_structure_rows(engine, old_id, [(Structure.LV, 0.8, 6.0, FlagLevel.OK)])
    finally:
        engine.dispose()

    upgrade(empty_url)
    assert not _schema_diff(empty_url)
    engine = make_engine(empty_url)
    try:
        new_id = _old_file_row(engine, "/w/new.nii.gz", "2" * 64)
        with make_session_factory(engine)() as session:
            old = get_case(session, old_id)
            assert old is not None and old.image_used is None
            (lv,) = old.structures
            assert lv.pdsc == 0.8 and math.isnan(lv.pdsc_3d) and math.isnan(lv.pgt_volume_ml)
            assert lv.evidence == ()
            check = Check(code=ReasonCode.PHD_HIGH, value=12.5, passed=False, slices=(0, 3))
            score = VolumeScore(
                structures=(
                    StructureScore(
                        structure=Structure.LV,
                        pdsc=0.9,
                        phd_mm=4.0,
                        flag=FlagLevel.SUSPICIOUS,
                        reasons=(ReasonCode.PHD_HIGH,),
                        mask_voxels=10,
                        pgt_voxels=11,
                        mask_volume_ml=1.0,
                        pdsc_3d=0.7,
                        phd_mm_3d=12.5,
                        pgt_volume_ml=1.1,
                        evidence=(check,),
                    ),
                ),
                flag=FlagLevel.SUSPICIOUS,
                shape=(4, 8, 8),
                spacing_mm=(8.0, 1.5, 1.5),
                slices_scored=3,
            )
            model_id = register_model(session, "c" * 64, {})
            pairing = ImagePairing(
                path="/img/new_0000.nii.gz", used=False, reason="geometry_mismatch", detail="d"
            )
            record_scores(session, new_id, score, model_id=model_id, artifacts={}, image=pairing)
            new = get_case(session, new_id)
        assert new is not None
        assert (new.image_used, new.image_reason, new.image_path) == (
            False,
            "geometry_mismatch",
            pairing.path,
        )
        (lv,) = new.structures
        assert (lv.pdsc_3d, lv.phd_mm_3d, lv.pgt_volume_ml) == (0.7, 12.5, 1.1)
        assert [(c.code, c.value, c.passed, c.slices) for c in lv.evidence] == [
            ("phd_high", 12.5, False, (0, 3))
        ]
    finally:
        engine.dispose()

    downgrade(empty_url, _BEFORE_EVIDENCE)
    structure_columns, file_columns = _evidence_columns(empty_url)
    assert not {"pdsc_3d", "phd_mm_3d", "pgt_volume_ml", "evidence"} & structure_columns
    assert not {"image_used", "image_reason", "image_detail"} & file_columns
    engine = make_engine(empty_url)
    try:
        with engine.connect() as connection:
            kept = connection.execute(
                sa.select(StructureScoreRow.file_id, StructureScoreRow.pdsc, StructureScoreRow.reasons)
            ).all()
    finally:
        engine.dispose()
    assert sorted(kept) == [(old_id, 0.8, []), (new_id, 0.9, ["phd_high"])]  # the plain scores are kept
    upgrade(empty_url)
    assert not _schema_diff(empty_url)


_BEFORE_P_FAILURE = "e18a0clinical"


def test_failure_probability_migration_round_trips(empty_url: str) -> None:
    """Upgrade: a row scored before reads back with p_failure nan, a new one keeps its value; downgrade
    drops exactly that column, keeping the scores; up again matches the models."""
    from monitor.qc.reasons import ReasonCode
    from monitor.qc.records import Estimate
    from monitor.store import get_case

    upgrade(empty_url, _BEFORE_P_FAILURE)
    engine = make_engine(empty_url)
    try:
        old_id = _old_file_row(engine, "/w/old.nii.gz", "1" * 64)
        _old_structure_rows(engine, old_id, [(Structure.LV, 0.8, 6.0, FlagLevel.OK)])
    finally:
        engine.dispose()
    assert "p_failure" not in _evidence_columns(empty_url)[0]

    upgrade(empty_url)
    assert "p_failure" in _evidence_columns(empty_url)[0]
    assert not _schema_diff(empty_url)
    engine = make_engine(empty_url)
    try:
        new_id = _old_file_row(engine, "/w/new.nii.gz", "2" * 64)
        with make_session_factory(engine)() as session:
            old = get_case(session, old_id)
            assert old is not None and math.isnan(old.structures[0].p_failure)
            lv = StructureScore(
                structure=Structure.LV,
                pdsc=0.6,
                phd_mm=30.0,
                flag=FlagLevel.SUSPICIOUS,
                reasons=(ReasonCode.EHD_HIGH,),
                mask_voxels=10,
                pgt_voxels=11,
                mask_volume_ml=1.0,
                edsc=Estimate(value=0.55, lo=0.3, hi=0.8),
                ehd_mm=Estimate(value=48.0, lo=20.0, hi=80.0),
                p_failure=0.83,
            )
            score = VolumeScore(
                structures=(lv,),
                flag=FlagLevel.SUSPICIOUS,
                shape=(4, 8, 8),
                spacing_mm=(8.0, 1.5, 1.5),
                slices_scored=3,
                calibration_version="test-1",
            )
            model_id = register_model(session, "d" * 64, {})
            record_scores(session, new_id, score, model_id=model_id, artifacts={})
            new = get_case(session, new_id)
        assert new is not None and new.structures[0].p_failure == 0.83
    finally:
        engine.dispose()

    downgrade(empty_url, _BEFORE_P_FAILURE)
    structure_columns, _ = _evidence_columns(empty_url)
    assert "p_failure" not in structure_columns and {"edsc", "ehd_mm_hi", "evidence"} <= structure_columns
    engine = make_engine(empty_url)
    try:
        with engine.connect() as connection:
            kept = connection.execute(
                sa.text("SELECT file_id, pdsc, edsc FROM structure_scores ORDER BY file_id")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [(old_id, 0.8, None), (new_id, 0.6, 0.55)]
    upgrade(empty_url)
    assert not _schema_diff(empty_url)
