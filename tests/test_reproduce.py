"""rnnzoo-reproduce: the experiment list, reports with curves, bad names."""

import json
import os

import pytest

from rnnzoo import experiments
from rnnzoo.experiments import runner, thesis
from rnnzoo.training.loop import TrainConfig

ISSUE_EXPERIMENTS = ["thesis_table_7_3", "thesis_fig_4_1", "longer_rnns_resrnn",
                     "longer_rnns_vlirnn", "layerwise_adding", "layerwise_digits",
                     "thesis_table_7_2_small", "thesis_fig_3_balls", "translation_small",
                     "thesis_fig_6_2"]


def test_every_experiment_expands_into_runs_of_known_models_and_tasks():
    from rnnzoo.data import task_names
    from rnnzoo.training.registry import get_family, model_names

    assert sorted(experiments.experiment_names()) == sorted(ISSUE_EXPERIMENTS)
    for name in ISSUE_EXPERIMENTS:
        experiment = experiments.get_experiment(name)
        assert set(experiment.scales) <= set(experiments.SCALES)
        for scale in experiment.scales:
            runs = experiment.runs(scale)
            assert runs
            for run in runs:
                assert run.config.model in model_names()
                # a family's own data (the RTRBM's bouncing_balls), an rnnzoo.data task, or none
                # for a family that reads its own corpus (seq2seq's --corpus)
                family = get_family(run.config.model)
                assert run.config.task in (family.tasks or task_names()) or (
                    run.config.task is None and family.default_task is None)
                assert run.paper


def test_thesis_schedule_is_scaled_from_50000_steps():
    boundaries, values = thesis._thesis_schedule(5000)
    assert boundaries == (150, 300, 600, 3000)
    assert values == (3e-5, 3e-4, 3e-3, 1e-3, 1e-4)


def test_table_7_3_lowers_the_memorization_learning_rate_to_1e_5_after_1500_iterations():
    for run in experiments.get_experiment("thesis_table_7_3").runs("paper"):
        memorization = run.config.task.startswith("memorization")
        assert run.config.lr_values[-1] == (1e-5 if memorization else 1e-4), run.label
        if memorization:
            assert run.config.lr_boundaries == (1500,)
            assert run.config.train_steps == 50_000


def test_run_experiment_writes_report_curves_and_results(tmp_path, monkeypatch):
    def runs(scale):
        base = dict(task="addition", seq_len=8, batch_size=8, test_size=50, eval_every=3,
                    train_steps=6, early_stop=False)
        return [
            experiments.Run("tiny irnn", TrainConfig(model="irnn", gradient_steps=(0, 6), **base),
                            {"units": 4}, "0.5"),
            experiments.Run("tiny resrnn", TrainConfig(model="resrnn", **base), {"units": 4},
                            "0.25", metric="test_loss"),
        ]

    tiny = experiments.Experiment("tiny", "Tiny experiment", "resRNN beats iRNN.", runs,
                                  differences="tiny sizes.")
    monkeypatch.setitem(experiments.EXPERIMENTS, "tiny", tiny)
    path = experiments.run_experiment("tiny", output_dir=str(tmp_path), verbose=0)
    report = open(path).read()
    with open(tmp_path / "tiny" / "results.json") as f:
        results = json.load(f)
    assert [r["label"] for r in results] == ["tiny irnn", "tiny resrnn"]
    irnn, resrnn = (r["metrics"] for r in results)
    solved = f"{int(irnn['success'])}/1"
    assert (f"| tiny irnn | {irnn['test_error_rate']:.4g} | {irnn['test_loss']:.4g} | 0.5 | "
            f"{solved} | 6 / 6 |") in report
    assert f"| tiny resrnn | {resrnn['test_loss']:.4g} | {resrnn['test_loss']:.4g} | 0.25 |" in report
    assert "seed 0" in report and "tiny sizes." in report and "![learning curves](curves.png)" in report
    assert os.path.getsize(tmp_path / "tiny" / "curves.png") > 1000
    assert os.path.exists(tmp_path / "tiny" / "runs" / "00_seed0" / "metrics.json")
    for step in (0, 6):
        assert f"![tiny irnn gradients_00_step_{step}.png](gradients_00_step_{step}.png)" in report
        assert os.path.getsize(tmp_path / "tiny" / f"gradients_00_step_{step}.png") > 1000
    assert "gradients_01" not in report


def test_several_seeds_give_mean_range_and_success_count(tmp_path, monkeypatch):
    def runs(scale):
        config = TrainConfig(model="irnn", task="addition", seq_len=6, batch_size=8,
                             test_size=40, eval_every=2, train_steps=2, early_stop=False)
        return [experiments.Run("tiny irnn", config, {"units": 3}, "0.5", metric="test_loss")]

    tiny = experiments.Experiment("tiny", "Tiny", "claim", runs, differences="tiny.")
    monkeypatch.setitem(experiments.EXPERIMENTS, "tiny", tiny)
    path = experiments.run_experiment("tiny", output_dir=str(tmp_path), seeds=(3, 4, 5), verbose=0)
    report = open(path).read()
    results = json.loads((tmp_path / "tiny" / "results.json").read_text())
    assert [r["seed"] for r in results] == [3, 4, 5]
    losses = [r["metrics"]["test_loss"] for r in results]
    assert len(set(losses)) == 3, "different seeds draw different data and weights"
    successes = sum(r["metrics"]["success"] for r in results)
    summary = f"{sum(losses) / 3:.4g} ({min(losses):.4g}-{max(losses):.4g})"
    assert f"| tiny irnn | {summary} | {summary} | 0.5 | {successes}/3 | 2 / 2 |" in report
    assert "seeds 3, 4, 5" in report and "--seed=3 --num_seeds=3" in report
    with pytest.raises(ValueError, match=r"seeds=\(1, 1\) must be distinct"):
        experiments.run_experiment("tiny", output_dir=str(tmp_path), seeds=(1, 1))


@pytest.mark.slow  # two fresh processes (about 40 s); `make test-slow`
def test_runs_in_two_processes_give_the_numbers_of_runs_one_after_another(tmp_path, monkeypatch):
    def runs(scale):
        config = TrainConfig(model="irnn", task="addition", seq_len=6, batch_size=8,
                             test_size=40, eval_every=2, train_steps=4, early_stop=False)
        return [experiments.Run(f"tiny {units}", config, {"units": units}, "0.5", metric="test_loss")
                for units in (3, 4)]

    tiny = experiments.Experiment("tiny", "Tiny", "claim", runs, differences="tiny.")
    monkeypatch.setitem(experiments.EXPERIMENTS, "tiny", tiny)
    serial = experiments.run_experiment("tiny", output_dir=str(tmp_path / "serial"), verbose=0)
    parallel = experiments.run_experiment("tiny", output_dir=str(tmp_path / "parallel"), verbose=0,
                                          jobs=2, time_budget_s=600.0)
    one, two = ([r for r in json.loads((tmp_path / d / "tiny" / "results.json").read_text())]
                for d in ("serial", "parallel"))
    assert [r["label"] for r in two] == ["tiny 3", "tiny 4"], "in the experiment's order"
    for a, b in zip(one, two):
        assert b["metrics"]["step"] == 4
        assert b["metrics"]["test_loss"] == pytest.approx(a["metrics"]["test_loss"], rel=1e-5)
        assert 0 < b["config"]["max_seconds"] <= 600.0
    assert "--jobs" not in open(serial).read()
    report = open(parallel).read()
    assert "2 runs at a time" in report and "--jobs=2`" in report
    with pytest.raises(ValueError, match=r"jobs=0 must be a positive integer"):
        experiments.run_experiment("tiny", output_dir=str(tmp_path), jobs=0)


def test_a_time_budget_goes_to_the_runs_still_to_start():
    budget = runner._Budget(900.0, 3)
    first, second = budget.start(), budget.start()  # two runs at a time
    assert (first, second) == (300.0, 300.0)
    budget.finish(first, 100.0)  # solved early: its 200 s go to the last run
    assert budget.start() == pytest.approx(500.0)
    unlimited = runner._Budget(0.0, 2)
    assert (unlimited.start(), unlimited.start()) == (0.0, 0.0)


def test_runs_with_panels_are_drawn_one_panel_each(tmp_path, monkeypatch):
    import matplotlib.image

    def runs(scale):
        config = TrainConfig(model="irnn", task="addition", seq_len=6, batch_size=8,
                             test_size=40, eval_every=2, train_steps=2, early_stop=False)
        return [experiments.Run(f"T=6 {name}", config, {"units": 3}, "0.5", panel=panel)
                for panel, name in (("T=6", "a"), ("T=6", "b"), ("T=7", "a"))]

    tiny = experiments.Experiment("tiny", "Tiny", "claim", runs, differences="tiny.")
    monkeypatch.setitem(experiments.EXPERIMENTS, "tiny", tiny)
    experiments.run_experiment("tiny", output_dir=str(tmp_path), verbose=0)
    results = json.loads((tmp_path / "tiny" / "results.json").read_text())
    assert [r["panel"] for r in results] == ["T=6", "T=6", "T=7"]
    height, width, _ = matplotlib.image.imread(tmp_path / "tiny" / "curves.png").shape
    assert (width, height) == (round(2 * 3.8 * 90), round(2.9 * 90)), "two panels side by side"


def test_fig_4_1_medium_runs_all_eight_problems_at_t100_with_and_without_structural_damping():
    runs = experiments.get_experiment("thesis_fig_4_1").runs("medium")
    assert len(runs) == 16
    assert {r.config.task for r in runs} == {t for _, t in thesis.PATHOLOGICAL_PROBLEMS}
    for run in runs:
        config = run.config
        assert (config.seq_len, run.options["units"], config.optimizer) == (100, 100, "hf")
        assert (config.batch_size, config.hf_curvature_fraction) == (1000, 0.1)  # curvature 100
        assert config.hf_max_cg_iterations == 300
        structural = config.hf_structural_damping
        assert structural in (0.0, 1.0 / 30)
        lambda_0 = 0.1 if structural else 0.3
        scale = 100 if config.task == "random_permutation" else 1
        assert config.hf_damping == pytest.approx(lambda_0 * scale)
    paper = experiments.get_experiment("thesis_fig_4_1").runs("paper")
    assert sorted({r.config.seq_len for r in paper}) == [30, 50, 100, 200]
    with pytest.raises(ValueError, match="no scale 'medium'.*small, paper"):
        experiments.run_experiment("thesis_table_7_3", scale="medium")


@pytest.mark.slow
def test_fig_4_1_medium_runs_and_reports_within_a_tiny_budget(tmp_path, monkeypatch):
    """The medium scale's first problem, shrunk to a tiny network and 2 HF iterations."""
    import dataclasses

    medium = experiments.EXPERIMENTS["thesis_fig_4_1"].runs

    def shrunk(scale):
        return [
            dataclasses.replace(
                run, options={"units": 4},
                config=dataclasses.replace(run.config, seq_len=10, batch_size=40,
                                           hf_max_cg_iterations=5, train_steps=2, eval_every=2,
                                           test_size=50),
            )
            for run in medium(scale)[:2]
        ]

    monkeypatch.setattr(experiments.EXPERIMENTS["thesis_fig_4_1"], "runs", shrunk)
    path = experiments.run_experiment("thesis_fig_4_1", scale="medium", output_dir=str(tmp_path),
                                      verbose=0)
    report = open(path).read()
    results = json.loads((tmp_path / "thesis_fig_4_1" / "results.json").read_text())
    assert [r["label"] for r in results] == ["add T=100 Tikhonov only", "add T=100 structural"]
    assert all(r["metrics"]["step"] == 2 and r["config"]["max_seconds"] > 0 for r in results)
    assert "Scale: `medium`" in report and "time budget 1200 s" in report


def test_cli_lists_experiments(capsys):
    from rnnzoo.cli import reproduce

    reproduce.FLAGS(["rnnzoo-reproduce", "--list"])
    try:
        reproduce.main([])
    finally:
        reproduce.FLAGS.unparse_flags()
    listed = capsys.readouterr().out
    for name in ISSUE_EXPERIMENTS:
        assert f"{name}: " in listed


def test_cli_rejects_unknown_experiment_listing_the_valid_ones(capsys):
    from rnnzoo.cli import reproduce

    reproduce.FLAGS(["rnnzoo-reproduce", "--experiment=nope"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            reproduce.main([])
    finally:
        reproduce.FLAGS.unparse_flags()
    assert exit_info.value.code != 0
    stderr = capsys.readouterr().err
    assert "unknown experiment 'nope'" in stderr
    for name in ISSUE_EXPERIMENTS:
        assert name in stderr


def test_translation_small_compares_at_equal_steps_and_decodes_one_model_many_ways():
    runs = experiments.get_experiment("translation_small").runs("small")
    assert {run.config.train_steps for run in runs} == {1200} and len({id(run.config) for run in runs}) == 1
    assert [run.options["reverse_source"] for run in runs] == [True, False, True]
    assert [run.options.get("pretrain_steps", 0) for run in runs] == [0, 0, 100]
    shared = [{k: v for k, v in run.options.items()
               if k not in ("reverse_source", "pretrain_steps", "eval_decodings")} for run in runs]
    assert shared[0] == shared[1] == shared[2] and shared[0]["test_max_tokens"] == shared[0]["max_tokens"] == 16
    decodings = [run.options.get("eval_decodings", "") for run in runs]
    assert decodings == ["1:0,2:0,4:0,12:0,2:0.6,4:0.6,12:0.6", "", ""]
    assert experiments.get_experiment("translation_small").small_time_budget_s == 0.0


def test_report_tabulates_detail_metrics_and_labels_higher_is_better_curves(tmp_path):
    experiment = experiments.Experiment("t", "T", "claim", None, metric_name="BLEU",
                                        detail_metrics=("bleu_greedy", "bleu_beam2_alpha0", "chrf"))
    directions = {"bleu": "higher", "bleu_greedy": "higher", "bleu_beam2_alpha0": "higher"}
    history = [{"step": 5, "test_loss": 2.0, "bleu": 1.5}, {"step": 10, "test_loss": 1.0, "bleu": 3.0}]
    results = [{"label": label, "panel": "", "seed": 0, "paper": "", "metric": "bleu",
                "config": {"model_dir": str(tmp_path), "train_steps": 10},
                "metrics": {"step": 10, "wall_time_s": 1.0, "test_loss": 1.0, "bleu": 3.0,
                            "success": False, "diverged": False, "history": history,
                            "metric_directions": directions, **extra}}
               for label, extra in (("a", {"bleu_greedy": 2.5, "bleu_beam2_alpha0": 2.75}),
                                    ("b", {"bleu_greedy": 1.25}))]
    from rnnzoo.experiments import report

    with open(report.write_report(experiment, "small", results, 60.0, str(tmp_path))) as f:
        text = f.read()
    assert "| metric | a | b |" in text
    assert "| bleu_greedy (higher) | 2.5 | 1.25 |" in text
    assert "| bleu_beam2_alpha0 (higher) | 2.75 | - |" in text
    assert "chrf" not in text  # no run has it
    assert report._axis_label(results, "bleu") == "bleu (higher is better)"
    assert report._axis_label(results, "test_loss") == "test loss"


def test_fig_6_2_small_compares_ahf_hf_lbfgs_on_center_out_and_ahf_lbfgs_elsewhere():
    runs = experiments.get_experiment("thesis_fig_6_2").runs("small")
    assert [run.label for run in runs] == [
        "center_out ahf", "center_out hf", "center_out lbfgs", "postural ahf", "postural lbfgs",
        "ddn ahf", "ddn lbfgs"]
    for run in runs:
        config = run.config
        assert config.model == "arm_controller" and not config.early_stop
        assert run.options == {"units": 32} and run.panel == config.task
        assert config.train_steps == {"lbfgs": 10}.get(config.optimizer, 1) * (
            40 if config.task == "center_out" else 25)
    assert experiments.get_experiment("thesis_fig_6_2").small_time_budget_s == 0.0


@pytest.mark.slow
def test_fig_6_2_reports_controllers_against_ilqr_with_pictures(tmp_path, monkeypatch):
    """The experiment shrunk to 2-unit controllers, T = 6 and 2 steps: the report's table holds
    the runs' final test losses and iLQR's on the same reaches; the pictures are written."""
    import dataclasses

    import matplotlib.image
    from PIL import Image

    small = experiments.EXPERIMENTS["thesis_fig_6_2"].runs

    def shrunk(scale):
        return [dataclasses.replace(run, options={"units": 2}, config=dataclasses.replace(
            run.config, seq_len=6, train_steps=2, eval_every=1, batch_size=8, test_size=8,
            hf_max_cg_iterations=3)) for run in small(scale)
            if run.label in ("center_out ahf", "center_out lbfgs", "postural ahf")]

    monkeypatch.setattr(experiments.EXPERIMENTS["thesis_fig_6_2"], "runs", shrunk)
    path = experiments.run_experiment("thesis_fig_6_2", output_dir=str(tmp_path), verbose=0)
    out = tmp_path / "thesis_fig_6_2"
    report = open(path).read()
    results = json.loads((out / "results.json").read_text())
    ilqr = json.loads((out / "ilqr.json").read_text())
    assert sorted(ilqr) == ["center_out", "postural"]
    assert ilqr["center_out"]["reaches"] == 64 and ilqr["postural"]["reaches"] == 72
    loss = {r["label"]: r["metrics"]["test_loss"] for r in results}
    assert (f"| centre-out | {loss['center_out ahf']:.3g} | {loss['center_out lbfgs']:.3g} | "
            f"{ilqr['center_out']['mean_loss']:.3g} | 8.96e-5 / 9.29e-5 / 8.95e-5 |") in report
    assert f"| postural | {loss['postural ahf']:.3g} | not run | " in report
    # iLQR optimises each reach's torques: below the barely trained controllers.
    for task in ("center_out", "postural"):
        assert ilqr[task]["mean_loss"] < loss[f"{task} ahf"]
    assert matplotlib.image.imread(out / "hands_center_out.png").shape[1] == round(3 * 3.3 * 90)
    assert os.path.getsize(out / "curves_vs_ilqr.png") > 1000
    with Image.open(out / "reach_center_out.gif") as gif:
        assert gif.n_frames == 7  # x_0 ... x_T
    for picture in ("curves_vs_ilqr.png", "hands_center_out.png", "reach_center_out.gif"):
        assert f"]({picture})" in report
