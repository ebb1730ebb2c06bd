"""``cmr-monitor backfill``: score an archive of masks on Ray (``monitor.backfill``), resumable.

Options that ``Settings`` knows fall back to it (environment ``CMR_MONITOR_*``, see ``monitor.config``).
Ray, torch and the stages are imported inside the command, so ``cmr-monitor --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.exits import fail
from monitor.cli.options import (
    ArtifactsOption,
    CheckpointOption,
    DbOption,
    LabelMapOption,
    MigrateOption,
    Precision,
)

__all__ = ["backfill"]


def backfill(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Folders (walked for *.nii, *.nii.gz) and manifests (CSV or Parquet with a 'path' column "
            "and optional segmenter, version, site, scanner, image columns).",
            exists=True,
            resolve_path=True,
        ),
    ],
    db: DbOption = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join: auto, or ray://host:10001. Default: start a local Ray."),
    ] = None,
    local_cpus: Annotated[
        int | None, typer.Option(min=1, help="CPUs of the local Ray (without --address); default: all.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Scoring actors (each loads the model once).")] = 1,
    gpus_per_worker: Annotated[
        float, typer.Option(min=0, help="GPUs per scoring actor (0: score on CPUs).")
    ] = 0.0,
    cpus_per_worker: Annotated[
        float | None,
        typer.Option(min=0.1, help="CPUs per scoring actor; default: 1 with GPUs, else shared fairly."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Files per scoring batch.")] = 64,
    write_batch: Annotated[int, typer.Option(min=1, help="Files per database transaction.")] = 512,
    artifacts: ArtifactsOption = None,
    no_artifacts: Annotated[bool, typer.Option("--no-artifacts", help="Write no artifacts.")] = False,
    checkpoint: CheckpointOption = None,
    precision: Annotated[
        Precision | None, typer.Option(help="Model arithmetic (env CMR_MONITOR_PRECISION; default fp32).")
    ] = None,
    label_map: LabelMapOption = None,
    folders_mean: Annotated[
        str,
        typer.Option(help="What the folders under a source folder mean, e.g. segmenter/version."),
    ] = "segmenter/version",
    migrate: MigrateOption = False,
    progress: Annotated[bool, typer.Option(help="Ray Data's progress bars.")] = True,
    rescore_stale: Annotated[
        bool,
        typer.Option(
            "--rescore-stale/--keep-stale",
            help="Score again the stored files whose score is stale (another checkpoint or calibration "
            "version than this run's), replacing it; --keep-stale skips them.",
        ),
    ] = True,
) -> None:
    """Score every mask of the sources that the database does not hold yet, or holds with a stale score
    (scored under another checkpoint or calibration version), on Ray; print a summary.

    Each file ends scored, rescored (its stale score replaced), rejected (with its reason) or skipped
    (its content is stored already), so a second run adds nothing and a killed run resumes where it
    stopped.
    """
    from monitor.backfill import BackfillConfig, run_backfill
    from monitor.config import get_settings
    from monitor.errors import MonitorError
    from monitor.io.identity import IngestConfig
    from monitor.io.nifti import Limits
    from monitor.qc.labels import get_label_map

    try:
        settings = get_settings().with_overrides(
            database_url=db,
            checkpoint=checkpoint,
            artifacts_dir=artifacts,
            label_map=label_map,
            precision=precision.value if precision else None,
        )
        config = BackfillConfig(
            sources=tuple(sources),
            database_url=settings.database_url,
            address=address,
            local_cpus=local_cpus,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
            batch=batch,
            write_batch=write_batch,
            artifacts_dir=None if no_artifacts else settings.artifacts_dir.resolve(),
            ingest=IngestConfig(folder_fields=tuple(p for p in folders_mean.split("/") if p)),
            label_map=get_label_map(settings.label_map),
            limits=Limits.from_settings(settings),
            checkpoint=settings.checkpoint,
            precision=settings.precision,
            migrate=migrate,
            progress=progress,
            settings=settings,
            rescore_stale=rescore_stale,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        summary = run_backfill(config)
    except (MonitorError, OSError, RuntimeError) as exc:
        fail(exc)
    typer.echo(
        f"{summary.input} files: {summary.scored} scored, {summary.rescored} rescored (stale), "
        f"{summary.rejected} rejected{_counts(summary.reasons)}, {summary.skipped} skipped "
        f"(already stored{_kept_stale(summary.skipped_stale, summary.rescore_failed)})\n"
        f"{summary.elapsed_s:.1f} s, {summary.files_per_s:.1f} files/s; database {summary.database_s:.1f} s, "
        f"artifacts {summary.artifacts_s:.1f} s; {summary.workers} worker(s) x "
        f"{summary.cpus_per_worker:g} CPU, {summary.gpus_per_worker:g} GPU"
    )


def _counts(by_reason: dict[str, int]) -> str:
    """`` (reason n, ...)``, or "" for none."""
    return f" ({', '.join(f'{reason} {n}' for reason, n in sorted(by_reason.items()))})" if by_reason else ""


def _kept_stale(kept: int, failed: dict[str, int]) -> str:
    """What the summary says of the stale scores a run left as they were."""
    out = f"; {kept} of them stale, kept (--keep-stale)" if kept else ""
    if failed:
        out += f"; {sum(failed.values())} stale, kept as their rescoring failed{_counts(failed)}"
    return out
