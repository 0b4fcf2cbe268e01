"""What has really been run: one row per experiment, from the artifacts in results/.

    python -m cifar_nb status [--write book/_status.md]

The intro page includes the written table and the summary chapter shows the same rows, so a reader knows in
ten seconds which chapters rest on full-budget runs and which are previews. Every cell comes from the runs'
own config.json, env.json and metrics.json (through cifar_nb.book.audit), never from prose.
"""
from __future__ import annotations

from pathlib import Path

from cifar_nb import experiments
from cifar_nb.book.audit import best_group, dataset_label, leaderboard_rows, runs_on_disk
from cifar_nb.book.speed import speed_markdown
from cifar_nb.config import PREVIEW_STEPS
from cifar_nb.engine.artifacts import atomic_write_text
from cifar_nb.engine.evaluate import features

PLANNED_SEEDS = 3


def status_rows(results_dir=None) -> list[dict]:
    verdicts = {r["experiment"]: r for r in leaderboard_rows(results_dir)}
    rows = []
    for name, exp in experiments.REGISTRY.items():
        rs = best_group(name, results_dir)
        lb = verdicts[name]
        if not rs:
            rows.append(dict(experiment=name, report=exp.report, kind=exp.kind, state="not run", steps=None,
                             budget_steps=exp.config.steps, seeds=[], device="—", dataset="—", date="—",
                             verdict=lb["verdict"], why=lb["why"]))
            continue
        cfg = rs[0].config
        full = cfg.steps == exp.config.steps
        # a preview runs the preview policy's few dozen steps; anything between is a labelled reduced-budget check
        state = "full budget" if full else "preview" if cfg.steps <= PREVIEW_STEPS[exp.kind] else "reduced budget"
        devices = sorted({_short_device(r.env) for r in rs})
        rows.append(dict(
            experiment=name, report=exp.report, kind=exp.kind,
            state=state,
            steps=cfg.steps, budget_steps=exp.config.steps, seeds=[r.config.seed for r in rs],
            device=", ".join(devices), dataset=dataset_label(cfg.dataset)[0],
            date=max(r.env.get("date", "")[:10] for r in rs), verdict=lb["verdict"], why=lb["why"]))
    return rows


def _short_device(env: dict) -> str:
    name = env.get("device_name") or env.get("device") or "?"
    return "CPU" if name.startswith("CPU") else name


def status_markdown(results_dir=None) -> str:
    rows = status_rows(results_dir)
    n_full = sum(r["state"] == "full budget" for r in rows)
    head = ("| experiment | what ran | steps run / report's | seeds | device | dataset | date | verdict |\n"
            "|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        steps = "—" if r["steps"] is None else f"{r['steps']:,} / {r['budget_steps']:,}"
        seeds = ", ".join(map(str, r["seeds"])) or "—"
        if r["state"] == "full budget" and len(r["seeds"]) < PLANNED_SEEDS:
            seeds += f" ({len(r['seeds'])} of {PLANNED_SEEDS} planned)"
        what = f"**{r['state']}**" if r["state"] == "full budget" else r["state"]
        lines.append(f"| {r['experiment']} | {what} | {steps} | {seeds} | {r['device']} | {r['dataset']} | "
                     f"{r['date']} | {r['verdict']} |")
    reduced = ("; *reduced budget* marks a check cut to fewer steps than the report, labelled as such"
               if any(r["state"] == "reduced budget" for r in rows) else "")
    intro = (f"{n_full} of {len(rows)} experiments have full-budget runs; the rest are CPU previews (a few dozen "
             f"steps, to check the pipeline: their numbers are not a reproduction) or not run{reduced}. "
             "A verdict other than "
             "*unmeasurable here* needs runs at the report's step count on the report's own dataset.")
    return intro + "\n\n" + "\n".join(lines) + "\n"


def status_sentence(results_dir=None) -> str:
    """One line for pages without a run card (methods, references): how much of the book is full budget."""
    rows = status_rows(results_dir)
    full = [r["experiment"] for r in rows if r["state"] == "full budget"]
    tail = f": {', '.join(full)}" if full else ""
    return (f"**What was run:** {len(full)} of {len(rows)} experiments have full-budget runs{tail}; the rest are "
            "CPU previews or not run yet. The {doc}`intro <intro>` gives the table.\n")


def fd_cls_protocol() -> str:
    """The methods page's FD-cls/KID paragraph, its numbers read from the protocol's own config so the prose
    cannot drift from what evaluate_generator does."""
    cfg = experiments.FEATURE_CONFIG
    opt, aug = cfg.optimizer, cfg.augment
    return (f"**FD-cls** is the same Fréchet distance in the penultimate features of a small classifier trained by "
            f"this project on the generator's own dataset (report C's `{cfg.model}` at its default size, "
            f"{cfg.steps:,} steps of batch {cfg.batch_size}, {opt['name']} at learning rate {opt['lr']:g} with a "
            f"{cfg.scheduler['name']} schedule, random {aug['crop']}-pixel crops with {aug['pad_mode']} padding and "
            f"horizontal flips at p = {aug['hflip']:g}{'' if aug.get('augmix') else ', no AugMix'}), and **KID** "
            "{cite:p}`binkowski2018kid` is torch-fidelity's kernel inception distance in those same features "
            f"(subsets of up to {features.KID_SUBSET_SIZE:,} images, {features.KID_SUBSETS} subsets). Both are always "
            "computable offline. They are not FID: they rank our runs against each other and are never set "
            "against a report's FID. Two of them compare only when measured in the same network, so each score "
            f"names its feature run, and the network's weights are kept in git. This one is seed {cfg.seed}: the "
            "generators scored before 7 December 2026 were measured in a network of the same recipe at seed 0, "
            "whose weights were lost and could not be retrained bit for bit, so their numbers compare with each "
            "other and not with later ones.\n")


def runtime_markdown(results_dir=None) -> str:
    """Every full-budget run's machine settings and wall time, from its env.json: the methods page's record of
    which runs used bf16 autocast, torch.compile or channels-last, on how many threads."""
    lines = ["| experiment | seed | dataset | device | precision | compile | channels-last | threads | wall time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, exp in experiments.REGISTRY.items():
        for group in runs_on_disk(name, results_dir):
            for r in group:
                if r.config.steps != exp.config.steps:
                    continue
                rt = r.env.get("runtime") or {}
                if not rt and r.config.kind != "classifier" and str(r.env.get("device", "")).startswith("cpu"):
                    # generator code before the runtime options had one CPU path: fp32 eager, one thread per worker
                    rt = {"precision": "fp32 (not recorded: the generators' only CPU path then)"}
                yes = lambda k: "—" if k not in rt else ("yes" if rt[k] else "no")
                lines.append(f"| {name} | {r.config.seed} | {dataset_label(r.config.dataset)[0]} | "
                             f"{_short_device(r.env)} | {rt.get('precision', 'not recorded')} | {yes('compile')} | "
                             f"{yes('channels_last')} | {rt.get('threads', '—')} | "
                             f"{float(r.env.get('wall_time_s') or 0) / 3600:.2f} h |")
    if len(lines) == 2:
        return "No full-budget run has finished yet.\n"
    return "\n".join(lines) + "\n"


def write(path: Path, results_dir=None) -> Path:
    """The status table at `path`, the one-line status beside it (<stem>_line.md), the methods page's
    FD-cls paragraph (_fd_cls_protocol.md), its table of run settings (_runtimes.md) and its speed tables
    (_speed.md, from benchmarks/results/), every number from artifacts, benchmark files or configs."""
    path = Path(path)
    atomic_write_text(path.with_name("_runtimes.md"), runtime_markdown(results_dir))
    atomic_write_text(path, status_markdown(results_dir))
    atomic_write_text(path.with_name(path.stem + "_line.md"), status_sentence(results_dir))
    atomic_write_text(path.with_name("_fd_cls_protocol.md"), fd_cls_protocol())
    atomic_write_text(path.with_name("_speed.md"), speed_markdown())
    return path
