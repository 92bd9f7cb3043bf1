"""The numpy peer's side of `hf_peer.py`: drasmuss/hessianfree on the addition problem.

Runs in the peer's own venv (`hessianfree`, numpy < 2), never in rnnzoo's: it
imports numpy and `hessianfree` only. `hf_peer.py` writes the data, the
initial weights and the configuration to an `.npz`; this script trains the
peer's `RNNet` one HF iteration per training batch, as the peer's own
`run_epochs` does per minibatch (`cache_minibatch`, `compute_update`,
`W += update`), and writes per-iteration records and test predictions.

    python hf_peer_run.py problem.npz result.npz
"""

import json
import resource
import sys
import time

import hessianfree as hf
import numpy as np


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(problem_path, result_path):
    problem = np.load(problem_path)
    config = json.loads(str(problem["config"]))
    x_train, y_train = problem["x_train"], problem["y_train"]
    x_test, y_test = problem["x_test"], problem["y_test"]
    steps, _, seq_len, features = x_train.shape

    optimizer = hf.opt.HessianFree(CG_iter=config["max_cg_iterations"],
                                   init_damping=config["damping"], plotting=True)
    losses = [hf.loss_funcs.SquaredError()]
    if config["structural_damping"]:
        # Scaled by the optimizer's lambda, on the hidden layer (index 1).
        losses.append(hf.loss_funcs.StructuralDamping(config["structural_damping"], layers=[1],
                                                      optimizer=optimizer))
    net = hf.RNNet(shape=[features, config["units"], 1],
                   layers=[hf.nl.Linear(), hf.nl.Tanh(), hf.nl.Linear()],
                   loss_type=losses if len(losses) > 1 else losses[0],
                   load_weights=problem["initial_weights"].astype(np.float32),
                   rng=np.random.RandomState(config["seed"]), dtype=np.float32)
    net.optimizer = optimizer

    def targets(y):
        # The peer's convention for sparse targets (its `adding` demo): NaN where undefined.
        full = np.full((len(y), seq_len, 1), np.nan, np.float32)
        full[:, -1, 0] = y
        return full

    records, predictions = [], []
    tolerance, success_rate = config["tolerance"], config["success_error_rate"]
    for step in range(steps):
        wall, cpu = time.perf_counter(), _cpu_seconds()
        net.cache_minibatch(x_train[step], targets(y_train[step]))
        update = optimizer.compute_update(False)
        net.W += update
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        output = net.forward(x_test, net.W)[-1][:, -1, 0]
        predictions.append(output)
        plots = optimizer.plots
        records.append({
            "seconds": wall,
            "cpu_seconds": cpu,
            # The peer's loss is sum (o - t)^2 / 2 per sequence: twice it is the MSE.
            "batch_loss_after_step": 2.0 * float(plots["training error (log)"][-1]),
            "cg_steps": int(plots["CG iterations"][-1]) + 1,
            "step_size": float(plots["learning rate"][-1]),
            "damping": float(plots["damping (log)"][-1]),
        })
        error = float(np.mean(~(np.abs(output - y_test) <= tolerance)))
        print(json.dumps({"step": step + 1, "test_error": error, **records[-1]}), flush=True)
        if error < success_rate:
            break
    np.savez(result_path, records=json.dumps(records), predictions=np.array(predictions),
             load=open("/proc/loadavg").read())


if __name__ == "__main__":
    main(*sys.argv[1:])
