"""Tests of the failure families in the evaluation: manifest, per-family table, plain vs refined, and
``cmr-monitor evaluate --families`` through the installed console script on phantoms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from monitor.evaluation import (
    CASE_COLUMNS,
    FamilySet,
    family_table,
    plain_vs_refined,
    read_manifest,
    volume_table,
    write_manifest,
)
from monitor.sim import write_dataset

STRUCTURES = ("LV", "RV", "MYO")


def _rows(
    segmenter: str, case: str, *, dice: float, hd: float, flag: str, flag_plain: str, **kw
) -> list[dict]:
    """One volume's three structure rows; the LV carries the given metrics, RV and MYO are perfect."""
    rows = []
    for s in STRUCTURES:
        lv = s == "LV"
        rows.append(
            {
                "segmenter": segmenter,
                "patient": case.split("_")[0],
                "phase": case.split("_")[1],
                "structure": s,
                "dice": dice if lv else 1.0,
                "hd_mm": hd if lv else 0.0,
                "pdsc": kw.get("pdsc", 0.9) if lv else 0.9,
                "phd_mm": kw.get("phd_mm", 5.0) if lv else 5.0,
                "pdsc_3d": kw.get("pdsc_3d", 0.8) if lv else 0.9,
                "phd_mm_3d": kw.get("phd_mm_3d", 30.0) if lv else 5.0,
                "flag": flag if lv else "ok",
                "flag_plain": flag_plain if lv else "ok",
                "volume_flag": flag,
                "volume_flag_plain": flag_plain,
                "reason_codes": kw.get("codes", "") if lv else "",
                "reasons": "",
                "missing": False,
                "case": case,
                "image_used": kw.get("image", True),
            }
        )
    return rows


def _cases(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).reindex(columns=list(CASE_COLUMNS))


def _set(name: str, tmp_path: Path, *, clearly_wrong: bool = True, needs_image: bool = False) -> FamilySet:
    family, _, strength = name.rpartition("-")
    return FamilySet(
        name=name,
        family=family,
        strength=float(strength),
        unit="px",
        title=family,
        clearly_wrong=clearly_wrong,
        needs_image=needs_image,
        folder=tmp_path,
    )


def test_family_table_counts_flags_and_pools_metrics(tmp_path: Path) -> None:
    rows = [
        *_rows(
            "swap-1", "p1_ED", dice=0.5, hd=60.0, flag="erroneous", flag_plain="ok", codes="phd_high;pdsc_low"
        ),
        *_rows("swap-1", "p1_ES", dice=0.7, hd=20.0, flag="suspicious", flag_plain="ok", codes="phd_high"),
        *_rows("swap-1", "p2_ED", dice=0.9, hd=10.0, flag="ok", flag_plain="ok"),
        *_rows(
            "swap-1", "p2_ES", dice=0.3, hd=80.0, flag="erroneous", flag_plain="suspicious", codes="pdsc_low"
        ),
        *_rows("dilate-2", "p1_ED", dice=0.8, hd=4.0, flag="suspicious", flag_plain="ok", image=False),
        *_rows("holes-2", "p1_ED", dice=0.99, hd=3.0, flag="ok", flag_plain="ok"),
    ]
    sets = [
        _set("swap-1", tmp_path),
        _set("dilate-2", tmp_path, needs_image=True),
        _set("holes-2", tmp_path, clearly_wrong=False),
    ]
    table = family_table(_cases(rows), sets)
    swap = table["sets"]["swap-1"]
    assert swap["n_volumes"] == 4 and swap["flagged"] == 3 and swap["flagged_rate"] == 0.75
    assert swap["flagged_plain"] == 1 and swap["flagged_plain_rate"] == 0.25
    assert swap["real_failures"] == 2  # LV DSC 0.5 is not < 0.5; HD 60 and 80 mm are > 50 mm
    assert swap["dice"] == pytest.approx(
        (0.5 + 2) / 3 / 4 + (0.7 + 2) / 3 / 4 + (0.9 + 2) / 3 / 4 + (0.3 + 2) / 3 / 4
    )
    assert swap["hd_mm"] == pytest.approx(40.0)  # median of the worst structure: 60, 20, 10, 80
    assert swap["phd_mm"] == 5.0 and swap["phd_mm_3d"] == 30.0
    assert swap["codes"] == {"phd_high": 2, "pdsc_low": 2}
    # without its image a uniform error is not clearly wrong: a mask alone cannot tell it
    assert (
        table["sets"]["dilate-2"]["clearly_wrong"] is False
        and table["sets"]["holes-2"]["clearly_wrong"] is False
    )
    wrong = table["clearly_wrong"]
    assert wrong["n_volumes"] == 4 and wrong["flagged"] == 3 and wrong["lowest_set"] == "swap-1"
    assert wrong["sets_below_aim"] == ["swap-1"] and wrong["aim"] == 0.9


def test_plain_vs_refined_puts_both_sides_side_by_side() -> None:
    rows = [
        *_rows("a", "p1_ED", dice=0.3, hd=80.0, flag="erroneous", flag_plain="ok", pdsc=0.9, pdsc_3d=0.4),
        *_rows("a", "p1_ES", dice=0.95, hd=4.0, flag="ok", flag_plain="suspicious", pdsc=0.8, pdsc_3d=0.95),
        *_rows(
            "a", "p2_ED", dice=0.6, hd=60.0, flag="suspicious", flag_plain="suspicious", pdsc=0.7, pdsc_3d=0.6
        ),
        *_rows("ground_truth", "p1_ED", dice=1.0, hd=0.0, flag="suspicious", flag_plain="ok"),
        *_rows("ground_truth", "p1_ES", dice=1.0, hd=0.0, flag="ok", flag_plain="ok"),
    ]
    out = plain_vs_refined(_cases(rows))
    refined, plain = out["volume_failure"]["refined"], out["volume_failure"]["plain"]
    assert (refined["tp"], refined["fp"], refined["fn"]) == (2, 0, 0)
    assert (plain["tp"], plain["fp"], plain["fn"]) == (1, 1, 1)
    assert out["flags_plain"]["false_alarm"]["volume_any"]["flagged"] == 0
    lv = out["correlation_refined"]["dice"]["LV"]["all"]
    assert lv["n"] == 3 and lv["pearson"] > 0.95  # refined pDSC 0.4, 0.95, 0.6 follows DSC 0.3, 0.95, 0.6
    volumes = volume_table(_cases(rows))
    assert list(volumes["flagged_plain"]) == [False, True, True, False, False]


def test_manifest_round_trip_and_refusals(tmp_path: Path) -> None:
    (tmp_path / "a" / "1").mkdir(parents=True)
    item = _set("a-1", tmp_path / "a" / "1")
    path = write_manifest(tmp_path / "families.json", [item], seed=3)
    body = json.loads(path.read_text())
    assert body["sets"][0]["folder"] == "a/1" and body["seed"] == 3
    (read,) = read_manifest(tmp_path)
    assert read.folder == (tmp_path / "a" / "1").resolve() and read.strength == 1.0 and read.clearly_wrong
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="not inside"):
        write_manifest(tmp_path / "sub" / "families.json", [item])
    body["sets"][0]["folder"] = "../elsewhere"
    path.write_text(json.dumps(body))
    with pytest.raises((ValueError, FileNotFoundError)):
        read_manifest(path)
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a failure-set manifest"):
        read_manifest(path)
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "none.json")


def _console(*args: str | Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("cmr-monitor")
    return subprocess.run([str(executable), *map(str, args)], capture_output=True, text=True, timeout=600)


def test_evaluate_needs_predictions_or_families(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", patients=1, seed=4, segmenters=(), images=False)
    result = _console("evaluate", "--gt", tmp_path / "data" / "gt", "--out", tmp_path / "o")
    assert result.returncode == 2 and "--families" in result.stderr
    (tmp_path / "bad.json").write_text("{}")
    result = _console(
        "evaluate",
        "--gt",
        tmp_path / "data" / "gt",
        "--families",
        tmp_path / "bad.json",
        "--out",
        tmp_path / "o",
    )
    assert result.returncode == 2 and "not a failure-set manifest" in result.stderr
    assert not (tmp_path / "o").exists()
