"""``monitor.backfill.sources``: folders walked like the daemon's, manifests in CSV and Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from monitor.backfill import SourceError, read_sources
from monitor.io.identity import IngestConfig


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_folder_gives_its_candidates_in_order(tmp_path: Path) -> None:
    a = _touch(tmp_path / "unet" / "1.0" / "p2_ED.nii.gz")
    b = _touch(tmp_path / "unet" / "1.0" / "p1_ES.nii")
    _touch(tmp_path / "unet" / "1.0" / ".hidden_ED.nii.gz")
    _touch(tmp_path / "unet" / "1.0" / "p3_ED.nii.gz.part")
    _touch(tmp_path / "unet" / "1.0" / "notes.txt")
    entries = read_sources([tmp_path], IngestConfig())
    assert [e.path for e in entries] == [str(b), str(a)]
    assert {e.root for e in entries} == {str(tmp_path.resolve())}
    assert all(e.overrides == {} and e.confined for e in entries)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_manifest_gives_paths_and_overrides(tmp_path: Path, kind: str) -> None:
    mask = _touch(tmp_path / "masks" / "p1_ED.nii.gz")
    frame = pd.DataFrame(
        {
            "path": ["masks/p1_ED.nii.gz", str(tmp_path / "elsewhere" / "p2_ED.nii.gz")],
            "segmenter": ["nnunet", ""],
            "version": ["2.1", ""],
            "image": ["images/p1_ED.nii.gz", ""],
            "ignored": ["a", "b"],
        }
    )
    manifest = tmp_path / f"list.{kind}"
    frame.to_csv(manifest, index=False) if kind == "csv" else frame.to_parquet(manifest)
    first, second = read_sources([manifest], IngestConfig())
    assert first.path == str(mask) and first.root == str(mask.parent.resolve()) and not first.confined
    assert first.overrides == {
        "segmenter_name": "nnunet",
        "segmenter_version": "2.1",
        "image_path": str(tmp_path / "images" / "p1_ED.nii.gz"),
    }
    assert second.path == str(tmp_path / "elsewhere" / "p2_ED.nii.gz") and second.overrides == {}


def test_each_path_once_the_first_source_wins(tmp_path: Path) -> None:
    mask = _touch(tmp_path / "d" / "p1_ED.nii.gz")
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,segmenter\n{mask},nnunet\n")
    entries = read_sources([manifest, tmp_path / "d"], IngestConfig())
    assert len(entries) == 1 and entries[0].overrides == {"segmenter_name": "nnunet"}


@pytest.mark.parametrize(
    ("content", "message"),
    [("file,site\na.nii.gz,x\n", "no 'path' column"), ("path,site\n,x\n", "row 2: empty path")],
    ids=["no_path_column", "empty_path"],
)
def test_a_bad_manifest_is_refused(tmp_path: Path, content: str, message: str) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text(content)
    with pytest.raises(SourceError, match=message):
        read_sources([manifest], IngestConfig())


def test_a_source_that_is_neither_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="source not found"):
        read_sources([tmp_path / "nope"], IngestConfig())
    with pytest.raises(SourceError, match="neither a folder nor a manifest"):
        read_sources([_touch(tmp_path / "list.txt")], IngestConfig())
