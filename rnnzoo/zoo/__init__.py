"""Zoo models of the papers, one file per family, and the training loop they share.

Families (`rnnzoo.zoo.registry`): `pathological` (rnn, irnn, resrnn, vlirnn,
mrnn, lstm on the thesis §4.4 / longer-rnns §5 problems),
`sequence_classifier` (stacked LSTMs with greedy layer-wise autoencoder
pretraining, layer-wise paper §3.5), `autoencoder` (deep autoencoder of
thesis §7.3 on the 8x8 digits), `char_lm` (character language models of
thesis ch. 5) and `seq2seq` (translation with reversed source and beam search,
rnn-critical-review §5.3).

Adding a family is one file, `rnnzoo/zoo/<family>.py`, listed in
`registry.FAMILY_MODULES`:

    @dataclasses.dataclass
    class MyConfig:                      # every field has a default;
        units: int = 100                 # rnnzoo-train makes each a flag

    def build(model_name, config, train_config):
        ...                              # model and data from train_config
        return registry.Built(
            model=rnnzoo.Model(inputs, outputs),           # linear outputs
            loss=keras.losses.MeanSquaredError(),          # the matching loss
            train_dataset=..., test_dataset=...,
            metrics=(evaluation.Metric("test_error_rate", error_rate),),   # direction "lower"
            success=evaluation.Criterion("test_error_rate", 0.01))        # or None

    FAMILY = registry.register(registry.Family(
        name="my_family", models=("my_model",), config_class=MyConfig, build=build))

`rnnzoo.zoo.training.train(TrainConfig(model="my_model", ...), units=...)`
then gives it the optimizers (sgd, momentum, nag, adam, hf), atomic
checkpoints and resumption, divergence handling, TensorBoard summaries, the
progress bar, early stopping and `metrics.json`; `rnnzoo-train
--model=my_model` works unchanged. A family whose metric is not a function of
test predictions returns it from `Built.evaluate(model)` (a `Metric` with
`compute=None`), and one with its own training rule returns a model whose
`train_step` implements it. Its serving functions go in
`rnnzoo/export/<family>.py`. Submodules are imported on use.
"""
