"""The convolutional autoencoder (CA) of Galati & Zuluaga and its checkpoint format.

Encoder (padding 1 everywhere): 4->32 k4s2, 32->32 k4s2, 32->32 k4s2, 32->32 k3s1, 32->64 k4s2,
64->64 k3s1, 64->128 k4s2, 128->64 k3s1, 64->32 k3s1, 32->100 k4s2 -> latent [100, 4, 4] for a
256 x 256 input. The decoder mirrors it with transposed convolutions and ends in a softmax over the
4 canonical channels (0 BG, 1 RV, 2 MYO, 3 LV). Hidden layers: BatchNorm, LeakyReLU(0.2), Dropout.
Weights: He (Kaiming) normal initialisation.

A checkpoint is a plain dict of tensors and JSON-compatible metadata, so that it loads with
``torch.load(..., weights_only=True)`` and never unpickles arbitrary objects.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monitor.errors import CheckpointError

__all__ = [
    "CHECKPOINT_FORMAT",
    "DECODER_LAYERS",
    "ENCODER_LAYERS",
    "CheckpointMeta",
    "ConvAutoencoder",
    "default_checkpoint_path",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "cmr-monitor-ca/1"

#: (in_channels, out_channels, kernel, stride) of each encoder convolution; padding is 1.
ENCODER_LAYERS: tuple[tuple[int, int, int, int], ...] = (
    (4, 32, 4, 2),
    (32, 32, 4, 2),
    (32, 32, 4, 2),
    (32, 32, 3, 1),
    (32, 64, 4, 2),
    (64, 64, 3, 1),
    (64, 128, 4, 2),
    (128, 64, 3, 1),
    (64, 32, 3, 1),
    (32, 100, 4, 2),
)
#: The decoder mirrors the encoder: the same layers in reverse, inputs and outputs swapped.
DECODER_LAYERS: tuple[tuple[int, int, int, int], ...] = tuple(
    (o, i, k, s) for i, o, k, s in reversed(ENCODER_LAYERS)
)


class _MaskPool:
    """A shared pool of pre-scaled Bernoulli keep-masks, drawn once and reused at random offsets.

    Drawing a fresh random number for every activation costs as much as the convolutions on a CPU.
    Instead each dropout layer takes a contiguous window at a random offset of one pool, redrawn every
    ``refresh`` uses: every element is still kept with probability 1 - p and scaled by 1 / (1 - p), and
    elements within a window are independent.
    """

    def __init__(self, p: float, refresh: int = 256) -> None:
        self.p = p
        self.refresh = refresh
        self._pool: torch.Tensor | None = None
        self._uses = 0

    def window(self, like: torch.Tensor) -> torch.Tensor:
        n = like.numel()
        pool = self._pool
        if (
            pool is None
            or pool.dtype != like.dtype
            or pool.device != like.device
            or pool.numel() < 2 * n
            or self._uses >= self.refresh
        ):
            size = max(2 * n, 1 << 22)
            keep = torch.rand(size, device=like.device) >= self.p
            pool = self._pool = keep.to(like.dtype) * (1.0 / (1.0 - self.p))
            self._uses = 0
        self._uses += 1
        start = int(torch.randint(0, pool.numel() - n + 1, ()).item())
        return pool[start : start + n].view(like.shape)


class PooledDropout(nn.Module):
    """Element-wise (inverted) dropout whose masks come from a shared ``_MaskPool``; identity in eval."""

    def __init__(self, p: float, pool: _MaskPool) -> None:
        super().__init__()
        self.p = p
        self._pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self._pool.window(x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder for 4-channel one-hot cardiac masks [n, 4, 256, 256].

    Args:
        dropout: dropout probability in hidden layers (the authors' code uses 0.5).
        negative_slope: LeakyReLU slope.
        pooled_dropout: draw dropout masks from a shared pool (same statistics, far cheaper on CPU);
            False uses ``torch.nn.Dropout``. Either way the weights are interchangeable.
    Forward returns softmax probabilities with the input's shape.
    """

    def __init__(
        self, dropout: float = 0.5, negative_slope: float = 0.2, pooled_dropout: bool = True
    ) -> None:
        super().__init__()
        self.dropout = dropout
        pool = _MaskPool(dropout) if pooled_dropout else None
        self.encoder = self._stack(
            ENCODER_LAYERS, transpose=False, dropout=dropout, slope=negative_slope, pool=pool
        )
        self.decoder = self._stack(
            DECODER_LAYERS, transpose=True, dropout=dropout, slope=negative_slope, pool=pool
        )
        self.apply(self._init_weights)

    @staticmethod
    def _stack(
        layers: tuple[tuple[int, int, int, int], ...],
        *,
        transpose: bool,
        dropout: float,
        slope: float,
        pool: _MaskPool | None,
    ) -> nn.Sequential:
        blocks: list[nn.Module] = []
        conv_cls = nn.ConvTranspose2d if transpose else nn.Conv2d
        for index, (c_in, c_out, kernel, stride) in enumerate(layers):
            conv = conv_cls(c_in, c_out, kernel_size=kernel, stride=stride, padding=1)
            if index == len(layers) - 1:  # latent code / output logits: no normalisation or activation
                blocks.append(conv)
            else:
                drop = PooledDropout(dropout, pool) if pool is not None else nn.Dropout(dropout)
                blocks.append(nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(slope), drop))
        return nn.Sequential(*blocks)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax output [n, 4, h, w]."""
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct one-hot masks [n, 4, 256, 256] -> softmax probabilities [n, 4, 256, 256]."""
        return torch.softmax(self.logits(x), dim=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointMeta:
    """Plain metadata stored beside the weights."""

    label_map: str = "acdc"  #: label map of the training masks (the model itself is canonical)
    target_spacing_mm: float = 1.25  #: model-space pixel size, mm
    input_size: int = 256  #: model window, pixels
    dropout: float = 0.5  #: dropout probability used in training
    epochs: int = 0  #: epochs trained
    best_epoch: int = -1  #: epoch (0-based) of the kept weights
    best_val_loss: float = float("nan")  #: validation loss of the kept weights
    val_dice: dict[str, float] = field(default_factory=dict)  #: validation reconstruction Dice per structure
    val_hd_mm: dict[str, float] = field(
        default_factory=dict
    )  #: validation reconstruction HD per structure, mm
    data_fingerprint: str = ""  #: sha256 over the training files' names and contents
    n_train_slices: int = 0  #: training slices
    n_val_slices: int = 0  #: validation slices
    package_version: str = ""  #: cmr-monitor version that wrote it
    created_utc: str = ""  #: ISO time of writing
    extra: dict[str, Any] = field(default_factory=dict)  #: anything else (training command, seed)


def default_checkpoint_path() -> Path:
    """The checkpoint shipped inside the package (``monitor/checkpoints/ca_acdc.pt``)."""
    return Path(__file__).resolve().parent.parent / "checkpoints" / "ca_acdc.pt"


def save_checkpoint(
    path: Path | str, model: ConvAutoencoder, meta: CheckpointMeta, **extra_state: Any
) -> Path:
    """Write weights and metadata (and optional extra tensors/primitives, e.g. optimizer state) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "meta_json": json.dumps(asdict(meta), allow_nan=True, sort_keys=True),
        "state_dict": state,
        **extra_state,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(
    path: Path | str | None = None,
    *,
    map_location: str | torch.device = "cpu",
    data: bytes | None = None,
) -> tuple[ConvAutoencoder, CheckpointMeta, dict[str, Any]]:
    """Load a checkpoint safely (``weights_only=True``) into an eval-mode model.

    Args:
        path: checkpoint file; None = the shipped default.
        data: the file's bytes, already read (so that a caller can hash exactly what was loaded while
            the file is being replaced, e.g. by a training run); ``path`` then only names it in errors.
    Returns: (model in eval mode, metadata, the raw payload for resuming).
    Raises: CheckpointError when the file is missing, unsafe, of another format or mismatched.
    """
    path = Path(path) if path is not None else default_checkpoint_path()
    if data is None and not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        source = io.BytesIO(data) if data is not None else path
        payload = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load checkpoint {path} with weights_only=True: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    try:
        raw_meta = json.loads(payload["meta_json"])
        known = set(CheckpointMeta.__dataclass_fields__)
        meta = CheckpointMeta(**{k: v for k, v in raw_meta.items() if k in known})
        model = ConvAutoencoder(dropout=meta.dropout)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match the autoencoder: {exc}") from exc
    model.eval()
    return model, meta, payload
