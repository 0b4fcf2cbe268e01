"""cifar_nb.book (params, cards, audit, report): notebook parameter checks, verdict rules, tables and the leaderboard. No training:
finished runs are written by hand into a temporary results folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifar_nb import config, experiments
from cifar_nb.book import audit, cards, display, params, report
from cifar_nb.engine import artifacts, runs
from cifar_nb.engine.evaluate import features


@pytest.mark.parametrize("bad, words", [
    (dict(dataset="cifar1000"), "unknown dataset"),
    (dict(dataset=100), "unknown dataset"),
    (dict(steps=-5), "positive whole number"),
    (dict(steps=2.5), "positive whole number"),
    (dict(steps=True), "positive whole number"),
    (dict(steps=10_001), "over the classifier budget"),
    (dict(batch_size=0), "batch_size"),
    (dict(seeds=[]), "seeds"),
    (dict(seeds=[0, -1]), "seeds"),
    (dict(seeds=[1, 1]), "must not repeat"),
    (dict(device="gpu"), "device"),
    (dict(fid_samples=0), "fid_samples"),
    (dict(data_root="/definitely/not/here"), "not a folder"),
    (dict(preview="yes"), "preview"),
])
def test_bad_parameters_stop_with_one_clear_error(bad, words, tmp_path):
    with pytest.raises(ValueError, match=words):
        params.validate_parameters(["A-classifier"], results_dir=tmp_path, **bad)


def test_unknown_experiment_is_a_value_error():
    with pytest.raises(ValueError, match="unknown experiment"):
        params.validate_parameters(["Z-classifier"])


def test_generator_steps_are_held_to_the_generator_budget(tmp_path):
    P = params.validate_parameters(["A-generator"], steps=50_000, results_dir=tmp_path, device="cpu",
                                   data_root=str(tmp_path))
    assert P.config("A-generator").steps == 50_000
    with pytest.raises(ValueError, match="generator budget"):
        params.validate_parameters(["A-generator"], steps=50_001, results_dir=tmp_path)


def test_overrides_change_the_config_and_defaults_keep_the_report_recipe(tmp_path):
    P = params.validate_parameters(["B-classifier"], results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    assert P.config("B-classifier", 0) == experiments.get("B-classifier").config.replace(seed=0)
    P = params.validate_parameters(["B-classifier"], dataset="cifar10-jpeg", steps=60, batch_size=32, seeds=3,
                                   results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    cfg = P.config("B-classifier")
    assert (cfg.dataset, cfg.steps, cfg.batch_size, cfg.seed) == ("cifar10-jpeg", 60, 32, 3)
    assert cfg.eval_every <= 60 // 5          # a short run still draws a curve
    P = params.validate_parameters(["B-generator"], preview=True, fid_samples=64, results_dir=tmp_path,
                                   device="cpu", data_root=str(tmp_path))
    cfg = P.config("B-generator")
    assert cfg.steps == config.PREVIEW_STEPS["diffusion"]
    assert cfg.train["fid_samples"] == 64 and cfg.train["sample_steps"] == config.PREVIEW_SAMPLE_STEPS


def fake_run(results_dir, cfg, metrics: dict):
    """Finished-run artifacts as runs.run writes them, without training."""
    d = artifacts.run_dir(cfg, results_dir)
    artifacts.atomic_write_json(d / "config.json", cfg.to_dict())
    artifacts.write_history_csv(d / "history.csv", [{"step": cfg.steps, "test_acc": metrics.get("test_acc", 0)}])
    artifacts.atomic_write_json(d / "env.json", {"device": "cpu", "device_name": "CPU", "torch": "x",
                                            "git_commit": "abc", "wall_time_s": 1.5, "date": "2025-01-01"})
    artifacts.atomic_write_json(d / "metrics.json", dict(metrics, params=99_000, steps=cfg.steps, seed=cfg.seed))
    return artifacts.load_complete(cfg, results_dir)


def test_verdict_rules(tmp_path):
    exp = experiments.get("C-classifier")        # claims test_acc 0.631 ± 0.016
    claim = exp.claims[0]
    full = exp.config
    near = [fake_run(tmp_path, full.replace(seed=s), {"test_acc": v}) for s, v in enumerate([0.62, 0.625, 0.63])]
    assert audit.verdict(exp, claim, near)[0] == audit.REPRODUCED
    far = [fake_run(tmp_path / "far", full.replace(seed=s), {"test_acc": v}) for s, v in enumerate([0.50, 0.51])]
    v, why = audit.verdict(exp, claim, far)
    assert v == audit.NOT_REPRODUCED and "lower" in why
    # a wide spread over seeds widens what counts as agreement: 2 std
    spread = [fake_run(tmp_path / "spread", full.replace(seed=s), {"test_acc": v})
              for s, v in enumerate([0.50, 0.70])]
    assert audit.verdict(exp, claim, spread)[0] == audit.REPRODUCED
    standin = [fake_run(tmp_path / "s", full.replace(dataset="cifar10-jpeg"), {"test_acc": 0.631})]
    assert audit.verdict(exp, claim, standin)[0] == audit.UNMEASURABLE
    short = [fake_run(tmp_path / "p", full.replace(steps=60), {"test_acc": 0.631})]
    assert audit.verdict(exp, claim, short)[0] == audit.UNMEASURABLE
    assert audit.verdict(exp, claim, [])[0] == audit.UNMEASURABLE


def test_report_e_train_claims_meet_our_training_mode_figures_not_the_eval_mode_ones(tmp_path):
    exp = experiments.get("E-classifier")
    loss_claim = next(c for c in exp.claims if c.value == 0.284)
    assert loss_claim.metric == "stream_loss" and audit.metric_name("stream_loss") == "train loss (training mode)"
    # eval-mode train loss far below the claim, training-mode one within 10 %: the verdict follows the latter
    rs = [fake_run(tmp_path, exp.config, {"stream_loss": 0.29, "train_loss": 0.09, "test_loss": 0.18})]
    assert audit.verdict(exp, loss_claim, rs)[0] == audit.REPRODUCED
    text = str(report.loss_ordering(rs))
    assert "1 seed," in text and "0.180. It is below the training-mode train loss (0.290" in text
    assert "above the eval-mode train loss (0.090" in text
    assert "No finished runs" in str(report.loss_ordering([]))


def test_fid_claims_are_unmeasurable_without_fid_and_report_a_breaks_its_rules(tmp_path):
    exp = experiments.get("E-generator")
    rs = [fake_run(tmp_path, exp.config, {"fd_cls": 12.0, "fid": None})]
    v, why = audit.verdict(exp, exp.claims[0], rs)
    assert v == audit.UNMEASURABLE and "FID" in why
    assert audit.rules_broken(experiments.get("A-generator"))
    assert not audit.rules_broken(experiments.get("E-generator"))
    rows = {r["experiment"]: r for r in audit.leaderboard_rows(tmp_path)}
    assert rows["A-generator"]["verdict"] == audit.BREAKS_RULES
    assert rows["E-generator"]["verdict"] == audit.UNMEASURABLE
    assert set(rows) == set(experiments.REGISTRY)


def test_leaderboard_prefers_the_report_set_up_and_reports_mean_and_sample_std(tmp_path):
    exp = experiments.get("A-classifier")
    fake_run(tmp_path, exp.config.replace(dataset="cifar10-jpeg", steps=60), {"test_acc": 0.2})
    for s, v in enumerate([0.49, 0.50, 0.51]):
        fake_run(tmp_path, exp.config.replace(seed=s), {"test_acc": v})
    row = next(r for r in audit.leaderboard_rows(tmp_path) if r["experiment"] == "A-classifier")
    assert row["dataset"] == "cifar100" and row["seeds"] == 3
    assert row["ours"] == pytest.approx(0.50) and row["ours_std"] == pytest.approx(0.01)   # ddof=1
    assert row["verdict"] == audit.REPRODUCED
    table = report.leaderboard(tmp_path)
    md = table._repr_markdown_()
    assert "| A-classifier |" in md and "50.00 ± 1.00 %" in md
    assert "A-classifier" in repr(table)
    # report D's experiments carry the mark on their name, not on whatever size a run had
    names = table.column("experiment")
    assert "D-search (OUT OF BUDGET)" in names and "A-classifier" in names
    assert not any("OUT OF BUDGET" in str(p) for p in table.column("params (ours / claimed)"))


def test_tables_escape_pipes_and_run_card_names_the_stand_in(tmp_path):
    t = display.Table(["a", "b"], [["x|y", "1"]])
    assert "x\\|y" in t._repr_markdown_()
    P = params.validate_parameters(["A-classifier"], dataset="cifar10-jpeg", steps=60, preview=True,
                                   results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    rs = [fake_run(tmp_path, P.config("A-classifier", s), {"test_acc": 0.3}) for s in P.seeds]
    card = cards.run_card(P, {"A-classifier": rs})._repr_html_()
    assert "stand-in, not CIFAR-100" in card and "NOT a reproduction" in card
    assert "60 of the 10,000-step classifier budget" in card
    # the banner names each departure once, with every experiment it applies to
    P2 = params.validate_parameters(["B-classifier", "B-ablation-1"], dataset="cifar10-jpeg", steps=60,
                                    preview=True, results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    items = cards.banner(P2).split("<li>")[1:]
    assert len(items) == 2, items
    assert items[0].startswith("B-classifier, B-ablation-1: trained on CIFAR-10 (JPEG stand-in), a stand-in for")
    assert items[1].startswith("B-classifier, B-ablation-1: trained 60 of the report&#x27;s 10,000 steps")
    # one row per experiment carries both budgets
    row = next(r for r in card.split("<tr>") if "<th>A-classifier</th>" in r)
    assert "steps: 60 of the 10,000-step" in row and "parameters: " in row and "of 100,000 (within budget)" in row
    assert str(tmp_path) not in json.dumps(card)


def test_a_preview_scores_generators_with_the_short_feature_classifier(monkeypatch, tmp_path):
    """A preview's generator configs carry the short FD-cls feature steps (so their hash says so); full
    budget keeps the protocol's; classifier configs never carry any."""
    seen = []

    def fake_run_fn(cfg, **kw):
        seen.append((cfg.experiment, cfg.train.get("feature_steps")))
        return fake_run(tmp_path, cfg, {"fd_cls": 1.0})

    monkeypatch.setattr(runs, "run", fake_run_fn)
    for preview in (True, False):
        P = params.validate_parameters(["C-generator", "C-classifier"], preview=preview, steps=60, seeds=[0],
                                       dataset="cifar10-jpeg", results_dir=tmp_path / str(preview),
                                       device="cpu", data_root=str(tmp_path))
        P.run_all()
    assert seen == [("C-generator", config.PREVIEW_FEATURE_STEPS), ("C-classifier", None),
                    ("C-generator", experiments.FEATURE_STEPS), ("C-classifier", None)]


def test_status_table_says_what_ran_per_experiment(tmp_path):
    from cifar_nb.book import status
    a = experiments.get("A-classifier").config
    for s in (0, 1):   # full budget, on the stand-in, 2 of 3 planned seeds
        fake_run(tmp_path, a.replace(dataset="cifar10-jpeg", seed=s), {"test_acc": 0.6})
    fake_run(tmp_path, experiments.get("E-classifier").config.replace(steps=60), {"test_acc": 0.1})
    rows = {r["experiment"]: r for r in status.status_rows(tmp_path)}
    assert set(rows) == set(experiments.REGISTRY)
    assert rows["A-classifier"]["state"] == "full budget" and rows["A-classifier"]["seeds"] == [0, 1]
    assert rows["A-classifier"]["dataset"].startswith("CIFAR-10") and rows["A-classifier"]["device"] == "CPU"
    assert rows["E-classifier"]["state"] == "preview" and rows["E-classifier"]["steps"] == 60
    assert rows["C-classifier"]["state"] == "not run"
    md = status.status_markdown(tmp_path)
    assert "| A-classifier | **full budget** | 10,000 / 10,000 | 0, 1 (2 of 3 planned) | CPU |" in md
    assert "| E-classifier | preview | 60 / 10,000 |" in md
    n = len(experiments.REGISTRY)
    assert md.startswith(f"1 of {n} experiments have full-budget runs")
    out = status.write(tmp_path / "s.md", tmp_path)
    assert out.read_text() == md
    line = (tmp_path / "s_line.md").read_text()
    assert line.startswith(f"**What was run:** 1 of {n} experiments have full-budget runs: A-classifier;")
    # the methods page's table of run settings lists the full-budget runs only, from their env.json
    runtimes = (tmp_path / "_runtimes.md").read_text()
    assert runtimes == status.runtime_markdown(tmp_path)
    assert "| A-classifier | 0 | CIFAR-10 (JPEG stand-in) | CPU | not recorded |" in runtimes
    assert "E-classifier" not in runtimes
    # a run between the preview's few dozen steps and the budget is a labelled reduced-budget check
    fake_run(tmp_path, experiments.get("C-generator").config.replace(steps=2_000, dataset="cifar10-jpeg"),
             {"fd_cls": 50.0})
    c = {r["experiment"]: r for r in status.status_rows(tmp_path)}["C-generator"]
    assert c["state"] == "reduced budget" and c["steps"] == 2_000
    assert status.runtime_markdown(tmp_path / "empty") == "No full-budget run has finished yet.\n"


def test_methods_fd_cls_paragraph_follows_the_protocol_config(tmp_path, monkeypatch):
    from cifar_nb.book import status
    text = status.fd_cls_protocol()
    assert f"{experiments.FEATURE_CONFIG.steps:,} steps" in text and f"{features.KID_SUBSETS} subsets" in text
    # the paragraph is derived, not written: change the protocol and the prose changes with it
    monkeypatch.setattr(experiments, "FEATURE_CONFIG", experiments.FEATURE_CONFIG.replace(steps=3456))
    monkeypatch.setattr(features, "KID_SUBSET_SIZE", 777)
    changed = status.fd_cls_protocol()
    assert "3,456 steps" in changed and "up to 777 images" in changed and "2,000 steps" not in changed
    monkeypatch.undo()
    status.write(tmp_path / "s.md", tmp_path)
    assert (tmp_path / "_fd_cls_protocol.md").read_text() == text
    # the book ships the current paragraph, and the methods page includes it
    book = Path(__file__).resolve().parents[1] / "book"
    assert (book / "_fd_cls_protocol.md").read_text() == text
    assert "{include} _fd_cls_protocol.md" in (book / "methods.md").read_text()


def test_run_card_opens_with_what_was_run(tmp_path):
    a = experiments.get("A-classifier").config.replace(dataset="cifar10-jpeg")
    rs = [fake_run(tmp_path, a.replace(seed=s), {"test_acc": 0.6}) for s in (0, 1)]
    P = params.validate_parameters(["A-classifier"], dataset="cifar10-jpeg", seeds=[0, 1], results_dir=tmp_path,
                                     device="cpu")
    card = cards.run_card(P, {"A-classifier": rs})._repr_html_()
    assert card.index("What was run") < card.index("Run card")
    assert "<b>full budget</b>, 10,000 of the report's 10,000 steps · seeds 0, 1 (2 of 3 planned)" in card
    assert "(2 runs per experiment)" in card
    P1 = params.validate_parameters(["A-classifier"], dataset="cifar10-jpeg", seeds=[0], results_dir=tmp_path,
                                      device="cpu")
    assert "(1 run per experiment)" in cards.run_card(P1, {"A-classifier": rs[:1]})._repr_html_()


def test_run_card_gives_one_commit_per_experiment_and_flags_dirty_code(tmp_path):
    a = experiments.get("A-classifier").config.replace(dataset="cifar10-jpeg")
    rs = [fake_run(tmp_path, a.replace(seed=s), {"test_acc": 0.6}) for s in (0, 1, 2)]
    for r in rs:
        r.env["git_commit"] = "a" * 40
    assert cards.run_commits({"A-classifier": rs}) == "A-classifier: aaaaaaaaaa"
    rs[2].env["git_commit"] = "b" * 40 + "+dirty"
    line = cards.run_commits({"A-classifier": rs, "C-classifier": []})
    assert line == "A-classifier: aaaaaaaaaa (seeds 0, 1), bbbbbbbbbb <b>+dirty</b> (uncommitted changes) (seed 2)"


def test_reuse_only_execution_refuses_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_NB_REUSE_ONLY", "1")
    with pytest.raises(ValueError, match="reuses finished runs only.*A-classifier seed 0"):
        params.validate_parameters(["A-classifier"], dataset="cifar10-jpeg", seeds=[0], results_dir=tmp_path,
                                     device="cpu")


def test_execute_from_results_picks_the_finished_full_budget_seeds(tmp_path, monkeypatch):
    from cifar_nb.book import execute
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)
    a = experiments.get("A-classifier").config.replace(dataset="cifar10-jpeg")
    assert execute.from_results("report_a_classifier", "cpu", tmp_path) is None     # nothing finished
    for s in (0, 2):
        fake_run(tmp_path, a.replace(seed=s), {"test_acc": 0.6})
    monkeypatch.setattr("cifar_nb.engine.queue.entries._dataset_for", lambda exp, present: ("cifar10-jpeg", ""))
    p = execute.from_results("report_a_classifier", "cpu", tmp_path)
    assert p["seeds"] == [0, 2] and p["dataset"] == "cifar10-jpeg" and p["steps"] is None and not p["preview"]
    # a chapter none of whose experiments has a finished full-budget run is left alone
    assert execute.from_results("report_b_classifier", "cpu", tmp_path) is None


def test_a_partly_finished_chapter_shows_its_full_budget_runs_beside_labelled_previews(tmp_path, monkeypatch):
    """Report B's chapter with only B-classifier seed 0 at full budget: that run is shown as it is (the queue's
    own config, so its hash), the four ablations stay previews, and the card says which is which."""
    from cifar_nb.book import execute
    from cifar_nb.engine import queue
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)
    monkeypatch.setattr("cifar_nb.engine.queue.entries._dataset_for", lambda exp, present: ("cifar10-jpeg", ""))
    full = next(e.config for e in queue.plan(results_dir=tmp_path) if e.experiment == "B-classifier" and e.seed == 0)
    fake_run(tmp_path, full, {"test_acc": 0.8, "best_test_acc": 0.81})
    p = execute.from_results("report_b_classifier", "cpu", tmp_path)
    assert p["preview"] and p["full_budget"] == {"B-classifier": [0]} and p["dataset"] == "cifar10-jpeg"

    P = params.validate_parameters(list(execute.EXPERIMENTS["report_b_classifier"]), results_dir=tmp_path,
                                   **{k: v for k, v in p.items() if k != "results_dir"})
    assert [c.hash for c in P.configs("B-classifier")] == [full.hash]
    abl = P.configs("B-ablation-1")
    assert [c.seed for c in abl] == p["seeds"] and all(c.steps == config.PREVIEW_STEPS["classifier"] for c in abl)
    assert P.is_full("B-classifier") and not P.is_full("B-ablation-1") and P.steps_of("B-classifier") == 10_000
    results = {"B-classifier": [artifacts.load_complete(full, tmp_path)]}
    text = cards.run_card(P, results).text
    assert "Partly a preview: only B-classifier ran at full budget" in text
    assert "B-classifier: <b>full budget</b>, 10,000 of the report" in text
    assert "B-ablation-1: <b>preview</b>, 60 of the report" in text
    assert "B-classifier: 0 (full budget); B-ablation-1: 0, 1 (preview)" in text


@pytest.mark.parametrize("full_budget, preview, words", [
    ({"A-classifier": [0]}, True, "not an experiment of this chapter"),
    ({"B-classifier": []}, True, "non-empty list"),
    ({"B-classifier": [0]}, False, "without preview=True"),
    (["B-classifier"], True, "must be None or a dict"),
])
def test_full_budget_parameter_is_checked(tmp_path, full_budget, preview, words):
    with pytest.raises(ValueError, match=words):
        params.validate_parameters(["B-classifier", "B-ablation-1"], results_dir=tmp_path, preview=preview,
                                   full_budget=full_budget, device="cpu")


def test_kid_is_shown_raw_and_its_header_says_so(tmp_path):
    """metrics.json stores torch-fidelity's raw KID in the FD-cls features; every table that shows it
    says which scale it is on (raw, not the x10^3 that Inception KID is usually printed at)."""
    exp = experiments.get("E-generator")
    rs = [fake_run(tmp_path, exp.config.replace(seed=s), {"fd_cls": 100.0 + s, "kid_mean": v, "kid_std": 0.1,
                                                          "fid": None})
          for s, v in enumerate([3.5, 3.7])]
    P = params.validate_parameters(["E-generator"], results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    table = report.generator_table(P, {"E-generator": rs})
    kid_cols = [c for c in table.columns if "KID" in c]
    assert len(kid_cols) == 1 and "raw" in kid_cols[0] and "×10³" in kid_cols[0], table.columns
    assert table.column(kid_cols[0]) == ["3.600 ± 0.141"]        # the stored value, not multiplied
    assert "raw" in table.caption and "10³" in table.caption
    assert "raw" in audit.metric_name("kid_mean")
    ours = report.ours_table({"E-generator": rs}, ["kid_mean"])
    assert ours.columns[1] == "steps" and ours.column("steps") == [f"{exp.config.steps:,}"]
    assert ours.columns[2] == audit.metric_name("kid_mean") and "×10³" in ours.columns[2]
    assert ours.column(ours.columns[2]) == ["3.600 ± 0.141"]
    assert audit.fmt_kid(5143.6, 11.7) == "5,144 ± 12" and audit.fmt_kid(None) == "—"


def test_claim_sources_name_the_report_by_title_and_keep_its_file():
    c = experiments.get("A-classifier").claims[0]
    assert c.source("A") == "report A (Efficient CIFAR-100 Modelling, anonymous), §2 Results"
    assert experiments.REPORT_FILES["A"] in c.source("A", with_file=True)
    table = report.claims_list("C-classifier")
    assert all(s.startswith("report C (Efficient CIFAR-100 Classification") for s in table.column("source"))
    assert not any(".txt" in s for s in table.column("source"))


def test_folded_cells_say_what_they_hide():
    import nbformat

    from cifar_nb.book import execute
    code = nbformat.v4.new_code_cell
    assert execute.toggle_label(code('P, runs = chapter.start(globals(), "A-classifier")',
                                     metadata={"tags": ["hide-input"]})) \
        == "Show the code that checks this chapter's parameters and trains or reuses its runs"
    assert "trains or reuses" in execute.toggle_label(code("D = search.for_notebook(P, 'D-search')",
                                                           metadata={"tags": ["hide-output"]}))
    assert execute.toggle_label(code("x = 1", metadata={"tags": ["hide-cell", "injected-parameters"]})) \
        == "Show the parameters this execution was given"
    assert execute.toggle_label(code("x = 1", metadata={"tags": ["remove-input"]})) is None


def test_a_failed_execution_shows_the_notebook_s_own_exception_line():
    from papermill.exceptions import PapermillExecutionError

    from cifar_nb.book import execute
    e = PapermillExecutionError(cell_index=2, exec_count=2, source="P = params.validate_parameters(\n  ...)",
                                ename="ValueError", evalue="steps must be a positive whole number",
                                traceback=["Traceback ...", "ValueError: steps must be a positive whole number"])
    assert execute.failure_line(e) == "ValueError: steps must be a positive whole number"
    assert execute.failure_line(RuntimeError("a\nb\nlast words")) == "last words"


def test_generator_samples_are_shown_beside_real_cifar100(tmp_path, monkeypatch):
    import numpy as np
    cfg = experiments.get("C-generator").config.replace(dataset="cifar10-jpeg", steps=60)
    r = fake_run(tmp_path, cfg, {"fd_cls": 1.0})
    P = params.validate_parameters(["C-generator"], dataset="cifar10-jpeg", steps=60, seeds=[0],
                                     results_dir=tmp_path, device="cpu")
    assert "no samples.npz" in report.beside_real_cifar100(P, r)._repr_markdown_()
    np.savez(r.run_dir / "samples.npz", images=np.zeros((40, 3, 32, 32), np.uint8), labels=np.zeros(0))
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CIFAR_NB_DATA", str(root))
    assert "cifar100-sample.npz" in report.beside_real_cifar100(P, r)._repr_markdown_()   # named when missing
    np.savez(root / "cifar100-sample.npz", test_images_first=np.full((50, 3, 32, 32), 200, np.uint8))
    im = report.beside_real_cifar100(P, r)
    assert im.format == "jpeg" and im.data[:2] == b"\xff\xd8"


def test_a_preview_without_cifar100_falls_back_to_the_stand_in_and_says_so(tmp_path, monkeypatch):
    import cifar_nb.engine.data as data
    monkeypatch.setattr(data, "cifar_files_present", lambda kind, root=None: False)
    P = params.validate_parameters(["A-classifier"], preview=True, device="cpu", results_dir=tmp_path)
    assert P.dataset == "cifar10-jpeg" and P.dataset_fallback
    assert "chosen by the preview itself: CIFAR-100 is not under the data root" in cards.banner(P)
    # the report's own dataset is kept where it is here, and never changed outside a preview
    assert params.validate_parameters(["E-classifier"], preview=True, device="cpu",
                                        results_dir=tmp_path).dataset is None
    assert params.validate_parameters(["A-classifier"], device="cpu", results_dir=tmp_path).dataset is None
    monkeypatch.setattr(data, "cifar_files_present", lambda kind, root=None: True)
    assert params.validate_parameters(["A-classifier"], preview=True, device="cpu",
                                        results_dir=tmp_path).dataset is None


def test_a_preview_keeps_the_batch_contrast_between_a_chapters_arms():
    # report B compares its sigmoid schedule at batch 256 and 128: one preview batch for the chapter must
    # not make the two arms one run
    names = ("B-generator", "B-generator-linear", "B-generator-sigmoid-128")
    P = params.validate_parameters(names, preview=True, steps=60, batch_size=32, seeds=[0], dataset="cifar10-jpeg")
    cfgs = {n: P.config(n) for n in names}
    assert [cfgs[n].batch_size for n in names] == [32, 16, 16]
    assert len({c.hash for c in cfgs.values()}) == 3
    full = params.validate_parameters(names, batch_size=64, seeds=[0])     # a user's own batch, outside a preview: as asked
    assert {full.config(n).batch_size for n in names} == {64}


def test_the_fid_command_the_book_prints_is_one_the_cli_takes(monkeypatch):
    import shlex

    from cifar_nb import cli
    text = report.fid_command("C-generator").replace("\\\n", " ")
    assert all(len(line) <= 90 for line in report.fid_command("C-generator").splitlines())   # fits a page
    argv = shlex.split(text.replace("<path to weights-inception-2015-12-05-6726825d.pth>", "/w.pth")
                       .replace("<folder holding cifar-100-python/>", "/data"))
    assert argv[:3] == ["python", "-m", "cifar_nb"]
    seen = {}
    monkeypatch.setattr(cli, "cmd_score", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(argv[3:]) == 0
    assert seen["experiment"] == "C-generator" and seen["fid_weights"] == "/w.pth" and seen["data_root"] == "/data"
    t = report.Table(["a"], [["1"]], caption="c", note=f"```bash\n{report.fid_command('C-generator')}\n```")
    assert "```" not in repr(t) and "--fid-weights" in repr(t)


def test_the_sampling_mode_table_sets_train_mode_beside_eval_mode(tmp_path):
    cfg = experiments.get("C-generator").config
    rs = [fake_run(tmp_path, cfg.replace(seed=s), {"fd_cls": 40.0 + s, "kid_mean": 0.01, "fd_cls_samples": 10_000})
          for s in (0, 1)]
    t = report.sampling_modes_table(rs)
    assert t.column("FD-cls, train mode") == ["not scored yet"] * 2 and "--sampling-mode train" in t.note
    out = rs[1].run_dir / "scored" / "10000-samples-train-mode"
    out.mkdir(parents=True)
    (out / "scores.json").write_text(json.dumps({"fd_cls": 44.5, "kid_mean": 0.02}))
    t = report.sampling_modes_table(rs)
    assert t.column("FD-cls, train mode")[0] == "not scored yet" and t.column("train − eval (FD-cls)") == ["—", "+3.50"]
    assert "44.5" in t.column("FD-cls, train mode")[1] and not t.note


def test_the_summary_card_flags_a_dirty_commit_in_bold_not_as_escaped_markup(tmp_path):
    from cifar_nb.book import cards
    r = fake_run(tmp_path, experiments.get("A-classifier").config, {"test_acc": 0.5})
    env = json.loads((r.run_dir / "env.json").read_text())
    (r.run_dir / "env.json").write_text(json.dumps(dict(env, git_commit="0123456789abcdef+dirty")))
    P = params.validate_parameters(["A-classifier"], results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    card = cards.summary_card(P)
    assert "0123456789 <b>+dirty</b> (uncommitted changes)" in card.text and "&lt;b&gt;" not in card.text
    assert "<b>" not in card.plain and "0123456789 +dirty (uncommitted changes)" in card.plain


def test_generator_claims_are_read_in_the_reports_sampling_mode_once_it_is_scored(tmp_path):
    """Report C follows the DCGAN tutorial (train-mode sampling): its FID claim, the generator table and the
    leaderboard read the train-mode scores where they exist, and say which mode every number is in."""
    exp = experiments.get("C-generator")
    assert exp.sampling_mode == "train" and experiments.get("ours-generator").sampling_mode == "eval"
    claim = next(c for c in exp.claims if c.metric == "fid")
    rs = [fake_run(tmp_path, exp.config.replace(seed=s), {"fd_cls": 40.0 + s, "kid_mean": 0.01, "fid": 90.0,
                                                         "fd_cls_samples": 10_000, "sampling_mode": "eval"})
          for s in (0, 1)]
    P = params.validate_parameters(["C-generator"], results_dir=tmp_path, device="cpu", data_root=str(tmp_path))
    t = report.generator_table(P, {"C-generator": rs})
    assert t.column("sampling mode") == ["eval (the report's: train, not scored yet)"]
    assert "--sampling-mode train" in t.note
    assert audit.claim_stats(exp, claim, rs)["mean"] == 90.0
    assert audit.verdict(exp, claim, rs)[0] == audit.NOT_REPRODUCED
    for r, fid in zip(rs, (61.0, 62.0)):       # both seeds scored in train mode, FID within 10 % of 61.047
        out = r.run_dir / "scored" / "10000-samples-train-mode"
        out.mkdir(parents=True)
        (out / "scores.json").write_text(json.dumps({"fd_cls": 33.0, "kid_mean": 0.02, "fid": fid,
                                                     "sampling_mode": "train"}))
    t = report.generator_table(P, {"C-generator": rs})
    assert t.column("sampling mode") == ["train"] and "33.00" in t.column("FD-cls ours (substitute, not FID)")[0]
    assert audit.claim_stats(exp, claim, rs)["mean"] == 61.5
    assert audit.verdict(exp, claim, rs)[0] == audit.REPRODUCED       # eval mode's 90 would not be
    assert [r.metrics["fd_cls"] for r in rs] == [40.0, 41.0]          # the runs themselves are untouched
    # one seed scored, one not: the table names both modes rather than mixing them silently
    (rs[1].run_dir / "scored" / "10000-samples-train-mode" / "scores.json").unlink()
    assert report.generator_table(P, {"C-generator": rs}).column("sampling mode")[0].startswith("eval, train")
    # asking for the mode a run was scored in at training time gives the run back as it is
    assert audit.scored_in_mode(rs[0], "eval") is rs[0]


def test_a_reduced_budget_sampling_mode_check_is_found_and_labelled(tmp_path):
    """The chapter's sampling-mode check at a reduced budget: reduced_runs finds the run the CLI makes
    (`run C-generator --steps 2000 --dataset cifar10-jpeg`), and the table says the budget is reduced."""
    exp = experiments.get("C-generator")
    P = params.validate_parameters(["C-generator"], results_dir=tmp_path, device="cpu", dataset="cifar10-jpeg",
                                   data_root=str(tmp_path), preview=True, steps=60, seeds=[0])
    assert report.reduced_runs(P, "C-generator", 2_000) == []
    assert report.sampling_modes_table([]).note == "Not run yet."
    fake_run(tmp_path, exp.config.replace(steps=2_000, dataset="cifar10-jpeg", seed=0),
             {"fd_cls": 50.0, "kid_mean": 0.01, "fd_cls_samples": 10_000})
    rs = report.reduced_runs(P, "C-generator", 2_000)
    assert [r.config.steps for r in rs] == [2_000] and rs[0].config.dataset == "cifar10-jpeg"
    t = report.sampling_modes_table(rs)
    assert t.column("run") == ["seed 0, 2,000 steps"] and "reduced budget" in t.caption and "50,000" in t.caption
    full = [fake_run(tmp_path / "full", exp.config, {"fd_cls": 30.0, "kid_mean": 0.01})]
    assert "reduced budget" not in report.sampling_modes_table(full).caption


def test_a_partly_finished_chapter_takes_the_full_budget_runs_on_its_own_preview_dataset(tmp_path, monkeypatch):
    """ours-classifier finished on AddNIST and on the stand-in: the Beyond chapter (a stand-in preview) shows
    the stand-in run as its full-budget part; the AddNIST run does not stop it from being rendered."""
    from cifar_nb.book import execute
    from cifar_nb.engine import queue
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)
    monkeypatch.setattr("cifar_nb.engine.queue.entries._dataset_for", lambda exp, present: ("cifar10-jpeg", ""))
    ours = [e.config for e in queue.plan(results_dir=tmp_path) if e.experiment == "ours-classifier" and e.seed == 0]
    assert {c.dataset for c in ours} == {"addnist", "cifar10-jpeg"}
    for c in ours:
        fake_run(tmp_path, c, {"test_acc": 0.9})
    p = execute.from_results("beyond_the_reports", "cpu", tmp_path)
    assert p["preview"] and p["dataset"] == "cifar10-jpeg" and p["full_budget"] == {"ours-classifier": [0]}
    # the chapter's previews stay the runs `make preview` made: a full-budget part does not change their batch
    exps = list(execute.EXPERIMENTS["beyond_the_reports"])
    mixed = params.validate_parameters(exps, results_dir=tmp_path, **{k: v for k, v in p.items() if k != "results_dir"})
    plain = params.validate_parameters(exps, results_dir=tmp_path, **{k: v for k, v in execute.parameters(
        "beyond_the_reports", True, "cpu").items() if k != "results_dir"})
    for n in ("ours-generator", "C-generator"):
        assert [c.hash for c in mixed.configs(n)] == [c.hash for c in plain.configs(n)], n
