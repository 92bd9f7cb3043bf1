"""The zoo's model families, one module or package each, each declared once
(`rnnzoo.training.registry.Family`); nothing else lists them.

- `pathological` (rnn, irnn, resrnn, vlirnn, mrnn, lstm on the thesis §4.4 / longer-rnns §5
  problems);
- `sequence_classifier` (stacked LSTMs with greedy layer-wise autoencoder pretraining,
  layer-wise paper §3.5);
- `autoencoder` (deep autoencoder of thesis §7.3 on the 8x8 digits);
- `char_lm` (character language models of thesis ch. 5);
- `translation` (`seq2seq`: translation with reversed source and beam search,
  rnn-critical-review §5.3);
- `arm_controller` (thesis ch. 6);
- `rtrbm` (RTRBM and TRBM on bouncing balls, thesis ch. 3).

A new family is its module or package here, with a declaration such as

    FAMILY = registry.register(registry.Family(
        name="my_family", models=("my_model",), config_class=MyConfig, build=build,
        export=predict.export_run, signatures=("predict",), smallest=smallest))

(README, "Adding a model family"), its docs page and its tests. The shared loop
(`rnnzoo.training.loop.train`), `rnnzoo-train`, `rnnzoo-export` and the family tests find it.
Submodules are imported on use.
"""
