"""What a backfill scores: a folder walked for masks, or a manifest listing them (CSV or Parquet).

Each source gives ``Entry`` records: the mask path, the folder it was found under (its ``root``:
folders below it name the segmenter and version, ``IngestConfig.folder_fields``) and, from a
manifest, identity fields that override what the name, folders and sidecar say.

Manifest columns: ``path`` (required; relative paths are taken from the manifest's folder), and
optionally ``segmenter``, ``version``, ``site``, ``scanner``, ``image`` (the MR image; relative to the
manifest's folder too); empty cells give nothing.
The root of a manifest entry is the mask's own folder, so only a manifest column or a sidecar names
its segmenter; a listed path may be a symbolic link anywhere (a folder walk, like the daemon, refuses a
link that leads outside the folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import MonitorError
from monitor.io.identity import IngestConfig, is_candidate

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_SUFFIXES",
    "Entry",
    "SourceError",
    "folder_entries",
    "manifest_entries",
    "read_sources",
]

#: Optional manifest columns and the identity field each one sets.
MANIFEST_COLUMNS: dict[str, str] = {
    "segmenter": "segmenter_name",
    "version": "segmenter_version",
    "site": "site",
    "scanner": "scanner",
    "image": "image_path",
}
#: File suffixes read as manifests: CSV or Parquet.
MANIFEST_SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".pq")


class SourceError(MonitorError, ValueError):
    """A backfill source cannot be read: a missing path, a manifest without a path column, ..."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One mask to score."""

    path: str  #: absolute path of the mask
    root: str  #: the folder it was found under (absolute, resolved)
    overrides: dict[str, str] = field(default_factory=dict)  #: identity field -> value (manifest)
    confined: bool = True  #: a symbolic link must stay inside ``root`` (a folder walk; not a manifest)


def folder_entries(folder: Path, ingest: IngestConfig) -> Iterator[Entry]:
    """Every candidate mask under ``folder`` (``is_candidate``: include and exclude patterns), in a
    stable order; hidden and temporary names are left out as the daemon leaves them."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(filenames):
            path = here / name
            if is_candidate(path, root, ingest):
                yield Entry(path=str(path), root=str(root))


def manifest_entries(manifest: Path) -> list[Entry]:
    """The masks a manifest lists (module docstring for its columns).

    Raises: SourceError when the manifest cannot be read or has no ``path`` column or an empty path.
    """
    import pandas as pd

    try:
        if manifest.suffix.lower() == ".csv":
            frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        else:
            frame = pd.read_parquet(manifest)
    except (OSError, ValueError, ImportError) as exc:
        raise SourceError(f"cannot read the manifest {manifest}: {exc}") from exc
    if "path" not in frame.columns:
        raise SourceError(f"manifest {manifest} has no 'path' column (columns: {list(frame.columns)})")
    base = manifest.resolve().parent
    columns = [c for c in MANIFEST_COLUMNS if c in frame.columns]
    entries = []
    for number, row in enumerate(frame[["path", *columns]].itertuples(index=False), start=2):
        values = row._asdict()
        text = _text(values.pop("path"))
        if not text:
            raise SourceError(f"manifest {manifest}, row {number}: empty path")
        path = Path(os.path.abspath(base / text))
        overrides = {MANIFEST_COLUMNS[c]: v for c in columns if (v := _text(values[c]))}
        if "image_path" in overrides:
            overrides["image_path"] = os.path.abspath(base / overrides["image_path"])
        entries.append(
            Entry(path=str(path), root=str(path.parent.resolve()), overrides=overrides, confined=False)
        )
    return entries


def read_sources(sources: Sequence[Path], ingest: IngestConfig) -> list[Entry]:
    """The entries of every source (a folder or a manifest), each path once (the first source wins).

    Raises: SourceError for a source that is neither an existing folder nor a manifest file.
    """
    seen: set[str] = set()
    entries: list[Entry] = []
    for source in sources:
        if source.is_dir():
            found: Iterable[Entry] = folder_entries(source, ingest)
        elif source.is_file() and source.suffix.lower() in MANIFEST_SUFFIXES:
            found = manifest_entries(source)
        elif source.exists():
            raise SourceError(f"{source} is neither a folder nor a manifest ({', '.join(MANIFEST_SUFFIXES)})")
        else:
            raise SourceError(f"source not found: {source}")
        for entry in found:
            if entry.path not in seen:
                seen.add(entry.path)
                entries.append(entry)
    return entries


def _text(value: object) -> str:
    """A manifest cell as stripped text; "" for an empty or missing one."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()
