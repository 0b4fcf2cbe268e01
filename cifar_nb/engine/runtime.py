"""How a run executes, as opposed to what it computes: precision, memory layout, compilation, threads.

None of this is part of a RunConfig, so it never changes a config hash, and a checkpoint written under one
setting resumes under another. Each run records the settings it used in its env.json.

The defaults come from measurement (benchmarks/train_speed.py): on CUDA, bf16 autocast with channels_last;
on a CPU with native bf16 (AVX-512 BF16 or AMX), the fastest combination measured for each model family
(CPU_FAST); on any other CPU, fp32 eager. Measured on a 2-core AMD EPYC (Zen 3: AVX2, no AVX-512, no BF16),
1 thread, A-classifier at batch 256: fp32 eager 564 ms/step, bf16 autocast 2,883 ms/step (5x slower, emulated),
and torch.compile aborted the process ("double free or corruption") -- so a bf16 default would be a trap there.
`CIFAR_NB_PRECISION=fp32` (or `--fp32` on the command line) turns every fast path off anywhere.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

# Fastest measured CPU path per model family on a 2-core AVX-512 BF16 EPYC (issue 19's table: one process,
# batch 256, best of two), used only where the CPU has native bf16.
# Families not measured yet get bf16 autocast alone, which was the largest single gain on every model measured.
CPU_FAST = {
    "resnet_bottleneck": dict(amp=True, channels_last=False, compile=True),
    "dsconv_resnet": dict(amp=True, channels_last=False, compile=True),
    # E-classifier on AddNIST, 1 thread, s/step: fp32+channels_last 0.80, fp32 eager 1.23, bf16+channels_last
    # 1.31, bf16 1.36, fp32+channels_last+compile 1.37 -- depthwise convs have no fast bf16 kernel on this CPU.
    "mbconv_se": dict(amp=False, channels_last=True, compile=False),
    "densenet": dict(amp=True, channels_last=False, compile=False),
    "search_cnn": dict(amp=True, channels_last=False, compile=False),
}
CPU_DEFAULT = dict(amp=True, channels_last=False, compile=False)
FP32_EAGER = dict(amp=False, channels_last=False, compile=False)


@dataclass(frozen=True)
class Runtime:
    amp: bool = False            # bf16 autocast for the forward pass (losses and optimiser stay fp32)
    channels_last: bool = False
    compile: bool = False        # torch.compile of the model's forward
    threads: int | None = None   # intra-op threads (None: torch's default)

    def as_record(self) -> dict:
        d = asdict(self)
        d["precision"] = "bf16-autocast" if self.amp else "fp32"
        d["threads"] = self.threads or torch.get_num_threads()
        return d


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX-512 BF16 or AMX); elsewhere autocast emulates it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_runtime(model: str, device: torch.device | str, fp32: bool | None = None,
                    threads: int | None = None, **overrides) -> Runtime:
    """The measured-fastest settings for `model` on `device`; `fp32=True` (or CIFAR_NB_PRECISION=fp32) for none."""
    device = torch.device(device)
    if fp32 is None:
        fp32 = os.environ.get("CIFAR_NB_PRECISION", "").lower() == "fp32"
    if fp32:
        base = dict(FP32_EAGER)
    elif device.type == "cuda":
        base = dict(amp=True, channels_last=True, compile=False)
    elif cpu_has_native_bf16():
        base = dict(CPU_FAST.get(model, CPU_DEFAULT))
    else:
        base = dict(FP32_EAGER)
    if os.environ.get("CIFAR_NB_COMPILE") in ("0", "1"):
        base["compile"] = os.environ["CIFAR_NB_COMPILE"] == "1"
    base.update({k: v for k, v in overrides.items() if v is not None})
    return Runtime(threads=threads, **base)


def generator_autocast(device: torch.device):
    """The GAN and DDPM loops' precision: bf16 autocast on CUDA; nothing on CPU (keeps CPU generator runs exact
    and deterministic; their CPU fast path is not measured yet, issue 19)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(name: str) -> torch.device:
    """`auto`, `cpu`, `cuda`, `cuda:N` as a torch.device; a clear error for anything else."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not one torch knows: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: only cpu and cuda are supported")
    return device
