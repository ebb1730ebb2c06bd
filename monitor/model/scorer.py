"""``Scorer``: loads the autoencoder once and scores batches of mask volumes.

For each volume: pseudo ground truth (pGT) in the mask's own geometry, then the post-model step of
``monitor.qc.scores.score_volume`` (pDSC and pHD in mm per structure, the evidence stage with the MR
image when one is given, flags with reason codes), and
the XOR inconsistency map. Slices without any structure are not sent through the
model (their pGT is background). Slices of several volumes share model batches. The model runs in its
inference form (``monitor.model.inference``: BatchNorm folded, channels-last on CPU, optional mixed precision).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from monitor.config import Settings
from monitor.errors import CheckpointError
from monitor.io.calibration import load_calibration
from monitor.io.nifti import MaskVolume
from monitor.model.autoencoder import CheckpointMeta, default_checkpoint_path, load_checkpoint
from monitor.model.inference import InferenceNetwork, resolve_device
from monitor.model.preprocess import PreprocessInfo, from_model_space, to_model_space
from monitor.qc.calibration import Calibration, calibrate_scores, image_features, mask_features
from monitor.qc.calibration.features import Features
from monitor.qc.evidence import EvidenceSettings
from monitor.qc.flags import FlagPolicy
from monitor.qc.metrics import inconsistency_map
from monitor.qc.records import VolumeScore
from monitor.qc.scores import score_with_evidence

__all__ = ["ScoredVolume", "Scorer", "calibration_from_setting", "pass_sizes"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredVolume:
    """Scores plus the arrays behind them, in the mask's geometry."""

    score: VolumeScore  #: pseudo metrics and flags
    pgt: np.ndarray  #: uint8 [z, y, x] pseudo ground truth, canonical labels
    inconsistency: np.ndarray  #: bool [z, y, x], True where mask and pGT disagree


def pass_sizes(n: int, most: int) -> list[int]:
    """Split ``n`` slices into the fewest forward passes of at most ``most``, as equal as possible.

    Example: 39 slices, at most 16 -> [13, 13, 13]; 17 -> [9, 8]; 0 -> [].
    """
    if most < 1:
        raise ValueError(f"most must be >= 1, got {most}")
    if n <= 0:
        return []
    passes = math.ceil(n / most)
    base, extra = divmod(n, passes)
    return [base + 1] * extra + [base] * (passes - extra)


def _calibrate(
    calibration: Calibration, policy: FlagPolicy, finished: list[tuple[ScoredVolume, Features]]
) -> list[ScoredVolume]:
    """Estimates of the real Dice and HD for a whole batch in one model call; its time is shared out
    over the volumes' ``calibration`` timing (which already holds their mask features' time)."""
    t0 = time.perf_counter()
    scores = calibrate_scores(
        calibration, [r.score for r, _ in finished], [f for _, f in finished], policy=policy
    )
    share = (time.perf_counter() - t0) / len(finished)
    out = []
    for (result, _), score in zip(finished, scores, strict=True):
        timings = {**score.timings_s, "calibration": score.timings_s.get("calibration", 0.0) + share}
        out.append(replace(result, score=replace(score, timings_s=timings)))
    return out


def calibration_from_setting(value: str | Path | None) -> Calibration | None:
    """The calibration a setting names: ``shipped`` (next to the checkpoint), ``none``, or a file path.

    Raises: CalibrationError when the file is missing or unusable.
    """
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    return load_calibration(None if str(value).strip().lower() == "shipped" else Path(value))


class Scorer:
    """Scores mask volumes with one loaded autoencoder.

    Args:
        checkpoint: checkpoint file; None = the one shipped in the package.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        batch_slices: most slices per forward pass; None = 16 on the CPU (larger batches fall out of
            the caches and run slower per slice) and 64 on CUDA. The slices of a batch of volumes go
            in the fewest passes of at most this many, as equal as possible (``pass_sizes``).
        policy: flag thresholds and per-code severities.
        evidence: the evidence stage's rules and tolerances (``monitor.qc.evidence``); None = the
            paper's pDSC/pHD and flags alone.
        threads: CPU threads for torch (None = torch's default).
        precision: ``fp32`` (the default), ``bf16``, ``fp16``, or ``auto`` (fp16 on CUDA, fp32 on CPU);
            see docs/evaluation.md for how far reduced precision moves the scores.
        cpu_workers: threads for the per-volume CPU stages of a batch (before and after the model, not
            overlapping it); None = 1 on the CPU (the model already uses every core) and min(8, cores)
            on CUDA. With several daemons on one host, lower it and ``threads`` so that they do not
            oversubscribe the cores.
        calibration: estimates of the real Dice and HD with intervals (``monitor.qc.calibration``),
            applied to each batch after the evidence stage; None = pseudo metrics only.

    Example:
        >>> scorer = Scorer()
        >>> result = scorer.score(load_mask("patient101_ED.nii.gz"))
        >>> result.score.flag
    """

    def __init__(
        self,
        checkpoint: Path | str | None = None,
        *,
        device: str = "auto",
        batch_slices: int | None = None,
        policy: FlagPolicy | None = None,
        evidence: EvidenceSettings | None = EvidenceSettings(),
        threads: int | None = None,
        precision: str = "fp32",
        cpu_workers: int | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        if batch_slices is not None and batch_slices < 1:
            raise ValueError(f"batch_slices must be >= 1, got {batch_slices}")
        if cpu_workers is not None and cpu_workers < 1:
            raise ValueError(f"cpu_workers must be >= 1, got {cpu_workers}")
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.checkpoint_path = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
        if not self.checkpoint_path.is_file():
            raise CheckpointError(f"checkpoint not found: {self.checkpoint_path}")
        try:  # hash the very bytes that are loaded: the file may be replaced meanwhile
            raw = self.checkpoint_path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"checkpoint not readable: {self.checkpoint_path} ({exc})") from exc
        model, meta, _ = load_checkpoint(self.checkpoint_path, map_location=self.device, data=raw)
        self.model = model.to(self.device).eval()
        self.network = InferenceNetwork(self.model, self.device, precision)
        self.precision = self.network.precision
        self.meta: CheckpointMeta = meta
        self.checkpoint_sha256 = hashlib.sha256(raw).hexdigest()
        self.batch_slices = batch_slices or (64 if self.device.type == "cuda" else 16)
        self.policy = policy or FlagPolicy()
        self.calibration = calibration
        self.evidence = evidence
        if cpu_workers is None:
            cpu_workers = min(8, os.cpu_count() or 1) if self.device.type == "cuda" else 1
        self.cpu_workers = cpu_workers
        self._pool = (
            ThreadPoolExecutor(cpu_workers, thread_name_prefix="cmr-score") if cpu_workers > 1 else None
        )
        if self._pool is not None:
            weakref.finalize(self, self._pool.shutdown, wait=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Scorer:
        """A scorer configured from ``Settings`` (checkpoint, device, batch, flags, evidence, threads)."""
        return cls(
            settings.checkpoint,
            device=settings.device,
            batch_slices=settings.batch_slices,
            policy=settings.flag_policy(),
            evidence=settings.evidence_settings(),
            threads=settings.torch_threads,
            precision=settings.precision,
            cpu_workers=settings.cpu_workers,
            calibration=calibration_from_setting(settings.calibration),
        )

    def close(self) -> None:
        """Stop the CPU worker threads (also done when the scorer is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities of one batch of one-hot slices [n, 4, 256, 256] on the device."""
        return self.network(batch)

    @torch.inference_mode()
    def _reconstruct(self, slices: np.ndarray) -> torch.Tensor:
        """Softmax reconstruction [n, 4, 256, 256] (on CPU) of model-space labels [n, 256, 256]."""
        outputs = []
        start = 0
        for size in pass_sizes(slices.shape[0], self.batch_slices):
            batch = self.network.encode(slices[start : start + size])
            outputs.append(self._forward(batch).cpu())
            start += size
        if not outputs:
            return torch.zeros((0, 4, *slices.shape[1:]))
        return torch.cat(outputs)

    def score(self, volume: MaskVolume, image: np.ndarray | None = None) -> ScoredVolume:
        """Score one volume (with its MR image as evidence, when given)."""
        return self.score_batch([volume], [image])[0]

    def score_batch(
        self, volumes: Sequence[MaskVolume], images: Sequence[np.ndarray | None] | None = None
    ) -> list[ScoredVolume]:
        """Score several volumes, sharing model batches across them; results in input order.

        With ``cpu_workers`` > 1 the per-volume CPU stages (preprocessing; inverse transform, metrics,
        evidence and flags) run on that many threads, the heavy parts of which release the GIL.

        Args:
            volumes: the masks.
            images: one MR image per volume or None (float or integer [z, y, x], the mask's shape),
                used as evidence by ``score_volume``; None = no images.
        Raises: ValueError if ``images`` has another length than ``volumes``, or an image's shape
            differs from its mask's (checked before the model runs).
        """
        if images is None:
            images = [None] * len(volumes)
        if len(images) != len(volumes):
            raise ValueError(f"got {len(images)} images for {len(volumes)} volumes")
        for volume, image in zip(volumes, images, strict=True):
            if image is not None and image.shape != volume.labels.shape:
                raise ValueError(f"image shape {image.shape} differs from the mask's {volume.labels.shape}")
        t0 = time.perf_counter()
        prepared = self._map(self._prepare, volumes)
        t1 = time.perf_counter()
        counts = [p[0].shape[0] for p in prepared]
        stacked = np.concatenate([p[0] for p in prepared]) if prepared else np.zeros((0, 256, 256), np.uint8)
        probs = self._reconstruct(stacked)
        t2 = time.perf_counter()
        shared = {
            "preprocess": (t1 - t0) / max(1, len(volumes)),
            "model": (t2 - t1) / max(1, len(volumes)),
        }
        offsets = np.cumsum([0, *counts])
        jobs = [
            (volume, image, info, probs[offsets[i] : offsets[i + 1]], shared)
            for i, (volume, image, (_, info)) in enumerate(zip(volumes, images, prepared, strict=True))
        ]
        finished = self._map(self._finish, jobs)
        if self.calibration is None or not finished:
            return [result for result, _ in finished]
        return _calibrate(self.calibration, self.policy, finished)

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    def _prepare(self, volume: MaskVolume) -> tuple[np.ndarray, PreprocessInfo]:
        return to_model_space(
            volume.labels,
            volume.spacing_mm,
            target_spacing_mm=self.meta.target_spacing_mm,
            size=self.meta.input_size,
        )

    def _finish(
        self, job: tuple[MaskVolume, np.ndarray | None, PreprocessInfo, torch.Tensor, dict[str, float]]
    ) -> tuple[ScoredVolume, Features]:
        """pGT in the mask's geometry, metrics, evidence, flags and the XOR map of one volume, and its
        mask (and image) features for the calibration (none without one)."""
        volume, image, info, probs, shared = job
        ta = time.perf_counter()
        pgt = from_model_space(probs, info)
        tb = time.perf_counter()
        score, found = score_with_evidence(
            volume.labels,
            pgt,
            volume.spacing_mm,
            policy=self.policy,
            slices_scored=int(info.slice_index.size),
            image=image,
            evidence=self.evidence,
        )
        xor = inconsistency_map(volume.labels, pgt)
        tc = time.perf_counter()
        evidence_s = score.timings_s.get("evidence", 0.0)
        timings = {**shared, "postprocess": tb - ta, "metrics": tc - tb - evidence_s, "evidence": evidence_s}
        features: Features = {}
        if self.calibration is not None:
            # the evidence stage's layout of the mask (boxes, structures, slice moments) is reused
            anatomy = found.anatomy if found is not None else None
            features = mask_features(volume.labels, pgt, volume.spacing_mm, anatomy=anatomy)
            if image is not None:
                for structure, values in image_features(image, volume.labels, anatomy=anatomy).items():
                    features[structure].update(values)
            timings["calibration"] = time.perf_counter() - tc
        score = replace(score, timings_s=timings)
        return ScoredVolume(score=score, pgt=pgt, inconsistency=xor), features
