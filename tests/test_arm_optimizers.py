"""The arm controller (thesis ch. 6) trained from the CLI by L-BFGS and AHF (§6.2, §6.7.1)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from rnnzoo.cli import train as train_cli
from rnnzoo.optimizers import LBFGS, AugmentedHessianFree
from rnnzoo.zoo.optimizer_factory import make_optimizer
from rnnzoo.zoo.training import TrainConfig


@pytest.fixture
def parse_flags():
    def parse(*args):
        return train_cli.FLAGS(["rnnzoo-train", *args])

    yield parse
    train_cli.FLAGS.unparse_flags()


@pytest.mark.parametrize("optimizer", ["lbfgs", "ahf"])
def test_cli_trains_center_out_with_the_loss_going_down(tmp_path, parse_flags, capsys, optimizer):
    model_dir = str(tmp_path / optimizer)
    train_cli.main(parse_flags("--model=arm_controller", "--task=center_out", "--units=4",
                               "--seq_len=4", "--test_size=8", "--verbose=0",
                               f"--optimizer={optimizer}", "--hf_max_cg_iterations=8",
                               "--train_steps=4", "--eval_every=1", f"--model_dir={model_dir}"))
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["step"] == 4 and not printed["diverged"]
    with open(os.path.join(model_dir, "metrics.json")) as f:
        losses = [h["test_loss"] for h in json.load(f)["history"]]
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    # With T = 4 most of the loss is the unreachable target error: small but steady decreases.
    assert np.all(np.diff(losses) < 0)


def test_factory_makes_ahf_and_lbfgs_and_refuses_clipping():
    config = TrainConfig(model="arm_controller", hf_max_cg_iterations=12,
                         hf_curvature_fraction=0.5, clip_norm=0.0)
    ahf = make_optimizer(dataclasses.replace(config, optimizer="ahf"))
    assert isinstance(ahf, AugmentedHessianFree)
    assert (ahf.max_directions, ahf.curvature_fraction) == (12, 0.5)
    lbfgs = make_optimizer(dataclasses.replace(config, optimizer="lbfgs"))
    assert isinstance(lbfgs, LBFGS) and lbfgs.memory == 100
    for name in ("ahf", "lbfgs"):
        with pytest.raises(ValueError, match=f"--optimizer={name}.*pass --clip_norm=0"):
            make_optimizer(dataclasses.replace(config, optimizer=name, clip_norm=1.0))
