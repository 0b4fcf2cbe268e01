"""Generator evaluation: interpolation maths, torch-fidelity plumbing, offline gates, nearest neighbours,
and evaluate_generator end to end on a tiny fake generator. No data files, no downloads."""
import hashlib
import json
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn

from cifar_nb.engine.evaluate import features, fid, generator, neighbours, sampling

# ---------------------------------------------------------------------------------------------
# helpers

@dataclass
class FakeSet:
    """The parts of data.ImageSet that evaluation reads."""
    images: torch.Tensor
    info: SimpleNamespace

    def __len__(self):
        return len(self.images)


def fake_set(n, size, seed, name="cifar10-jpeg", display="CIFAR-10 (JPEG stand-in)", standin=True, classes=10):
    g = torch.Generator().manual_seed(seed)
    # smooth-ish images: a per-image colour plus low-amplitude noise, so sets have structure
    base = torch.randint(40, 215, (n, 3, 1, 1), generator=g).float()
    x = (base + 30 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 255).round().to(torch.uint8)
    return FakeSet(x, SimpleNamespace(name=name, display_name=display, standin=standin, num_classes=classes))


def stub_feature_net(num_classes=10, seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 12, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, num_classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return features.FeatureNet(model, lambda x: x.float() / 127.5 - 1, size, name=f"fd-cls-stub-{seed}",
                        description="a fixed random conv net (test stub)", run_hash="stub")


class FakeHandle:
    """A generator whose decode is a fixed random map of its latent; records decode calls."""

    def __init__(self, image_size=16, conditional=False, with_score=True, num_classes=10, latent=8):
        g = torch.Generator().manual_seed(123)
        self.conditional, self.num_classes, self.image_size = conditional, num_classes, image_size
        self.latent_shape = (latent,)
        self.W = torch.randn(latent, 3 * image_size * image_size, generator=g) / math.sqrt(latent)
        self.E = torch.randn(num_classes, 3 * image_size * image_size, generator=g) * 0.3
        self.with_score = with_score
        self.calls = []

    def sample_latents(self, n, generator):
        return torch.randn(n, *self.latent_shape, generator=generator)

    def decode(self, latents, labels=None, seed=0):
        self.calls.append((latents.clone(), None if labels is None else labels.clone(), seed))
        h = latents @ self.W
        if self.conditional:
            h = h + self.E[labels]
        return torch.tanh(h).view(-1, 3, self.image_size, self.image_size)

    def score(self, images):
        return images.mean((1, 2, 3)) if self.with_score else None


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, as on every machine here."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


# ---------------------------------------------------------------------------------------------
# interpolation

def test_slerp_endpoints_norm_and_lerp_midpoint():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 110, generator=g), torch.randn(5, 110, generator=g)
    b = b * (a.norm(dim=1, keepdim=True) / b.norm(dim=1, keepdim=True))      # equal norms per sample
    assert torch.equal(sampling.slerp(a, b, 0.0), a) and torch.equal(sampling.slerp(a, b, 1.0), b)
    for t in (0.1, 0.5, 0.77):
        torch.testing.assert_close(sampling.slerp(a, b, t).norm(dim=1), a.norm(dim=1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sampling.lerp(a, b, 0.5), (a + b) / 2)
    assert torch.equal(sampling.lerp(a, b, 0.0), a) and torch.equal(sampling.lerp(a, b, 1.0), b)
    # orthogonal unit vectors: the midpoint is on the circle, 45 degrees from each
    e0, e1 = torch.eye(2)
    torch.testing.assert_close(sampling.slerp(e0, e1, 0.5), torch.tensor([1.0, 1.0]) / math.sqrt(2))
    # slerp is not lerp: the lerp midpoint of those has norm 1/sqrt(2)
    assert abs(sampling.lerp(e0, e1, 0.5).norm().item() - 1 / math.sqrt(2)) < 1e-6


def test_slerp_near_parallel_and_image_latents():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, 8, 8, generator=g)                       # DDPM-style starting noise
    b = a + 1e-7 * torch.randn(a.shape, generator=g)
    mid = sampling.slerp(a, b, 0.5)
    assert mid.shape == a.shape and torch.isfinite(mid).all()
    torch.testing.assert_close(mid, a, rtol=0, atol=1e-5)
    c = torch.randn(3, 3, 8, 8, generator=g)
    c = c * (a.flatten(1).norm(dim=1) / c.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    torch.testing.assert_close(sampling.slerp(a, c, 0.3).flatten(1).norm(dim=1), a.flatten(1).norm(dim=1))


def test_interpolation_grid_conditions_on_nearer_endpoint():
    h = FakeHandle(conditional=True)
    images, labels = sampling.interpolation_grid(h, n_rows=3, n_steps=6, mode="slerp", seed=7)
    assert images.shape == (3, 6, 3, 16, 16) and labels.shape == (3, 6)
    ts = torch.linspace(0, 1, 6)
    for j, t in enumerate(ts):
        ref = labels[:, 0] if t < 0.5 else labels[:, -1]
        assert torch.equal(labels[:, j], ref)
    assert len(h.calls) == 6 and {c[2] for c in h.calls} == {7}      # one call per column, one seed
    z0, z1 = h.calls[0][0], h.calls[-1][0]
    assert not torch.equal(z0, z1)
    torch.testing.assert_close(h.calls[3][0].norm(dim=1), sampling.slerp(z0, z1, ts[3].item()).norm(dim=1))
    with pytest.raises(ValueError, match="slerp"):
        sampling.interpolation_grid(h, mode="cubic")


# ---------------------------------------------------------------------------------------------
# FD-cls / KID through torch-fidelity with a stub feature extractor

def test_fd_cls_plumbing_matches_direct_frechet_distance():
    fnet = stub_feature_net()
    ref = fake_set(60, 16, seed=1).images
    same = features.fd_cls(ref, ref, fnet, kid_subset_size=30, kid_subsets=10)
    assert set(same) >= {"fd_cls", "kid_mean", "kid_std", "kid_subset_size", "fd_cls_samples"}
    assert abs(same["fd_cls"]) < 1e-6 and same["kid_subset_size"] == 30 and same["fd_cls_samples"] == 60
    shifted = (ref.int() + 40).clamp(0, 255).to(torch.uint8)
    far = features.fd_cls(shifted, ref, fnet, kid_subset_size=30, kid_subsets=10)
    assert far["fd_cls"] > 1e-3 and far["kid_mean"] > same["kid_mean"]
    # the number torch-fidelity returns is the Frechet distance of the stub's penultimate features
    f1, f2 = fnet(shifted)[0].double().numpy(), fnet(ref)[0].double().numpy()
    m1, m2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    direct = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert far["fd_cls"] == pytest.approx(direct, rel=1e-4, abs=1e-8)
    # KID subset size is capped by the smaller set
    assert features.fd_cls(ref[:20], ref, fnet, kid_subsets=5)["kid_subset_size"] == 20


def test_feature_net_resizes_larger_images():
    fnet = stub_feature_net()
    big = fake_set(4, 32, seed=2).images
    feats, logits = fnet(big)
    assert feats.shape == (4, 12) and logits.shape == (4, 10)
    torch.testing.assert_close(feats, fnet(sampling.resize_uint8(big, 16))[0])


# ---------------------------------------------------------------------------------------------
# offline gates: one clear message each

def test_inception_missing_message(offline_hub):
    imgs = fake_set(4, 32, seed=3).images
    with pytest.raises(features.MetricUnavailable) as e:
        fid.compute_fid(imgs)
    msg = str(e.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg
    assert str(offline_hub.resolve()) in msg
    assert "CIFAR_NB_INCEPTION_WEIGHTS" in msg and "feature_extractor_weights_path" in msg


def test_inception_explicit_path_and_cache(offline_hub, monkeypatch, tmp_path):
    monkeypatch.setenv(fid.INCEPTION_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(features.MetricUnavailable, match="nowhere.pth"):
        fid.inception_weights_file()
    given = tmp_path / "w.pth"
    given.write_bytes(b"x")
    assert fid.inception_weights_file(given) == given
    monkeypatch.delenv(fid.INCEPTION_ENV)
    offline_hub.mkdir(parents=True)
    (offline_hub / fid.INCEPTION_FILE).write_bytes(b"x")
    assert fid.inception_weights_file() == offline_hub.resolve() / fid.INCEPTION_FILE


def test_fid_refuses_a_reference_that_is_not_cifar100():
    with pytest.raises(features.MetricUnavailable, match="real CIFAR-100"):
        fid.check_fid_reference(fake_set(10, 32, seed=4))
    partial = fake_set(916, 32, seed=4, name="cifar100", display="CIFAR-100", standin=False, classes=100)
    with pytest.raises(features.MetricUnavailable, match="916 images"):
        fid.check_fid_reference(partial)


def test_lpips_missing_message(offline_hub):
    with pytest.raises(features.MetricUnavailable) as e:
        neighbours.lpips_model()
    msg = str(e.value)
    assert "alexnet-owt-7be5be79.pth" in msg and str(offline_hub.resolve()) in msg and "LPIPS" in msg


# ---------------------------------------------------------------------------------------------
# nearest neighbours

def test_pixel_nearest_neighbours_exact():
    train = fake_set(50, 8, seed=5).images
    queries = torch.cat([train[[3, 17, 42]], fake_set(2, 8, seed=6).images])
    d, i = neighbours.nearest_neighbours(queries, train, k=3, chunk=7)         # chunks smaller than the set
    assert i[:3, 0].tolist() == [3, 17, 42] and (d[:3, 0] == 0).all()
    full = (queries[:, None].float() - train[None].float()).div(255).pow(2).flatten(2).mean(2).sqrt()
    ref_d, ref_i = full.topk(3, dim=1, largest=False)
    assert torch.equal(i, ref_i)
    torch.testing.assert_close(d, ref_d)
    assert (d[:, :-1] <= d[:, 1:]).all()


@pytest.mark.slow   # building torchvision's AlexNet takes a few seconds on 2 cores
def test_lpips_nearest_neighbours_match_brute_force():
    net = neighbours.lpips_model(random_backbone=True)        # plumbing only: package heads, random AlexNet
    train = fake_set(20, 32, seed=7).images
    queries = torch.cat([train[[4]], fake_set(2, 32, seed=8).images])
    d, i = neighbours.nearest_neighbours(queries, train, k=2, metric="lpips", lpips_net=net, chunk=6)
    as_float = lambda x: x.float() / 127.5 - 1
    with torch.no_grad():
        brute = torch.stack([net(as_float(q[None]).expand(len(train), -1, -1, -1), as_float(train)).flatten()
                             for q in queries])
    ref_d, ref_i = brute.topk(2, dim=1, largest=False)
    assert i[0, 0] == 4 and d[0, 0].abs() < 1e-6
    assert torch.equal(i, ref_i)
    torch.testing.assert_close(d, ref_d, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# the entry point

FIGURES = ("figure_random", "figure_interpolation", "figure_cherry", "figure_nn")
KEYS = {"fd_cls", "kid_mean", "kid_std", "kid_subset_size", "fd_cls_samples", "fd_cls_reference",
        "fd_cls_feature_run", "fd_cls_feature_weights_sha256", "fid", "fid_status", "nn_pixel_mean", "lpips_nn",
        "lpips_status", "torch_fidelity_version", "cherry_pick_rule", "samples_file", *FIGURES}


@pytest.mark.slow
def test_evaluate_generator_end_to_end(tmp_path, offline_hub):
    train, test = fake_set(60, 16, seed=10), fake_set(50, 16, seed=11)
    handle = FakeHandle(image_size=32)                  # twice the dataset size, as report A's 64 vs 32
    out = generator.evaluate_generator(handle, dataset="cifar10-jpeg", run_dir=tmp_path / "run", n_samples=40,
                               batch_size=16, nn_samples=12, feature_net=stub_feature_net(),
                               train_set=train, test_set=test, progress=False)
    assert KEYS <= set(out)
    json.dumps(out)
    for key in FIGURES:
        png = tmp_path / "run" / out[key]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 500_000
    npz = np.load(tmp_path / "run" / "samples.npz")
    assert npz["images"].shape == (generator.KEPT_SAMPLES, 3, 32, 32) and npz["images"].dtype == np.uint8   # of 40
    assert out["fid"] is None and "CIFAR-10 (JPEG stand-in)" in out["fid_status"]
    assert out["lpips_nn"] is None and "alexnet-owt-7be5be79.pth" in out["lpips_status"]
    assert out["fd_cls_reference"] == "CIFAR-10 (JPEG stand-in) test split, 50 images"
    assert out["fd_cls_samples"] == 40 and out["kid_subset_size"] == 40 and out["fd_cls"] > 0
    assert "32->16" in out["resized_for_eval"] and "discriminator" in out["cherry_pick_rule"]
    assert 0 < out["nn_pixel_mean"] < 1 and out["nn_samples"] == 12
    assert not list((tmp_path / "run").glob("*.tmp"))

    # a conditional generator without a score, on CIFAR-100: FID gated on the weights, cherry-pick by
    # the classifier's confidence
    # the trainer's RunContext supplies dataset, run_dir, device, seed
    c100 = dict(name="cifar100", display="CIFAR-100", standin=False, classes=100)
    train, test = fake_set(60, 16, seed=12, **c100), fake_set(50, 16, seed=13, **c100)
    cond = FakeHandle(image_size=16, conditional=True, with_score=False)
    ctx = SimpleNamespace(config=SimpleNamespace(dataset="cifar100", seed=3), run_dir=tmp_path / "run2",
                          data_root=None, device=torch.device("cpu"), progress=False)
    out2 = generator.evaluate_generator(cond, ctx, n_samples=30, batch_size=16, nn_samples=5,
                                feature_net=stub_feature_net(), train_set=train, test_set=test, lpips=False)
    assert out2["eval_seed"] == 3 and (tmp_path / "run2" / "samples_cherry.png").exists()
    assert out2["fid"] is None and fid.INCEPTION_FILE in out2["fid_status"]
    assert "confidence" in out2["cherry_pick_rule"] and out2["resized_for_eval"] is None
    assert out2["lpips_status"] == "not requested"
    labels = np.load(tmp_path / "run2" / "samples.npz")["labels"]
    assert labels.tolist() == [i % 10 for i in range(30)]               # balanced labels
    cond.score = None                                   # as the DDPM handle declares it
    with pytest.raises(features.MetricUnavailable):
        generator.evaluate_generator(cond, dataset="cifar100", run_dir=tmp_path / "run3", n_samples=20, batch_size=16,
                             nn_samples=5, feature_net=stub_feature_net(), train_set=train, test_set=test,
                             strict=True, progress=False)


# ---------------------------------------------------------------------------------------------
# the real FD-cls feature classifier: trained by the orchestrator as a run of its own, reused, loaded

@pytest.mark.slow
def test_feature_classifier_trains_once_and_loads(tmp_path, monkeypatch):
    for mod in ("cifar_nb.engine.augment", "cifar_nb.models.densenet", "cifar_nb.engine.train.classifier"):
        pytest.importorskip(mod, reason=f"{mod} is not written yet")
    from PIL import Image
    monkeypatch.setenv("CIFAR_NB_CACHE", str(tmp_path / "cache"))
    g = np.random.default_rng(0)
    for split, n in (("train", 70), ("test", 8)):     # 4 classes of 16x16 PNGs, more than one batch
        for c in range(4):
            d = tmp_path / "tiny" / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                px = np.clip(g.normal(60 * c + 40, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(d / f"{i}.png")
    ds = f"imagefolder:{tmp_path / 'tiny'}"
    from cifar_nb import experiments
    from cifar_nb.config import RunConfig
    from cifar_nb.engine import runs
    gen = RunConfig(experiment="g", kind="gan", model="dcgan", dataset=ds, train={"feature_steps": 3})
    fnet = runs.feature_net_for(gen, data_root=tmp_path, results_dir=tmp_path / "results", progress=False)
    assert fnet.run_hash == experiments.feature_config(ds, 3).hash
    run_dir = tmp_path / "results" / "fd-cls-features" / fnet.run_hash
    assert (run_dir / "weights.pt").exists() and (run_dir / "metrics.json").exists()
    # the digest that generator scores record is that of the weights loaded, as the feature run's env.json gives it
    recorded = json.loads((run_dir / "env.json").read_text())["weights_sha256"]["weights.pt"]
    assert fnet.weights_sha256 == recorded == hashlib.sha256((run_dir / "weights.pt").read_bytes()).hexdigest()
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    feats, logits = fnet(x)
    assert logits.shape == (5, 4) and feats.dim() == 2 and feats.shape[1] > 4
    again = runs.feature_net_for(gen, data_root=tmp_path, results_dir=tmp_path / "results", progress=False)
    assert again.run_hash == fnet.run_hash
    torch.testing.assert_close(again(x)[0], feats)                 # same weights, not retrained


def test_scoring_uses_the_feature_net_it_is_handed_and_never_trains_one(tmp_path):
    """evaluate_generator takes the feature net from its argument or the RunContext; with neither it refuses
    with a message that says where one comes from, instead of starting a run."""
    s = fake_set(4, 16, 0)
    with pytest.raises(ValueError, match="feature_net_for|load_feature_net"):
        generator.evaluate_generator(FakeHandle(), dataset="cifar10-jpeg", run_dir=tmp_path, train_set=s, test_set=s,
                             progress=False, device="cpu")
    assert not any(tmp_path.iterdir())


def test_lpips_absent_is_a_metric_unavailable_not_an_import_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_lpips(name, *a, **k):
        if name == "lpips":
            raise ImportError("No module named 'lpips'")
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_lpips)
    with pytest.raises(features.MetricUnavailable, match="needs the lpips package"):
        neighbours.lpips_model()
