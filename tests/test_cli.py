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


# ---------------------------------------------------------------------------------------------
# one error boundary: a sentence and a non-zero exit, never a traceback

def _run_cli(args, capsys):
    from cifar_nb import cli
    try:
        code = cli.main(args)
    except SystemExit as e:      # argparse and explicit refusals
        code = e.code if isinstance(e.code, int) else 2
        if not isinstance(e.code, int):
            print(e.code, file=__import__("sys").stderr)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err


@pytest.mark.parametrize("args, words", [
    (["run", "A-classifier", "--device", "gpu"], "device 'gpu'"),
    (["run", "A-classifier", "--device", "cuda:x"], "device 'cuda:x'"),
    (["run", "A-classifier", "--seed", "-1"], "negative"),
    (["run", "A-classifier", "--seeds", "0", "-3"], "negative"),
    (["run", "A-classifier", "--batch-size", "0"], "batch_size must be a positive integer"),
    (["run", "Z-classifier"], "unknown experiment"),
    (["queue", "run", "--device", "tpu"], "device 'tpu'"),
    (["queue", "run", "--device", "cpu", "--only", "Z-classifier"], "does not hold"),
])
def test_bad_arguments_get_one_sentence(args, words, capsys):
    code, err = _run_cli(args, capsys)
    assert code != 0 and words in err


def test_results_folder_that_is_a_file_or_read_only_is_refused(tmp_path, capsys, monkeypatch):
    from cifar_nb import experiments
    from cifar_nb.engine import runs
    cfg = experiments.get("A-classifier").make_config(dataset="cifar10-jpeg", steps=2)
    monkeypatch.setattr(runs.budget, "check", lambda *a, **k: None)
    monkeypatch.setattr("cifar_nb.engine.data.describe", lambda *a, **k: __import__("types").SimpleNamespace(
        num_classes=10, image_size=32, channels=3))
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        runs.run(cfg, results_dir=blocker / "results", progress=False)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="cannot be written"):
            runs.run(cfg, results_dir=ro / "results", progress=False)
        assert not (ro / "results").exists()
    finally:
        ro.chmod(0o755)


def test_a_batch_larger_than_the_training_split_is_a_sentence(capsys, tmp_path):
    code, err = _run_cli(["run", "A-classifier", "--batch-size", "100000", "--steps", "2", "--device", "cpu",
                          "--dataset", "cifar10-jpeg", "--results-dir", str(tmp_path)], capsys)
    if "not found" in err or "no data root" in err:
        pytest.skip("needs the CIFAR-10 JPEG stand-in")
    assert code == 2 and "larger than the training split" in err
    assert not list(tmp_path.rglob("config.json"))       # nothing half-written is left


def test_an_unexpected_error_names_its_log(capsys, monkeypatch, tmp_path):
    from cifar_nb import cli
    monkeypatch.setenv("CIFAR_NB_CACHE", str(tmp_path))
    monkeypatch.setattr(cli, "cmd_list", lambda args: 1 / 0)
    code, err = _run_cli(["list"], capsys)
    assert code == cli.EXIT_BUG and "ZeroDivisionError" in err and "traceback is in" in err
    logs = list((tmp_path / "logs").glob("error-*.log"))
    assert logs and "ZeroDivisionError" in logs[0].read_text()


# ---------------------------------------------------------------------------------------------
# the run flags are made from RunConfig's fields

def _flags():
    import argparse

    from cifar_nb import cli
    p = argparse.ArgumentParser()
    cli.add_config_flags(p)
    return cli, p


def test_every_config_field_with_a_help_text_has_its_flag():
    import dataclasses

    from cifar_nb.config import RunConfig
    cli, p = _flags()
    flags = {a.dest for a in p._actions}
    scalars = {f.name for f in dataclasses.fields(RunConfig) if "cli" in f.metadata and f.type != "dict"}
    assert scalars == {"dataset", "steps", "batch_size", "eval_every"} and scalars <= flags
    assert {"set", "fid_samples"} <= flags


def test_flags_change_the_recipe_and_nothing_else():
    from cifar_nb import experiments
    cli, p = _flags()
    exp = experiments.get("C-generator")
    args = p.parse_args(["--steps", "60", "--set", "train.fid_samples=500", "--set", "optimizer.lr=0.001",
                         "--set", "train.interpolation=lerp"])
    cfg = cli.config_from_flags(exp, args)
    base = exp.config
    assert cfg.steps == 60 and cfg.train["fid_samples"] == 500 and cfg.optimizer["lr"] == 0.001
    assert cfg.train["interpolation"] == "lerp"
    assert {k: v for k, v in cfg.train.items() if k not in ("fid_samples", "interpolation")} == \
        {k: v for k, v in base.train.items() if k not in ("fid_samples", "interpolation")}
    assert cfg.replace(steps=base.steps, train=base.train, optimizer=base.optimizer) == base
    assert cli.config_from_flags(exp, p.parse_args([])) == base
    assert cli.config_from_flags(exp, p.parse_args(["--fid-samples", "7"])).train["fid_samples"] == 7


@pytest.mark.parametrize("bad", ["train.fid_samples", "trian.fid_samples=5", "fid_samples=5", "train.=5"])
def test_a_bad_set_is_one_sentence(bad, capsys):
    code, err = _run_cli(["run", "A-classifier", "--set", bad], capsys)
    assert code != 0 and "FIELD.KEY=VALUE" in err
