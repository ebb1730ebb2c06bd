"""Training the autoencoder on ground-truth masks: datasets, loss, loop, checkpoints and logs.

Data: ACDC layout (``patientNNN/patientNNN_frameFF_gt.nii.gz`` with ``Info.cfg`` naming the ED and ES
frames) or a plain folder of masks (searched recursively). The split is at patient level (80:20,
seeded), so slices of one patient never sit on both sides.
Loss: mean squared error + generalised Dice (Sudre et al. 2017, class weights 1 / volume^2) on the
softmax output; the background channel is left out of the Dice term for the first 10 epochs.
Optimiser: Adam, lr 2e-4, weight decay 1e-5, batch 8. The weights with the lowest validation loss
are kept; a ``.last.pt`` file beside the output holds everything needed to ``resume``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import monitor.io.layouts as layouts
from monitor import __version__
from monitor.io.nifti import load_mask
from monitor.model.autoencoder import CheckpointMeta, ConvAutoencoder, save_checkpoint
from monitor.model.inference import resolve_device
from monitor.model.preprocess import MODEL_SIZE, TARGET_SPACING_MM, one_hot, to_model_space
from monitor.qc.labels import STRUCTURES, LabelMap, get_label_map
from monitor.qc.scores import compare_structures

__all__ = [
    "TrainConfig",
    "TrainingVolume",
    "discover_volumes",
    "generalised_dice_loss",
    "reconstruction_loss",
    "split_patients",
    "train",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingVolume:
    """One ground-truth mask file and the patient it belongs to."""

    patient: str  #: patient identifier (split unit)
    path: Path  #: mask file
    phase: str = ""  #: ED, ES or "" when unknown


def discover_volumes(data_dir: Path | str) -> list[TrainingVolume]:
    """Find ground-truth masks in ACDC layout or, failing that, every NIfTI file under ``data_dir``.

    ACDC layout: each ``patientNNN/`` folder holds ``Info.cfg`` and ``*_frameFF_gt.nii.gz``; the ED
    and ES frames named in ``Info.cfg`` are used (every ``*_gt`` file when ``Info.cfg`` is absent).
    Plain folder: every ``*.nii``/``*.nii.gz``; the patient is the file name up to the first ``_``.
    Raises: FileNotFoundError when nothing is found.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder not found: {root}")
    files = layouts.nifti_files(root, skip_hidden=False)
    gt_files = [p for p in files if layouts.ground_truth_base(p.name) is not None]
    volumes: list[TrainingVolume] = []
    if gt_files:
        for folder in sorted({p.parent for p in gt_files}):
            frames = layouts.read_info_cfg(folder)
            for path in sorted(p for p in gt_files if p.parent == folder):
                split = layouts.split_frame(layouts.ground_truth_base(path.name))
                phase = layouts.phase_of_frame(frames, split[1]) if split is not None else None
                if frames and not phase:
                    continue  # a labelled frame that is neither ED nor ES
                volumes.append(TrainingVolume(patient=folder.name, path=path, phase=phase or ""))
    else:
        for path in files:
            volumes.append(TrainingVolume(patient=layouts.mask_stem(path.name).split("_")[0], path=path))
    if not volumes:
        raise FileNotFoundError(f"no ground-truth masks (*.nii, *.nii.gz) under {root}")
    return volumes


def split_patients(
    patients: Sequence[str], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Seeded patient-level split: (train patients, validation patients), both sorted."""
    unique = sorted(set(patients))
    if len(unique) < 2:
        return unique, unique
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_val = min(len(unique) - 1, max(1, round(len(unique) * val_fraction)))
    val = sorted(unique[i] for i in order[:n_val])
    train_ = sorted(unique[i] for i in order[n_val:])
    return train_, val


def data_fingerprint(volumes: Sequence[TrainingVolume], root: Path) -> str:
    """sha256 over the relative names and bytes of the training files."""
    digest = hashlib.sha256()
    for volume in sorted(volumes, key=lambda v: str(v.path)):
        digest.update(
            str(volume.path.relative_to(root) if volume.path.is_relative_to(root) else volume.path).encode()
        )
        digest.update(volume.path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _SliceSet:
    slices: torch.Tensor  # uint8 [n, 256, 256] canonical labels in model space
    volume_of_slice: np.ndarray  # int [n]
    slice_spacing_mm: np.ndarray  # float [n_volumes] dz of each volume


def _build_slices(volumes: Sequence[TrainingVolume], label_map: LabelMap) -> _SliceSet:
    chunks, owners, dz = [], [], []
    for index, volume in enumerate(volumes):
        mask = load_mask(volume.path, label_map)
        model_labels, _ = to_model_space(mask.labels, mask.spacing_mm, slices="foreground")
        chunks.append(torch.from_numpy(model_labels))
        owners.append(np.full(model_labels.shape[0], index))
        dz.append(mask.spacing_mm[0])
    if not chunks:
        return _SliceSet(
            torch.zeros((0, MODEL_SIZE, MODEL_SIZE), dtype=torch.uint8), np.zeros(0, int), np.zeros(0)
        )
    return _SliceSet(torch.cat(chunks), np.concatenate(owners), np.asarray(dz, dtype=float))


def generalised_dice_loss(
    probs: torch.Tensor, target: torch.Tensor, channels: slice | None = None
) -> torch.Tensor:
    """Generalised Dice loss (Sudre et al. 2017) over a batch.

    Args:
        probs: softmax output [n, C, h, w].
        target: one-hot reference [n, C, h, w].
        channels: channels to include (e.g. ``slice(1, None)`` leaves the background out).
    Returns: scalar in [0, 1]. Class weights are 1 / (reference volume)^2; a class absent from the
    batch's reference gets the largest weight among the present ones.
    """
    if channels is not None:
        probs, target = probs[:, channels], target[:, channels]
    dims = (0, 2, 3)
    ref_volume = target.sum(dims)
    weights = 1.0 / ref_volume.clamp_min(1.0) ** 2
    present = ref_volume > 0
    if present.any():
        weights = torch.where(present, weights, weights[present].max())
    intersection = (weights * (probs * target).sum(dims)).sum()
    denominator = (weights * (probs + target).sum(dims)).sum()
    return 1.0 - 2.0 * intersection / denominator.clamp_min(1e-12)


def reconstruction_loss(
    probs: torch.Tensor, target: torch.Tensor, epoch: int, background_after: int = 10
) -> torch.Tensor:
    """MSE + generalised Dice; the Dice term leaves the background out before epoch ``background_after``."""
    channels = slice(1, None) if epoch < background_after else None
    return torch.mean((probs - target) ** 2) + generalised_dice_loss(probs, target, channels)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """Everything that defines a training run."""

    data_dir: Path  #: ground truth, ACDC layout or plain folder
    out: Path  #: best checkpoint (``.pt``); ``<out>.last.pt`` and ``<out>.log.csv`` go beside it
    epochs: int = 500
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 1e-5
    val_fraction: float = 0.2
    seed: int = 0
    dropout: float = 0.5
    label_map: str = "acdc"
    device: str = "auto"  #: auto, cpu or cuda
    precision: str = "auto"  #: auto (bf16 where fast), fp32 or bf16
    threads: int | None = None  #: CPU threads for torch
    resume: bool = False
    progress: bool = True
    max_hours: float | None = None  #: stop cleanly (resumable) after this wall time
    extra: dict[str, object] = field(default_factory=dict)


def _use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _last_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".pt") + ".last.pt")


def _log_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".pt") + ".log.csv")


@torch.inference_mode()
def _validate(
    model: ConvAutoencoder, val: _SliceSet, device: torch.device, bf16: bool, epoch: int, batch: int = 32
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Validation loss and per-volume 3D reconstruction Dice / HD (mm, model space) per structure."""
    model.eval()
    losses, recon = [], []
    for start in range(0, val.slices.shape[0], batch):
        target = (
            one_hot(val.slices[start : start + batch])
            .to(device)
            .contiguous(memory_format=torch.channels_last)
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            probs = model(target)
        probs = probs.float()
        losses.append(float(reconstruction_loss(probs, target, epoch)) * target.shape[0])
        recon.append(probs.argmax(1).to(torch.uint8).cpu())
    loss = sum(losses) / max(1, val.slices.shape[0])
    predicted = torch.cat(recon).numpy() if recon else np.zeros((0, 1, 1), np.uint8)
    reference = val.slices.numpy()
    dices: dict[str, list[float]] = {s.value: [] for s in STRUCTURES}
    hds: dict[str, list[float]] = {s.value: [] for s in STRUCTURES}
    for volume in np.unique(val.volume_of_slice):
        rows = val.volume_of_slice == volume
        spacing = (float(val.slice_spacing_mm[volume]), TARGET_SPACING_MM, TARGET_SPACING_MM)
        for c in compare_structures(predicted[rows], reference[rows], spacing):
            if c.ref_voxels == 0:
                continue
            dices[c.structure.value].append(c.dice)
            if not math.isnan(c.hd_mm):
                hds[c.structure.value].append(c.hd_mm)
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    return loss, {k: mean(v) for k, v in dices.items()}, {k: mean(v) for k, v in hds.items()}


def train(config: TrainConfig, on_epoch: Callable[[dict[str, float]], None] | None = None) -> CheckpointMeta:
    """Train the autoencoder; return the metadata of the best checkpoint written to ``config.out``.

    Writes ``config.out`` (best weights), ``<out>.last.pt`` (resume state) and ``<out>.log.csv``
    (one row per epoch: losses, validation Dice and HD in mm per structure, seconds).
    """
    from tqdm.auto import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    bf16 = _use_bf16(config.precision, device)
    label_map = get_label_map(config.label_map)
    root = Path(config.data_dir)
    volumes = discover_volumes(root)
    train_patients, val_patients = split_patients(
        [v.patient for v in volumes], config.val_fraction, config.seed
    )
    train_set = _build_slices([v for v in volumes if v.patient in set(train_patients)], label_map)
    val_set = _build_slices([v for v in volumes if v.patient in set(val_patients)], label_map)
    if train_set.slices.shape[0] == 0:
        raise ValueError(f"no foreground slices to train on under {root}")
    log.info(
        "training on %d slices (%d patients), validating on %d slices (%d patients), device %s, bf16 %s",
        train_set.slices.shape[0],
        len(train_patients),
        val_set.slices.shape[0],
        len(val_patients),
        device,
        bf16,
    )
    model = ConvAutoencoder(dropout=config.dropout).to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    out = Path(config.out)
    meta = CheckpointMeta(
        label_map=label_map.name,
        target_spacing_mm=TARGET_SPACING_MM,
        input_size=MODEL_SIZE,
        dropout=config.dropout,
        data_fingerprint=data_fingerprint(volumes, root),
        n_train_slices=int(train_set.slices.shape[0]),
        n_val_slices=int(val_set.slices.shape[0]),
        package_version=__version__,
        extra={"seed": config.seed, "val_patients": val_patients, **config.extra},
    )
    start_epoch, best_loss, history = 0, math.inf, []
    generator = torch.Generator().manual_seed(config.seed)
    if config.resume and _last_path(out).is_file():
        state = torch.load(_last_path(out), map_location=device, weights_only=True)
        model.load_state_dict(state["state_dict"])
        optimiser.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"]) + 1
        best_loss = float(state["best_val_loss"])
        meta = replace(
            meta,
            **{
                k: v
                for k, v in json.loads(state["meta_json"]).items()
                if k in ("best_epoch", "best_val_loss", "val_dice", "val_hd_mm")
            },
        )
        generator.set_state(state["generator"])
        log.info("resuming at epoch %d (best validation loss %.4f)", start_epoch, best_loss)
    log_file = _log_path(out)
    columns = (
        ["epoch", "train_loss", "val_loss"]
        + [f"val_dice_{s.value}" for s in STRUCTURES]
        + [f"val_hd_mm_{s.value}" for s in STRUCTURES]
        + ["seconds"]
    )
    if not (config.resume and log_file.is_file()):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("w", newline="") as fh:
            csv.writer(fh).writerow(columns)
    began = time.monotonic()
    n_train = train_set.slices.shape[0]
    for epoch in range(start_epoch, config.epochs):
        t0 = time.monotonic()
        model.train()
        order = torch.randperm(n_train, generator=generator)
        total, seen = 0.0, 0
        batches = range(0, n_train, config.batch_size)
        bar = tqdm(
            batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress, leave=False
        )
        for start in bar:
            index = order[start : start + config.batch_size]
            target = one_hot(train_set.slices[index]).to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                probs = model(target)
            loss = reconstruction_loss(probs.float(), target, epoch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * index.numel()
            seen += index.numel()
            bar.set_postfix(loss=f"{total / seen:.4f}")
        train_loss = total / max(1, seen)
        val_loss, val_dice, val_hd = _validate(model, val_set, device, bf16, epoch)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            **{f"val_dice_{k}": v for k, v in val_dice.items()},
            **{f"val_hd_mm_{k}": v for k, v in val_hd.items()},
            "seconds": time.monotonic() - t0,
        }
        history.append(row)
        with log_file.open("a", newline="") as fh:
            csv.writer(fh).writerow(
                [f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in columns]
            )
        if val_loss < best_loss:
            best_loss = val_loss
            meta = replace(
                meta, best_epoch=epoch, best_val_loss=val_loss, val_dice=val_dice, val_hd_mm=val_hd
            )
            save_checkpoint(
                out, model, replace(meta, epochs=epoch + 1, created_utc=datetime.now(UTC).isoformat())
            )
        meta = replace(meta, epochs=epoch + 1)
        save_checkpoint(
            _last_path(out),
            model,
            replace(meta, created_utc=datetime.now(UTC).isoformat()),
            optimizer=optimiser.state_dict(),
            epoch=epoch,
            best_val_loss=best_loss,
            generator=generator.get_state(),
        )
        if config.progress:
            dice_text = " ".join(f"{k} {v:.3f}" for k, v in val_dice.items())
            tqdm.write(
                f"epoch {epoch + 1}: train {train_loss:.4f} val {val_loss:.4f} | val Dice {dice_text} | {row['seconds']:.0f}s"
            )
        if on_epoch is not None:
            on_epoch(row)
        if config.max_hours is not None and time.monotonic() - began > config.max_hours * 3600:
            log.warning("stopping after %.2f h (max_hours); resume with --resume", config.max_hours)
            break
    return meta
