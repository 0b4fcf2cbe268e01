"""The "Beyond the reports" chapter's machinery: ablations of our recipe (ablations.py, `ablate`) and the tables
that set our models beside the reports' (book/beyond.py). No training: finished runs are written by hand."""
from __future__ import annotations

import pytest

from cifar_nb import ablations, cli, experiments
from cifar_nb.book import audit, beyond
from cifar_nb.engine import runs
from test_report import fake_run


@pytest.mark.parametrize("dataset", ["cifar10-jpeg", "addnist"])
def test_each_ablation_changes_exactly_its_own_keys_of_the_reduced_recipe(dataset):
    base = experiments.get("ours-classifier").make_config(steps=1_000, dataset=dataset, seed=0)
    todo = ablations.configs("ours-classifier", 1_000, dataset)
    assert todo[0] == (ablations.FULL_RECIPE, base)
    assert len({c.hash for _, c in todo}) == len(todo)          # every variant is a run of its own
    for (label, cfg), (_, changes) in zip(todo[1:], ablations.variants("ours-classifier", dataset)[1:]):
        for dotted, value in changes.items():
            if "." not in dotted:                                 # a whole field, as the crop on AddNIST
                assert getattr(cfg, dotted) == value != getattr(base, dotted), label
                continue
            field, key = dotted.split(".")
            assert getattr(cfg, field)[key] == value != getattr(base, field).get(key), label
        touched = {d.split(".")[0] for d in changes}
        if any("." not in d for d in changes):
            assert cfg.replace(**{f: getattr(base, f) for f in touched}) == base
            continue
        for field in ("augment", "train"):
            keys = {d.split(".")[1] for d in changes if d.startswith(field)}
            assert {k: v for k, v in getattr(cfg, field).items() if k not in keys} == \
                {k: v for k, v in getattr(base, field).items() if k not in keys}
        assert cfg.replace(**{f: getattr(base, f) for f in touched}) == base
    # the channel variants exist exactly where the dataset says the channels' order does not matter
    from cifar_nb.engine import data
    channel = {label for label, _ in todo if "channel" in label}
    assert bool(channel) == data.known_info(dataset).channel_order_invariant
    with pytest.raises(ValueError, match="no ablations are defined for 'A-classifier'"):
        ablations.variants("A-classifier")


def test_an_earlier_recipe_keeps_its_measured_variants_readable_and_drops_those_that_change_nothing(
        tmp_path, monkeypatch):
    earlier = "without the weight average (for this test)"
    monkeypatch.setitem(ablations.EARLIER_RECIPES, "ours-classifier", {earlier: {"train.ema": None}})
    now = dict(ablations.configs("ours-classifier", 1_000, "cifar10-jpeg"))
    then = dict(ablations.configs("ours-classifier", 1_000, "cifar10-jpeg", base=earlier))
    # the earlier recipe is the current one's "no weight EMA" variant; that variant of it changes nothing
    assert then[ablations.FULL_RECIPE] == now["no weight EMA"] and "no weight EMA" not in then
    assert then["no label smoothing"] == now["no label smoothing"].replace(train={
        **now["no label smoothing"].train, "ema": None})
    fake_run(tmp_path, then[ablations.FULL_RECIPE], {"test_acc": 0.70})
    fake_run(tmp_path, then["no label smoothing"], {"test_acc": 0.68})
    t = beyond.ablation_table("ours-classifier", 1_000, "cifar10-jpeg", results_dir=tmp_path, base=earlier)
    rows = {r[0]: r for r in t.rows}
    assert beyond.EARLIER in rows and ablations.FULL_RECIPE not in rows and rows["no label smoothing"][3] == "-2.00"
    assert earlier in t.caption and f"--earlier '{earlier}'" in t.note
    # ... while the current recipe's own table has run none of them
    assert beyond.ablation_table("ours-classifier", 1_000, "cifar10-jpeg", results_dir=tmp_path).rows[0][2] == \
        "not run yet"
    with pytest.raises(ValueError, match="no earlier recipe 'nope'"):
        ablations.configs("ours-classifier", 1_000, "cifar10-jpeg", base="nope")
    with pytest.raises(ValueError, match="no ablation of ours-classifier on cifar10-jpeg is labelled 'no weight EMA'"):
        ablations.configs("ours-classifier", 1_000, "cifar10-jpeg", base=earlier, only=["no weight EMA"])


def test_report_e_s_augmentation_is_the_recipe_on_addnist_only_and_the_crop_its_variant_there():
    exp = experiments.get("ours-classifier")
    photos, digits = (exp.make_config(dataset=d, seed=0) for d in ("cifar10-jpeg", "addnist"))
    assert photos == exp.config.replace(dataset="cifar10-jpeg") and "affine" not in photos.augment
    assert digits.augment == {**photos.augment, "crop": 0,
                              "affine": experiments.get("E-classifier").config.augment["affine"]}
    # the runs made before the change are found again: the crop variant now, the earlier recipe's own table too
    crop = dict(ablations.configs("ours-classifier", 10_000, "addnist", only=[ablations.CROP]))[ablations.CROP]
    earlier = dict(ablations.configs("ours-classifier", 10_000, "addnist", base=ablations.BEFORE_E_AFFINE,
                                     only=[ablations.E_AFFINE]))
    assert crop == earlier[ablations.FULL_RECIPE] == photos.replace(dataset="addnist", steps=10_000)
    assert earlier[ablations.E_AFFINE] == digits.replace(steps=10_000)
    labels = [label for label, _ in ablations.variants("ours-classifier", "addnist")]
    assert ablations.CROP in labels and ablations.E_AFFINE not in labels      # the recipe itself is no variant
    assert ablations.CROP not in [label for label, _ in ablations.variants("ours-classifier", "cifar10-jpeg")]
    # the notebooks' runs and the full-budget tables follow the recipe on the dataset
    from cifar_nb.book import params
    P = params.validate_parameters(["ours-classifier"], preview=False, seeds=[0], dataset="addnist",
                                   results_dir=None, device="cpu", data_root=None)
    assert P.config("ours-classifier") == digits


def test_the_ablation_table_shows_what_exists_and_labels_the_budget(tmp_path):
    todo = dict(ablations.configs("ours-classifier", 1_000, "cifar10-jpeg"))
    fake_run(tmp_path, todo[ablations.FULL_RECIPE], {"test_acc": 0.70})
    fake_run(tmp_path, todo["no weight EMA"], {"test_acc": 0.655})
    t = beyond.ablation_table("ours-classifier", 1_000, "cifar10-jpeg", results_dir=tmp_path)
    rows = {r[0]: r for r in t.rows}
    assert rows["full recipe"][2] == "70.00 %" and rows["full recipe"][3] == "—"
    assert rows["no weight EMA"][3] == "-4.50" and rows["no weight EMA"][1] == "train.ema = None"
    assert rows["no label smoothing"][2] == "not run yet"
    assert "reduced budget" in t.caption and "1,000 of the recipe's 10,000 steps" in t.caption
    assert "ablate ours-classifier --steps 1000 --dataset cifar10-jpeg" in t.note


def test_the_generator_s_ablation_table_reads_fd_cls_and_its_first_design_is_the_old_recipe(tmp_path):
    todo = dict(ablations.configs("ours-generator", 5_000, "cifar10-jpeg"))
    fake_run(tmp_path, todo[ablations.FULL_RECIPE], {"fd_cls": 40.0, "kid_mean": 0.02})
    fake_run(tmp_path, todo["no G weight EMA"], {"fd_cls": 46.5, "kid_mean": 0.03})
    t = beyond.ablation_table("ours-generator", 5_000, "cifar10-jpeg", results_dir=tmp_path)
    rows = {r[0]: r for r in t.rows}
    assert t.columns[2].startswith("FD-cls") and rows["full recipe"][2] == "40.00" and rows["no G weight EMA"][4] == "+6.5"
    assert rows[ablations.NO_DIFFAUGMENT][2] == "not run yet"
    assert "5,000 of the recipe's 50,000 steps" in t.caption and "lower is better" in t.caption
    # the first design is a whole other network and recipe: the ablation rebuilds it field by field
    first = todo["first design (SN discriminator, hinge loss, batch 64)"]
    assert first.model == "ours_gan" and first.batch_size == 64 and first.model_args == {}
    assert first.train == {"loss": "hinge", "diffaug": "color,translation,cutout", "ema": 0.999,
                           "feature_steps": experiments.FEATURE_STEPS}


def test_side_by_side_lists_full_budget_runs_on_one_dataset_and_ours_still_to_come(tmp_path):
    a = experiments.get("A-classifier").make_config(dataset="cifar10-jpeg")
    for s, acc in ((0, 0.65), (1, 0.67)):
        fake_run(tmp_path, a.replace(seed=s), {"test_acc": acc, "best_test_acc": acc, "train_acc": 1.0})
    fake_run(tmp_path, a.replace(steps=60), {"test_acc": 0.2})                         # a preview: not listed
    fake_run(tmp_path, experiments.get("E-classifier").config, {"test_acc": 0.94})      # another dataset
    t = beyond.side_by_side("classifier", "cifar10-jpeg", tmp_path)
    rows = {r[0]: r for r in t.rows}
    assert set(rows) == {"A-classifier", "ours-classifier"}
    assert rows["A-classifier"][4] == "0, 1" and rows["A-classifier"][5] == "66.00 ± 1.41 %"
    assert rows["ours-classifier"][4] == "not run yet at full budget"
    assert rows["ours-classifier"][2] == f"{82_218:,}"        # counted for the stand-in's 10 classes
    assert "CIFAR-10 (JPEG stand-in)" in t.caption and "100,000 parameters" in t.caption
    g = beyond.side_by_side("gan", "cifar10-jpeg", tmp_path)
    assert [r[0] for r in g.rows] == ["ours-generator"] and "raw" in g.caption


def test_ablate_runs_every_variant_and_refuses_what_it_cannot_do(tmp_path, monkeypatch, capsys):
    seen = []

    def fake(cfg, **kw):
        seen.append(cfg)
        return fake_run(tmp_path, cfg, {"test_acc": 0.5})

    monkeypatch.setattr(runs, "run", fake)
    assert cli.main(["ablate", "ours-classifier", "--steps", "300", "--dataset", "cifar10-jpeg",
                     "--device", "cpu", "--results-dir", str(tmp_path)]) == 0
    assert [c.hash for c in seen] == [c.hash for _, c in ablations.configs("ours-classifier", 300, "cifar10-jpeg")]
    out = capsys.readouterr().out
    assert all(f"{label}: " in out for label, _ in ablations.variants("ours-classifier", "cifar10-jpeg"))
    assert "no channel shuffling: " not in out          # it changes nothing on photographs: not a variant there
    assert "test accuracy 50.00 %" in out
    seen.clear()
    assert cli.main(["ablate", "ours-classifier", "--steps", "300", "--dataset", "addnist", "--only",
                     "no channel shuffling", "--device", "cpu", "--results-dir", str(tmp_path)]) == 0
    assert [c.augment.get("channel_shuffle") for c in seen] == ["auto", 0]
    seen.clear()                     # an earlier recipe's variants, by the same command
    assert cli.main(["ablate", "ours-classifier", "--steps", "300", "--dataset", "addnist", "--only", ablations.E_AFFINE,
                     "--earlier", ablations.BEFORE_E_AFFINE, "--device", "cpu", "--results-dir", str(tmp_path)]) == 0
    assert seen == [c for _, c in ablations.configs("ours-classifier", 300, "addnist", only=[ablations.E_AFFINE],
                                                    base=ablations.BEFORE_E_AFFINE)]
    assert seen[0].augment["crop"] == 2 and seen[1].augment["crop"] == 0
    with pytest.raises(SystemExit, match="no ablation of ours-classifier on cifar10-jpeg is labelled 'no channel"):
        cli.main(["ablate", "ours-classifier", "--steps", "300", "--dataset", "cifar10-jpeg", "--only",
                  "no channel shuffling", "--results-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        cli.main(["ablate", "A-classifier", "--steps", "300", "--dataset", "cifar10-jpeg"])
    with pytest.raises(SystemExit):
        cli.main(["ablate", "ours-classifier", "--steps", "0", "--dataset", "cifar10-jpeg"])
    assert "steps must be a positive integer" in capsys.readouterr().err


def test_the_targets_table_reads_full_budget_runs_and_says_met_or_not(tmp_path):
    t = beyond.targets_table(tmp_path)
    assert [r[-2] for r in t.rows] == ["not measured yet"] * 3
    ours = experiments.get("ours-classifier").make_config(dataset="addnist")
    fake_run(tmp_path, ours.replace(seed=0), {"test_acc": 0.95})
    fake_run(tmp_path, ours.replace(seed=1), {"test_acc": 0.98})       # the mean, 96.5 %, meets 96 %
    fake_run(tmp_path, ours.replace(seed=2, steps=2_000), {"test_acc": 0.10})    # a reduced run: not counted
    c = experiments.get("C-generator").make_config(dataset="cifar10-jpeg")
    fake_run(tmp_path, c, {"fd_cls": 40.0, "sampling_mode": "eval"})
    fake_run(tmp_path, experiments.get("ours-generator").make_config(dataset="cifar10-jpeg"),
             {"fd_cls": 30.0, "sampling_mode": "eval"})
    rows = {(r[0], r[1]): r for r in beyond.targets_table(tmp_path).rows}
    addnist = rows[("ours-classifier", "AddNIST (regenerated from MNIST)")]
    assert addnist[4] == "96.50 ± 2.12 %" and addnist[5] == "0, 1" and addnist[6] == "met"
    gen = rows[("ours-generator", "CIFAR-10 (JPEG stand-in)")]
    assert gen[3] == "<= 28.00 (70% of C-generator's 40.00)" and gen[6] == "NOT met"      # 30 > 0.7 x 40
    assert rows[("ours-classifier", "CIFAR-10 (JPEG stand-in)")][6] == "not measured yet"


def test_the_weight_average_table_sets_each_full_run_s_average_against_its_live_weights(tmp_path):
    import json
    from cifar_nb.engine import artifacts
    cfg = experiments.get("ours-generator").make_config(dataset="cifar10-jpeg")
    r = fake_run(tmp_path, cfg, {"fd_cls": 30.0, "fd_cls_samples": 10_000})
    fake_run(tmp_path, cfg.replace(seed=1), {"fd_cls": 33.0, "fd_cls_samples": 10_000})
    live = artifacts.scored_dir(r.run_dir, 10_000, "eval", "live")
    assert live.name == "10000-samples-live-weights"
    live.mkdir(parents=True)
    (live / "scores.json").write_text(json.dumps({"fd_cls": 36.5, "weights": "live"}))
    t = beyond.weight_average_table("ours-generator", "cifar10-jpeg", results_dir=tmp_path)
    assert [row[1:] for row in t.rows] == [[0, "30.00", "36.50", "-6.5"], [1, "33.00", "not scored yet", "—"]]
    assert "--weights live" in t.note and "--variant <its label>" in t.note


def test_the_validation_table_passes_a_variant_only_if_it_is_ahead_on_the_held_out_split_at_every_seed(tmp_path):
    import json
    import shutil

    from cifar_nb.engine import artifacts
    todo = {s: dict(ablations.configs("ours-classifier", 10_000, "addnist", seed=s, only=[ablations.E_AFFINE],
                                      base=ablations.BEFORE_E_AFFINE)) for s in (0, 1, 2)}

    def finished(seed, label, test, val=None):
        r = fake_run(tmp_path, todo[seed][label], {"test_acc": test})
        if val is not None:
            (r.run_dir / "scored" / "val-split").mkdir(parents=True)
            (r.run_dir / "scored" / "val-split" / "scores.json").write_text(json.dumps({"val_acc": val}))

    def table():
        return beyond.validation_table("ours-classifier", "addnist", ablations.E_AFFINE, results_dir=tmp_path,
                                       base=ablations.BEFORE_E_AFFINE)

    finished(0, ablations.FULL_RECIPE, 0.93, 0.92)
    finished(0, ablations.E_AFFINE, 0.94, 0.935)
    finished(1, ablations.FULL_RECIPE, 0.93)                 # trained, not yet evaluated on the split
    t = table()
    assert t.rows[0] == [0, "92.00 %", "93.50 %", "+1.50", "93.00 %", "94.00 %"]
    assert t.rows[1][1:4] == ["not scored yet", "not run yet", "—"] and t.rows[2][1:3] == ["not run yet"] * 2
    assert "Not decided yet: 1 of 3 seeds" in t.caption and "--split val" in t.note
    shutil.rmtree(artifacts.run_dir(todo[1][ablations.FULL_RECIPE], tmp_path))
    finished(1, ablations.FULL_RECIPE, 0.93, 0.92)
    finished(1, ablations.E_AFFINE, 0.95, 0.91)               # ahead on the test split, behind on validation
    finished(2, ablations.FULL_RECIPE, 0.93, 0.92)
    finished(2, ablations.E_AFFINE, 0.94, 0.93)
    assert "The rule is not met: the variant is ahead at 2 of 3 seeds" in table().caption
    shutil.rmtree(artifacts.run_dir(todo[1][ablations.E_AFFINE], tmp_path))
    finished(1, ablations.E_AFFINE, 0.95, 0.925)
    assert "The rule is met" in table().caption and "(mean +1.00 points)" in table().caption
    assert f"an earlier recipe of ours ({ablations.BEFORE_E_AFFINE}) and the variant" in table().caption


def test_the_generator_variants_the_chapter_shows_at_full_budget_are_registered_ablations():
    todo = [label for label, _ in ablations.variants("ours-generator", "cifar10-jpeg",
                                                      only=beyond.GAN_VARIANTS_AT_FULL_BUDGET)]
    assert todo == [ablations.FULL_RECIPE, *beyond.GAN_VARIANTS_AT_FULL_BUDGET]
    # the D-output plots take every BCE variant and no hinge one, whatever the order
    shown = set(beyond.GAN_VARIANTS_AT_FULL_BUDGET)
    assert set(beyond.GAN_VARIANTS_WITH_SIGMOID_D) == shown - {ablations.FIRST_GAN_DESIGN}
    for label, changes in ablations.variants("ours-generator", only=beyond.GAN_VARIANTS_WITH_SIGMOID_D):
        assert ablations.config("ours-generator", changes, 50_000, "cifar10-jpeg").train.get("loss", "bce") == "bce"


def test_fd_cls_never_averages_across_feature_networks_and_the_tables_split_by_network(tmp_path):
    """FD-cls and KID compare only within one feature network: averaging across two is refused, and the
    generator's ablation and weight-average tables give each network its own rows, with Δ within a network."""
    import json
    from cifar_nb.engine import artifacts
    todo = dict(ablations.configs("ours-generator", 50_000, "cifar10-jpeg", only=["labels 1/0 (no label smoothing)"]))
    recipe, labels = todo[ablations.FULL_RECIPE], todo["labels 1/0 (no label smoothing)"]
    old, new = {"fd_cls_feature_run": "old", "fd_cls_samples": 10_000}, {"fd_cls_feature_run": "new"}
    fake_run(tmp_path, recipe, {"fd_cls": 50.0, "kid_mean": 0.02, **old})
    a = fake_run(tmp_path, labels, {"fd_cls": 40.0, "kid_mean": 0.01, **old})
    b = fake_run(tmp_path, labels.replace(seed=1), {"fd_cls": 30.0, "kid_mean": 0.01, **new})
    with pytest.raises(ValueError, match="different FD-cls feature networks"):
        artifacts.aggregate([a, b], "fd_cls")
    assert artifacts.aggregate([a, b], "params")["mean"] == 99_000           # not a feature-network metric
    assert list(artifacts.by_feature_net([a, b])) == ["old", "new"]

    t = beyond.ablation_table("ours-generator", 50_000, "cifar10-jpeg", seeds=(0, 1), results_dir=tmp_path,
                              only=["labels 1/0 (no label smoothing)"])
    assert t.columns[-1] == "FD-cls network" and "do not compare" in t.caption
    rows = [(r[0], r[2], r[4], r[5], r[6]) for r in t.rows]
    assert rows == [(ablations.FULL_RECIPE, "50.00", "—", "0", "old"),
                    ("labels 1/0 (no label smoothing)", "40.00", "-10.0", "0", "old"),
                    ("labels 1/0 (no label smoothing)", "30.00", "—", "1", "new")]   # no recipe in "new"

    live = artifacts.scored_dir(a.run_dir, 10_000, "eval", "live")
    live.mkdir(parents=True)
    (live / "scores.json").write_text(json.dumps({"fd_cls": 45.0, "fd_cls_feature_run": "new"}))
    w = beyond.weight_average_table("ours-generator", "cifar10-jpeg", variants=("labels 1/0 (no label smoothing)",),
                                    results_dir=tmp_path)
    assert w.columns[-1] == "FD-cls network"
    assert [row[1:] for row in w.rows] == [[0, "40.00", "45.00", "—", "old"], [1, "30.00", "not scored yet", "—", "new"]]


def test_the_side_by_side_targets_and_generator_tables_compare_fd_cls_within_one_feature_network(tmp_path):
    """Report C's GAN scored at seed 0 in one feature network and at seed 1 in the next one: the tables that set
    ours beside it give each network its own row, and the relative target compares ours with C in the same network
    only (70 % of C's 43 in "old", of C's 50 in "new")."""
    from cifar_nb.book import params, report
    c_gen, ours = (experiments.get(n).make_config(dataset="cifar10-jpeg", seed=0)
                   for n in ("C-generator", "ours-generator"))
    for cfg, fd, net in ((c_gen, 43.0, "old"), (c_gen.replace(seed=1), 50.0, "new"),
                         (ours, 60.0, "old"), (ours.replace(seed=1), 30.0, "new")):
        fake_run(tmp_path, cfg, {"fd_cls": fd, "kid_mean": 0.01, "fd_cls_feature_run": net})

    t = beyond.side_by_side("gan", "cifar10-jpeg", tmp_path)
    assert t.columns[-1] == "FD-cls network" and "do not compare" in t.caption
    fd = t.columns.index(audit.metric_name("fd_cls"))
    assert [(r[0], r[4], r[fd], r[-1]) for r in t.rows] == [
        ("C-generator", "0", "43.00", "old"), ("C-generator", "1", "50.00", "new"),
        ("ours-generator", "0", "60.00", "old"), ("ours-generator", "1", "30.00", "new")]

    gan = [r for r in beyond.targets_table(tmp_path).rows if r[0] == "ours-generator"]
    assert [(r[3], r[4], r[6], r[-1]) for r in gan] == [
        ("<= 30.10 (70% of C-generator's 43.00)", "60.00", "NOT met", "old"),
        ("<= 35.00 (70% of C-generator's 50.00)", "30.00", "met", "new")]
    # ours scored in a network C never was: no verdict rather than a comparison across networks
    fake_run(tmp_path, ours.replace(seed=2), {"fd_cls": 1.0, "fd_cls_feature_run": "newest"})
    gan = [r for r in beyond.targets_table(tmp_path).rows if r[0] == "ours-generator"]
    assert (gan[-1][3], gan[-1][6], gan[-1][-1]) == ("no C-generator run in this network yet", "not measured yet",
                                                       "newest")
    # one network throughout: no network column, the table as it always was
    one = tmp_path / "one"
    fake_run(one, c_gen, {"fd_cls": 43.0, "fd_cls_feature_run": "old"})
    fake_run(one, ours, {"fd_cls": 60.0, "fd_cls_feature_run": "old"})
    assert beyond.targets_table(one).columns[-1] == "why this target"
    assert beyond.side_by_side("gan", "cifar10-jpeg", one).columns[-1] == "wall time per run"

    rs = {n: beyond.full_budget_runs(n, "cifar10-jpeg", tmp_path) for n in ("ours-generator", "C-generator")}
    P = params.validate_parameters(list(rs), results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    g = report.generator_table(P, rs)
    assert g.columns[-1] == "FD-cls network" and "do not compare" in g.caption
    assert [(r[0], r[3], r[-1]) for r in g.rows if r[0] == "C-generator"] == [("C-generator", "43.00", "old"),
                                                                              ("C-generator", "50.00", "new")]


def test_an_ablation_with_more_seeds_never_stands_in_for_the_registered_recipe(tmp_path):
    """The status and leaderboard read an experiment's best group of runs: a variant of its recipe (an ablation run
    under the same experiment name) must not replace the recipe there, even with more seeds."""
    from cifar_nb.book import audit, status
    todo = dict(ablations.configs("ours-generator", 50_000, "cifar10-jpeg", only=["labels 1/0 (no label smoothing)"]))
    fake_run(tmp_path, todo[ablations.FULL_RECIPE], {"fd_cls": 50.0})
    for seed in (0, 1):
        fake_run(tmp_path, todo["labels 1/0 (no label smoothing)"].replace(seed=seed), {"fd_cls": 40.0})
    best = audit.best_group("ours-generator", tmp_path)
    assert [(r.config.hash, r.config.seed) for r in best] == [(todo[ablations.FULL_RECIPE].hash, 0)]
    row = {r["experiment"]: r for r in status.status_rows(tmp_path)}["ours-generator"]
    assert row["seeds"] == [0] and row["state"] == "full budget"
