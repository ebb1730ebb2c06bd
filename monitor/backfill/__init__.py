"""Batch backfill at population scale on Ray (``cmr-monitor backfill``).

Scores an archive of masks (folders, or CSV/Parquet manifests of paths) with the daemon's stages:
the per-file examination (``monitor.io.examine``), the ``Scorer`` (``monitor.model``) in a Ray actor
pool, the artifacts folder (``monitor.daemon.artifacts``), and the store's bulk path
(``monitor.store.record_finished``). Modules: ``sources`` (what to score), ``decode`` (CPU tasks),
``scoring`` (the actors), ``writer`` (batched transactions) and ``run`` (the pipeline). Ray is an
optional extra, imported only when a run starts.
"""

from monitor.backfill.run import BackfillConfig, BackfillSummary, RayMissing, plan_resources, run_backfill
from monitor.backfill.sources import Entry, SourceError, read_sources

__all__ = [
    "BackfillConfig",
    "BackfillSummary",
    "Entry",
    "RayMissing",
    "SourceError",
    "plan_resources",
    "read_sources",
    "run_backfill",
]
