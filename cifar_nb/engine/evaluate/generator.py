"""A generator's whole evaluation: samples, FD-cls + KID, FID where possible, neighbours and figures."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch_fidelity

from cifar_nb.engine import data
from cifar_nb.engine.artifacts import atomic_write_bytes
from cifar_nb.engine.evaluate.features import FeatureNet, MetricUnavailable, fd_cls
from cifar_nb.engine.evaluate.fid import FID_METRIC, FID_REFERENCE, compute_fid, is_cifar100
from cifar_nb.engine.evaluate.neighbours import lpips_model, nearest_neighbours
from cifar_nb.engine.evaluate.sampling import GeneratorHandle, generate, interpolation_grid, resize_uint8
from cifar_nb.engine.figures import image_grid, save_figure


# Samples kept as pixels in samples.npz: what the book sets beside as many real images (report.beside_real_cifar100).
# The file is committed with every run, and the repository travels to GPU machines, so it keeps no more than that.
KEPT_SAMPLES = 32


def evaluate_generator(handle: GeneratorHandle, ctx=None, *, dataset: str | None = None, run_dir=None,
                       data_root=None, device=None, seed: int | None = None, progress: bool | None = None,
                       n_samples: int = 10_000, feature_net: FeatureNet | None = None, inception_weights=None,
                       interpolation: str = "slerp", nn_samples: int = 1000, lpips: bool = True,
                       batch_size: int = 500, n_grid: int = 64, train_set=None, test_set=None,
                       strict: bool = False) -> dict:
    """Score a trained generator and write its figures into `run_dir`. Returns a flat JSON-able dict.

    Always: FD-cls + KID against the test split of `dataset` (offline-safe), pixel nearest neighbours,
    four figures (samples_random.png, interpolation.png, samples_cherry.png, nearest_neighbours.png) and
    samples.npz (the first KEPT_SAMPLES of them). When possible: FID vs CIFAR-100 test (only for a generator
    trained on CIFAR-100) and LPIPS nearest neighbours; otherwise fid / lpips_nn are None and
    fid_status / lpips_status say why. strict=True raises instead.

    Usage, at the end of a GAN or DDPM trainer (the RunContext gives dataset, run_dir, data_root,
    device, seed and progress; any of them can also be passed by keyword, and must be without ctx):

        from cifar_nb.engine.evaluate.generator import evaluate_generator
        scores = evaluate_generator(handle, ctx, n_samples=10_000, interpolation="slerp")
        return dict(final_metrics, **scores)

    FD-cls is measured in `feature_net`, by default the RunContext's: cifar_nb.engine.runs.run trains or reuses the
    feature run of the config's train["feature_steps"] before training the generator, and hands it in. Scoring
    never starts a run of its own.
    `train_set` / `test_set` are pre-loaded splits (data.ImageSet-like: .images uint8, .info); by
    default they are loaded with cifar_nb.engine.data.
    """
    if ctx is not None:
        dataset = dataset or ctx.config.dataset
        run_dir = run_dir or ctx.run_dir
        data_root = data_root if data_root is not None else ctx.data_root
        device = device or ctx.device
        seed = ctx.config.seed if seed is None else seed
        progress = ctx.progress if progress is None else progress
    if dataset is None or run_dir is None:
        raise ValueError("evaluate_generator needs a RunContext, or dataset= and run_dir=")
    if interpolation not in ("slerp", "lerp"):
        raise ValueError(f"interpolation must be 'slerp' or 'lerp', got {interpolation!r}")
    device, run_dir = torch.device(device or "cpu"), Path(run_dir)
    seed, progress = seed or 0, True if progress is None else progress
    if train_set is None or test_set is None:
        if train_set is None:
            train_set = data.load(dataset, "train", root=data_root)
        if test_set is None:
            test_set = data.load(dataset, "test", root=data_root)
    info = test_set.info
    size = int(test_set.images.shape[-1])
    if feature_net is None:
        feature_net = getattr(ctx, "feature_net", None)
    if feature_net is None:
        raise ValueError("evaluate_generator needs the FD-cls feature network: cifar_nb.engine.runs.run hands it to a "
                         "generator run's RunContext; elsewhere pass feature_net=metrics.load_feature_net("
                         "runs.run(experiments.feature_config(dataset, steps)))")

    s = generate(handle, n_samples, seed=seed, batch_size=batch_size, progress=progress)
    images = torch.cat([resize_uint8(s.images[i:i + batch_size].to(device), size).cpu()
                        for i in range(0, n_samples, batch_size)])          # at the dataset's size
    gen_size = int(s.images.shape[-1])
    out = {"eval_seed": seed, "generated_image_size": gen_size, "eval_image_size": size,
           "resized_for_eval": f"bilinear antialiased {gen_size}->{size}" if gen_size != size else None,
           "torch_fidelity_version": torch_fidelity.__version__,
           "sampling_mode": getattr(handle, "sampling_mode", "eval")}

    out.update(fd_cls(images, test_set.images.cpu(), feature_net, device, seed=seed))
    out.update(fd_cls_metric=f"FD-cls: Fréchet distance in penultimate features of {feature_net.description} "
                             "(NOT FID; comparable only within this book)",
               fd_cls_reference=f"{info.display_name} test split, {len(test_set)} images",
               fd_cls_feature_run=feature_net.run_hash, fd_cls_feature_weights_sha256=feature_net.weights_sha256)

    # FID: the reports' metric, only where it means what they meant
    out.update(fid=None, fid_samples=None, fid_reference=FID_REFERENCE, fid_metric=FID_METRIC)
    try:
        if not is_cifar100(info):
            raise MetricUnavailable(f"FID not computed: the generator was trained on {info.display_name}, and "
                                    "FID is defined here against the CIFAR-100 test set")
        out.update(compute_fid(images, data_root, device, inception_weights, test_set))
        out["fid_status"] = "ok"
    except MetricUnavailable as e:
        if strict:
            raise
        out["fid_status"] = str(e)

    # nearest training neighbours of the first nn_samples samples (random, not cherry-picked)
    queries, train = images[:nn_samples], train_set.images
    d_pix, i_pix = nearest_neighbours(queries, train, k=5, metric="pixel", device=device)
    out.update(nn_samples=len(queries), nn_pixel_mean=d_pix[:, 0].mean().item(),
               nn_pixel_metric="RMS pixel difference (pixels in [0, 1]) to the nearest training image")
    nn_idx, nn_name = i_pix, "pixel L2"
    out.update(lpips_nn=None, lpips_status="not requested")
    if lpips:
        try:
            net = lpips_model(device)
            d_lp, i_lp = nearest_neighbours(queries, train, k=5, metric="lpips", device=device, lpips_net=net)
            out.update(lpips_nn=d_lp[:, 0].mean().item(), lpips_status="ok")
            nn_idx, nn_name = i_lp, "LPIPS (AlexNet)"
        except MetricUnavailable as e:
            if strict:
                raise
            out["lpips_status"] = str(e)

    # cherry-picking by a stated rule, never by hand
    n_pick = min(n_grid, n_samples)
    if s.scores is not None:
        rank, rule = s.scores, f"top {n_pick} of {n_samples:,} samples by the discriminator's score D(x)"
    else:
        rank = feature_net.confidence(images)
        rule = f"top {n_pick} of {n_samples:,} samples by the FD-cls classifier's max softmax confidence"
    pick = rank.argsort(descending=True)[:n_pick]
    out["cherry_pick_rule"] = rule

    grid = s.images[:n_pick]
    interp, _ = interpolation_grid(handle, 8, 10, mode=interpolation, seed=seed)
    n_show = min(8, len(queries))
    panel = torch.cat([queries[:n_show, None], train[nn_idx[:n_show].to(train.device)].cpu()], 1).flatten(0, 1)
    interp_title = {"slerp": "Spherical (SLERP)", "lerp": "Linear"}[interpolation] + " latent interpolation"
    if handle.conditional:
        interp_title += ", conditioned on the nearer endpoint's label"
    figures = {
        "figure_random": ("samples_random.png", image_grid(
            grid, nrow=8, title=f"Random samples, not cherry-picked (first {n_pick}, seed {seed})")),
        "figure_interpolation": ("interpolation.png", image_grid(interp.flatten(0, 1), nrow=10,
                                                               title=interp_title)),
        "figure_cherry": ("samples_cherry.png", image_grid(s.images[pick], nrow=8, title="Cherry-picked: " + rule)),
        "figure_nn": ("nearest_neighbours.png", image_grid(
            panel, nrow=panel.shape[0] // n_show,
            title=f"Left: random sample; right: its 5 nearest training images ({nn_name})")),
    }
    for key, (name, fig) in figures.items():
        save_figure(fig, run_dir / name)
        out[key] = name
    buf = io.BytesIO()
    n_kept = min(KEPT_SAMPLES, n_pick)
    np.savez_compressed(buf, images=grid[:n_kept].numpy(),
                        labels=(s.labels[:n_kept].numpy() if s.labels is not None else np.zeros(0, np.int64)))
    atomic_write_bytes(run_dir / "samples.npz", buf.getvalue())
    out["samples_file"] = "samples.npz"
    return out
