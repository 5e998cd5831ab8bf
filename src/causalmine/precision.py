"""Numeric precision: bf16 where the hardware computes it natively, fp32 elsewhere.

``trainer.precision: auto`` (training) and ``precision: auto`` (``predict.py``)
pick bf16 autocast on a GPU with bf16 (Ampere and later) and on a CPU with AMX or AVX512-BF16
(on this project's first, AMX machine, training steps ran 1.36x and prediction 1.8x faster,
measured when this was written and quoted in RESULTS §7, but with no committed record; on an
H200, MiniLM trains as fast or faster in fp32: RESULTS §11); fp16 mixed precision on an older
GPU (V100, T4); fp32 on any other CPU, where bf16 is emulated and slower.
Prediction can also run int8 (dynamic quantization of the linear and LSTM layers, CPU only).
Checkpoints record how their run computed (:func:`run_numerics`); ``eval.py`` and the replay of
a non-finite step compute alike, so that they give the run's own figures back.
"""

from __future__ import annotations

import copy
import importlib.metadata
import logging
import platform
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from causalmine.settings import PREDICT_PRECISIONS

log = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX tiles or AVX512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def bf16_native(device_type: str) -> bool:
    """Whether ``device_type`` (``cpu`` or ``cuda``) runs bf16 natively."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return device_type == "cpu" and cpu_has_bf16()


def _device_type(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def trainer_precision(setting: str | int, accelerator: str = "auto") -> str | int:
    """Lightning's ``precision`` for ``trainer.precision``: ``auto`` becomes ``bf16-mixed`` where
    the device runs bf16 natively, ``16-mixed`` on a GPU without it, else ``32-true``; any other
    setting is Lightning's own and passes through."""
    if setting != "auto":
        return setting
    device = _device_type(str(accelerator))
    if device == "cuda" and not torch.cuda.is_available():
        return "32-true"  # no GPU here: the trainer says so itself
    if bf16_native(device):
        chosen, why = "bf16-mixed", f"this {device.upper()} computes bf16 natively"
    elif device == "cuda":
        chosen, why = "16-mixed", "this GPU has no native bf16"
    else:
        chosen, why = "32-true", "this CPU has neither AMX nor AVX512-BF16 (bf16 would be emulated)"
    log.info("trainer.precision=auto: %s (%s)", chosen, why)
    return chosen


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """The CPU's model name and its vector-unit flags (AVX2, FMA, AVX-512, AMX) as the kernel
    reports them in ``cpuinfo`` (``platform.processor()`` and no flags without it)."""
    name, flags = platform.processor() or "unknown", []
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = sorted(f for f in value.split() if f.startswith(("avx", "fma", "amx")))
    return name, flags


def numeric_environment(precision: str | int, accelerator: str = "auto") -> dict[str, Any]:
    """What decides a run's numbers beyond its code and config: library versions, the kernels
    torch dispatches to on this CPU, threads, the precision run and the GPU. Written into
    ``metrics.json``: the same code on another machine can differ in the last bits (RESULTS
    §8ac), and this says which machine a run was."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    cpu, flags = cpu_model()
    environment: dict[str, Any] = {
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "transformers", "lightning", "numpy")},
        "cpu": cpu,
        "cpu_flags": flags,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": cpu_has_bf16(),
        "threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "precision": str(precision),
        "accelerator": accelerator,
    }
    if torch.cuda.is_available():
        environment |= {
            "gpu": torch.cuda.get_device_name(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return environment


def run_numerics(precision: str | int) -> dict[str, str]:
    """How a run computes: Lightning's ``precision`` as it ran and torch's float32 matmul
    precision. Saved with every checkpoint of a run (and a non-finite step's state)."""
    return {"precision": str(precision), "matmul_precision": torch.get_float32_matmul_precision()}


def evaluation_numerics(
    precision: str | int | None,
    matmul_precision: str | None,
    trained: dict[str, Any] | None,
    accelerator: str = "auto",
) -> tuple[str | int, str]:
    """The ``trainer.precision`` and float32 matmul precision ``eval.py`` computes in.

    A setting given wins; ``None`` takes what the checkpoint's run computed in (``trained``, its
    :func:`run_numerics`), so that ``split=val`` on a single-device run's checkpoint gives back
    the validation figures that run logged for it, bit for bit on the same machine (an fp32 run
    scored in bf16 moves span F1 in the fourth decimal). A checkpoint that predates the record,
    or fp16 from a GPU scored on a CPU (``accelerator``), falls back to ``auto`` and the
    training default ``high``, and says so."""
    trained = trained or {}
    if precision is None:
        precision = trained.get("precision", "auto")
        if precision == "auto":
            log.info("eval: the checkpoint does not record its precision; trainer.precision=auto")
        elif str(precision).startswith("16") and _device_type(str(accelerator)) != "cuda":
            log.warning(
                "eval: the checkpoint ran in %s, which needs a GPU; trainer.precision=auto",
                precision,
            )
            precision = "auto"
        else:
            log.info("eval: trainer.precision=%s, as the checkpoint's run computed", precision)
    if matmul_precision is None:
        matmul_precision = trained.get("matmul_precision", "high")
    return precision, matmul_precision


@contextmanager
def float32_matmul_precision(value: str) -> Iterator[None]:
    """torch's float32 matmul precision at ``value`` inside, restored after (it is global)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(value)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@contextmanager
def computing_as(
    numerics: dict[str, Any] | None, device: torch.device | None = None
) -> Iterator[None]:
    """Forward passes (on ``device``, the CPU by default) computed as the run that recorded
    ``numerics`` (:func:`run_numerics`): its float32 matmul precision and, for a ``bf16-mixed``
    run, bf16 autocast. ``None``, a checkpoint from before the record: fp32 at ``high``. A GPU
    run's fp16 is computed in fp32 (not bit for bit)."""
    numerics = numerics or {}
    bf16 = str(numerics.get("precision", "32-true")).startswith("bf16")
    with (
        float32_matmul_precision(numerics.get("matmul_precision", "high")),
        autocast("bf16" if bf16 else "fp32", device or torch.device("cpu")),
    ):
        yield


def check_predict_precision(precision: str) -> str:
    if precision not in PREDICT_PRECISIONS:
        raise ValueError(f"precision must be one of {PREDICT_PRECISIONS}, got {precision!r}")
    return precision


def predict_precision(setting: str, device: torch.device) -> str:
    """The precision prediction runs in: ``auto`` is bf16 where the device runs it natively,
    else fp32 (never int8, whose F1 change must be chosen knowingly)."""
    check_predict_precision(setting)
    if setting == "int8" and device.type != "cpu":
        raise ValueError(f"precision=int8 runs on the CPU only, not on {device}")
    if setting != "auto":
        return setting
    chosen = "bf16" if bf16_native(device.type) else "fp32"
    log.info("precision=auto: %s on %s", chosen, device)
    return chosen


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context a forward pass runs in at ``precision`` (bf16: autocast; else nothing)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def quantized_int8(network: nn.Module) -> nn.Module:
    """A copy of ``network`` with dynamically quantized int8 linear and LSTM layers (weights int8
    per output channel, activations quantized per batch), for CPU prediction; the original is
    left as it is. Per-channel weights: per-tensor ones cost twice the F1 on CNC dev (measured,
    experiments/RESULTS.md)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    layers = {nn.Linear: per_channel_dynamic_qconfig, nn.LSTM: per_channel_dynamic_qconfig}
    return quantize_dynamic(copy.deepcopy(network), layers)
