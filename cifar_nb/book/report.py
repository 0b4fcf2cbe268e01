"""What the book's chapters show, computed here so that a notebook holds only narrative and calls.

    P, runs = chapter.start(globals(), "B-classifier")   # first cell (cifar_nb.book.chapter)
    claims_table(P, runs)         # the report's claims beside ours, mean ± sample std, with a verdict
    recipe(P, "B-classifier")     # the training recipe, field by field, and where this execution departs
    leaderboard()                 # the summary chapter: every experiment's headline claim, from results/

A chapter's first and last cells are in cifar_nb.book.chapter, the verdict rules in cifar_nb.book.audit.
"""
from __future__ import annotations

import inspect
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from cifar_nb import budget, experiments
from cifar_nb.book.audit import (
    KID_SCALE_NOTE,
    NETWORKS_NOTE,
    UNMEASURABLE,
    VERDICTS,
    best_group,
    claim_stats,
    dataset_label,
    fmt,
    fmt_int,
    fmt_kid,
    in_report_mode,
    leaderboard_rows,
    metric_family,
    metric_name,
    modes_used,
    n_params,
    network_column,
    rules_broken,
    verdict,
)
from cifar_nb.book.display import Markdown, Table
from cifar_nb.book.params import Params
from cifar_nb.engine import artifacts, data, figures
from cifar_nb.engine.artifacts import RunResult
from cifar_nb.engine.evaluate.generator import KEPT_SAMPLES
from cifar_nb.models import model_class

KID_COLUMN = "KID ours (raw, substitute features, not ×10³)"

# ---------------------------------------------------------------------------------------------
# chapter content

def claims_list(names) -> Table:
    """The reports' claims with their sources, before any of our numbers."""
    names = [names] if isinstance(names, str) else list(names)
    rows = []
    for n in names:
        exp = experiments.get(n)
        rows.append([n, "parameters", fmt_int(exp.claimed_params), experiments.report_label(exp.report)])
        for c in exp.claims:
            rows.append([n, metric_name(c.metric), fmt(c.metric, c.value, c.std), c.source(exp.report)])
    return Table(["experiment", "claim", "value", "source"], rows)


def architecture(name: str) -> Markdown:
    """The model's docstring: our reading of the report's network and the choices we made."""
    cls = model_class(experiments.get(name).config.model)
    parts = [inspect.getmodule(cls).__doc__, cls.__dict__.get("__doc__")]   # never nn.Module's docstring
    doc = "\n\n".join(inspect.cleandoc(p) for p in parts if p) or "(no description)"
    return Markdown(doc)


def recipe(P: Params, name: str) -> Table:
    """The training recipe as it runs here, field by field."""
    cfg = P.config(name)
    report_cfg = experiments.get(name).config
    rows = []
    for key in ("model", "model_args", "dataset", "steps", "batch_size", "optimizer", "scheduler", "augment",
                "train", "eval_every"):
        ours, theirs = getattr(cfg, key), getattr(report_cfg, key)
        show = lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)
        rows.append([key, f"`{show(ours)}`", "" if ours == theirs else f"`{show(theirs)}`"])
    return Table(["field", "this run", "report's recipe (where different)"], rows)


def budget_table(P: Params, results: dict[str, list[RunResult]]) -> Table:
    """Parameters as run, at the report's own data shape (the number comparable with its claim), the
    report's count, and the budget; steps as run against the budget."""
    rows = []
    for n, rs in results.items():
        exp = experiments.get(n)
        ours = n_params(n, rs)
        at_report = n_params(n)                     # built at the report's dataset shape
        a = budget.audit(exp.kind, max(ours, at_report), rs[0].config.steps if rs else exp.config.steps,
                         exp.out_of_budget)
        claimed = exp.claimed_params
        claimed_s = fmt_int(claimed)
        if claimed is not None and claimed > a["max_params"] and not exp.out_of_budget:
            claimed_s += f" (**{claimed - a['max_params']:,} over**)"
        diff = "" if claimed is None else f" ({(at_report - claimed) / claimed:+.2%} vs the report)"
        rows.append([n, f"{ours:,}", f"{at_report:,}{diff}", claimed_s, f"{a['max_params']:,}",
                     "yes" if a["params_ok"] else
                     (f"as run: yes; at the report's shape: no, {a['mark'] or 'over'}"
                      if ours <= a["max_params"] else ("no, " + a["mark"] if a["mark"] else "**no**")),
                     f"{a['steps']:,} / {a['max_steps']:,}"])
    return Table(["experiment", "our parameters, as run", "ours at the report's data shape",
                  "report's parameters", "budget", "ours within budget", "steps (ours / budget)"], rows,
                 caption="Trainable parameters (a GAN counts generator and discriminator together). The "
                         "class count of the dataset changes the size of the last layer.")


def claims_table(P: Params, results: dict[str, list[RunResult]], metrics: list[str] | None = None) -> Table:
    """Each claim beside our mean ± sample std (ddof=1) over seeds, with the verdict and its reason."""
    rows = []
    for n, rs in results.items():
        exp = experiments.get(n)
        for c in exp.claims:
            if metrics and c.metric not in metrics:
                continue
            st = claim_stats(exp, c, rs)
            ours = fmt(c.metric, st["mean"], st["std"]) if st["mean"] is not None else "not measured here"
            v, why = verdict(exp, c, rs, P.data_root)
            rows.append([n, metric_name(c.metric), fmt(c.metric, c.value, c.std), f"{ours} (n={st['n']})",
                         f"**{v}**: {why}"])
    return Table(["experiment", "metric", "claimed", "ours: mean ± std over seeds", "verdict"], rows,
                 caption="Claimed against measured. std: sample standard deviation (ddof=1) over seeds.")


def ours_table(results: dict[str, list[RunResult]], keys: list[str]) -> Table:
    """Our final metrics, mean ± sample std over seeds, for metrics the reports did not claim."""
    rows = []
    for n, rs in results.items():
        # the steps column keeps a chapter's full-budget rows apart from its preview rows
        row = [n, f"{rs[0].config.steps:,}" if rs else "—"]
        for k in keys:
            st = artifacts.aggregate(rs, k)
            row.append(fmt(k, st["mean"], st["std"]) if st["mean"] is not None else "—")
        rows.append(row + [str(len(rs))])
    return Table(["experiment", "steps"] + [metric_name(k) for k in keys] + ["seeds"], rows)


def fid_command(name: str) -> str:
    """The command that puts FID on a generator already trained on CIFAR-100, from its saved weights and
    without retraining (runs.score); a run trained with both present gets FID at its end anyway. Three lines,
    so that a page shows it whole."""
    mode = " --sampling-mode train" if experiments.get(name).sampling_mode == "train" else ""
    return (f"python -m cifar_nb score {name} --seed 0{mode} \\\n"
            "    --fid-weights <path to weights-inception-2015-12-05-6726825d.pth> \\\n"
            "    --data-root <folder holding cifar-100-python/>")


def generator_table(P: Params, results: dict[str, list[RunResult]]) -> Table:
    """FID as claimed beside what we can measure: FD-cls and KID, clearly labelled as substitutes, each
    generator's scores in the sampling mode its report most likely used wherever that mode has been scored."""
    rows, fallback = [], []
    for n, rs in results.items():
        exp = experiments.get(n)
        rs = in_report_mode(exp, rs)
        fid_claim = next((c for c in exp.claims if c.metric == "fid"), None)
        fid = artifacts.aggregate(rs, "fid")
        fid_ours = fmt("fid", fid["mean"], fid["std"]) if fid["mean"] is not None else "not measured here"
        # FID is Inception's for every run; FD-cls and KID average only within one FD-cls feature network
        for net, in_net in (artifacts.by_feature_net(rs) or {None: []}).items():
            fd, kid = artifacts.aggregate(in_net, "fd_cls"), artifacts.aggregate(in_net, "kid_mean")
            mode = modes_used(in_net) if in_net else "—"
            if in_net and mode != exp.sampling_mode:
                fallback.append(n)
                mode += f" (the report's: {exp.sampling_mode}, not scored yet)"
            rows.append([n, fmt("fid", fid_claim.value) if fid_claim else "—", fid_ours,
                         fmt("fd_cls", fd["mean"], fd["std"]), fmt_kid(kid["mean"], kid["std"]), mode,
                         str(len(in_net)), net or "—"])
    heads = ["experiment", "FID claimed", "FID ours", "FD-cls ours (substitute, not FID)", KID_COLUMN,
             "sampling mode", "seeds"]
    heads, rows, networks = network_column(heads, rows)
    fallback = list(dict.fromkeys(fallback))
    unmeasured = [n for n, rs in results.items() if artifacts.aggregate(rs, "fid")["mean"] is None]
    caption = ("Generators: mean ± sample std (ddof=1) over seeds, in the sampling mode named (train: G's "
               "BatchNorm on each batch's statistics, as the DCGAN tutorial samples; eval: running statistics). "
               + KID_SCALE_NOTE)
    if networks:
        caption += " " + NETWORKS_NOTE
    note = ""
    if unmeasured:
        caption += (" FID needs a generator trained on CIFAR-100, the CIFAR-100 test set and torch-fidelity's "
                    "Inception weights; where all three exist it is measured, without retraining, by the command "
                    "under the table" + (" (likewise for the other experiments)." if len(unmeasured) > 1 else "."))
        note = f"```bash\n{fid_command(unmeasured[0])}\n```"
    if fallback:
        note += ("\n\n" if note else "") + (
            f"The report's sampling mode is not scored yet for {', '.join(fallback)}: "
            f"`python -m cifar_nb score {fallback[0]} --seed 0 --sampling-mode train` scores it from the saved weights.")
    return Table(heads, rows, caption=caption, note=note)


def reduced_runs(P: Params, name: str, steps: int, seeds=(0,)) -> list[RunResult]:
    """The finished runs of an experiment's recipe cut to `steps` on the chapter's dataset, as
    `python -m cifar_nb run <name> --steps <steps> --dataset <dataset>` makes them: checks at a reduced budget
    that the chapter labels as such (the sampling-mode check). Seeds not run yet are left out."""
    exp = experiments.get(name)
    cfgs = [exp.make_config(steps=steps, dataset=P.dataset_of(name), seed=s) for s in seeds]
    return [r for r in (artifacts.load_complete(c, P.results_dir) for c in cfgs) if r is not None]


def sampling_modes_table(results: list[RunResult]) -> Table:
    """One GAN's FD-cls and KID with G's BatchNorm in eval mode (running statistics: how training scored it)
    beside train mode (each batch's own statistics, as the PyTorch DCGAN tutorial samples), per seed, from the
    same weights. Train mode comes from `python -m cifar_nb score --sampling-mode train`, which the queue runs
    once a full-budget GAN run is finished."""
    rows = []
    for r in results:
        n = r.metrics.get("fd_cls_samples") or r.config.train.get("fid_samples", 10_000)
        scored = artifacts.scored_dir(r.run_dir, n, "train") / "scores.json"
        t = json.loads(scored.read_text()) if scored.exists() else {}
        rows.append([f"seed {r.config.seed}, {r.config.steps:,} steps", fmt("fd_cls", r.metrics.get("fd_cls")),
                     fmt_kid(r.metrics.get("kid_mean")),
                     fmt("fd_cls", t["fd_cls"]) if t else "not scored yet", fmt_kid(t["kid_mean"]) if t else "—",
                     f"{t['fd_cls'] - r.metrics['fd_cls']:+.2f}" if t and r.metrics.get("fd_cls") is not None else "—"])
    caption = ("Sampling mode: the same generator weights scored with G's BatchNorm in eval mode (running "
               "statistics, ours) and in train mode (each batch's statistics). " + KID_SCALE_NOTE)
    recipe = experiments.get(results[0].config.experiment).config.steps if results else None
    if results and any(r.config.steps < recipe for r in results):
        caption += (f" A reduced budget, labelled as such: these runs trained fewer than the report's {recipe:,} "
                    "steps, so their scores say how much the mode matters, not how good the model is.")
    note = ""
    if not results:
        note = "Not run yet."
    elif not any(r[3] != "not scored yet" for r in rows):
        note = ("Train mode is scored from the saved weights by the queue once a full-budget run is finished, or by "
                f"hand: `python -m cifar_nb score {results[0].config.experiment} --seed 0 --sampling-mode train`"
                if results else "")
    return Table(["run", "FD-cls, eval mode", "KID, eval mode", "FD-cls, train mode", "KID, train mode",
                  "train − eval (FD-cls)"], rows, caption=caption, note=note)


# ---------------------------------------------------------------------------------------------
# the leaderboard (summary chapter)

def leaderboard(results_dir=None) -> Table:
    rows = []
    for r in leaderboard_rows(results_dir):
        m = r["metric"] or ""
        params = "—" if r["params"] is None else f"{r['params']:,}"
        # the mark belongs to the experiment (the report's own set-up), whatever size a preview ran at
        name = r["experiment"] + (f" ({budget.OUT_OF_BUDGET_MARK})" if r["out_of_budget"] else "")
        ds = "—" if r["dataset"] is None else dataset_label(r["dataset"])[0]
        ours = (fmt(m, r["ours"], r["ours_std"]) + f" (n={r['seeds']})") if r["ours"] is not None else "—"
        rows.append([name, r["kind"], f"{params} / {fmt_int(r['claimed_params'])}",
                     f"{fmt_int(r['steps'])} / {r['report_steps']:,}", ds, metric_name(m),
                     fmt(m, r["claimed"], r["claimed_std"]), ours, f"**{r['verdict']}**: {r['why']}"])
    return Table(["experiment", "kind", "params (ours / claimed)", "steps (ours / report)", "our dataset",
                  "headline metric", "claimed", "ours: mean ± std", "verdict"], rows)


def verdict_counts(results_dir=None) -> Table:
    counts = {v: 0 for v in VERDICTS}
    for r in leaderboard_rows(results_dir):
        counts[r["verdict"]] += 1
    return Table(["verdict", "experiments"], [[v, str(c)] for v, c in counts.items()])


def claim_rows(P: Params, results: dict[str, list[RunResult]], family: str = "acc") -> list[dict]:
    """Rows for plots.plot_claims: claims of one metric family beside ours (accuracies in percent)."""
    scale = 100.0 if family == "acc" else 1.0
    rows = []
    for n, rs in results.items():
        for c in experiments.get(n).claims:
            if metric_family(c.metric) != family:
                continue
            exp = experiments.get(n)
            st = claim_stats(exp, c, rs)
            mul = lambda v: None if v is None else v * scale
            ours_ds = rs[0].config.dataset if rs else None
            rows.append(dict(label=f"{n}: {metric_name(c.metric)}", claim=mul(c.value), claim_std=mul(c.std),
                             ours=mul(st["mean"]), ours_std=mul(st["std"]),
                             claim_dataset=dataset_label(exp.config.dataset)[0],
                             ours_dataset=dataset_label(ours_ds)[0] if ours_ds else None,
                             ours_steps=rs[0].config.steps if rs else None, report_steps=exp.config.steps))
    return rows


def verdict_summary(P: Params, results: dict[str, list[RunResult]]) -> Markdown:
    """One sentence on this execution's verdicts, so the prose never contradicts the numbers."""
    counts: dict[str, int] = {}
    reasons: list[str] = []
    for n, rs in results.items():
        exp = experiments.get(n)
        for c in exp.claims:
            v, why = verdict(exp, c, rs, P.data_root)
            counts[v] = counts.get(v, 0) + 1
            if v == UNMEASURABLE and why not in reasons:
                reasons.append(why)
    total = sum(counts.values())
    parts = [f"{k} {v}" for v, k in ((v, counts.get(v, 0)) for v in VERDICTS) if k]
    text = f"In this execution, of {total} claim{'s' if total != 1 else ''}: " + ", ".join(parts) + "."
    broken = [f"{n}: {rules_broken(experiments.get(n))}" for n in results if rules_broken(experiments.get(n))]
    if broken:
        text += " The report's own numbers break its rules (" + "; ".join(broken) + ")."
    if reasons:
        text += " Unmeasurable because " + "; ".join(reasons) + "."
    return Markdown(text)


def loss_ordering(results: list[RunResult]) -> Markdown:
    """Test loss against the two train losses we record, in words, from the runs' final metrics: whether the
    ordering a report explains by regularisation (test below train) shows in training mode and in eval mode."""
    if not results:
        return Markdown("No finished runs yet, so nothing to compare.")
    mean = {k: artifacts.aggregate(results, k)["mean"] for k in ("stream_loss", "train_loss", "test_loss")}
    if None in mean.values():
        return Markdown("These runs do not record all three losses, so nothing to compare.")
    n = len(results)
    def rel(a, b):
        return "below" if mean[a] < mean[b] else "above"
    return Markdown(
        f"Over {n} seed{'s' if n != 1 else ''}, our test loss is {mean['test_loss']:.3f}. It is "
        f"{rel('test_loss', 'stream_loss')} the training-mode train loss ({mean['stream_loss']:.3f}: augmented, "
        f"label-smoothed batches, the figure a training curve shows) and {rel('test_loss', 'train_loss')} the "
        f"eval-mode train loss ({mean['train_loss']:.3f}: the same model and loss as the test split, on "
        f"training images). The first ordering is the one a report sees when regularisation acts only in "
        f"training; the second is over-fitting and nothing else.")


def all_claims(results_dir=None) -> Table:
    """Every claim of every experiment with our best-matching runs and its verdict."""
    rows = []
    for n, exp in experiments.REGISTRY.items():
        rs = best_group(n, results_dir)
        for c in exp.claims:
            st = claim_stats(exp, c, rs)
            v, why = verdict(exp, c, rs)
            ours = fmt(c.metric, st["mean"], st["std"]) + f" (n={st['n']})" if st["mean"] is not None else "—"
            rows.append([n, metric_name(c.metric), fmt(c.metric, c.value, c.std), ours, f"**{v}**: {why}",
                         c.source(exp.report)])
    return Table(["experiment", "metric", "claimed", "ours: mean ± std", "verdict", "source"], rows)


def ablation_table(P: Params, results: dict[str, list[RunResult]], names: list[str]) -> Table:
    """One row per ablation: what changed, and each of its claims beside ours with the verdict."""
    rows = []
    for n in names:
        exp, rs = experiments.get(n), results.get(n, [])
        cells = []
        for c in exp.claims:
            st = claim_stats(exp, c, rs)
            ours = fmt(c.metric, st["mean"], st["std"]) if st["mean"] is not None else "—"
            cells.append(f"{fmt(c.metric, c.value, c.std)} / {ours} (**{verdict(exp, c, rs, P.data_root)[0]}**)")
        change = exp.title.split(": ", 1)[-1]
        rows.append([n, change] + cells)
    heads = [f"{metric_name(c.metric)}: claimed / ours" for c in experiments.get(names[0]).claims]
    return Table(["experiment", "change from the final recipe"] + heads, rows,
                 caption="Ablations: ours is mean ± sample std over seeds; verdict rules in the methods appendix.")


def generator_notes(result: RunResult) -> Table:
    """How one generator run was scored and its figures chosen, from its metrics.json."""
    m = result.metrics
    keys = [("sampler", "sampler"), ("fd_cls_metric", "FD-cls"), ("fd_cls_reference", "FD-cls reference"),
            ("fd_cls_samples", "generated images scored"), ("kid_subset_size", "KID subset size"),
            ("kid_subsets", "KID subsets"),
            ("resized_for_eval", "resizing before scoring"), ("fid_status", "FID"),
            ("lpips_status", "LPIPS nearest neighbours"), ("nn_pixel_metric", "pixel nearest neighbours"),
            ("cherry_pick_rule", "cherry-picking rule")]
    rows = [[label, str(m[k]).replace(str(Path.home()), "~")] for k, label in keys if m.get(k) is not None]
    return Table(["", f"{result.config.experiment}, seed {result.config.seed}"], rows)


def beside_real_cifar100(P: Params, result: RunResult, n: int = KEPT_SAMPLES):
    """The run's first random samples beside as many real CIFAR-100 test images (the data root's
    cifar100-sample.npz: the canonical first test images), both at 2.5x, so a reader can judge them side by side."""
    samples = result.run_dir / "samples.npz"
    if not samples.exists():
        return Markdown(f"*no samples.npz in {result.run_dir.name}; re-run the experiment to make it*")
    try:
        real = data.cifar100_sample(P.data_root)["test_images_first"][:n]
    except data.DataError as e:
        return Markdown(f"*real CIFAR-100 images not shown: {e}*")
    with np.load(samples) as z:
        ours = z["images"][:n]
    from IPython.display import Image
    ds = dataset_label(result.config.dataset)[0]
    fig = figures.side_by_side(ours, real, f"{result.config.experiment} seed {result.config.seed}, "
                             f"{result.config.steps:,} steps on {ds}: random samples",
                             f"real CIFAR-100: the first {len(real)} test images", scale=2.5)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    buf = io.BytesIO()            # a JPEG keeps the committed notebook small (noise-like samples do not compress)
    PILImage.open(png).convert("RGB").save(buf, format="JPEG", quality=55, optimize=True)
    return Image(data=buf.getvalue(), format="jpeg")


def leaderboard_claim_rows(results_dir=None, family: str = "acc") -> list[dict]:
    """Rows for plots.plot_claims from the leaderboard: headline claims of one family (percent for acc)."""
    scale = 100.0 if family == "acc" else 1.0
    mul = lambda v: None if v is None else v * scale
    return [dict(label=r["experiment"], claim=mul(r["claimed"]), claim_std=mul(r["claimed_std"]),
                 ours=mul(r["ours"]), ours_std=mul(r["ours_std"]),
                 claim_dataset=dataset_label(r["report_dataset"])[0],
                 ours_dataset=dataset_label(r["dataset"])[0] if r["dataset"] else None,
                 ours_steps=r["steps"], report_steps=r["report_steps"])
            for r in leaderboard_rows(results_dir) if r["metric"] and metric_family(r["metric"]) == family]

