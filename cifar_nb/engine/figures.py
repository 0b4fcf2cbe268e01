"""Image figures a run writes as artifacts (sample grids, interpolations, neighbours), and the one PNG writer.

Built with matplotlib's object-oriented API (matplotlib.figure.Figure, rendered to PNG by Agg) and never
pyplot, so trainers in headless processes keep no global figure state and need no plt.close. The book's own
plots (training curves, claims) are in cifar_nb.book.plots.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from cifar_nb.engine.artifacts import atomic_write_bytes


def _as_uint8(images) -> torch.Tensor:
    """uint8 [n, C, H, W] from uint8 or float-in-[-1, 1] images (tensor or array)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).detach().cpu()
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images [n, 1|3, H, W], got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def image_grid(images, nrow: int = 8, title: str | None = None, pad: int = 2, scale: float = 1.0) -> Figure:
    """A grid of images, `nrow` per row, drawn pixel for pixel (`scale` screen pixels per image pixel)."""
    grid = make_grid(_as_uint8(images), nrow=nrow, padding=pad, pad_value=255).permute(1, 2, 0).numpy()
    dpi, fontsize = 100, 8
    w, h = grid.shape[1] * scale / dpi, grid.shape[0] * scale / dpi            # inches
    lines = textwrap.wrap(title, max(20, int(w * 72 / (0.55 * fontsize)))) if title else []
    top = 0.16 * len(lines) + (0.08 if lines else 0)                            # inches for the title
    fig = Figure(figsize=(w, h + top), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, h / (h + top)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if lines:
        fig.text(0.5, 1 - 0.04 / (h + top), "\n".join(lines), ha="center", va="top", fontsize=fontsize)
    return fig


def side_by_side(left, right, left_title: str, right_title: str, nrow: int = 8, scale: float = 3.0) -> Figure:
    """Two image grids of the same size next to each other, pixel for pixel at `scale` (32x32 images at 3x are
    legible on a page), each with its title above it in a readable font."""
    grids = [make_grid(_as_uint8(x), nrow=nrow, padding=2, pad_value=255).permute(1, 2, 0).numpy()
             for x in (left, right)]
    h = max(g.shape[0] for g in grids) * scale / 100
    w = sum(g.shape[1] for g in grids) * scale / 100
    gap, top = 0.3, 0.45
    fig = Figure(figsize=(w + gap, h + top), dpi=100)
    x0 = 0.0
    for g, title in zip(grids, (left_title, right_title)):
        gw = g.shape[1] * scale / 100
        ax = fig.add_axes((x0 / (w + gap), 0, gw / (w + gap), h / (h + top)))
        ax.imshow(g, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(title, fontsize=11, pad=6)
        x0 += gw + gap
    return fig


def save_figure(fig: Figure, path, dpi: int | None = None) -> Path:
    """Write `fig` as PNG atomically (a temporary file renamed into place)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    atomic_write_bytes(path, buf.getvalue())
    return path
