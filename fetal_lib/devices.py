"""The device rule of every PyTorch path (training, validation, prediction, test-time
augmentation, Grad-CAM, diffusion sampling, sliding windows): the network decides.

* :func:`resolve_device` turns the ``device`` knob or ``--device`` (``auto``, ``cpu``, ``cuda``)
  into the device a run uses: ``auto`` is CUDA when torch sees a GPU, else the CPU; ``cuda`` on a
  machine without one is refused (:class:`NoGpuError`, one line naming the missing GPU).
* :func:`device_of` is where a network lives (its first parameter or buffer).
* :func:`to_network` moves a batch (a tensor, or tuples, lists and dicts of them) to the device of
  the network that reads it; :func:`to_host` brings a result back as a detached CPU float32
  tensor. Nothing else in the library calls ``.to(device)`` on inputs.
* :func:`random_normal` draws noise with a seeded generator wherever the generator lives and
  hands it to the device of the tensor it goes with, so one seed gives the same noise on every
  device.
* :func:`autocast` is bfloat16 autocast on the device (or nothing, in float32).
* :func:`gpu_info` describes the visible GPU (name, memory in GiB, compute capability).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

DEVICES = ("auto", "cpu", "cuda")
BF16_CAPABILITY = (8, 0)  # NVIDIA Ampere and later compute bfloat16 natively


class NoGpuError(ValueError):
    """``cuda`` asked for on a machine where torch sees no CUDA GPU."""


@dataclass(frozen=True)
class GpuInfo:
    """The first visible CUDA GPU: its name, memory (GiB), compute capability, and how many there are."""

    name: str
    memory_gib: float
    capability: tuple[int, int]
    count: int = 1

    @property
    def bf16(self) -> bool:
        """Native bfloat16 arithmetic (compute capability 8.0 or later)."""
        return tuple(self.capability) >= BF16_CAPABILITY

    def describe(self) -> str:
        return (f"{self.name} ({self.memory_gib:.0f} GiB, compute capability {self.capability[0]}.{self.capability[1]}"
                f"{f', {self.count} GPUs' if self.count > 1 else ''})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["capability"] = list(self.capability)
        return out


def cuda_available() -> bool:
    """torch sees a CUDA GPU (False when torch is a CPU build)."""
    import torch

    return bool(torch.cuda.is_available())


def gpu_info() -> GpuInfo | None:
    """The first visible CUDA GPU, or None."""
    if not cuda_available():
        return None
    import torch

    props = torch.cuda.get_device_properties(0)
    return GpuInfo(str(props.name), round(props.total_memory / 2**30, 1), (int(props.major), int(props.minor)),
                   int(torch.cuda.device_count()))


def _no_gpu_reason() -> str:
    import torch

    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, but no GPU is visible"
    return f"torch {torch.__version__} here is {build}"


def resolve_device(requested: str | None = "auto") -> str:
    """``"cuda"`` or ``"cpu"``: what ``requested`` (``auto``, ``cpu``, ``cuda``; None means auto) is on this machine.

    Raises:
        NoGpuError: ``cuda`` asked for and torch sees no CUDA GPU.
        ValueError: an unknown device name.
    """
    requested = "auto" if requested in (None, "") else str(requested)
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if requested == "cuda":
        raise NoGpuError(f"device cuda asked for, but there is no CUDA GPU on this machine ({_no_gpu_reason()}); "
                         f"use --device cpu or auto")
    return "cpu"


def device_of(module) -> Any:
    """The ``torch.device`` a network lives on: that of its first parameter, else its first buffer, else the CPU."""
    import torch

    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def to_device(value: Any, device) -> Any:
    """``value`` with every tensor in it (nested tuples, lists, dicts) on ``device``; other values unchanged."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True) if value.device != torch.device(device) else value
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def to_network(value: Any, module) -> Any:
    """``value`` (a tensor, or tuples, lists and dicts of them) on the device of ``module``."""
    return to_device(value, device_of(module))


def to_host(tensor):
    """A result as a detached float32 tensor on the CPU (ready for ``.numpy()``)."""
    return tensor.detach().float().cpu()


def random_normal(shape, generator=None, like=None):
    """Standard normal noise of ``shape``, drawn with ``generator`` on the generator's own device and
    handed to the device and dtype of ``like``: the same seed gives the same noise on every device."""
    import torch

    device = generator.device if generator is not None else (like.device if like is not None else None)
    noise = torch.randn(tuple(shape), generator=generator, device=device)
    return noise if like is None else noise.to(device=like.device, dtype=like.dtype)


def autocast(device, precision: str):
    """bfloat16 autocast on ``device`` when ``precision`` is ``"bfloat16"``, else a context that changes nothing."""
    if precision != "bfloat16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(str(getattr(device, "type", device)), dtype=torch.bfloat16)


def describe(device: str, gpu: GpuInfo | None = None) -> dict[str, Any]:
    """What a model card and a chapter's provenance record of the device that ran: ``{"device": "cuda",
    "gpu": {...}}`` or ``{"device": "cpu"}``."""
    if device != "cuda":
        return {"device": "cpu"}
    gpu = gpu if gpu is not None else gpu_info()
    return {"device": "cuda", **({"gpu": gpu.to_dict()} if gpu is not None else {})}


def record(requested: str | None = "auto") -> dict[str, Any]:
    """:func:`describe` of the device the ``device`` knob ``requested`` resolves to here."""
    return describe(resolve_device(requested))


def prepare(device: str) -> None:
    """Per-device settings before training: on CUDA, cuDNN picks its fastest convolution algorithms."""
    if device == "cuda":
        import torch

        torch.backends.cudnn.benchmark = True


def training_gpu(requested: str | None = "auto") -> GpuInfo | None:
    """The GPU a run with device knob ``requested`` trains on, or None when it trains on the CPU."""
    return gpu_info() if resolve_device(requested) == "cuda" else None
