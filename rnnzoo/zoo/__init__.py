"""Zoo models of the papers, one file per family, and the training loop they share.

Families (`rnnzoo.zoo.registry`): `pathological` (rnn, irnn, resrnn, vlirnn,
mrnn, lstm on the thesis §4.4 / longer-rnns §5 problems),
`sequence_classifier` (stacked LSTMs with greedy layer-wise autoencoder
pretraining, layer-wise paper §3.5) and `autoencoder` (deep autoencoder of
thesis §7.3 on the 8x8 digits).

Adding a family (e.g. `rnnzoo/zoo/char_lm.py`, already listed in
`registry.FAMILY_MODULES`):

    @dataclasses.dataclass
    class CharLMConfig:                  # every field has a default;
        units: int = 1500                # rnnzoo-train makes each a flag
        factors: int = 1500

    def build(model_name, config, train_config):
        ...                              # model, data from train_config
        return registry.Built(model=rnnzoo.Model(inputs, logits),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              train_dataset=..., test_dataset=...,
                              error_rate=..., success_error_rate=None)

    FAMILY = registry.register(registry.Family(
        name="char_lm", models=("mrnn_lm",), config_class=CharLMConfig, build=build))

`rnnzoo.zoo.training.train(TrainConfig(model="mrnn_lm", ...), units=...)`
then gives it the optimizers (sgd, momentum, nag, adam, hf), atomic
checkpoints and resumption, TensorBoard summaries, the progress bar, early
stopping and `metrics.json`; `rnnzoo-train --model=mrnn_lm` works unchanged.
Submodules are imported on use.
"""
