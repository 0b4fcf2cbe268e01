"""Report B's conditional DDPM: parameter count, schedules, loss, sampler, and the training loop on CPU.

The loop tests use a few-channel U-Net, a short chain (T=20) and a tiny in-memory dataset, so that they
test the mechanics (counting, resume, sampling range) in seconds; nothing here judges image quality.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cifar_nb.budget import count_params
from cifar_nb.config import RunConfig
from cifar_nb.engine import artifacts, runs
from cifar_nb.engine.runs import RunInterrupted
from cifar_nb.engine.runtime import Runtime
from cifar_nb.engine.train import diffusion as trainer
from cifar_nb.models import create_model
from cifar_nb.models.ddpm_schedule import Diffusion, make_betas, respaced

TINY = dict(channels=[8, 16, 16], depth=1)


def test_param_count_matches_report_b():
    assert count_params(create_model("unet_ddpm")) == 996_863           # report B §6
    assert count_params(create_model("unet_ddpm", num_classes=10)) == 978_143   # only label encoders shrink


def test_model_shapes_and_conditioning():
    torch.manual_seed(0)
    m = create_model("unet_ddpm", num_classes=10, **TINY).eval()
    x, t = torch.randn(4, 3, 32, 32), torch.rand(4)
    out = m(x, t, torch.tensor([0, 1, 2, 3]))
    assert out.shape == x.shape
    assert not torch.allclose(out, m(x, t, torch.tensor([4, 5, 6, 7])))   # the label matters
    assert not torch.allclose(out, m(x, t * 0.5, torch.tensor([0, 1, 2, 3])))   # so does the time
    with pytest.raises(ValueError, match="divisible by 4"):
        create_model("unet_ddpm", image_size=30, **TINY)


@pytest.mark.parametrize("name", ["linear", "sigmoid"])
def test_schedules_are_valid(name):
    b = make_betas(name, 1000)
    abar = torch.cumprod(1 - b, 0)
    assert b.shape == (1000,) and ((b > 0) & (b < 1)).all()
    assert (abar[1:] < abar[:-1]).all() and abar[0] > 0.999 and abar[0] <= 1
    assert abar[-1] < 1e-4                         # the chain ends at (nearly) pure noise


def test_linear_and_sigmoid_differ_as_published():
    lin, sig = make_betas("linear", 1000), make_betas("sigmoid", 1000)
    assert lin[0].item() == pytest.approx(1e-4) and lin[-1].item() == pytest.approx(0.02)   # Ho et al.
    assert sig[-1].item() == pytest.approx(0.999)          # abar(1) = 0, so the last beta is the clip
    abar_sig = torch.cumprod(1 - sig, 0)
    assert abar_sig[499].item() == pytest.approx(0.5, abs=0.01)   # symmetric sigmoid: half-way at t=T/2
    assert not torch.allclose(lin, sig)
    with pytest.raises(ValueError, match="unknown beta_schedule"):
        make_betas("cosine", 1000)


def test_q_sample_and_loss():
    d = Diffusion.named("sigmoid", 50)
    x0, noise = torch.randn(6, 3, 8, 8), torch.randn(6, 3, 8, 8)
    i = torch.tensor([0, 10, 20, 30, 40, 49])
    xt = d.q_sample(x0, i, noise)
    assert xt.shape == x0.shape
    assert torch.allclose(xt[0], d.sqrt_abar[0] * x0[0] + d.sqrt_1m_abar[0] * noise[0])
    # a perfect noise predictor has zero loss, a zero predictor has loss ~ E[eps^2] = 1
    g = torch.Generator().manual_seed(0)
    zero = lambda x, t, y: torch.zeros_like(x)
    assert d.loss(zero, torch.randn(64, 3, 8, 8), torch.zeros(64, dtype=torch.long), g).item() == \
        pytest.approx(1.0, abs=0.05)


def test_respacing():
    assert respaced(1000, None) == list(range(999, -1, -1))
    r = respaced(1000, 10)
    assert len(r) == 10 and r[0] == 999 and r[-1] == 0 and r == sorted(r, reverse=True)


@pytest.mark.parametrize("name,steps", [("linear", None), ("sigmoid", None), ("sigmoid", 7)])
@pytest.mark.parametrize("clip_x0", [False, True])
def test_oracle_chain_follows_the_posterior(name, steps, clip_x0):
    """A model that knows x_0 predicts the exact noise at every t. Then each step must move x_t to the
    posterior mean  sqrt(abar_prev) beta / (1 - abar) x_0 + sqrt(alpha) (1 - abar_prev) / (1 - abar) x_t
    plus sqrt(beta) z (written here independently of the sampler), and the chain must end on x_0.
    This pins the sqrt(1 - abar_t) of the update, where report B's printed formula has sqrt(1 - alpha_t)."""
    d = Diffusion.named(name, 30)
    x0, seen = torch.rand(2, 3, 4, 4) - 0.5, []

    def oracle(x, t, y):
        seen.append(x.clone())
        i = (t * d.T).round().long() - 1
        return (x - d.sqrt_abar[i].view(-1, 1, 1, 1) * x0) / d.sqrt_1m_abar[i].view(-1, 1, 1, 1)
    y, xT = torch.zeros(2, dtype=torch.long), torch.randn(2, 3, 4, 4)
    out = d.sample(oracle, xT, y, torch.Generator().manual_seed(0), steps=steps, clip_x0=clip_x0)
    order = respaced(30, steps)
    z = torch.randn(xT.shape, generator=torch.Generator().manual_seed(0))      # the sampler's first draw
    abar, abar_prev = d.abar64[order[0]].item(), d.abar64[order[1]].item()
    alpha = abar / abar_prev
    mean = ((abar_prev ** 0.5) * (1 - alpha) / (1 - abar)) * x0 + (alpha ** 0.5 * (1 - abar_prev) / (1 - abar)) * xT
    assert torch.allclose(seen[1], mean + (1 - alpha) ** 0.5 * z, atol=1e-4)
    assert len(seen) == len(order) and torch.allclose(out, x0, atol=1e-4)


def test_handle_samples_in_range_and_is_seeded():
    torch.manual_seed(0)
    m = create_model("unet_ddpm", num_classes=10, **TINY)
    h = trainer.DDPMGenerator(m, Diffusion.named("sigmoid", 20), 10, (3, 32, 32), "cpu", sample_steps=5,
                              batch_size=3)
    assert h.conditional and h.score is None and "PREVIEW" in h.sampler
    z = h.sample_latents(5, torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 9])
    a, b = h.decode(z, y, seed=7), h.decode(z, y, seed=7)
    assert a.shape == (5, 3, 32, 32) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, h.decode(z, y, seed=8))
    assert h.decode(z, None, seed=7).shape == (5, 3, 32, 32)
    assert h.images_sampled == 20 and h.sampling_s > 0      # four decodes of 5


# ---------------------------------------------------------------------------------------------
# the training loop, on a tiny fake dataset

class _ImageSet(SimpleNamespace):
    def __len__(self):
        return len(self.labels)


@pytest.fixture
def tiny_data(monkeypatch):
    """48 random 32x32 images in 10 classes, standing in for both splits of data.load."""
    import cifar_nb.engine.data
    g = torch.Generator().manual_seed(123)
    info = SimpleNamespace(name="tiny", display_name="tiny", num_classes=10, image_size=32, channels=3,
                           standin=True)
    data = _ImageSet(images=torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=g),
                     labels=torch.randint(0, 10, (48,), generator=g), info=info)
    monkeypatch.setattr(cifar_nb.engine.data, "load", lambda *a, **k: data)
    monkeypatch.setattr(cifar_nb.engine.data, "describe", lambda *a, **k: info)
    return data


@pytest.fixture
def fake_eval(monkeypatch):
    """Replaces FD/KID and figures by a look at a few samples: for the tests that only need the loop."""
    def evaluate(ctx, handle, n_samples, batch_size):
        imgs = handle.decode(handle.sample_latents(n_samples, torch.Generator().manual_seed(0)), None, seed=0)
        return {"sample_min": imgs.min().item(), "sample_max": imgs.max().item(), "sample_mean": imgs.mean().item()}
    monkeypatch.setattr(trainer, "evaluate", evaluate)
    monkeypatch.setattr(runs, "feature_net_for", lambda *a, **k: None)   # no feature run to train


def tiny_cfg(**kw):
    base = dict(experiment="ddpm-unit", kind="diffusion", model="unet_ddpm", model_args=TINY, steps=12,
                batch_size=8, eval_every=4, optimizer={"name": "adam", "lr": 3e-3},
                scheduler={"name": "exponential", "gamma": 0.9, "every": 5},
                train={"beta_schedule": "sigmoid", "timesteps": 20, "sample_steps": 4, "fid_samples": 4,
                       "log_every": 4})
    return RunConfig(**{**base, **kw})


@pytest.mark.slow
def test_smoke_run_with_real_evaluation(tiny_data, stub_features, tmp_path):
    res = runs.run(tiny_cfg(train={**tiny_cfg().train, "fid_samples": 16}), results_dir=tmp_path, progress=False)
    m = res.metrics
    assert [r["step"] for r in res.history] == [4, 8, 12]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in res.history)
    assert res.history[-1]["lr"] == pytest.approx(3e-3 * 0.9 ** 2)      # decayed at steps 5 and 10
    assert "PREVIEW" in m["sampler"] and m["sample_steps"] == 4 and m["sample_images_per_s"] > 0
    assert m["fd_cls_samples"] == 16 and m["fd_cls"] > 0 and m["fid"] is None
    assert "confidence" in m["cherry_pick_rule"]           # no discriminator: the handle's score is None
    samples = np.load(res.run_dir / "samples.npz")
    assert samples["images"].shape == (16, 3, 32, 32) and samples["labels"].tolist() == [i % 10 for i in range(16)]
    for fig in ("samples_random.png", "interpolation.png", "samples_cherry.png"):
        assert (res.run_dir / fig).exists()
    saved = torch.load(res.run_dir / "generator.pt", weights_only=False)
    net = create_model("unet_ddpm", num_classes=10, **TINY)
    net.load_state_dict(saved["state_dict"])
    assert saved["beta_schedule"] == "sigmoid" and saved["timesteps"] == 20


@pytest.mark.slow
@pytest.mark.parametrize("ema", [None, 0.9])
def test_resume_equals_uninterrupted(tiny_data, fake_eval, tmp_path, ema):
    cfg = tiny_cfg(train={**tiny_cfg().train, "ema": ema, "hflip": 0.5})
    full = runs.run(cfg, results_dir=tmp_path / "a", progress=False)
    with pytest.raises(RunInterrupted):
        runs.run(cfg, results_dir=tmp_path / "b", progress=False, stop_at_step=7)
    resumed = runs.run(cfg, results_dir=tmp_path / "b", progress=False)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    a = torch.load(full.run_dir / "generator.pt", weights_only=False)["state_dict"]
    b = torch.load(resumed.run_dir / "generator.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["sample_mean"] == full.metrics["sample_mean"]
    assert -1 <= full.metrics["sample_min"] < full.metrics["sample_max"] <= 1


def test_a_checkpoint_in_the_format_before_the_shared_loop_still_resumes(tiny_data, fake_eval, tmp_path):
    # before train/loop.py the DDPM kept its interval sum as loss_sum/loss_n
    cfg = tiny_cfg()
    full = runs.run(cfg, results_dir=tmp_path / "a", progress=False)
    with pytest.raises(RunInterrupted):
        runs.run(cfg, results_dir=tmp_path / "b", progress=False, stop_at_step=7)
    ckpt = artifacts.checkpoint_path(cfg, tmp_path / "b")
    state = torch.load(ckpt, weights_only=False)
    sums, count = state.pop("sums"), state.pop("count")
    assert count > 0
    torch.save({**state, "loss_sum": sums["loss"], "loss_n": count}, ckpt)
    resumed = runs.run(cfg, results_dir=tmp_path / "b", progress=False)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_bad_train_keys_are_refused(tiny_data, fake_eval, tmp_path):
    with pytest.raises(ValueError, match="unknown diffusion train keys"):
        runs.run(tiny_cfg(train={"timestep": 20}), results_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="no augment spec"):
        runs.run(tiny_cfg(augment={"hflip": 0.5}), results_dir=tmp_path, progress=False)


# ---------------------------------------------------------------------------------------------
# runtimes (cifar_nb.engine.runtime): training autocasts on the CPU too; sampling stays float32

@pytest.mark.parametrize("amp", [False, True])
def test_the_step_runs_under_the_runtime_and_the_loss_stays_fp32(amp, tiny_data):
    rt = Runtime(amp=amp, channels_last=True)
    s = trainer.setup(tiny_cfg(), tiny_data.info, torch.device("cpu"), rt)
    seen = []
    s.model.register_forward_hook(lambda m, i, out: seen.append(out))
    loss = trainer.train_step(s, tiny_data.images[:8], tiny_data.labels[:8], 0, torch.Generator().manual_seed(0))
    assert s.runtime == rt and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert seen[0].dtype == (torch.bfloat16 if amp else torch.float32)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)


def test_sampling_drops_amp_and_matches_fp32():
    torch.manual_seed(0)
    m = create_model("unet_ddpm", num_classes=10, **TINY)
    seen = []
    m.register_forward_hook(lambda mod, i, out: seen.append(out.dtype))
    args = (m, Diffusion.named("sigmoid", 20), 10, (3, 32, 32), "cpu", 4, 3)
    bf16 = trainer.DDPMGenerator(*args, runtime=Runtime(amp=True))
    fp32 = trainer.DDPMGenerator(*args, runtime=Runtime())
    assert not bf16.runtime.amp
    z, y = bf16.sample_latents(5, torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3, 9])
    assert torch.equal(bf16.decode(z, y, seed=7), fp32.decode(z, y, seed=7))
    assert set(seen) == {torch.float32}


@pytest.mark.slow
def test_a_checkpoint_resumes_under_another_runtime(tiny_data, fake_eval, tmp_path):
    cfg = tiny_cfg()
    with pytest.raises(RunInterrupted):
        runs.run(cfg, results_dir=tmp_path, progress=False, stop_at_step=7, runtime=Runtime())
    res = runs.run(cfg, results_dir=tmp_path, progress=False, runtime=Runtime(amp=True, channels_last=True))
    assert [r["step"] for r in res.history] == [4, 8, 12] and all(np.isfinite(r["loss"]) for r in res.history)
    assert res.env["runtime"]["precision"] == "bf16-autocast" and res.env["runtime"]["channels_last"]
    assert -1 <= res.metrics["sample_min"] < res.metrics["sample_max"] <= 1
    h = trainer.load_handle(cfg, res.run_dir / "generator.pt", "cpu", runtime=Runtime(amp=True, channels_last=True))
    assert h.runtime == Runtime(channels_last=True)
    assert h.decode(h.sample_latents(3, torch.Generator().manual_seed(0)), None, seed=0).abs().max() <= 1
