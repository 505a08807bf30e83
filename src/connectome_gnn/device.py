"""Choosing the torch device of a job (``device: auto | cpu | cuda[:k]``)."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA when available, else the CPU; anything else as given, with a
    ConfigError naming the field when CUDA is asked for on a machine without it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"field 'device': {str(device)!r} requested but CUDA is not available on this machine"
        )
    return dev
