"""The generators' runtimes (cifar_nb.engine.runtime): the GAN loop and its sampling handle run under the caller's
Runtime or the measured default for their family, on the CPU as on CUDA, record it in env.json, and resume across
runtimes. (The DDPM's own runtime tests are in test_diffusion.py.)"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_gan import fake_eval, tiny_cfg, tiny_data  # noqa: F401  (fixtures)

from cifar_nb import experiments
from cifar_nb.engine import runs, runtime
from cifar_nb.engine.runs import RunInterrupted
from cifar_nb.engine.runtime import Runtime, default_runtime
from cifar_nb.engine.train import gan
from cifar_nb.models import create_model

FP32, BF16 = Runtime(), Runtime(amp=True)
INFO = SimpleNamespace(name="tiny", num_classes=10, image_size=32, channels=3)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("CIFAR_NB_PRECISION", raising=False)
    monkeypatch.delenv("CIFAR_NB_COMPILE", raising=False)


def test_every_generator_family_has_a_measured_cpu_default(no_env, monkeypatch):
    families = {experiments.get(n).config.model for n in experiments.names("gan") + experiments.names("diffusion")}
    assert families == {"dcgan", "unet_ddpm"}
    families.add("ours_gan")                    # ours-generator's first design, run as an ablation
    assert families <= set(runtime.GENERATOR_CPU_FAST) <= set(runtime.CPU_FAST)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    for f in families:
        assert default_runtime(f, "cpu") == Runtime(**runtime.GENERATOR_CPU_FAST[f])
        assert default_runtime(f, "cuda") == Runtime(amp=True, channels_last=True)     # CUDA as before
        assert default_runtime(f, "cpu", fp32=True) == FP32
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert all(default_runtime(f, "cpu") == FP32 for f in families)                   # emulated bf16 is slower


def test_family_of_names_the_built_network():
    assert runtime.family_of(create_model("dcgan", num_classes=10, latent_dim=16, base_width=8)) == "dcgan"
    assert runtime.family_of(create_model("ours_gan", num_classes=10)) == "ours_gan"
    assert runtime.family_of(torch.nn.Linear(2, 2)) is None


def _dtypes(module):
    """The dtypes of `module`'s outputs, call after call."""
    seen = []
    module.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("rt", [FP32, BF16, Runtime(amp=True, channels_last=True)], ids=str)
def test_the_gan_step_runs_under_the_runtime_on_the_cpu(rt, tiny_data):
    s = gan.setup(tiny_cfg(), INFO, torch.device("cpu"), rt)
    assert s.runtime == rt
    g_out, d_out = _dtypes(s.model.generator), _dtypes(s.model.discriminator)
    d_in = []
    s.model.discriminator.register_forward_pre_hook(lambda m, args: d_in.append(args[0]))
    stats = gan.train_step(s, tiny_data.images[:8], 0, torch.Generator().manual_seed(0))
    want = torch.bfloat16 if rt.amp else torch.float32
    assert g_out == [want] and d_out == [want] * 3
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in stats.values())    # fp32 losses
    conv = next(m for m in s.model.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == rt.channels_last
    assert d_in[0].is_contiguous(memory_format=torch.channels_last) == rt.channels_last


def test_the_compile_knob_still_compiles(tiny_data):
    s = gan.setup(tiny_cfg(train={"compile": True}), INFO, torch.device("cpu"), FP32)
    assert s.runtime.compile and hasattr(s.G, "_orig_mod") and hasattr(s.D, "_orig_mod")
    assert not gan.setup(tiny_cfg(), INFO, torch.device("cpu"), FP32).runtime.compile


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_sampling_with_amp_gives_finite_images_in_range(mode):
    torch.manual_seed(0)
    model = create_model("dcgan", num_classes=10, latent_dim=16, base_width=8).to(memory_format=torch.channels_last)
    h = gan.GANGenerator(model, 10, "cpu", batch_size=4, sampling_mode=mode,
                         runtime=Runtime(amp=True, channels_last=True))
    g_out, d_out = _dtypes(h.G), _dtypes(h.D)
    imgs = h.decode(h.sample_latents(10, torch.Generator().manual_seed(1)))
    assert g_out == [torch.bfloat16] * 3                                  # batches of 4, 4, 2
    assert imgs.shape == (10, 3, 32, 32) and imgs.dtype == torch.float32
    assert torch.isfinite(imgs).all() and imgs.min() >= -1 and imgs.max() <= 1 and imgs.std() > 0
    scores = h.score(imgs)
    assert d_out == [torch.bfloat16] * 3 and scores.dtype == torch.float32
    assert torch.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    if mode == "eval":     # bf16 changes the pixels a little, not the picture
        fp32 = gan.GANGenerator(model, 10, "cpu", batch_size=4, runtime=FP32)
        ref = fp32.decode(fp32.sample_latents(10, torch.Generator().manual_seed(1)))
        assert not torch.equal(imgs, ref) and torch.allclose(imgs, ref, atol=0.1)


def test_the_handle_defaults_to_its_family_s_runtime(no_env):
    model = create_model("ours_gan", num_classes=10)
    assert gan.GANGenerator(model, 10, "cpu").runtime == default_runtime("ours_gan", "cpu")


@pytest.mark.slow
def test_a_gan_run_records_its_runtime_outside_its_config(tiny_data, fake_eval, tmp_path):
    cfg = tiny_cfg()
    a = runs.run(cfg, results_dir=tmp_path, progress=False, runtime=BF16)
    assert a.run_dir.name == cfg.hash and a.env["runtime"] == BF16.as_record()
    assert a.env["runtime"]["precision"] == "bf16-autocast"
    assert runs.run(cfg, results_dir=tmp_path, progress=False, runtime=FP32).reused      # not in the hash
    b = runs.run(cfg, results_dir=tmp_path / "fp32", progress=False, runtime=FP32)
    assert b.env["runtime"]["precision"] == "fp32"
    assert [r["loss_d"] for r in a.history] != [r["loss_d"] for r in b.history]     # bf16 really ran


@pytest.mark.slow
def test_a_gan_run_without_a_runtime_records_the_default(tiny_data, fake_eval, tmp_path, no_env):
    res = runs.run(tiny_cfg(steps=3), results_dir=tmp_path, progress=False)
    assert res.env["runtime"] == default_runtime("dcgan", "cpu").as_record()


@pytest.mark.slow
@pytest.mark.parametrize("first, then", [(FP32, BF16), (BF16, Runtime(amp=True, channels_last=True))], ids=str)
def test_a_checkpoint_resumes_under_another_runtime(first, then, tiny_data, fake_eval, tmp_path):
    cfg = tiny_cfg()
    with pytest.raises(RunInterrupted):
        runs.run(cfg, results_dir=tmp_path, progress=False, stop_at_step=5, runtime=first)
    res = runs.run(cfg, results_dir=tmp_path, progress=False, runtime=then)
    assert [r["step"] for r in res.history] == [3, 6, 9] and res.env["runtime"] == then.as_record()
    assert all(np.isfinite(r[k]) for r in res.history for k in gan.STATS)
    assert -1 <= res.metrics["sample_min"] < res.metrics["sample_max"] <= 1
    for mode in ("eval", "train"):                                   # the score stage's loader, under each
        h = gan.load_handle(cfg, res.run_dir / "generator.pt", "cpu", mode, runtime=first)
        imgs = h.decode(h.sample_latents(5, torch.Generator().manual_seed(0)))
        assert h.runtime == first and torch.isfinite(imgs).all() and imgs.abs().max() <= 1
