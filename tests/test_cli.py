"""The command line: list, run, data check, and its refusals."""
import json
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env_extra=None, check=True):
    import os
    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.run([sys.executable, "-m", "cifar_nb", *args], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=600)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


PART_I = ["A-classifier", "B-classifier", "B-ablation-1", "B-ablation-2", "B-ablation-3", "B-ablation-4",
          "C-classifier", "E-classifier"]
PART_II = ["A-generator", "B-generator", "B-generator-linear", "C-generator", "E-generator"]


def test_list_json_shows_every_experiment_with_budget_and_claims():
    rows = {r["name"]: r for r in json.loads(cli("list", "--json").stdout)}
    assert set(PART_I + PART_II) <= set(rows)
    for name in PART_I + PART_II:
        r = rows[name]
        assert r["kind"] in ("classifier", "gan", "diffusion")
        assert r["params"] <= r["budget"]["max_params"], f"{name} is over its budget"
        assert r["claims"] and all("report " in c["source"] for c in r["claims"])
        assert r["out_of_budget"] is False
    # report A's generator claims more parameters than the budget allows; ours fits
    assert rows["A-generator"]["claimed_params"] > 1_000_000 >= rows["A-generator"]["params"]
    # report D ran without a budget: its experiments are marked, everywhere
    assert any(r["out_of_budget"] for r in rows.values() if r["report"] == "D")


def test_list_table_marks_out_of_budget():
    out = cli("list").stdout
    assert "OUT OF BUDGET" in out and "C-classifier" in out


def test_list_shows_every_claim_in_text_and_json():
    from cifar_nb import experiments
    out = cli("list").stdout
    rows = {r["name"]: r for r in json.loads(cli("list", "--json").stdout)}
    # the text: accuracies (stored as fractions) in percent with their spread, FID/LPIPS as plain numbers,
    # each under its own experiment's row
    blocks, name = {}, None
    for line in out.splitlines()[1:]:
        if line.startswith("    "):
            blocks.setdefault(name, []).append(line.strip())
        else:
            name = line.split()[0]
    assert any(l.split()[1:4] == ["test_acc", "50.01%", "±"] and l.split()[4] == "3.2"
               and "report A" in l and "§2 Results" in l for l in blocks["A-classifier"]), blocks["A-classifier"]
    assert any(l.split()[1:3] == ["fid", "31.56"] for l in blocks["A-generator"])
    assert any(l.split()[1:3] == ["lpips_nn", "0.146"] for l in blocks["A-generator"])
    assert any(l.split()[1:3] == ["test_acc_cnn6", "60.1%"] for l in blocks["D-search"])
    assert blocks["D-search-inbudget"] == ["claim  none"]
    with_claims = [n for n, e in experiments.REGISTRY.items() if e.claims]
    assert len(with_claims) >= 10
    for n in with_claims:
        e = experiments.get(n)
        # the JSON carries every claim, with its number and source
        assert [(c["metric"], c["value"], c["std"]) for c in rows[n]["claims"]] == \
            [(c.metric, c.value, c.std) for c in e.claims], n
        assert all(c["source"].startswith(f"report {e.report} ") for c in rows[n]["claims"]), n
        # and so does the text
        assert [l.split()[1] for l in blocks[n]] == [c.metric for c in e.claims], n


def test_unknown_experiment_is_a_clear_error():
    p = cli("run", "Z-classifier", check=False)
    assert p.returncode != 0 and "unknown experiment" in p.stderr and "A-classifier" in p.stderr


def test_over_budget_steps_are_refused(tmp_path):
    p = cli("run", "B-classifier", "--steps", "10001", "--results-dir", str(tmp_path), "--device", "cpu",
            check=False)
    assert p.returncode != 0 and "10,001 steps > 10,000" in p.stderr
    assert not any(tmp_path.rglob("*.json"))


def test_negative_steps_are_refused(tmp_path):
    p = cli("run", "B-classifier", "--steps", "-3", "--results-dir", str(tmp_path), check=False)
    assert p.returncode != 0 and "steps must be a positive integer" in p.stderr


def test_data_check_reports_every_dataset(data_root):
    out = cli("data", "check", "--data-root", str(data_root)).stdout
    for name in ("cifar100", "cifar10", "cifar10-jpeg", "addnist"):
        assert name in out
    assert "missing" in out    # full CIFAR-100 is never here


@pytest.mark.slow
def test_run_end_to_end_then_reuse(data_root, tmp_path):
    args = ("run", "A-classifier", "--steps", "4", "--eval-every", "4", "--batch-size", "16", "--dataset",
            "cifar10-jpeg", "--device", "cpu", "--data-root", str(data_root), "--results-dir", str(tmp_path))
    first = cli(*args).stdout
    assert "trained" in first
    second = cli(*args).stdout
    assert "reused" in second
    metrics = json.loads((next(tmp_path.rglob("metrics.json"))).read_text())
    assert metrics["steps"] == 4 and 0.0 <= metrics["test_acc"] <= 1.0
