"""A run directory is defined once (`rnnzoo.training.run_directory.RunDirectory`): the files a run
holds, its best checkpoint (the last until an evaluation keeps one), its assets, and families that
read their model, settings and assets back from it alone, also before the run's first evaluation."""

import dataclasses
import os

import keras
import pytest
import tensorflow as tf

from rnnzoo.export import export_run
from rnnzoo.training import registry
from rnnzoo.training.loop import TrainConfig, train
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.zoo import char_lm, translation

EVALUATED = ["best_model.keras", "checkpoint.json", "metrics.json", "model.keras", "tensorboard"]
"""What an evaluated run of every family holds besides its family's assets."""


def test_the_best_checkpoint_is_the_last_until_an_evaluation_keeps_one(tmp_path):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    run_dir = RunDirectory(tmp_path)
    run_dir.save(model, {"step": 0})
    assert run_dir.model_file("best") == run_dir.model_file("last") == str(tmp_path / "model.keras")
    run_dir.save(model, {"step": 1}, best=True)
    assert run_dir.model_file() == str(tmp_path / "best_model.keras")
    assert run_dir.model_file("last") == str(tmp_path / "model.keras")
    assert run_dir.state() == {"step": 1}
    with pytest.raises(ValueError, match="checkpoint='first' is none of best, last"):
        run_dir.model_file("first")
    assert sorted(os.listdir(tmp_path)) == ["best_model.keras", "checkpoint.json", "model.keras"]


def test_assets_are_written_whole_and_read_back(tmp_path):
    run_dir = RunDirectory(tmp_path / "run")
    assert run_dir.asset("vocabulary.json") is None
    run_dir.save_asset("vocabulary.json", b'{"characters": "ab"}')
    assert run_dir.asset("vocabulary.json") == b'{"characters": "ab"}'
    assert os.listdir(tmp_path / "run") == ["vocabulary.json"]  # no temporary file left behind


def test_a_directory_without_a_run_says_what_it_lacks(tmp_path):
    with pytest.raises(ValueError, match=r"is no rnnzoo training run \(checkpoint.json, model.keras missing\)"):
        RunDirectory(tmp_path).train_config()
    with pytest.raises(ValueError, match=r"is no trained seq2seq run \(checkpoint.json, model.keras, "
                                         r"sentencepiece.model missing\).*--model=seq2seq"):
        translation.load_trained(str(tmp_path))
    with pytest.raises(ValueError, match="model_dir is empty"):
        RunDirectory("")


def smallest_run(model, directory, **fields):
    """The `TrainConfig` of `model`'s family's smallest run (2 steps, evaluated at the end) in
    `directory/run`, and the family's options; the family's data is written into `directory`."""
    family_fields, options = registry.get_family(model).smallest(str(directory))
    config = TrainConfig(**{**family_fields, "train_steps": 2, "eval_every": 2, "verbose": 0,
                            "model_dir": str(directory / "run"), **fields})
    return config, options


def exported_signatures(run, directory):
    """The signatures of the export of `run` (`rnnzoo-export`'s dispatch) into `directory`."""
    return set(tf.saved_model.load(export_run(str(run), str(directory))).signatures)


class _Stopped(Exception):
    pass


class _StopAtTheFirstStep(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        raise _Stopped()


def test_a_char_lm_run_holds_its_vocabulary_beside_the_checkpoints_from_step_0(tmp_path):
    config, options = smallest_run("char_lstm", tmp_path)
    with pytest.raises(_Stopped):  # after the step-0 checkpoint, before any evaluation
        train(config, callbacks=[_StopAtTheFirstStep()], **options)
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == ["checkpoint.json", "model.keras", "tensorboard", "vocabulary.json"]
    model, vocabulary, settings = char_lm.load_trained(str(run))  # the best checkpoint: the last
    assert settings == {"model": "char_lstm", "seq_len": 20,
                        **dataclasses.asdict(registry.make_config(registry.get_family("char_lstm"), **options))}
    assert model.output_shape[-1] == vocabulary.size
    assert exported_signatures(run, tmp_path / "early") >= {"generate", "score"}

    metrics = train(config, **options)  # resumes with the vocabulary the run keeps
    assert metrics["step"] == 2 and metrics["best_step"] == 2
    assert sorted(os.listdir(run)) == sorted(EVALUATED + ["vocabulary.json"])
    _, resumed_vocabulary, resumed_settings = char_lm.load_trained(str(run))
    assert resumed_vocabulary == vocabulary and resumed_settings == settings
    assert exported_signatures(run, tmp_path / "trained") >= {"generate", "score"}


def test_a_seq2seq_run_holds_its_sentencepiece_model_beside_the_checkpoints(tmp_path):
    config, options = smallest_run("seq2seq", tmp_path)
    train(config, **options)
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == sorted(EVALUATED + ["sentencepiece.model"])
    model, tokenizer, seq2seq_config = translation.load_trained(str(run))
    assert seq2seq_config == registry.make_config(registry.get_family("seq2seq"), **options)
    assert model.output_shape[-1] == tokenizer.vocab_size
    assert exported_signatures(run, tmp_path / "serving") >= {"translate"}
