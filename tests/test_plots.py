"""Plot helpers produce PNG files, atomically, from the inputs trainers and notebooks pass."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cifar_nb.book import plots
from cifar_nb.engine import figures

PNG = b"\x89PNG\r\n\x1a\n"


def test_image_grid_accepts_uint8_float_and_grey(tmp_path):
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=g)
    fl = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    grey = np.zeros((4, 1, 8, 8), np.uint8)
    for i, (imgs, title) in enumerate([(u8, "uint8 " * 30), (fl, None), (grey, "grey")]):
        fig = figures.image_grid(imgs, nrow=4, title=title)
        path = figures.save_figure(fig, tmp_path / f"grid{i}.png")
        assert path.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid0.png", "grid1.png", "grid2.png"]  # no temp files
    with pytest.raises(ValueError, match="expected images"):
        figures.image_grid(torch.zeros(2, 5, 8, 8))


def test_image_grid_draws_the_pixels(tmp_path):
    # one red and one blue image: the saved PNG must contain both colours, pixel-exact
    from PIL import Image
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    x[0, 0], x[1, 2] = 255, 255
    path = figures.save_figure(figures.image_grid(x, nrow=2, pad=1, scale=4), tmp_path / "rb.png")
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    assert ((rgb == [255, 0, 0]).all(1)).sum() >= 4 * 4 * 16 * 0.9
    assert ((rgb == [0, 0, 255]).all(1)).sum() >= 4 * 4 * 16 * 0.9


def test_plot_history_per_seed_and_band(tmp_path):
    hists = [[{"step": s, "train_acc": 0.1 + s / 1000 + 0.01 * seed, "test_acc": None if s == 0 else 0.1}
              for s in range(0, 500, 100)] for seed in range(3)]
    fig = plots.plot_history(hists, title="curves")
    ax = fig.axes[0]
    # 3 seed lines + 1 mean line per key
    assert len(ax.lines) == 8
    labels = ax.get_legend_handles_labels()[1]
    assert any("train_acc (mean of 3 seeds ± std)" in lab for lab in labels)
    assert len(ax.collections) == 2                         # two std bands
    # RunResult-like objects work too, and one seed gives no band
    fig1 = plots.plot_history([SimpleNamespace(history=hists[0])], keys=("train_acc",))
    assert len(fig1.axes[0].collections) == 0
    assert figures.save_figure(fig, tmp_path / "h.png").read_bytes()[:8] == PNG


def test_plot_comparison_colours_each_arm(tmp_path):
    def hists(offset):
        return [[{"step": s, "loss": 1.0 / (s + 1) + offset + 0.01 * seed} for s in range(0, 50, 10)]
                for seed in range(2)]
    fig = plots.plot_comparison({"sigmoid": hists(0.0), "linear": hists(0.5)}, key="loss", title="arms")
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["sigmoid (mean of 2 seeds ± std)", "linear (mean of 2 seeds ± std)"]
    mean_lines = [ln for ln in ax.lines if ln.get_linewidth() > 1.5]
    assert len(mean_lines) == 2 and mean_lines[0].get_color() != mean_lines[1].get_color()
    # the linear arm's mean sits 0.5 above the sigmoid arm's at every step
    assert np.allclose(mean_lines[1].get_ydata() - mean_lines[0].get_ydata(), 0.5)
    assert figures.save_figure(fig, tmp_path / "c.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="at least one group"):
        plots.plot_comparison({})


def test_plot_claims(tmp_path):
    rows = [dict(label="test_acc", claim=0.631, claim_std=0.016, ours=0.60, ours_std=0.01),
            dict(label="train_loss", claim=1.144, ours=1.2),
            dict(label="fid", claim=61.0, ours=None)]
    fig = plots.plot_claims(rows, title="report C")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["test_acc", "train_loss", "fid"]
    assert set(fig.axes[0].get_legend_handles_labels()[1]) == {"claimed (report)", "ours (mean ± std over seeds)"}
    assert figures.save_figure(fig, tmp_path / "c.png").read_bytes()[:8] == PNG


def test_plot_claims_marks_a_stand_in_measurement_as_not_comparable():
    rows = [dict(label="A: test", claim=50.0, ours=68.0, claim_dataset="CIFAR-100",
                 ours_dataset="CIFAR-10 (JPEG stand-in)", ours_steps=10_000, report_steps=10_000),
            dict(label="E: test", claim=94.1, ours=93.0, claim_dataset="AddNIST", ours_dataset="AddNIST",
                 ours_steps=60, report_steps=10_000)]
    fig = plots.plot_claims(rows)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "report, CIFAR-100" in labels and "report, AddNIST" in labels
    assert "ours, CIFAR-10 (JPEG stand-in): not comparable" in labels and "ours, 60 steps: not comparable" in labels
    assert not fig.axes[0].get_legend()               # the legend is the figure's, below the axes, off the data
    hollow = [c for c in fig.axes[0].containers if c[0].get_markerfacecolor() == "white"]
    assert len(hollow) == 2


def test_side_by_side_grids_are_pixel_for_pixel_at_their_scale():
    a = torch.zeros(16, 3, 32, 32, dtype=torch.uint8)
    b = torch.full((16, 3, 32, 32), 255, dtype=torch.uint8)
    fig = figures.side_by_side(a, b, "ours", "real", nrow=4, scale=3.0)
    assert [ax.get_title() for ax in fig.axes] == ["ours", "real"]
    grid_px = 4 * 34 + 2                                   # make_grid: 4 images of 32 + padding 2
    assert fig.get_figwidth() * 100 == pytest.approx(2 * grid_px * 3 + 30)
