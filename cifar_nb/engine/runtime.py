"""How a run executes, as opposed to what it computes: precision, memory layout, compilation, threads.

None of this is part of a RunConfig, so it never changes a config hash, and a checkpoint written under one
setting resumes under another. Each run records the settings it used in its env.json.

The defaults come from measurement (benchmarks/train_speed.py, benchmarks/gen_speed.py): on CUDA, bf16 autocast
with channels_last; on a CPU with native bf16 (AVX-512 BF16 or AMX), the fastest combination measured for each
model family (CPU_FAST); on any other CPU, fp32 eager. Measured on a 2-core AMD EPYC (Zen 3: AVX2, no AVX-512, no BF16),
1 thread, A-classifier at batch 256: fp32 eager 564 ms/step, bf16 autocast 2,883 ms/step (5x slower, emulated),
and torch.compile aborted the process ("double free or corruption") -- so a bf16 default would be a trap there.
`CIFAR_NB_PRECISION=fp32` (or `--fp32` on the command line) turns every fast path off anywhere.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cifar_nb.models import MODELS

# The generators' families, chosen with benchmarks/gen_speed.py's variants on a 2-core AVX-512 BF16 EPYC: 1 thread,
# each experiment's own batch, 5 timed steps after 2 warm-up (DDPM: 2 after 1), while a queue run and a second
# benchmark kept the machine busy (load ~3 on 2 cores, so +-20% between repeats). ms/step, repeats split by /:
#   C-generator     dcgan, batch 128:     fp32 293/396, bf16 148/274/154/179, bf16+cl 180/139/157, bf16+compile 138
#   E-generator     dcgan, batch 256:     fp32 1068/1033, bf16 709/821/715/696, bf16+cl 591/502/615, bf16+compile 519
#   A-generator     dcgan 64x64, b. 128:  fp32 832/916, bf16 556/596/600/671, bf16+cl 491/451/489, bf16+compile 541
#   ours (1st)      ours_gan, batch 64:   fp32 365/340, bf16 207/299/192/206, bf16+cl 199/206/200, bf16+compile 187
#   B-generator     unet_ddpm, batch 256: fp32 54,526, bf16 28,212, bf16+cl 19,405, bf16+compile 15,470 (+6 min compile)
# bf16 won on every family; channels_last won on every DCGAN repeat, tied on ours_gan and won on the U-Net. compile
# gained within the noise (or lost: A) and costs minutes of compiling (U-Net ~6, GANs ~1.5) at every start and
# resume, and again for the sampling graphs, so no default compiles (the U-Net's is the one worth re-measuring
# on a quiet machine, with bf16+cl+compile, which was not timed).
GENERATOR_CPU_FAST = {
    "dcgan": dict(amp=True, channels_last=True, compile=False),
    "ours_gan": dict(amp=True, channels_last=False, compile=False),
    "unet_ddpm": dict(amp=True, channels_last=True, compile=False),
}
# Fastest measured CPU path per model family on a 2-core AVX-512 BF16 EPYC (issue 19's table: one process,
# batch 256, best of two, classifiers; the generators above), used only where the CPU has native bf16.
# Families not measured yet get bf16 autocast alone, which was the largest single gain on every model measured.
CPU_FAST = {
    **GENERATOR_CPU_FAST,
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

    def autocast(self, device: torch.device | str):
        """The forward pass's precision context: bf16 autocast when `amp`, else a no-op."""
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=self.amp)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


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


def family_of(model: torch.nn.Module) -> str | None:
    """The registry name (cifar_nb.models.MODELS) of a built network, which default_runtime's tables are keyed by."""
    cls = type(model)
    return next((name for name, target in MODELS.items() if target == f"{cls.__module__}:{cls.__qualname__}"), None)


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
