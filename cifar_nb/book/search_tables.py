"""Report D's chapter tables: the families, the search space, the top 3 against the report's, and the comparison.

The search itself (plan, space, objective, storage, retraining) is cifar_nb.engine.search; this module only turns
its results into the book's tables.
"""
from __future__ import annotations

from cifar_nb import budget, experiments
from cifar_nb.book.display import Markdown, Table
from cifar_nb.config import dataset_shape
from cifar_nb.engine.search import SearchResult, space_rows
from cifar_nb.models.search_cnn import FAMILIES, fit_width, param_count


def families_table(dataset: str = "cifar100"):
    """Each family: layers, parameters at width 1, and the width that fits the classifier budget."""
    shape = dataset_shape(dataset)
    rows = []
    for name, spec in FAMILIES.items():
        conv, fc = spec.split("|")
        w = fit_width(budget.CLASSIFIER.max_params, family=name, **shape)
        rows.append([name, conv.strip(), fc.strip(), conv.split().count("P"),
                     f"{param_count(family=name, **shape):,}", f"{w:.4f}",
                     f"{param_count(family=name, width=w, **shape):,}"])
    return Table(["family", "conv layers (P = 2x2 pool)", "FC hidden", "pools", "params at width 1",
                  "width within 100k", "params there"], rows,
                 caption=f"Our 8 families with 3x3 kernels and batch norm, shaped for {dataset}.")


def space_table():
    return Table(["parameter", "distribution"], [list(r) for r in space_rows()],
                 caption="The search space (parameters of the unused optimisers are not sampled).")


def _pct(st: dict) -> str:
    if st["mean"] is None:
        return "—"
    s = f"{100 * st['mean']:.2f}"
    return (s + (f" ± {100 * st['std']:.2f}" if st["std"] is not None else "") + f" % (n={st['n']})")


REPORT_TOP3 = [("CNN6", "cnn6", "SGD lr 0.004278, momentum 0.00958, dampening 0.0946", 2_494_022),
               ("CNN7", "cnn7", "SGD lr 0.0390, momentum 0.178957, dampening 0.34405 (LeakyReLU)", 3_004_917),
               ("CNN2", "cnn2", "SGD lr 0.0498, momentum 0.0867, dampening 0.0415", 10_393_946)]


def top3_table(res: SearchResult):
    """Report D's three retrained models beside ours, rank by rank (the report's order: CNN6, CNN7, CNN2)."""
    claims = {c.metric: c.value for c in experiments.get("D-search").claims}
    rows = []
    top = [r.row() for r in res.retrained]
    for i, (name, key, recipe, n) in enumerate(REPORT_TOP3):
        ours = top[i] if i < len(top) else None
        mark = f" {budget.OUT_OF_BUDGET_MARK}"
        rows.append([i + 1, f"{name}: {recipe}", f"{n:,}{mark}", f"{100 * claims['test_acc_' + key]:.1f} %",
                     _trial_recipe(res, ours) if ours else "—",
                     _params_cell(ours["params"]) if ours else "—",
                     f"{100 * ours['val_acc']:.2f} %" if ours else "—",
                     _pct(ours["test_acc"]) if ours else "—"])
    return Table(["rank", "report D: model", "params", "test acc (claimed)", f"ours ({res.plan.experiment})",
                  "params", "val acc (search)", "test acc (retrain)"], rows,
                 caption="Report D's top 3 and ours. Their families are not ours: the report's figures were lost.")


def coincidence_note(out_of_budget: "SearchResult", in_budget: "SearchResult"):
    """A sentence when the two searches picked the very same networks (a preview shrinks report D's plan until it
    fits the budget too), so that identical tables are not read as a finding."""
    a = [(r.row()["params"], r.row()["family"]) for r in out_of_budget.retrained]
    b = [(r.row()["params"], r.row()["family"]) for r in in_budget.retrained]
    if a and a == b:
        return Markdown("*Both searches picked the same networks at the same sizes in this execution: its plan is "
                        "shrunk until even report D's search fits the budget, so the two plans coincide here. The "
                        "tables above say nothing about what the budget costs; at report D's scale the two differ "
                        "25- to 100-fold in size.*")
    return Markdown("")


def _params_cell(n: int) -> str:
    """A network's size against the classifier budget: marked only when it really is over it (a preview's
    shrunken copy of report D's plan fits, and saying OUT OF BUDGET beside 42,950 would contradict itself)."""
    over = n > budget.budget_for("classifier").max_params
    return f"{n:,} {budget.OUT_OF_BUDGET_MARK}" if over else f"{n:,} (within budget)"


def _trial_recipe(res: SearchResult, row: dict) -> str:
    t = next(r.trial for r in res.retrained if r.rank == row["rank"])
    p = t.params
    opt = {k.split("_", 1)[1]: v for k, v in p.items() if k.startswith(p["optimizer"] + "_")}
    opt_s = ", ".join(f"{k} {v:.3g}" for k, v in opt.items())
    return (f"{p['family']} ({p['activation']}, {p['pool']} pool, k={p['kernel_size']}, "
            f"BN {'on' if p['batch_norm'] else 'off'}, dropout {p['dropout']:.2f}); {p['optimizer']} {opt_s}")


def compare_table(*results: SearchResult):
    """Searches side by side: what they cost and what they found."""
    sums = [r.summary() for r in results]
    def best_test(s):
        return _pct(s["top"][0]["test_acc"]) if s["top"] else "—"
    rows = [
        ["budget", *[s["mark"] or "within the classifier budget" for s in sums]],
        ["dataset", *[s["dataset"] for s in sums]],
        ["trials (complete / pruned / failed)", *[f"{s['n_trials']} ({s['complete']} / {s['pruned']} / "
                                                  f"{s['failed']})" for s in sums]],
        ["steps per trial (at most) / rungs", *[f"{s['trial_steps']:,} / {s['rungs']}" for s in sums]],
        ["steps trained over all trials", *[f"{s['trial_steps_done']:,}" for s in sums]],
        ["trial wall time", *[f"{s['trial_time_s']:,.0f} s" for s in sums]],
        ["best validation accuracy", *[f"{100 * s['best_val_acc']:.2f} %" if s["best_val_acc"] is not None
                                       else "—" for s in sums]],
        ["top 3 families", *[", ".join(t["family"] for t in s["top"]) or "—" for s in sums]],
        ["their parameters", *[", ".join(f"{t['params']:,}" for t in s["top"]) or "—" for s in sums]],
        ["retrain steps", *[f"{s['retrain_steps']:,}" for s in sums]],
        ["rank-1 test accuracy (retrain)", *[best_test(s) for s in sums]],
    ]
    return Table(["", *[s["experiment"] for s in sums]], rows)
