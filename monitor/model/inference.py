"""The autoencoder in its inference form: the same function as the trained model, computed faster.

``InferenceNetwork`` is built from a trained ``ConvAutoencoder`` in eval mode:

- each BatchNorm is folded into the convolution before it (eval-mode BatchNorm is an affine map per
  channel), dropout is the identity and LeakyReLU works in place;
- on the CPU, tensors are channels-last (NHWC), the layout oneDNN's convolutions are fastest in;
- the output layer, a 32 -> 4 transposed convolution (kernel 4, stride 2, padding 1), is computed as
  a 3 x 3 convolution to 4 x 4 channels followed by a pixel shuffle. Each output pixel of a stride-2
  transposed convolution sees a 2 x 2 subset of the kernel over the input pixels around it, one subset
  per output phase; laying the four subsets out as output channels gives the same sums. oneDNN's
  transposed convolution with 4 output channels runs at a quarter of its usual speed on CPU;
- optional mixed precision (``bf16`` / ``fp16`` autocast); the softmax is always float32.

Folding and re-ordering change results only by float rounding (max |difference| of the softmax about
2e-5 in fp32 on real ACDC masks; tested against the trained model in ``tests/model/test_inference.py``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from monitor.model.autoencoder import ConvAutoencoder
from monitor.qc.labels import N_CHANNELS

__all__ = ["PRECISIONS", "InferenceNetwork", "SubpixelTransposedConv", "resolve_device", "resolve_precision"]

#: Accepted precisions; ``auto`` is fp16 on CUDA and fp32 elsewhere.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; ``cpu``, ``cuda`` (``cuda:N``) as named.

    Raises: RuntimeError when CUDA is asked for and there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but no CUDA device is available")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``fp16`` on CUDA, ``fp32`` otherwise; other values are checked and returned."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


class SubpixelTransposedConv(nn.Module):
    """A ``ConvTranspose2d(kernel 4, stride 2, padding 1)`` computed as conv 3 x 3 + pixel shuffle.

    Output pixel ``(2i + a, 2j + b)`` of the transposed convolution sums kernel rows ``kh`` with
    ``2 * iy - 1 + kh = 2i + a``: for ``a = 0`` rows 1 and 3 at input rows ``i`` and ``i - 1``, for
    ``a = 1`` rows 0 and 2 at input rows ``i + 1`` and ``i`` (the same for columns). The 3 x 3 kernel
    holds those taps at offsets -1, 0, +1 for each of the four phases ``(a, b)``.
    """

    #: phase -> ((kernel index of the transposed convolution, tap of the 3 x 3 kernel), ...)
    _TAPS: ClassVar[dict[int, tuple[tuple[int, int], ...]]] = {0: ((1, 1), (3, 0)), 1: ((0, 2), (2, 1))}

    def __init__(self, transposed: nn.ConvTranspose2d) -> None:
        super().__init__()
        if (
            transposed.kernel_size != (4, 4)
            or transposed.stride != (2, 2)
            or transposed.padding != (1, 1)
            or transposed.output_padding != (0, 0)
            or transposed.dilation != (1, 1)
            or transposed.groups != 1
        ):
            raise ValueError("only ConvTranspose2d(kernel_size=4, stride=2, padding=1) is supported")
        weight = transposed.weight.detach()  # [c_in, c_out, 4, 4]
        c_in, c_out = weight.shape[:2]
        kernel = torch.zeros(c_out, 2, 2, c_in, 3, 3, dtype=weight.dtype, device=weight.device)
        for a, rows in self._TAPS.items():
            for b, cols in self._TAPS.items():
                for kh, ty in rows:
                    for kw, tx in cols:
                        kernel[:, a, b, :, ty, tx] = weight[:, :, kh, kw].T
        self.weight = nn.Parameter(kernel.reshape(4 * c_out, c_in, 3, 3), requires_grad=False)
        bias = (
            transposed.bias.detach()
            if transposed.bias is not None
            else torch.zeros(c_out, dtype=weight.dtype, device=weight.device)
        )
        self.bias = nn.Parameter(bias.repeat_interleave(4), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=1), 2)


def _fold(model: ConvAutoencoder) -> nn.Sequential:
    """Conv (+ folded BatchNorm) + in-place LeakyReLU for each hidden block; the last layers as they are."""
    layers: list[nn.Module] = []
    for stack in (model.encoder, model.decoder):
        for block in stack:
            if isinstance(block, nn.Sequential):
                conv, norm, act = block[0], block[1], block[2]
                transpose = isinstance(conv, nn.ConvTranspose2d)
                layers.append(fuse_conv_bn_eval(conv, norm, transpose=transpose))
                layers.append(nn.LeakyReLU(act.negative_slope, inplace=True))
            else:
                layers.append(copy.deepcopy(block))
    if isinstance(layers[-1], nn.ConvTranspose2d):
        with contextlib.suppress(ValueError):  # another output geometry stays a transposed convolution
            layers[-1] = SubpixelTransposedConv(layers[-1])
    return nn.Sequential(*layers)


class InferenceNetwork(nn.Module):
    """Softmax reconstruction of one-hot masks by a trained autoencoder, for inference only.

    Args:
        model: the trained autoencoder (left untouched; its weights are copied).
        device: where to run.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (see ``resolve_precision``).
    """

    def __init__(self, model: ConvAutoencoder, device: torch.device, precision: str = "fp32") -> None:
        super().__init__()
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.channels_last = device.type == "cpu"
        was_training = model.training
        model.eval()
        try:
            net = _fold(model)
        finally:
            model.train(was_training)
        net = net.to(device).eval().requires_grad_(False)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net

    def encode(self, labels: np.ndarray) -> torch.Tensor:
        """One-hot float32 [n, 4, h, w] on the device from canonical labels uint8 [n, h, w].

        Only the labels travel to the device (pinned and asynchronous on CUDA); the one-hot is built
        there, channels-last on the CPU.
        """
        t = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.uint8))
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        channels = torch.arange(N_CHANNELS, dtype=t.dtype, device=t.device)
        hot = (t.unsqueeze(-1) == channels).to(torch.float32)  # [n, h, w, C]: channels-last memory
        hot = hot.permute(0, 3, 1, 2)
        return hot if self.channels_last else hot.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot [n, 4, h, w] -> float32 softmax probabilities [n, 4, h, w]."""
        with self._autocast():
            logits = self.net(x)
        return torch.softmax(logits.float(), dim=1)

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision == "fp32":
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=_AUTOCAST[self.precision]):
            yield
