"""The methods page's speed section (book/_speed.md), from the benchmark files in benchmarks/results/: the CPU
training loop against fp32 eager and the textbook loop, the generators likewise, the queue's two layouts, and
the reduced-budget check that the CPU fast path learns what fp32 learns. Every number is read from a file that
a benchmark script wrote in one run; a file missing, or from before a script wrote these fields, is named as
not measured rather than guessed.
"""
from __future__ import annotations

import json
from pathlib import Path

from cifar_nb.config import PROJECT_ROOT
from cifar_nb.engine.artifacts import device_slug

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
# The CPU these files were measured on: benchmarks/*.py name them after the device, as device_slug does.
CPU_TAG = device_slug("CPU (x86_64, 2 cores)")
FILES = {"train": f"{CPU_TAG}-train_speed.json", "gen": f"{CPU_TAG}-gen_speed.json",
         "queue": "cpu-2-cores-queue_throughput.json", "precision": f"{CPU_TAG}-precision_check.json"}
ROW_KEYS = ("experiment", "steps_per_s", "fp32_eager_steps_per_s", "naive_steps_per_s", "speedup_vs_fp32_eager",
            "speedup_vs_naive")


def _load(kind: str, results: Path) -> dict | None:
    path = results / FILES[kind]
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _path(rt: dict | None) -> str:
    if not rt:
        return "—"
    return rt.get("precision", "?") + (" + channels-last" if rt.get("channels_last") else "") + \
        (" + compile" if rt.get("compile") else "")


def _hours(steps: int, per_s: float) -> str:
    minutes = steps / per_s / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _conditions(rec: dict) -> str:
    bits = [rec.get("device_name") or f"{rec.get('cores', '?')} cores", f"torch {rec.get('torch', '?')}",
            str(rec.get("date", "?"))[:10]]
    if rec.get("threads"):
        bits.append(f"{rec['threads']} thread{'s' if rec['threads'] != 1 else ''} per process")
    if rec.get("load_average_before") is not None:
        bits.append(f"load average {float(rec['load_average_before']):.2f} before")
    return "; ".join(bits)


def speed_table(kind: str, results: Path = RESULTS) -> str:
    """Training steps per second of every classifier ("train") or generator ("gen") measured."""
    rec = _load(kind, results)
    rows = (rec or {}).get("rows", [])
    if not rows or any(k not in r for r in rows for k in ROW_KEYS):
        return f"Not measured yet with the current benchmark (`python benchmarks/{FILES[kind].split('-')[-1][:-5]}.py`).\n"
    budget = 10_000 if kind == "train" else 50_000
    sampling = kind == "gen"
    head = ["experiment", "default path", "steps/s", "fp32 eager", "naive loop", "× fp32 eager", "× naive",
            f"{budget:,} steps"] + (["sampling, images/s"] if sampling else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["experiment"], _path(r.get("runtime")), f"{r['steps_per_s']:.2f}",
                 f"{r['fp32_eager_steps_per_s']:.2f}", f"{r['naive_steps_per_s']:.2f}",
                 f"{r['speedup_vs_fp32_eager']:.2f}", f"{r['speedup_vs_naive']:.2f}",
                 _hours(budget, r["steps_per_s"])]
        if sampling:
            cells.append(f"{r['sample_images_per_s']:,.0f}" if r.get("sample_images_per_s") else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nMeasured in one run of the benchmark: {_conditions(rec)}.\n"


def queue_table(results: Path = RESULTS) -> str:
    rec = _load("queue", results)
    rows = (rec or {}).get("rows", [])
    if not rows or any("fp32_one_run_all_threads_steps_per_s" not in r for r in rows):
        return "Not measured yet with the current benchmark (`python benchmarks/queue_throughput.py`).\n"
    k = rows[0]["processes"]
    head = ["experiment", f"fp32 eager, 1 run × {k} threads", f"default path, 1 run × {k} threads",
            f"default path, {k} runs × 1 thread", "side by side ÷ one run", "side by side ÷ fp32 one run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['experiment']} | {r['fp32_one_run_all_threads_steps_per_s']:.2f} | "
                     f"{r['one_run_all_threads_steps_per_s']:.2f} | {r['runs_side_by_side_steps_per_s']:.2f} | "
                     f"{r['side_by_side_over_one']:.2f} | {r['side_by_side_over_fp32_one']:.2f} |")
    return "\n".join(lines) + (f"\n\nSteps per wall second of the whole machine, {rec['steps']} steps per process "
                               f"after warm-up; {_conditions(rec)}.\n")


def precision_table(results: Path = RESULTS) -> str:
    rec = _load("precision", results)
    if not rec or not rec.get("rows"):
        return "Not measured yet (`python benchmarks/precision_check.py`).\n"
    lines = ["| experiment | dataset | seed | fp32 eager: test | default path: test | difference | default path | "
             "wall time, fp32 / default |", "|---|---|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        wall = (f"{r['fp32']['wall_time_s'] / 60:.1f} / {r['fast']['wall_time_s'] / 60:.1f} min"
                if r["fp32"].get("wall_time_s") and r["fast"].get("wall_time_s") else "—")
        lines.append(f"| {r['experiment']} | {r['dataset']} | {r['seed']} | {100 * r['fp32']['test_acc']:.2f} % | "
                     f"{100 * r['fast']['test_acc']:.2f} % | {100 * r['test_acc_difference']:+.2f} points | "
                     f"{_path(r['fast']['runtime'])} | {wall} |")
    budget = rec["rows"][0]["budget_steps"]
    text = "\n".join(lines) + (f"\n\nA reduced budget, labelled as such: {rec['steps']:,} of the recipes' {budget:,} "
                               f"steps, each arm trained from the same seed; {_conditions(rec)}.")
    # the yardstick for a difference: how far two seeds of the same fp32 recipe land apart
    for name in dict.fromkeys(r["experiment"] for r in rec["rows"]):
        rows = [r for r in rec["rows"] if r["experiment"] == name]
        diffs = [100 * r["test_acc_difference"] for r in rows]
        fp32 = [100 * r["fp32"]["test_acc"] for r in rows]
        text += (f" {name}: mean difference {sum(diffs) / len(diffs):+.2f} points over {len(rows)} seed"
                 f"{'s' if len(rows) != 1 else ''}")
        text += (f", while its fp32 seeds alone lie {max(fp32) - min(fp32):.2f} points apart." if len(rows) > 1
                 else ".")
    return text + "\n"


def speed_markdown(results: Path = RESULTS) -> str:
    return ("**Classifiers**, one optimisation step at the recipe's batch size (data and augmentation resident, "
            "evaluation not timed):\n\n" + speed_table("train", results) +
            "\n**Generators**, one D and one G update (GANs) or one denoising step (DDPM):\n\n" +
            speed_table("gen", results) +
            "\n**The queue's layout**, the same steps in one run on every core or in one run per core:\n\n" +
            queue_table(results) +
            "\n**Does the fast path learn the same?** Final test accuracy, fp32 eager against the default path:\n\n" +
            precision_table(results))
