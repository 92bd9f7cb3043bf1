"""rnnzoo-train and rnnzoo-evaluate: flags, metrics.json, resumption, JSON evaluation."""

import json
import os
import subprocess
import sys

import pytest

from rnnzoo.cli import train as train_cli
from rnnzoo.training.loop import TrainConfig, resolve_config

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture
def parse_flags():
    """Parses argv into the binary's absl flags and resets them afterwards."""
    def parse(*args):
        return train_cli.FLAGS(["rnnzoo-train", *args])

    yield parse
    train_cli.FLAGS.unparse_flags()


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


def _flags(model_dir):
    return ["--model=irnn", "--task=addition", "--seq_len=10", "--optimizer=momentum",
            "--learning_rate=0.01", "--clip_norm=0.1", "--batch_size=16", "--eval_every=5",
            "--test_size=100", "--units=6", "--verbose=0", "--noearly_stop",
            f"--model_dir={model_dir}"]


def test_train_writes_metrics_and_flagfile_run_resumes(tmp_path, parse_flags, capsys):
    model_dir = str(tmp_path / "run")
    argv = parse_flags(*_flags(model_dir), "--train_steps=10")
    train_cli.main(argv)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["step"] == printed["step"] == 10
    assert metrics["optimizer"] == "momentum" and metrics["model_config"]["units"] == 6
    for key in ("wall_time_s", "test_loss", "test_error_rate", "success"):
        assert key in metrics
    train_cli.FLAGS.unparse_flags()

    flagfile = tmp_path / "flags.txt"
    flagfile.write_text("\n".join(_flags(model_dir) + ["--train_steps=15"]) + "\n")
    train_cli.main(parse_flags(f"--flagfile={flagfile}"))
    with open(os.path.join(model_dir, "metrics.json")) as f:
        resumed = json.load(f)
    assert [h["step"] for h in resumed["history"]] == [5, 10, 15]
    assert resumed["history"][:2] == metrics["history"]

    # rnnzoo-evaluate, as a separate process, reproduces the last evaluation.
    output = tmp_path / "eval.json"
    evaluated = _run("rnnzoo.cli.evaluate", f"--model_dir={model_dir}", f"--output={output}", "--checkpoint=last")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads(output.read_text())
    assert result == json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert result["step"] == 15 and result["model"] == "irnn" and result["test_size"] == 100
    assert result["test_loss"] == pytest.approx(resumed["test_loss"], rel=1e-5)
    assert result["test_error_rate"] == resumed["test_error_rate"]


@pytest.mark.parametrize(
    "flag, names",
    [
        ("--model=transformer", ["irnn", "resrnn", "vlirnn", "mrnn", "lstm", "layerwise_lstm"]),
        ("--task=sorting", ["addition", "memorization_20bit", "temporal_order_3bit", "digits"]),
        ("--optimizer=rmsprop", ["sgd", "momentum", "nag", "adam", "hf"]),
    ],
)
def test_unknown_names_exit_nonzero_listing_the_valid_ones(tmp_path, parse_flags, capsys, flag, names):
    args = {"--model": "--model=irnn", "--task": "--task=addition", "--optimizer": "--optimizer=sgd"}
    args[flag.split("=")[0]] = flag
    argv = parse_flags(*args.values(), "--seq_len=10", f"--model_dir={tmp_path / 'x'}")
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(argv)
    assert exit_info.value.code != 0
    stderr = capsys.readouterr().err
    assert repr(flag.split("=")[1]) in stderr
    for name in names:
        assert name in stderr
    assert not (tmp_path / "x").exists()


def test_options_of_another_model_family_are_refused(tmp_path, parse_flags, capsys):
    argv = parse_flags("--model=irnn", "--layers=3", f"--model_dir={tmp_path}")
    with pytest.raises(SystemExit):
        train_cli.main(argv)
    assert "--layers do not apply to model 'irnn'" in capsys.readouterr().err


def test_evaluate_without_a_checkpoint_names_the_directory(tmp_path):
    from rnnzoo.training.loop import evaluate_checkpoint

    with pytest.raises(ValueError, match=f"'{tmp_path}' is no rnnzoo training run"):
        evaluate_checkpoint(str(tmp_path))


@pytest.mark.slow
def test_console_script_run(tmp_path):
    result = _run("rnnzoo.cli.train", *_flags(tmp_path / "run"), "--train_steps=5")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 5


def test_task_options_reach_the_task_and_the_run_description(tmp_path, parse_flags, capsys):
    model_dir = tmp_path / "digits"
    argv = parse_flags("--model=deep_lstm", "--task=digits", "--task_options=binarize=true",
                       "--units=4", "--layers=1", "--batch_size=32", "--train_steps=2",
                       "--eval_every=2", "--test_size=40", "--verbose=0", "--noearly_stop",
                       f"--model_dir={model_dir}")
    config, _ = train_cli.config_from_flags()
    assert config.task_options == {"binarize": True}
    x, _ = next(iter(config.make_task().train_dataset(64)))
    assert set(x.numpy().ravel()) == {0.0, 1.0}  # binarised pixels, not 17 grey levels
    train_cli.main(argv)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["task"] == "digits" and metrics["task_options"] == {"binarize": True}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=irnn", "--task=digits", "--task_options=sharpen=1"],
         "Task 'digits' has no option 'sharpen'; its options are: binarize"),
        (["--model=irnn", "--task_options=binarize"], "'binarize' is not name=value"),
        (["--model=char_rnn", "--task=addition"], "take no task; drop task='addition'"),
        (["--model=deep_autoencoder", "--task=xor"], "train on digits only; got task 'xor'"),
    ],
)
def test_bad_task_flags_exit_naming_the_value(tmp_path, parse_flags, capsys, args, message):
    argv = parse_flags(*args, "--seq_len=10", "--train_steps=1", "--verbose=0",
                       f"--model_dir={tmp_path / 'x'}")
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(argv)
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_family_default_tasks(parse_flags, tmp_path):
    for model, task in (("irnn", "addition"), ("deep_autoencoder", "digits"), ("char_mrnn", None)):
        parse_flags(f"--model={model}", f"--model_dir={tmp_path}")
        assert train_cli.config_from_flags()[0].task == task
        train_cli.FLAGS.unparse_flags()


_TINY_RNN = ["--model=rnn", "--task=addition", "--seq_len=6", "--batch_size=32",
             "--train_steps=2", "--eval_every=2", "--test_size=50", "--units=4", "--verbose=0",
             "--noearly_stop"]


def _train_tiny(parse_flags, capsys, model_dir, *flags):
    train_cli.main(parse_flags(*_TINY_RNN, *flags, f"--model_dir={model_dir}"))
    train_cli.FLAGS.unparse_flags()
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["step"] == 2 and not metrics["diverged"]


def test_mixed_precision_builds_mixed_float16_models_but_hf_keeps_float32(tmp_path, parse_flags,
                                                                          capsys):
    from rnnzoo.training.run_directory import RunDirectory

    for optimizer, policy in (("adam", "mixed_float16"), ("hf", "float32")):
        model_dir = str(tmp_path / optimizer)
        _train_tiny(parse_flags, capsys, model_dir, f"--optimizer={optimizer}",
                    "--hf_max_cg_iterations=5", "--mixed_precision")
        model = RunDirectory(model_dir).load_model()
        policies = {layer.dtype_policy.name for layer in model.layers if layer.weights}
        assert policies == {policy}, optimizer
        assert all(w.dtype == "float32" for w in model.trainable_weights)


def test_hf_flags_reach_the_optimizer_and_a_resumed_run_keeps_them(tmp_path, parse_flags, capsys):
    from rnnzoo.training.run_directory import RunDirectory

    model_dir = str(tmp_path / "hf")
    _train_tiny(parse_flags, capsys, model_dir, "--optimizer=hf", "--hf_damping=2",
                "--hf_max_cg_iterations=3", "--hf_cg_warm_start=final",
                "--hf_evaluation_batch=curvature")

    def saved_settings():
        optimizer = RunDirectory(model_dir).load_model().optimizer
        config = optimizer.get_config()
        return int(optimizer.iterations.numpy()), {k: config[k] for k in (
            "damping", "max_cg_iterations", "cg_warm_start", "evaluation_batch")}

    expected = {"damping": 2.0, "max_cg_iterations": 3, "cg_warm_start": "final",
                "evaluation_batch": "curvature"}
    assert saved_settings() == (2, expected)
    # Resuming restores the saved optimizer, these options with the other hf_* ones.
    train_cli.main(parse_flags(*_TINY_RNN, "--optimizer=hf", "--train_steps=4",
                               f"--model_dir={model_dir}"))
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 4
    assert saved_settings() == (4, expected)


@pytest.mark.parametrize("flag, fix", [
    ("--hf_cg_warm_start=last", "pass --hf_cg_warm_start=backtracked or --hf_cg_warm_start=final"),
    ("--hf_evaluation_batch=full",
     "pass --hf_evaluation_batch=gradient or --hf_evaluation_batch=curvature"),
])
def test_bad_hf_option_exits_naming_the_value_and_the_choices(tmp_path, parse_flags, capsys, flag,
                                                              fix):
    model_dir = tmp_path / "x"
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(parse_flags(*_TINY_RNN, "--optimizer=hf", flag, f"--model_dir={model_dir}"))
    assert exit_info.value.code == 2
    name, value = flag[2:].split("=")
    assert f"{name}={value!r} is not an option of HessianFree; {fix}." in capsys.readouterr().err
    assert not model_dir.exists()


@pytest.mark.slow
def test_hf_trains_with_jit_compile(tmp_path, parse_flags, capsys):
    """--jit_compile compiles the whole Hessian-free step with XLA (on CPU here)."""
    _train_tiny(parse_flags, capsys, str(tmp_path / "hf"), "--optimizer=hf",
                "--hf_max_cg_iterations=5", "--jit_compile")


def test_seq2seq_runs_its_recipe_unless_flags_say_otherwise(tmp_path, parse_flags):
    parse_flags("--model=seq2seq", f"--model_dir={tmp_path}")
    config, _ = train_cli.config_from_flags()
    assert (config.batch_size, config.train_steps, config.eval_every) == (64, 2400, 1000)
    assert (resolve_config(config).learning_rate, resolve_config(config).clip_norm) == (2e-3, 5.0)
    train_cli.FLAGS.unparse_flags()
    parse_flags("--model=seq2seq", "--batch_size=8", "--train_steps=5", "--eval_every=5", "--learning_rate=0.1",
                f"--model_dir={tmp_path}")
    config, _ = train_cli.config_from_flags()
    assert (config.batch_size, config.train_steps, config.eval_every) == (8, 5, 5)
    assert resolve_config(config).learning_rate == 0.1
    train_cli.FLAGS.unparse_flags()
    parse_flags("--model=irnn", f"--model_dir={tmp_path}")
    assert train_cli.config_from_flags()[0].train_steps == TrainConfig().train_steps  # other families keep the loop's
