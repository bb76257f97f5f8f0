"""Which device a run uses: chosen once, here, for every run, training and check."""

from __future__ import annotations

from daf_hydra.config import validate_device
from daf_hydra.errors import DAFError


def daf_get_recommended_device() -> str:
    """cuda > mps > cpu, by what torch can actually use here."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(device: str) -> str:
    """`auto` -> the recommended device; an explicit device must be usable here."""
    validate_device(device)
    if device == "auto":
        return daf_get_recommended_device()
    if device != "cpu" and daf_get_recommended_device() == "cpu":
        raise DAFError(f"device={device!r} is not available on this machine: use device=cpu or device=auto")
    return device


def apply_gpu_memory_fraction(fraction: float | None, device: str) -> bool:
    """`resources.gpu_memory_fraction`: cap this process's share of the CUDA device's memory, so runs sharing a
    GPU (parallel evaluation workers, sweep trials) cannot starve each other. Returns whether a cap was set: only
    a fraction on a CUDA device sets one (other devices have no such allocator limit; the log says so)."""
    import logging

    if fraction is None:
        return False
    if not device.startswith("cuda"):
        logging.getLogger(__name__).info("resources.gpu_memory_fraction=%s not applied: device %s is not CUDA",
                                         fraction, device)
        return False
    import torch

    torch.cuda.set_per_process_memory_fraction(float(fraction), torch.device(device))
    return True
