"""The book's plots: training curves per seed, claimed against measured.

Built with matplotlib's object-oriented API (matplotlib.figure.Figure) and never pyplot, so nothing keeps
global figure state. In a notebook, `display(fig)` (or leaving `fig` last in a cell) shows one; image grids
and the PNG writer are in cifar_nb.engine.figures.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def _histories(runs) -> list[list[dict]]:
    """RunResults (with .history) or plain lists of history rows -> lists of rows."""
    return [r.history if hasattr(r, "history") else list(r) for r in runs]


def _seed_band(ax, hists, key: str, x: str, color: str, label: str) -> bool:
    """One thin line per seed plus the mean ± std (ddof=1) band at the steps every seed logged."""
    curves = []
    for h in hists:
        pts = {r[x]: float(r[key]) for r in h if r.get(key) is not None and r.get(x) is not None}
        if pts:
            xs = sorted(pts)
            ax.plot(xs, [pts[s] for s in xs], color=color, lw=0.8, alpha=0.35)
            curves.append(pts)
    common = sorted(set.intersection(*(set(p) for p in curves))) if curves else []
    if not common:
        return False
    ys = np.array([[p[s] for s in common] for p in curves])
    mean = ys.mean(0)
    label = f"{label} (mean of {len(curves)} seed{'s' if len(curves) > 1 else ''}"
    if len(curves) > 1:
        std = ys.std(0, ddof=1)
        ax.fill_between(common, mean - std, mean + std, color=color, alpha=0.2, lw=0)
        label += " ± std"
    ax.plot(common, mean, color=color, lw=1.8, label=label + ")")
    return True


def _finish_axes(fig, ax, x: str, ylabel: str | None, title: str | None) -> Figure:
    ax.set_xlabel(x)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_history(runs, keys=("train_acc", "test_acc"), x: str = "step", title: str | None = None,
                 ylabel: str | None = None, ax=None) -> Figure:
    """Curves of `keys` against `x`: one thin line per seed, and the mean ± std (ddof=1) band across
    seeds at the steps every seed logged. `runs`: a list of RunResult or of history lists."""
    hists = _histories(runs)
    fig = ax.figure if ax is not None else Figure(figsize=(6, 3.6), dpi=100)
    ax = ax if ax is not None else fig.add_subplot()
    for c, key in enumerate(keys):
        _seed_band(ax, hists, key, x, f"C{c}", key)
    return _finish_axes(fig, ax, x, ylabel, title)


def plot_comparison(groups: dict, key: str = "loss", x: str = "step", title: str | None = None,
                    ylabel: str | None = None, ax=None) -> Figure:
    """One metric for several experiments on one axis, a colour each: `groups` maps a label to the runs
    (RunResults or history lists) of one experiment. Used where a report compares arms of an ablation."""
    if not groups:
        raise ValueError("plot_comparison needs at least one group of runs")
    fig = ax.figure if ax is not None else Figure(figsize=(6, 3.6), dpi=100)
    ax = ax if ax is not None else fig.add_subplot()
    for c, (label, runs) in enumerate(groups.items()):
        _seed_band(ax, _histories(runs), key, x, f"C{c}", label)
    return _finish_axes(fig, ax, x, ylabel, title)


def plot_claims(rows: list[dict], title: str | None = None, xlabel: str | None = None) -> Figure:
    """Claimed vs measured, one line per row: rows are dicts with label, claim, claim_std (optional), ours,
    ours_std (optional), and where known claim_dataset / ours_dataset / ours_steps / report_steps. Error bars are
    the stated std (claim) and our std across seeds. A measurement on another dataset or at another step count
    than the report's is drawn hollow and labelled not comparable; the legend sits below the axes, off the data."""
    fig = Figure(figsize=(6.4, 0.55 * len(rows) + 1.9), dpi=100)
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    for y, r in zip(ys, rows):
        if r.get("claim") is not None:
            ax.errorbar(r["claim"], y + 0.12, xerr=r.get("claim_std"), fmt="o", color="C0", capsize=3,
                        label=f"report, {r['claim_dataset']}" if r.get("claim_dataset") else "claimed (report)")
        if r.get("ours") is not None:
            same = r.get("ours_dataset") in (None, r.get("claim_dataset")) and \
                r.get("ours_steps") in (None, r.get("report_steps"))
            what = []
            if r.get("ours_dataset") and r.get("ours_dataset") != r.get("claim_dataset"):
                what.append(r["ours_dataset"])
            if r.get("ours_steps") and r.get("report_steps") and r["ours_steps"] != r["report_steps"]:
                what.append(f"{r['ours_steps']:,} steps")
            label = "ours (mean ± std over seeds)" if same else f"ours, {', '.join(what)}: not comparable"
            ax.errorbar(r["ours"], y - 0.12, xerr=r.get("ours_std"), fmt="s", color="C1", capsize=3,
                        mfc="C1" if same else "white", label=label)
    ax.set_yticks(ys, [r["label"] for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    if uniq:
        fig.subplots_adjust(bottom=min(0.6, (0.35 + 0.22 * len(uniq)) / fig.get_figheight()))
        fig.legend(uniq.values(), uniq.keys(), fontsize=8, loc="lower center", ncol=1, frameon=False)
    return fig
