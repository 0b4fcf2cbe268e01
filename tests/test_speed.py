"""The methods page's speed tables (cifar_nb.book.speed) come from the benchmark files and nowhere else."""
import json

from cifar_nb.book import speed


def _write(tmp_path, kind, rec):
    (tmp_path / speed.FILES[kind]).write_text(json.dumps(rec))


def test_missing_or_old_benchmark_files_are_named_not_measured(tmp_path):
    text = speed.speed_markdown(tmp_path)
    assert text.count("Not measured yet") == 4 and "benchmarks/train_speed.py" in text
    # an old file without the ratio fields is not half-read
    _write(tmp_path, "train", {"rows": [{"experiment": "A-classifier", "fast_steps_per_s": 5.0}]})
    assert speed.speed_table("train", tmp_path).startswith("Not measured yet")


def test_speed_tables_show_each_row_with_its_ratios_and_conditions(tmp_path):
    row = dict(experiment="A-classifier", steps_per_s=6.0, fp32_eager_steps_per_s=4.0, naive_steps_per_s=3.0,
               speedup_vs_fp32_eager=1.5, speedup_vs_naive=2.0,
               runtime={"precision": "bf16-autocast", "compile": True, "channels_last": False, "threads": 1})
    _write(tmp_path, "train", {"rows": [row], "device_name": "CPU (x86_64, 2 cores)", "torch": "2.14.1",
                               "date": "2026-12-07T03:00:00", "threads": 1, "load_average_before": 1.02})
    table = speed.speed_table("train", tmp_path)
    line = next(l for l in table.splitlines() if l.startswith("| A-classifier"))
    assert "bf16-autocast + compile" in line and "| 1.50 |" in line and "| 2.00 |" in line
    assert "28 min" in line                     # 10,000 steps at 6 steps/s
    assert "load average 1.02" in table and "1 thread per process" in table
    _write(tmp_path, "gen", {"rows": [dict(row, experiment="C-generator", sample_images_per_s=1234.0)]})
    assert "2.3 h" in speed.speed_table("gen", tmp_path) and "1,234" in speed.speed_table("gen", tmp_path)


def test_queue_and_precision_tables(tmp_path):
    _write(tmp_path, "queue", {"cores": 2, "steps": 40, "date": "2026-12-07", "rows": [dict(
        experiment="E-classifier", processes=2, fp32_one_run_all_threads_steps_per_s=1.0,
        one_run_all_threads_steps_per_s=1.5, runs_side_by_side_steps_per_s=1.8, side_by_side_over_one=1.2,
        side_by_side_over_fp32_one=1.8)]})
    q = speed.queue_table(tmp_path)
    assert "| E-classifier | 1.00 | 1.50 | 1.80 | 1.20 | 1.80 |" in q and "2 runs × 1 thread" in q
    arm = lambda acc, rt: {"test_acc": acc, "runtime": rt}
    _write(tmp_path, "precision", {"steps": 1000, "date": "2026-12-07", "rows": [dict(
        experiment="A-classifier", dataset="cifar10-jpeg", seed=1, budget_steps=10_000, test_acc_difference=-0.004,
        fp32=arm(0.5, {"precision": "fp32"}), fast=arm(0.496, {"precision": "bf16-autocast", "compile": True})),
        dict(experiment="A-classifier", dataset="cifar10-jpeg", seed=2, budget_steps=10_000, test_acc_difference=0.002,
             fp32=dict(arm(0.52, {"precision": "fp32"}), wall_time_s=600.0),
             fast=dict(arm(0.522, {"precision": "bf16-autocast"}), wall_time_s=300.0))]})
    p = speed.precision_table(tmp_path)
    assert "| 50.00 % | 49.60 % | -0.40 points | bf16-autocast + compile | — |" in p
    assert "| 10.0 / 5.0 min |" in p
    assert "mean difference -0.10 points over 2 seeds, while its fp32 seeds alone lie 2.00 points apart" in p
    assert "reduced budget" in p and "1,000 of the recipes' 10,000" in p
