"""A straightforward scoring pipeline, kept as the reference the fast ``Scorer`` is tested against.

Everything here is the plain textbook version, with no shortcut: whole slices are interpolated (one-hot,
bilinear, anti-aliased when shrinking, arg-max), the trained ``ConvAutoencoder`` runs as it was trained
(BatchNorm separate, contiguous layout, fp32), the inverse interpolates whole slices, and the Hausdorff
distance comes from Euclidean distance transforms over the whole volume.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from monitor.model.autoencoder import ConvAutoencoder
from monitor.model.preprocess import MODEL_SIZE, from_model_space, one_hot, to_model_space
from monitor.qc.flags import FlagPolicy, flag_structure
from monitor.qc.labels import CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.qc.levels import FlagLevel


def reference_to_model_space(labels: np.ndarray, spacing_mm: tuple[float, float, float]):
    """Whole-slice forward transform; the window geometry is the product's (it is not what is tested)."""
    _, info = to_model_space(labels, spacing_mm)
    _, h, w = labels.shape
    probs = one_hot(labels[info.slice_index])
    shrinking = info.resampled_yx[0] < h or info.resampled_yx[1] < w
    probs = F.interpolate(
        probs, size=info.resampled_yx, mode="bilinear", align_corners=False, antialias=shrinking
    )
    resampled = probs.argmax(1).to(torch.uint8).numpy()
    pad = MODEL_SIZE
    padded = np.pad(resampled, ((0, 0), (pad, pad), (pad, pad)))
    sy, sx = info.window_start_yx
    return padded[:, sy + pad : sy + pad + MODEL_SIZE, sx + pad : sx + pad + MODEL_SIZE], info


def reference_hausdorff_mm(pred: np.ndarray, ref: np.ndarray, spacing_mm) -> float:
    """Symmetric boundary Hausdorff distance (mm) from distance transforms over the whole volume."""
    if not pred.any() or not ref.any():
        return float("nan")
    cross = ndimage.generate_binary_structure(pred.ndim, 1)
    pb = pred & ~ndimage.binary_erosion(pred, structure=cross, border_value=0)
    rb = ref & ~ndimage.binary_erosion(ref, structure=cross, border_value=0)
    to_r = ndimage.distance_transform_edt(~rb, sampling=spacing_mm)
    to_p = ndimage.distance_transform_edt(~pb, sampling=spacing_mm)
    return float(max(to_r[pb].max(), to_p[rb].max()))


def reference_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    total = pred.sum() + ref.sum()
    return float("nan") if total == 0 else float(2.0 * (pred & ref).sum() / total)


def reference_flag(
    structure: Structure, labels: np.ndarray, pgt: np.ndarray, pdsc: float, phd_mm: float, policy: FlagPolicy
) -> FlagLevel:
    """The flag that the reference scores of ``structure`` give (mask ``labels``, reference ``pgt``)."""
    channel = CANONICAL_CHANNEL[structure]
    level, _ = flag_structure(
        pdsc=pdsc,
        phd_mm=phd_mm,
        mask_voxels=int(np.count_nonzero(labels == channel)),
        pgt_voxels=int(np.count_nonzero(pgt == channel)),
        policy=policy,
    )
    return level


def reference_score(
    model: ConvAutoencoder, labels: np.ndarray, spacing_mm: tuple[float, float, float]
) -> tuple[np.ndarray, dict[Structure, tuple[float, float]]]:
    """(pGT uint8 [z, y, x], {structure: (pDSC, pHD mm)}) of a canonical label volume."""
    model_labels, info = reference_to_model_space(labels, spacing_mm)
    model.eval()
    with torch.no_grad():
        probs = (
            model(one_hot(model_labels)) if len(model_labels) else torch.zeros((0, 4, MODEL_SIZE, MODEL_SIZE))
        )
    pgt = from_model_space(probs, info, fast=False)
    scores = {}
    for structure in STRUCTURES:
        channel = CANONICAL_CHANNEL[structure]
        m, g = labels == channel, pgt == channel
        scores[structure] = (reference_dice(m, g), reference_hausdorff_mm(m, g, spacing_mm))
    return pgt, scores
