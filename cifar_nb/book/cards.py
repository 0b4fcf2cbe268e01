"""The run card at the top of every chapter: what was run (full budget or preview), where, from which code
and how long it took."""
from __future__ import annotations

import html
import re
import time

import torch

from cifar_nb import budget, experiments
from cifar_nb.book.audit import best_group, dataset_label, dataset_note, n_params
from cifar_nb.book.display import HTML, plain_text, rel_path
from cifar_nb.book.params import DEFAULT_SEEDS, Params
from cifar_nb.engine import artifacts
from cifar_nb.engine.artifacts import RunResult


def status_line(P: Params, results: dict[str, list[RunResult]] | None = None) -> str:
    """HTML: one line per experiment saying what was run: full budget or preview, steps, seeds, device, data."""
    items = []
    for n in P.experiments:
        exp = experiments.get(n)
        rs = (results or {}).get(n) or []
        steps = rs[0].config.steps if rs else P.steps_of(n)
        full = steps == exp.config.steps and P.is_full(n)
        seeds = [r.config.seed for r in rs] or P.seeds_of(n)
        devices = sorted({"CPU" if str(r.env.get("device_name", "")).startswith("CPU") else
                          str(r.env.get("device_name") or r.env.get("device") or "?") for r in rs}) or ["—"]
        what = "<b>full budget</b>" if full else "<b>preview</b>"
        planned = f" of {len(DEFAULT_SEEDS)} planned" if full and len(seeds) < len(DEFAULT_SEEDS) else ""
        items.append(f"<li>{html.escape(n)}: {what}, {steps:,} of the report's {exp.config.steps:,} steps · "
                     f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))} ({len(seeds)}{planned}) · "
                     f"trained on {html.escape(', '.join(devices))} · "
                     f"{html.escape(dataset_label(P.dataset_of(n), P.data_root)[0])}</li>")
    if not items:
        return ""
    return f'<div class="run-status"><p><b>What was run</b></p><ul>{"".join(items)}</ul></div>'


def banner(P: Params) -> str:
    """HTML: a preview is a smoke test; any other departure from the report's set-up is named."""
    departures: dict[str, list[str]] = {}      # what departs -> the experiments it applies to
    for n in P.experiments:
        exp = experiments.get(n)
        if P.dataset_of(n) != exp.config.dataset:
            why = (" (chosen by the preview itself: CIFAR-100 is not under the data root)"
                   if P.dataset_fallback and exp.config.dataset == "cifar100" else "")
            departures.setdefault(f"trained on {dataset_label(P.dataset_of(n), P.data_root)[0]}, a stand-in "
                                  f"for {dataset_label(exp.config.dataset)[0]}{why}", []).append(n)
        steps = P.steps_of(n)
        if steps != exp.config.steps:
            departures.setdefault(f"trained {steps:,} of the report's {exp.config.steps:,} steps", []).append(n)
    items = "".join(f"<li>{html.escape(', '.join(names))}: {html.escape(what)}</li>"
                    for what, names in departures.items())
    if P.preview and P.full_budget:
        full = ", ".join(f"{n} (seed{'s' if len(s) != 1 else ''} {', '.join(map(str, s))})"
                         for n, s in P.full_budget.items())
        previews = ", ".join(n for n in P.experiments if n not in P.full_budget)
        return ('<div class="admonition warning"><p class="admonition-title">Partly a preview: only '
                f'{html.escape(", ".join(P.full_budget))} ran at full budget</p><p>Full-budget runs: '
                f'{html.escape(full)}. Previews (tiny budgets, to check that every step of the chapter runs; '
                f'their numbers are NOT a reproduction and must not be compared with the full-budget ones): '
                f'{html.escape(previews)}. The tables give each row\'s steps; <code>make reproduce</code> '
                'replaces the previews with full-budget runs.</p>'
                f'<ul>{items}</ul></div>')
    if P.preview:
        return ('<div class="admonition warning"><p class="admonition-title">Preview: these numbers are NOT a '
                'reproduction</p><p>This notebook was executed with tiny budgets on whatever data is at hand, '
                'to check that every step of the chapter runs. Its numbers say nothing about the report\'s '
                'claims; <code>make reproduce</code> replaces them with full-budget runs.</p>'
                f'<ul>{items}</ul></div>')
    if departures:
        return ('<div class="admonition note"><p class="admonition-title">Not the report\'s set-up</p>'
                f'<ul>{items}</ul></div>')
    return ""


def run_card(P: Params, results: dict[str, list[RunResult]], final: bool = False) -> HTML:
    rows = []
    first = P.experiments[0]
    rows.append(("Dataset", dataset_note(P.dataset_of(first), experiments.get(first).config.dataset,
                                         P.data_root)))
    envs = [r.env for rs in results.values() for r in rs]
    trained_on = sorted({f"{e.get('device', '?')} — {e.get('device_name', '?')}" for e in envs})
    rows.append(("Runs trained on", "; ".join(trained_on) or "—"))
    here = artifacts.device_name(P.device)
    rows.append(("This notebook executed on", f"{P.device} — {here}"))
    for n, rs in results.items():       # one row per experiment: steps and parameters against the budget
        exp = experiments.get(n)
        steps = rs[0].config.steps if rs else P.steps_of(n)
        a = budget.audit(exp.kind, n_params(n, rs), steps, exp.out_of_budget)
        ok = lambda b: "within budget" if b else "<b>over budget</b>"
        rows.append((n, f"steps: {a['steps']:,} of the {a['max_steps']:,}-step {a['budget']} budget "
                        f"({ok(a['steps_ok'])}; the report trained {exp.config.steps:,}) · "
                        f"parameters: {a['params']:,} of {a['max_params']:,} ({ok(a['params_ok'])})"
                        + ((f" {a['mark']}" if not (a["params_ok"] and a["steps_ok"]) else
                            f" (the experiment is {a['mark']} by design; this execution's network and steps "
                            "fit the budget)") if a["mark"] else "")
                        + (f" · batch size {rs[0].config.batch_size:,}" if rs else "")))
    if P.full_budget:
        rows.append(("Seeds", "; ".join(f"{n}: {', '.join(map(str, P.seeds_of(n)))}"
                                        + (" (full budget)" if n in P.full_budget else " (preview)")
                                        for n in P.experiments)))
    else:
        n_seeds = len(P.seeds)
        rows.append(("Seeds", ", ".join(map(str, P.seeds))
                     + f" ({n_seeds} run{'s' if n_seeds != 1 else ''} per experiment)"))
    rows.append(("Code (git commit)", f"{run_commits(results)} · this execution: {_commit(artifacts.git_commit())}"))
    torches = sorted({e.get("torch", "?") for e in envs})
    rows.append(("torch", f"runs: {', '.join(torches) or '—'}; this execution: {torch.__version__}"))
    train_s = sum(float(e.get("wall_time_s") or 0) for e in envs)
    n_runs = len(envs)
    n_reused = sum(r.reused for rs in results.values() for r in rs)
    nb_s = time.monotonic() - P.started
    rows.append(("Wall time", f"runs: {_dur(train_s)} of training and evaluation over {n_runs} run{'s' if n_runs != 1 else ''} "
                              f"({n_reused} reused from results/); this execution of the notebook: {_dur(nb_s)}"
                              + (" in all, including any training it did" if final else " up to this card")))
    dirs = sorted({rel_path(r.run_dir.parent) for rs in results.values() for r in rs})
    rows.append(("Artifacts", ", ".join(dirs) or "—"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_allow_b(v)}</td></tr>" for k, v in rows)
    plain = "\n".join(f"{k}: {plain_text(re.sub(r'<[^>]+>', '', v))}" for k, v in rows)
    text = (status_line(P, results) + banner(P) + '<table class="table run-card"><caption>Run card</caption><tbody>' + body
            + "</tbody></table>")
    return HTML(text, "Run card\n" + plain)


def _allow_b(v: str) -> str:
    """Escape a value but keep the <b> and ** emphasis the card uses."""
    s = html.escape(v).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _commit(c: str) -> str:
    """A commit as the run card shows it: 10 hex digits, and a bold flag when the code had uncommitted changes."""
    sha, dirty = c.removesuffix("+dirty"), c.endswith("+dirty")
    return sha[:10] + (" <b>+dirty</b> (uncommitted changes)" if dirty else "")


def run_commits(results: dict[str, list[RunResult]]) -> str:
    """The code each experiment's runs came from: one commit per experiment when its seeds agree, else each
    commit with the seeds it made; dirty ones flagged."""
    parts = []
    for n, rs in results.items():
        if not rs:
            continue
        by: dict[str, list[int]] = {}
        for r in rs:
            by.setdefault(r.env.get("git_commit") or "unknown", []).append(r.config.seed)
        if len(by) == 1:
            parts.append(f"{n}: {_commit(next(iter(by)))}")
        else:
            each = [f"{_commit(c)} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, sorted(s)))})"
                    for c, s in sorted(by.items(), key=lambda kv: min(kv[1]))]
            parts.append(f"{n}: " + ", ".join(each))
    return "; ".join(parts) or "—"


def summary_card(P: Params) -> HTML:
    """The summary chapter's run card: what results/ holds, and how it was made."""
    groups = {n: best_group(n, P.results_dir) for n in experiments.REGISTRY}
    envs = [r.env for g in groups.values() for r in g]
    datasets = sorted({dataset_label(g[0].config.dataset)[0] for g in groups.values() if g})
    rows = [
        ("Runs read", f"{len(envs)} finished runs of {sum(bool(g) for g in groups.values())} of "
                      f"{len(groups)} experiments, from {rel_path(P.results_dir)}"),
        ("Datasets", ", ".join(datasets) or "—"),
        ("Trained on", "; ".join(sorted({f"{e.get('device', '?')} — {e.get('device_name', '?')}"
                                         for e in envs})) or "—"),
        ("Code (git commit)", f"{run_commits(groups)} · this execution: {_commit(artifacts.git_commit())}"),
        ("torch", f"runs: {', '.join(sorted({e.get('torch', '?') for e in envs})) or '—'}; "
                  f"this execution: {torch.__version__}"),
        ("Wall time", f"training {_dur(sum(float(e.get('wall_time_s') or 0) for e in envs))} in all; "
                      f"this notebook {_dur(time.monotonic() - P.started)}"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_allow_b(v)}</td></tr>" for k, v in rows)
    plain = "\n".join(f"{k}: {plain_text(re.sub(r'<[^>]+>', '', v))}" for k, v in rows)
    return HTML(banner(P) + '<table class="table run-card"><caption>Run card</caption><tbody>' + body
                + "</tbody></table>", "Run card\n" + plain)
