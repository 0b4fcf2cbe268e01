"""Report D: the 8 CNN families, the search space, and a tiny real search that prunes and resumes."""
import dataclasses

import optuna
import pytest
import torch

from cifar_nb import budget, cli, experiments
from cifar_nb.config import RunConfig
from cifar_nb.engine import artifacts, search
from cifar_nb.models.search_cnn import FAMILIES, KERNEL_SIZES, SearchCNN, fit_width, param_count

REPORT_COUNTS = {"cnn6": 2_494_022, "cnn7": 3_004_917, "cnn2": 10_393_946}


# ---------------------------------------------------------------------------------------------
# families

def test_families_at_full_width_have_report_ds_sizes():
    counts = {f: param_count(family=f) for f in FAMILIES}
    assert len(counts) == 8
    for f, n in counts.items():
        assert 2_000_000 <= n <= 10_500_000, (f, n)
    for f, n in REPORT_COUNTS.items():       # the three winners are sized like the report's
        assert abs(counts[f] - n) / n < 0.02, (f, counts[f], n)
    assert counts["cnn6"] == budget.count_params(SearchCNN(family="cnn6"))   # meta count == real model


@pytest.mark.parametrize("k", KERNEL_SIZES)
def test_every_kernel_keeps_the_size_and_every_choice_builds(k):
    for act, pool, bn in [("relu", "max", True), ("leaky_relu", "avg", False)]:
        m = SearchCNN(family="cnn4", width=0.1, kernel_size=k, activation=act, pool=pool, batch_norm=bn)
        x = torch.randn(2, 3, 32, 32)
        assert m.features(x).shape[-2:] == (8, 8)          # two pools: 32 -> 8 whatever the kernel
        assert m(x).shape == (2, 100)
        assert any(isinstance(l, torch.nn.BatchNorm2d) for l in m.modules()) == bn
        assert any(isinstance(l, torch.nn.LeakyReLU) for l in m.modules()) == (act == "leaky_relu")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fit_width_is_the_widest_within_the_budget(family):
    for k in (1, 7):
        w = fit_width(100_000, family=family, kernel_size=k)
        assert param_count(family=family, kernel_size=k, width=w) <= 100_000
        assert param_count(family=family, kernel_size=k, width=w + 1 / 512) > 100_000


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="unknown family"):
        SearchCNN(family="cnn9")
    with pytest.raises(ValueError, match="kernel_size"):
        SearchCNN(kernel_size=6)
    with pytest.raises(ValueError, match="pools too often"):
        SearchCNN(family="cnn3", image_size=8)
    with pytest.raises(ValueError, match="no search called"):
        search.make_plan("A-classifier")
    for bad in (0, 1.5, -1):
        with pytest.raises(ValueError, match="scale"):
            search.make_plan("D-search", bad)
    with pytest.raises(SystemExit, match="scale"):
        cli.search_main(["D-search", "--scale", "0", "--results-dir", "/nonexistent/never-written"])


# ---------------------------------------------------------------------------------------------
# search space, plans, registry

def test_search_space_is_report_ds():
    rows = dict(search.space_rows())
    assert rows["family"] == "one of " + ", ".join(sorted(FAMILIES))
    assert rows["kernel_size"] == "one of 1, 2, 3, 4, 5, 7"
    assert rows["activation"] == "one of relu, leaky_relu" and rows["pool"] == "one of max, avg"
    assert rows["dropout"] == "uniform [0.1, 0.3]"
    assert rows["adam_lr"] == "uniform [0.0001, 0.1]"
    assert rows["adam_beta2"] == "uniform [0.8, 0.99999999]"
    assert rows["rmsprop_lr"] == "log-uniform [0.0001, 0.1]" and rows["rmsprop_alpha"] == "uniform [0.8, 1]"
    assert rows["adagrad_lr"] == "log-uniform [0.001, 0.1]"
    assert rows["adagrad_initial_accumulator_value"] == "uniform [0, 0.3]"
    assert rows["sgd_lr"] == "log-uniform [1e-05, 0.1]"
    assert rows["sgd_momentum"] == rows["sgd_dampening"] == "uniform [0, 0.4]"


def test_plans_follow_report_d_and_the_budget():
    full = search.make_plan("D-search")
    assert (full.n_trials, full.parallel, full.top_k) == (60, 16, 3)
    assert full.trial.steps == 30 * 313 and full.trial.train == {"val_size": 10_000, "eval_split": "val"}
    assert full.retrain.steps == 100 * 391 and "val_size" not in full.retrain.train
    assert full.rungs == [313, 626, 1252, 2504, 5008]                  # keep the top half at each
    assert full.trial.out_of_budget and full.retrain.out_of_budget
    with pytest.raises(budget.BudgetError):                             # it really is out of budget
        budget.check("classifier", param_count(family="cnn6"), full.retrain.steps, out_of_budget=False)

    inb = search.make_plan("D-search-inbudget")
    assert inb.trial.steps <= 10_000 and inb.retrain.steps == 10_000 and not inb.retrain.out_of_budget
    cfg = search.trial_config(inb, dict(family="cnn2", kernel_size=7, activation="relu", pool="max",
                                        batch_norm=True, dropout=0.2), {"name": "sgd", "lr": 0.01},
                              dict(num_classes=100, image_size=32, in_channels=3))
    assert param_count(**cfg.model_args) <= 100_000

    tiny = search.make_plan("D-search", 0.01)
    assert tiny.n_trials >= 8 and tiny.trial.steps < full.trial.steps and tiny.width < 1
    # asking for more trials later continues the same study
    assert dataclasses.replace(tiny, n_trials=99).study_name == tiny.study_name != full.study_name
    preview = search.preview_plan("D-search", "cifar10-jpeg", retrain_steps=60)
    assert preview.rungs == [4, 8] and preview.trial.steps == 16 and preview.n_trials == 8
    assert preview.retrain.steps == preview.retrain.eval_every == 60 and preview.trial.dataset == "cifar10-jpeg"

    for name in ("D-search", "D-search-inbudget"):
        s = experiments.get(name).summary()
        assert s["out_of_budget"] == (name == "D-search") and s["within_budget"] == (name != "D-search")
    assert {c.metric for c in experiments.get("D-search").claims} == {"test_acc_cnn6", "test_acc_cnn7",
                                                                      "test_acc_cnn2"}


# ---------------------------------------------------------------------------------------------
# a tiny real search on the CPU

@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """Four classes of noisy solid colours, 32x32 PNGs: learnable in a few steps."""
    from PIL import Image
    root = tmp_path_factory.mktemp("data")
    g = torch.Generator().manual_seed(0)
    colours = torch.tensor([[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40]])
    for split, n in (("train", 40), ("test", 12)):
        for c, col in enumerate(colours):
            d = root / "tiny" / split / f"c{c}"
            d.mkdir(parents=True)
            for i in range(n):
                img = (col.view(3, 1, 1) + torch.randint(-40, 41, (3, 32, 32), generator=g)).clamp(0, 255)
                Image.fromarray(img.to(torch.uint8).permute(1, 2, 0).numpy()).save(d / f"{i}.png")
    return root


def tiny_plan(n_trials):
    plan = search.make_plan("D-search-inbudget", 0.001, dataset="imagefolder:tiny", batch_size=16)
    trial = plan.trial.replace(steps=16, eval_every=4, augment={},
                               train={"val_size": 32, "eval_split": "val", "train_eval_size": 32})
    retrain = plan.retrain.replace(steps=8, eval_every=4, augment={}, train={"train_eval_size": 32})
    return dataclasses.replace(plan, trial=trial, retrain=retrain, width=0.05, n_trials=n_trials)


GOOD = dict(family="cnn4", activation="relu", pool="max", kernel_size=3, batch_norm=True, dropout=0.1,
            optimizer="adam", adam_lr=0.01, adam_beta1=0.9, adam_beta2=0.999)
BAD = dict(GOOD, optimizer="sgd", sgd_lr=1e-5, sgd_momentum=0.0, sgd_dampening=0.0)   # cannot learn in time


@pytest.mark.slow
def test_tiny_search_prunes_resumes_and_retrains(tiny_root, tmp_path):
    kw = dict(device="cpu", data_root=tiny_root, results_dir=tmp_path)
    plan3 = tiny_plan(3)
    assert plan3.rungs == [4, 8]
    search.open_study(plan3, results_dir=tmp_path).enqueue_trial(GOOD)
    search.open_study(plan3, results_dir=tmp_path).enqueue_trial(BAD)
    study = search.run_search(plan3, **kw)
    first = [(t.number, t.state, t.params, t.value, t.intermediate_values) for t in study.trials]
    assert len(first) == 3
    # the second trial is worse than the first at the first rung, so successive halving drops it there
    assert study.trials[1].state == optuna.trial.TrialState.PRUNED
    assert max(study.trials[1].intermediate_values) == 4
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert sorted(study.trials[0].intermediate_values) == [4, 8, 12, 16]
    pruned_cfg = RunConfig.from_dict(study.trials[1].user_attrs["config"])
    pruned_dir = artifacts.run_dir(pruned_cfg, tmp_path)
    assert not artifacts.checkpoint_path(pruned_cfg, tmp_path).exists() and not (pruned_dir / "metrics.json").exists()
    done_dir = artifacts.run_dir(RunConfig.from_dict(study.trials[0].user_attrs["config"]), tmp_path)
    assert (done_dir / "metrics.json").exists() and not (done_dir / "weights.pt").exists()

    # resume: the same storage, asking for 5 in all, adds 2 and leaves the first 3 alone
    study = search.run_search(tiny_plan(5), **kw)
    assert study.study_name == plan3.study_name and len(study.trials) == 5
    assert [(t.number, t.state, t.params, t.value, t.intermediate_values) for t in study.trials[:3]] == first
    assert search.n_finished(study) == 5
    assert (search.search_dir(plan3, tmp_path) / "trials.csv").read_text().count("\n") == 6

    # retrain the best distinct families on the whole training set, scored on the test set
    res = search.SearchResult(tiny_plan(5), study, search.retrain_top(tiny_plan(5), study, **kw),
                              search.search_dir(plan3, tmp_path))
    fams = [r.trial.params["family"] for r in res.retrained]
    assert 1 <= len(fams) <= 3 and len(set(fams)) == len(fams)
    assert res.retrained[0].trial.value == study.best_value
    r0 = res.retrained[0].results[0]
    assert r0.config.steps == 8 and "val_size" not in r0.config.train and 0 <= r0.metrics["test_acc"] <= 1
    assert r0.metrics["params"] <= 100_000 and not r0.metrics["out_of_budget"]
    s = res.summary()
    assert s["complete"] + s["pruned"] == 5 and s["pruned"] >= 1 and s["mark"] == ""
    figs = search.figures(study, res.dir)
    assert {"history", "intermediate"} <= set(figs) and all(p.stat().st_size > 1000 for p in figs.values())


def test_figures_mark_the_title_once_and_leave_the_global_style_alone(tmp_path):
    import matplotlib
    from matplotlib.figure import Figure
    for loc in ("left", "center"):
        ax = Figure().add_subplot()
        ax.set_title("Hyperparameter Importances", loc=loc)
        search.mark_title(ax, "OUT OF BUDGET")
        assert not any(ax.get_title(where) for where in ("left", "center", "right"))   # one title only
        assert ax.figure.get_suptitle() == "Hyperparameter Importances (OUT OF BUDGET)"
    dist = {"x": optuna.distributions.FloatDistribution(0, 10), "y": optuna.distributions.IntDistribution(0, 1)}
    study = optuna.create_study(direction="maximize")
    for i in range(8):
        study.add_trial(optuna.trial.create_trial(params={"x": float(i), "y": i % 2}, distributions=dist,
                                                  value=float(i), intermediate_values={1: i / 2, 2: float(i)}))
    style = matplotlib.rcParams["axes.facecolor"], matplotlib.rcParams["axes.prop_cycle"]
    figs = search.figures(study, tmp_path, mark="OUT OF BUDGET")
    assert set(figs) == {"history", "intermediate", "importances"}
    assert (matplotlib.rcParams["axes.facecolor"], matplotlib.rcParams["axes.prop_cycle"]) == style


@pytest.mark.parametrize("storage, words", [
    ("nosuchdb://x/y", "not a database URL"),
    ("definitely not a url", "not a database URL"),
    ("sqlite:////nonexistent/folder/study.db", "does not exist"),
])
def test_a_bad_storage_url_is_refused_before_any_trial(tiny_root, tmp_path, storage, words):
    plan = tiny_plan(2)
    with pytest.raises(ValueError, match=words):
        search.run_search(plan, data_root=tiny_root, results_dir=tmp_path, storage=storage)
    assert not list(tmp_path.rglob("*.db")) and not list(tmp_path.rglob("config.json"))


def test_a_missing_dataset_is_refused_before_any_study_exists(tmp_path):
    from cifar_nb.engine.data import DataError
    plan = tiny_plan(2)
    with pytest.raises(DataError, match="not found"):
        search.run_search(plan, data_root=tmp_path, results_dir=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_search_cli_errors_are_one_sentence(tmp_path, capsys):
    from cifar_nb import cli
    with pytest.raises(SystemExit) as e:
        cli.main(["search", "D-search-inbudget", "--preview", "--dataset", "imagefolder:nowhere",
                  "--data-root", str(tmp_path), "--results-dir", str(tmp_path / "r"), "--device", "cpu"])
    assert "error:" in str(e.value.code) and "Traceback" not in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.db"))
