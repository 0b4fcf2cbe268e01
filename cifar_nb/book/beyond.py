"""The "Beyond the reports" chapter's tables: our own models beside every report on the same data, budget and
protocol, and the ablations of our recipe. Every cell comes from finished runs in results/.

    side_by_side("classifier", "addnist")            # every full-budget classifier run on AddNIST, ours included
    ablation_table("ours-classifier", 1_000, "cifar10-jpeg")   # ablations.py's variants at a reduced budget
    weight_average_table("ours-generator", "cifar10-jpeg")     # G's EMA against its live weights, full budget
"""
from __future__ import annotations

import json
import shlex

from cifar_nb import ablations, budget, experiments
from cifar_nb.book.audit import (KID_SCALE_NOTE, NETWORKS_NOTE, dataset_label, default_results_dir, fmt, fmt_kid,
                                 in_report_mode, metric_name, modes_used, n_params, network_column, runs_on_disk)
from cifar_nb.book.display import Table
from cifar_nb.engine import artifacts
from cifar_nb.engine.artifacts import RunResult

# the first row of a table of an earlier recipe's variants
EARLIER = "earlier recipe"

# The headline numbers per run kind: accuracy for classifiers; FD-cls and KID (substitute features) for GANs.
HEADLINE = {"classifier": ("test_acc", "best_test_acc", "train_acc"), "gan": ("fd_cls", "kid_mean")}


# The generator's variants this chapter shows at full budget (ablations.py labels): the two suspects of the recipe's
# collapse, the recipe without DiffAugment, and the first design.
GAN_VARIANTS_AT_FULL_BUDGET = (ablations.NO_DIFFAUGMENT, "D at half the learning rate",
                               "labels 1/0 (no label smoothing)", ablations.FIRST_GAN_DESIGN)
# those trained with the BCE loss, whose D outputs are probabilities pulled towards the labels; the first design's
# hinge-loss D scores images on another scale, so the plots of D's outputs leave it out
GAN_VARIANTS_WITH_SIGMOID_D = tuple(v for v in GAN_VARIANTS_AT_FULL_BUDGET if v != ablations.FIRST_GAN_DESIGN)


def full_budget_runs(name: str, dataset: str, results_dir=None) -> list[RunResult]:
    """The finished runs of `name` at its recipe's full budget on `dataset` (one config, every seed found)."""
    exp = experiments.get(name)
    groups = [g for g in runs_on_disk(name, results_dir or default_results_dir())
              if g[0].config.dataset == dataset and g[0].config.steps == exp.config.steps
              and g[0].config.replace(seed=0) == exp.make_config(dataset=dataset, seed=0)]
    return max(groups, key=len) if groups else []


def _cell(metric: str, rs: list[RunResult]) -> str:
    st = artifacts.aggregate(rs, metric)
    if st["mean"] is None:
        return "—"
    return fmt_kid(st["mean"], st["std"]) if metric.startswith("kid") else fmt(metric, st["mean"], st["std"])


def side_by_side(kind: str, dataset: str, results_dir=None) -> Table:
    """Every experiment of `kind` (the reports' and ours) that has full-budget runs on `dataset`, with its
    parameters, steps, seeds, headline scores (mean ± sample std over seeds) and mean wall time per run; our own
    models are listed even before their runs exist, so a reader sees what is still to come."""
    rows = []
    for name, exp in experiments.REGISTRY.items():
        if exp.kind != kind or exp.out_of_budget:
            continue
        rs = full_budget_runs(name, dataset, results_dir)
        ours = exp.report == experiments.OURS
        if not rs and not ours:
            continue
        who = "ours" if ours else f"report {exp.report}"
        if not rs:
            rows.append([name, who, f"{n_params(name, None, dataset):,}", f"{exp.config.steps:,}",
                         "not run yet at full budget"]
                        + ["—"] * (len(HEADLINE[kind]) + 2 + (kind == "gan")))
            continue
        params = rs[0].metrics.get("params")
        # FD-cls and KID average only within one feature network: runs scored in two get a row per network
        for net, in_net in artifacts.by_feature_net(rs).items():
            wall = sum(float(r.env.get("wall_time_s") or 0) for r in in_net) / len(in_net)
            # a GAN is shown as it was scored in training (eval mode), and again in its report's sampling mode
            # where that differs and has been scored, so that ours is set against the better of the two
            variants = [in_net]
            if kind == "gan" and modes_used(in_report_mode(exp, in_net)) != modes_used(in_net):
                variants.append(in_report_mode(exp, in_net))
            for v in variants:
                mode = [modes_used(v)] if kind == "gan" else []
                rows.append([name, who, f"{params:,}" if params else "—", f"{rs[0].config.steps:,}",
                             ", ".join(str(r.config.seed) for r in v)] + mode
                            + [_cell(m, v) for m in HEADLINE[kind]] + [f"{wall / 3600:.2f} h", net or "—"])
    label = dataset_label(dataset)[0]
    heads = ["experiment", "whose recipe", "parameters", "steps", "seeds"] + \
            (["sampling mode"] if kind == "gan" else []) + [metric_name(m) for m in HEADLINE[kind]] + \
            ["wall time per run"]
    heads, rows, networks = network_column(heads, rows)
    limit = budget.budget_for(kind)
    caption = (f"Every {kind} recipe with full-budget runs on {label}, ours beside the reports': the same data, "
               f"the same budget (at most {limit.max_params:,} parameters and {limit.max_steps:,} steps) and the "
               "same evaluation. Mean ± sample std over seeds; wall time as recorded on the machine each run "
               "trained on (see the methods appendix).")
    if kind == "gan":
        caption += (" A report's GAN is shown in eval mode (G's BatchNorm on running statistics, as training scored "
                    "it) and, once scored, again in the mode the report most likely sampled in (train: each batch's "
                    "statistics). " + KID_SCALE_NOTE)
    if networks:
        caption += " " + NETWORKS_NOTE
    return Table(heads, rows, caption=caption)


# The targets issue 16 set our models, each against what it is measured on. A generator's target is relative:
# at most `factor` times report C's DCGAN's mean full-budget FD-cls on the same data (eval mode, as ours is scored).
TARGETS = [
    ("ours-classifier", "addnist", "test_acc", ">=", 0.96, "report E claims 94.1 % on AddNIST"),
    ("ours-classifier", "cifar10-jpeg", "test_acc", ">=", 0.90, "above every report recipe on the stand-in"),
    ("ours-generator", "cifar10-jpeg", "fd_cls", "<=", ("C-generator", 0.70), "at most 70 % of report C's FD-cls"),
]


def targets_table(results_dir=None) -> Table:
    """Each target beside the full-budget runs that test it: measured mean ± std over seeds, and met or not. A
    relative target compares FD-cls within one feature network: a row per network our runs were scored in."""
    rows = []
    for name, dataset, metric, op, goal, why in TARGETS:
        ours = artifacts.by_feature_net(full_budget_runs(name, dataset, results_dir)) or {None: []}
        for net, rs in ours.items():
            st = artifacts.aggregate(rs, metric)
            if isinstance(goal, tuple):             # relative to another recipe's full-budget runs, same network
                other, factor = goal
                refs = artifacts.by_feature_net(full_budget_runs(other, dataset, results_dir)).get(net, [])
                ref = artifacts.aggregate(refs, metric)["mean"]
                aim = None if ref is None else factor * ref
                wanted = f"no {other} run in this network yet" if ref is None else \
                    f"{op} {fmt(metric, aim)} ({factor:.0%} of {other}'s {fmt(metric, ref)})"
            else:
                aim, wanted = goal, f"{op} {fmt(metric, goal)}"
            if st["mean"] is None or aim is None:
                verdict = "not measured yet"
            else:
                met = st["mean"] >= aim if op == ">=" else st["mean"] <= aim
                verdict = "met" if met else "NOT met"
            rows.append([name, dataset_label(dataset)[0], metric_name(metric), wanted,
                         "—" if st["mean"] is None else fmt(metric, st["mean"], st["std"]),
                         ", ".join(str(r.config.seed) for r in rs) or "—", verdict, why, net or "—"])
    heads = ["experiment", "data", "metric", "target", "measured (full budget)", "seeds", "verdict", "why this target"]
    heads, rows, networks = network_column(heads, rows)
    caption = ("The targets we set our own models before training them, against their full-budget runs (mean ± "
               "sample std over the seeds listed). A target is met by the mean, not by the best seed.")
    if networks:
        caption += " A relative target is measured within one FD-cls feature network. " + NETWORKS_NOTE
    return Table(heads, rows, caption=caption)


def ablation_runs(name: str, steps: int, dataset: str, seeds=(0,), results_dir=None,
                  only=None, base: str | None = None) -> dict[str, list[RunResult]]:
    """variant -> its finished runs at that budget, for every variant of ablations.ABLATIONS[name] that means
    something on the dataset (or those labelled in `only`, the full recipe always); `base`: the variants of an
    earlier recipe of ours (ablations.EARLIER_RECIPES), the full recipe then being that one."""
    root = results_dir or default_results_dir()
    out = {}
    for label, changes in ablations.variants(name, dataset, only, base):
        found = [artifacts.load_complete(ablations.config(name, changes, steps, dataset, s, base), root)
                 for s in seeds]
        out[label] = [r for r in found if r is not None]
    return out


def ablation_table(name: str, steps: int, dataset: str, seeds=(0,), results_dir=None, only=None,
                   base: str | None = None) -> Table:
    """One row per variant: what it changes, its headline score (test accuracy; FD-cls and KID for a GAN) and the
    change from the full recipe. `only`: the variants to show (labels), the full recipe always; default: every one
    that means something here. `base`: the variants of an earlier recipe of ours, measured before it changed."""
    kind = experiments.get(name).kind
    metric, extra = HEADLINE[kind][0], HEADLINE[kind][1:2] if kind == "gan" else ()
    found = ablation_runs(name, steps, dataset, seeds, results_dir, only, base)
    # FD-cls and KID compare only within one feature network: a variant scored in two gets a row per network, and
    # its change is taken against the full recipe in the same network
    recipe = {net: artifacts.aggregate(rs, metric)["mean"]
              for net, rs in artifacts.by_feature_net(found[ablations.FULL_RECIPE]).items()}
    rows = []
    for label, changes in ablations.variants(name, dataset, only, base):
        what = ", ".join(f"{k} = {v!r}" for k, v in changes.items()) or "—"
        shown = EARLIER if base is not None and label == ablations.FULL_RECIPE else label
        for net, rs in (artifacts.by_feature_net(found[label]) or {None: []}).items():
            st = artifacts.aggregate(rs, metric)
            if st["mean"] is None:
                rows.append([shown, what, "not run yet"] + ["—"] * (len(extra) + 3))
                continue
            delta = "—"
            if recipe.get(net) is not None and label != ablations.FULL_RECIPE:
                delta = f"{100 * (st['mean'] - recipe[net]):+.2f}" if kind == "classifier" \
                    else f"{st['mean'] - recipe[net]:+.1f}"
            rows.append([shown, what, fmt(metric, st["mean"], st["std"])] + [_cell(m, rs) for m in extra]
                        + [delta, ", ".join(str(r.config.seed) for r in rs), net or "—"])
    recipe = experiments.get(name).config.steps
    if steps == recipe:
        budget = f"At full budget ({steps:,} steps)."
    elif kind == "classifier":
        budget = (f"A reduced budget, labelled as such: {steps:,} of the recipe's {recipe:,} steps, with the "
                  "learning-rate schedule compressed to fit, so the differences say which pieces matter early, not "
                  "what each is worth at full budget.")
    else:
        budget = (f"A reduced budget, labelled as such: {steps:,} of the recipe's {recipe:,} steps, at the recipe's "
                  "constant learning rate, so each run is the beginning of a full one; an EMA of G's weights then "
                  "averages over a larger share of a shorter, less settled run.")
    unit = "percentage points" if kind == "classifier" else f"{metric_name(metric)} (lower is better)"
    caption = (f"Ablations of {name} on {dataset_label(dataset)[0]}, each variant changing one piece of the "
               f"recipe. {budget} Δ: {unit} against the full recipe." + (f" {KID_SCALE_NOTE}" if extra else ""))
    if base is not None:
        caption += (f" Measured on an earlier recipe of ours, before a piece of it changed: {base}. The "
                    f"\u201c{EARLIER}\u201d row is that recipe, and Δ is taken against it.")
    chosen = "".join(f" --only {shlex.quote(label)}" for label in (only or ())) + \
        (f" --earlier {shlex.quote(base)}" if base is not None else "")
    heads = ["variant", "config change", metric_name(metric)] + [metric_name(m) for m in extra] + \
        ["Δ (points)" if kind == "classifier" else "Δ", "seeds"]
    heads, rows, networks = network_column(heads, rows)
    if networks:
        caption += f" {NETWORKS_NOTE} Δ is taken only against the full recipe scored in the same network."
    return Table(heads, rows, caption=caption,
                 note=f"Run with `python -m cifar_nb ablate {name} --steps {steps} --dataset {dataset}{chosen}`.")


def weight_average_table(name: str, dataset: str, variants=(ablations.FULL_RECIPE,), seeds=(0, 1, 2),
                         results_dir=None, base: str | None = None) -> Table:
    """What the EMA of G's weights adds at full budget, read from the same runs: each full-budget run of the
    variants (ablations.py labels) scored from the average, as training scored it, and from the trained G's own
    weights (`python -m cifar_nb score <name> --weights live`, in <run_dir>/scored/<n>-samples-live-weights/)."""
    steps = experiments.get(name).config.steps
    found = ablation_runs(name, steps, dataset, seeds, results_dir,
                          only=[v for v in variants if v != ablations.FULL_RECIPE], base=base)
    rows = []
    for label in variants:
        for r in found[label]:
            n = r.metrics.get("fd_cls_samples") or r.config.train.get("fid_samples", 10_000)
            path = artifacts.scored_dir(r.run_dir, n, "eval", "live") / "scores.json"
            live = json.loads(path.read_text()) if path.exists() else None
            avg, net = r.metrics.get("fd_cls"), r.metrics.get("fd_cls_feature_run")
            same_net = live is not None and live.get("fd_cls_feature_run") == net
            rows.append([EARLIER if base is not None and label == ablations.FULL_RECIPE else label,
                         r.config.seed, fmt("fd_cls", avg),
                         "not scored yet" if live is None else fmt("fd_cls", live["fd_cls"]),
                         "—" if not same_net or avg is None else f"{avg - live['fd_cls']:+.1f}", net or "—"])
    caption = (f"{name} at full budget ({steps:,} steps) on {dataset_label(dataset)[0]}: FD-cls of the same run's "
               "generator sampled from the exponential moving average of its weights (what training scores and the "
               "book shows) and from the trained generator's own final weights, each from the same number of "
               "images. Δ: the average's FD-cls minus the live weights' (negative: the average is better).")
    if base is not None:
        caption += f" Variants of an earlier recipe of ours: {base}."
    heads, rows, networks = network_column(["variant", "seed", "FD-cls, weight average", "FD-cls, live weights", "Δ"],
                                           rows)
    if networks:
        caption += " " + NETWORKS_NOTE
    return Table(heads, rows, caption=caption,
                 note=f"Score the live weights with `python -m cifar_nb score {name} --seed <seed> --weights live`, and a "
                      "variant's by adding `--variant <its label>`"
                      + ("." if base is None else f" and `--earlier {shlex.quote(base)}`."))


def validation_table(name: str, dataset: str, variant: str, seeds=(0, 1, 2), results_dir=None,
                     base: str | None = None) -> Table:
    """A variant seen to win on the test split, checked on a split held out of training and of scoring: per seed,
    the full-budget recipe and variant runs evaluated again on the validation split
    (`python -m cifar_nb score <name> --split val`, in <run_dir>/scored/val-split/), beside their test accuracy.
    The rule: the variant replaces the recipe's piece only if it is ahead on the validation split at every seed
    (paired by seed, so that one lucky seed cannot carry a mean)."""
    steps = experiments.get(name).config.steps
    found = ablation_runs(name, steps, dataset, seeds, results_dir, only=[variant], base=base)
    by_seed = {label: {r.config.seed: r for r in rs} for label, rs in found.items()}

    def val(r):
        path = None if r is None else r.run_dir / "scored" / "val-split" / "scores.json"
        return json.loads(path.read_text())["val_acc"] if path is not None and path.exists() else None

    rows, deltas = [], []
    for s in seeds:
        ref, var = by_seed[ablations.FULL_RECIPE].get(s), by_seed[variant].get(s)
        v0, v1 = val(ref), val(var)
        if v0 is not None and v1 is not None:
            deltas.append(v1 - v0)
        rows.append([s] + [fmt("val_acc", v) if v is not None else ("not scored yet" if r else "not run yet")
                           for v, r in ((v0, ref), (v1, var))]
                    + ["—" if v0 is None or v1 is None else f"{100 * (v1 - v0):+.2f}"]
                    + [fmt("test_acc", r.metrics.get("test_acc")) if r else "—" for r in (ref, var)])
    if len(deltas) < len(seeds):
        verdict = f"Not decided yet: {len(deltas)} of {len(seeds)} seeds have both validation scores."
    elif all(d > 0 for d in deltas):
        verdict = (f"The rule is met: the variant is ahead on the validation split at all {len(seeds)} seeds "
                   f"(mean {100 * sum(deltas) / len(deltas):+.2f} points).")
    else:
        verdict = (f"The rule is not met: the variant is ahead at {sum(d > 0 for d in deltas)} of {len(seeds)} "
                   "seeds on the validation split.")
    against = "the full recipe" if base is None else f"an earlier recipe of ours ({base})"
    caption = (f"{name} at full budget ({steps:,} steps) on {dataset_label(dataset)[0]}: {against} and the "
               f"variant \u201c{variant}\u201d, each run evaluated again on the validation split, which neither "
               "trained nor was scored on, beside its test accuracy. Rule: the variant's piece enters the recipe only "
               f"if it is ahead on the validation split at every seed. {verdict}")
    heads = ["seed", "recipe, validation", "variant, validation", "Δ (points)", "recipe, test", "variant, test"]
    return Table(heads, rows, caption=caption,
                 note=f"Evaluate a run on the validation split with `python -m cifar_nb score {name} --dataset "
                      f"{dataset} --seed <seed>{'' if base is None else f' --earlier {shlex.quote(base)}'} "
                      f"[--variant {shlex.quote(variant)}] --split val`.")
