"""Option types shared by the command-line modules (device, arithmetic precision)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Device", "Precision"]


class Device(StrEnum):
    """Where the model runs: ``auto`` is CUDA when available, else the CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    """Model arithmetic when scoring (default fp32); ``auto`` is fp16 on CUDA and fp32 on the CPU."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
