"""`rnnzoo-evaluate`: a trained checkpoint on a task's test set, as JSON.

    rnnzoo-evaluate --model_dir=/tmp/irnn_add100
    rnnzoo-evaluate --model_dir=/tmp/irnn_add100 --seq_len=200 --output=eval.json

Prints `{"test_loss", "test_error_rate", "success", "step", "model", "task",
...}`; the task, length, seed and test size default to the training run's. It
evaluates the run's best checkpoint (what `rnnzoo-export` exports), or with
`--checkpoint=last` its last one.
A family with its own evaluations adds them: a char-LM run (`char_mrnn`, ...)
also reports held-out bits per character and perplexity, samples, structured
completions and debagging accuracy (thesis §5.4-5.5).
"""

import json
import sys

from rnnzoo.cli.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model_dir", None, "Directory of an rnnzoo-train run.")
flags.DEFINE_string("task", None, "Task to evaluate on (default: the run's).")
flags.DEFINE_integer("seq_len", None, "Problem length T (default: the run's).")
flags.DEFINE_integer("seed", None, "Test-set seed (default: the run's).")
flags.DEFINE_integer("test_size", None, "Test examples (default: the run's).")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"],
                  "The run's checkpoint to evaluate: its best evaluation (what rnnzoo-export exports) or its "
                  "last step.")
flags.DEFINE_string("output", None, "Also write the JSON to this file.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.model_dir:
        print("rnnzoo-evaluate: --model_dir is required (an rnnzoo-train run directory).",
              file=sys.stderr)
        sys.exit(2)
    from rnnzoo.training import registry
    from rnnzoo.training.loop import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(FLAGS.model_dir, task=FLAGS.task, seq_len=FLAGS.seq_len,
                                     test_size=FLAGS.test_size, seed=FLAGS.seed, checkpoint=FLAGS.checkpoint)
        family = registry.get_family(result["model"])
        if family.evaluate is not None:
            result.update(family.evaluate(FLAGS.model_dir))
    except ValueError as error:
        print(f"rnnzoo-evaluate: {error}", file=sys.stderr)
        sys.exit(2)
    text = json.dumps(result, sort_keys=True)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            f.write(text + "\n")
    print(text)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
