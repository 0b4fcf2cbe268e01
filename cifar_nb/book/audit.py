"""The audit's rules: how a report's claim is set against our runs, and the verdict it gets.

Verdicts (book/methods.md says the same in prose; keep the two in step):
  "claim breaks the report's rules"  the report's own parameter or step count is over its budget.
  "unmeasurable here"                our runs are not on the report's dataset, or not at its step count,
                                     or the metric cannot be computed here (FID without the Inception
                                     weights and the CIFAR-100 test set), or nothing has been run yet.
  "reproduced"                       |claimed - our mean| <= max(2 * our sample std over seeds, TOLERANCE).
  "not reproduced"                   otherwise.

Nothing here displays anything: cifar_nb.book.report turns these rows into the book's tables.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from pathlib import Path

from cifar_nb import budget, experiments, models
from cifar_nb.config import PROJECT_ROOT, RunConfig, dataset_shape
from cifar_nb.engine import artifacts, data
from cifar_nb.engine.artifacts import RunResult

# Agreement needed for "reproduced", besides 2 sample std of our seeds. Fractions for accuracies.
TOLERANCE = {"acc": ("abs", 0.02), "loss": ("rel", 0.10), "fid": ("rel", 0.10), "lpips": ("abs", 0.02)}

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
UNMEASURABLE = "unmeasurable here"
BREAKS_RULES = "claim breaks the report's rules"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, UNMEASURABLE, BREAKS_RULES)


def project_root() -> Path:
    return PROJECT_ROOT


def default_results_dir() -> Path:
    """$CIFAR_NB_RESULTS, else the project's results/ (wherever the notebook runs from)."""
    if os.environ.get("CIFAR_NB_RESULTS"):
        return Path(os.environ["CIFAR_NB_RESULTS"])
    root = project_root()
    return root / "results" if (root / "pyproject.toml").exists() else Path("results")


# ---------------------------------------------------------------------------------------------
# formatting numbers

def metric_family(metric: str) -> str:
    m = metric.lower()
    for fam in ("acc", "loss", "fid", "lpips"):
        if fam in m:
            return fam
    return "other"


def fmt(metric: str, v, std=None) -> str:
    if v is None:
        return "—"
    if metric.lower().startswith("kid_"):
        return fmt_kid(v, std)                       # raw, four significant figures (see KID_LABEL)
    if metric_family(metric) == "acc":
        s = f"{100 * v:.2f} %"
        return s if std is None else f"{100 * v:.2f} ± {100 * std:.2f} %"
    digits = 3 if metric_family(metric) in ("loss", "lpips") or abs(v) < 10 else 2
    digits = 4 if abs(v) < 0.1 and metric_family(metric) == "other" else digits
    if std is None and f"{v:.3f}" != f"{v:.{digits}f}0" and digits < 3:
        digits = 3                                   # keep a claim's third decimal (FID 61.047)
    return f"{v:.{digits}f}" if std is None else f"{v:.{digits}f} ± {std:.{digits}f}"


def fmt_int(n) -> str:
    return "—" if n is None else f"{int(n):,}"


# KID as metrics.json stores it (kid_mean, kid_std): torch-fidelity's raw value, in the penultimate features
# of the FD-cls classifier, never multiplied by 10^3 as Inception-feature KID is usually printed. Its cubic
# kernel makes it span orders of magnitude between runs (a near-noise DDPM preview scores thousands, a
# DCGAN a few units), and it has no common scale with Inception KID. Every table says so in its label.
KID_LABEL = "KID, raw (substitute features, not ×10³)"
KID_SCALE_NOTE = ("KID is torch-fidelity's raw value in the FD-cls classifier's features, not multiplied "
                  "by 10³ and not on the scale of Inception-feature KID.")

# FD-cls and KID compare only within one feature network (the fd_cls_feature_run a score records)
NETWORKS_NOTE = ("Rows scored in different FD-cls feature networks (last column: the feature run) do not compare "
                 "with each other.")


def network_column(heads: list[str], rows: list[list]) -> tuple[list[str], list[list], bool]:
    """For tables whose rows end with the FD-cls feature run they were scored in ("—": none): that last column is
    kept, as "FD-cls network", only where the rows span more than one network. (heads, rows, whether kept)."""
    kept = len({row[-1] for row in rows if row[-1] != "—"}) > 1
    return (heads + ["FD-cls network"], rows, True) if kept else (heads, [row[:-1] for row in rows], False)


def fmt_kid(v, std=None) -> str:
    """A raw KID (and its std), four significant figures, with thousands separators."""
    if v is None:
        return "—"
    digits = max(0, 3 - math.floor(math.log10(abs(v)))) if v else 3
    return f"{v:,.{digits}f}" if std is None else f"{v:,.{digits}f} ± {std:,.{digits}f}"


METRIC_NAMES = {"test_acc": "test accuracy", "train_acc": "train accuracy", "train_loss": "train loss",
                "stream_acc": "train accuracy (training mode)", "stream_loss": "train loss (training mode)",
                "test_loss": "test loss", "best_test_acc": "best test accuracy",
                "best_train_acc": "best train accuracy", "fid": "FID (CIFAR-100 test)",
                "lpips_nn": "LPIPS to nearest training image", "fd_cls": "FD-cls (substitute, not FID)",
                "kid_mean": KID_LABEL, "nn_pixel_mean": "RMS pixel distance to nearest training image"}


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key.replace("_", " "))


# ---------------------------------------------------------------------------------------------
# datasets, budgets, verdicts

def dataset_label(name: str, data_root=None) -> tuple[str, bool]:
    """(display name, is a stand-in for the report's data). Never reads the dataset itself."""
    try:
        info = data.describe(name, data_root)
        return info.display_name, bool(info.standin)
    except Exception:
        nice = {"cifar100": "CIFAR-100", "cifar10": "CIFAR-10", "cifar10-jpeg": "CIFAR-10 (JPEG stand-in)",
                "addnist": "AddNIST (regenerated)"}
        return nice.get(name, name), name not in ("cifar100", "addnist")


def dataset_note(used: str, report_dataset: str, data_root=None) -> str:
    label, _ = dataset_label(used, data_root)
    if used == report_dataset:
        return f"{label} (the report's own dataset)"
    want, _ = dataset_label(report_dataset, data_root)
    return f"{label}: **stand-in, not {want}**"


def tolerance(metric: str, claimed: float) -> float:
    how, tol = TOLERANCE.get(metric_family(metric), ("rel", 0.10))
    return tol if how == "abs" else tol * abs(claimed)


def rules_broken(exp: experiments.Experiment) -> str:
    """Why a report's own claim breaks its rules, or ''."""
    if exp.out_of_budget or exp.claimed_params is None:
        return ""
    b = exp.budget
    if exp.claimed_params > b.max_params:
        return (f"the report's own count, {exp.claimed_params:,} parameters, is "
                f"{exp.claimed_params - b.max_params:,} over the {b.max_params:,} {b.name} budget")
    return ""


# What a sampling mode's score replaces in a run's metrics: everything computed from the generated images.
MODE_SCORES = ("fd_cls", "kid_mean", "kid_std", "fid", "lpips_nn", "nn_pixel_mean", "sampling_mode")


def scored_in_mode(result: RunResult, mode: str) -> RunResult:
    """`result` with its generated-image scores as `python -m cifar_nb score --sampling-mode <mode>` measured them
    from the same weights and sample count; unchanged when it was scored in `mode` at training time, when that
    score does not exist yet, or when it is not a generator."""
    m = result.metrics
    if "sampling_mode" not in m or m["sampling_mode"] == mode:
        return result
    n = m.get("fd_cls_samples") or result.config.train.get("fid_samples", 10_000)
    path = artifacts.scored_dir(result.run_dir, n, mode) / "scores.json"
    if not path.exists():
        return result
    scores = json.loads(path.read_text())
    return dataclasses.replace(result, metrics={**m, **{k: scores.get(k) for k in MODE_SCORES}})


def in_report_mode(exp: experiments.Experiment, results: list[RunResult]) -> list[RunResult]:
    """The runs as the report's claims are read: each generator in the sampling mode the report most likely
    used (Experiment.sampling_mode) wherever that score exists."""
    return [scored_in_mode(r, exp.sampling_mode) for r in results]


def modes_used(results: list[RunResult]) -> str:
    """"train", "eval", or "eval, train" ... : the sampling modes behind a set of generator scores."""
    return ", ".join(sorted({str(r.metrics.get("sampling_mode", "eval")) for r in results})) or "—"


def claim_stats(exp: experiments.Experiment, claim: experiments.Claim, results: list[RunResult]) -> dict:
    """Our mean ± std for a claim's metric, in the report's sampling mode (artifacts.aggregate's dict)."""
    return artifacts.aggregate(in_report_mode(exp, results), claim.metric)


def verdict(exp: experiments.Experiment, claim: experiments.Claim, results: list[RunResult],
            data_root=None) -> tuple[str, str]:
    """(verdict, why) for one claim against our runs of the same experiment (one config, many seeds), generators
    read in the report's sampling mode where it has been scored (in_report_mode)."""
    results = in_report_mode(exp, results)
    if not results:
        return UNMEASURABLE, "not run yet: no finished runs in results/"
    cfg = results[0].config
    if cfg.dataset != exp.config.dataset:
        return UNMEASURABLE, f"our runs use {dataset_label(cfg.dataset, data_root)[0]}, not the report's dataset"
    if cfg.steps != exp.config.steps:
        return UNMEASURABLE, f"our runs have {cfg.steps:,} of the report's {exp.config.steps:,} steps"
    if claim.metric == "fid" and not any(r.metrics.get("fid") is not None for r in results):
        return UNMEASURABLE, ("FID not measured here: it needs the Inception weights and the CIFAR-100 test "
                              "set; FD-cls is on another scale and cannot stand in for it")
    stats = artifacts.aggregate(results, claim.metric)
    if stats["mean"] is None:
        return UNMEASURABLE, f"our runs do not record {metric_name(claim.metric)}"
    allowed = max(2 * (stats["std"] or 0.0), tolerance(claim.metric, claim.value))
    diff = stats["mean"] - claim.value
    if abs(diff) <= allowed:
        return REPRODUCED, f"within {fmt(claim.metric, allowed)} of ours"
    side = "higher" if diff > 0 else "lower"
    return NOT_REPRODUCED, f"ours is {fmt(claim.metric, abs(diff))} {side} (allowed {fmt(claim.metric, allowed)})"


def n_params(name: str, results: list[RunResult] | None = None, dataset: str | None = None) -> int:
    """Our parameter count: from the runs when there are any, else by building the network."""
    for r in results or []:
        if r.metrics.get("params") is not None:
            return int(r.metrics["params"])
    exp = experiments.get(name)
    cfg = exp.config if dataset is None else exp.config.replace(dataset=dataset)
    return budget.count_params(models.build_for_config(cfg, **dataset_shape(cfg.dataset)))


# ---------------------------------------------------------------------------------------------
# the leaderboard (summary chapter)

def runs_on_disk(name: str, results_dir=None) -> list[list[RunResult]]:
    """Finished runs of an experiment in results/, grouped by config (seeds of one config together)."""
    base = Path(results_dir or default_results_dir()) / name
    groups: dict[str, list[RunResult]] = {}
    for cfg_file in sorted(base.glob("*/config.json")):
        try:
            cfg = RunConfig.from_dict(json.loads(cfg_file.read_text()))
        except (ValueError, TypeError, json.JSONDecodeError):
            continue
        try:
            r = artifacts.load_complete(cfg, results_dir or default_results_dir())
        except artifacts.RunCorrupt as e:     # the book shows what it can trust and says what it skipped
            warnings.warn(str(e))
            continue
        if r is not None:
            groups.setdefault(cfg.replace(seed=0).hash, []).append(r)
    return [sorted(g, key=lambda r: r.config.seed) for g in groups.values()]


def best_group(name: str, results_dir=None) -> list[RunResult]:
    """The most faithful finished runs: the report's dataset first, then its step count, then its recipe as
    registered (not an ablation's variant of it, however many seeds that has), then more seeds."""
    exp = experiments.get(name)
    groups = runs_on_disk(name, results_dir)
    if not groups:
        return []
    return max(groups, key=lambda g: (g[0].config.dataset == exp.config.dataset,
                                      g[0].config.steps == exp.config.steps,
                                      g[0].config.replace(seed=0) == exp.make_config(dataset=g[0].config.dataset,
                                                                                     seed=0),
                                      g[0].config.steps, len(g), max(r.env.get("date", "") for r in g)))


def leaderboard_rows(results_dir=None) -> list[dict]:
    rows = []
    for n, exp in experiments.REGISTRY.items():
        rs = best_group(n, results_dir)
        claim = exp.claims[0] if exp.claims else None
        broken = rules_broken(exp)
        if claim is None:
            v, why = UNMEASURABLE, ("our own model: no report, so no claim to check" if exp.report == experiments.OURS
                                    else "the report makes no numeric claim")
        else:
            v, why = verdict(exp, claim, rs)
        if broken:
            v, why = BREAKS_RULES, broken + (f"; {claim.metric}: {v}, {why}" if claim else "")
        st = claim_stats(exp, claim, rs) if claim else {"mean": None, "std": None, "n": 0}
        rows.append(dict(
            experiment=n, report=exp.report, kind=exp.kind, title=exp.title,
            params=n_params(n, rs) if rs else None, claimed_params=exp.claimed_params,
            max_params=exp.budget.max_params, steps=rs[0].config.steps if rs else None,
            report_steps=exp.config.steps, dataset=rs[0].config.dataset if rs else None,
            report_dataset=exp.config.dataset, metric=claim.metric if claim else None,
            claimed=claim.value if claim else None, claimed_std=claim.std if claim else None,
            ours=st["mean"], ours_std=st["std"], seeds=st["n"], verdict=v, why=why,
            out_of_budget=exp.out_of_budget))
    return rows
