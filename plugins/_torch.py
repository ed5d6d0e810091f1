"""Device and dtype resolution shared by the torch-based plugins (imported inside load())."""

from __future__ import annotations

from typing import Literal

import torch

DeviceName = str
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]


def resolve_device(device: DeviceName) -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: DtypeName, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on CUDA, fp32 elsewhere (CPU results stay deterministic)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)
