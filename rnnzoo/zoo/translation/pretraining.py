"""Greedy layer-wise LSTM-autoencoder pretraining of a seq2seq model (layer-wise §3.5, §4.4, fig. 2).

Before supervised training, each stack of the translation model is pretrained bottom-up with
`rnnzoo.training.layerwise_pretraining.pretrain` (the same procedure as the sequence classifiers):

- the encoder's LSTMs on the embedded source sentences as the encoder reads them (reversed when
  the model reverses its source, fig. 2);
- the decoder's LSTMs on the embedded target sentences, in order.

Each autoencoder reconstructs its (embedded) input sequence in reverse order from its final
state. The embeddings are the model's own, as initialised; they are not trained here (§3.5
pretrains the recurrent layers). Batches are grouped by length like the training batches; the
autoencoders read the few padding steps of a bucket as zero vectors.
"""

import tensorflow as tf

from rnnzoo.data.parallel_batches import DEFAULT_BUCKETS, id_rows
from rnnzoo.data.subword_tokenizer import PAD_ID
from rnnzoo.training import layerwise_pretraining


def _embedded_batches(ids, embedding, batch_size, seed, reverse):
    """Endless bucketed batches of `embedding(ids)` float32[b, t, d], each row reversed if asked."""
    dataset = id_rows(ids).shuffle(len(ids), seed=seed).repeat().bucket_by_sequence_length(
        lambda row: tf.shape(row)[0], list(DEFAULT_BUCKETS), [batch_size] * (len(DEFAULT_BUCKETS) + 1),
        padding_values=PAD_ID,
    )
    table = embedding.embeddings

    def embed(batch):
        if reverse:
            lengths = tf.reduce_sum(tf.cast(batch != PAD_ID, tf.int32), axis=1)
            batch = tf.reverse_sequence(batch, lengths, seq_axis=1, batch_axis=0)
        vectors = tf.gather(tf.convert_to_tensor(table), batch)
        return vectors * tf.cast(batch != PAD_ID, vectors.dtype)[:, :, None]

    return dataset.map(embed)


def make_pretrain(train_sources, train_targets, config):
    """`pretrain(model, train_config)` for `registry.Built.pretrain`: both stacks, `config.pretrain_steps`
    batches per layer; returns the per-layer reconstruction losses."""
    from rnnzoo.training.optimizer_factory import make_optimizer

    def pretrain(model, train_config):
        encoder = model.get_layer("encoder")
        stacks = {
            "encoder": (encoder.get_layer("source_embedding"), train_sources, config.reverse_source,
                        [encoder.get_layer(f"source_rnn_{i + 1}") for i in range(config.layers)]),
            "decoder": (model.get_layer("target_embedding"), train_targets, False,
                        [model.get_layer(f"target_rnn_{i + 1}") for i in range(config.layers)]),
        }
        stats = {}
        for name, (embedding, ids, reverse, layers) in stacks.items():
            stats[name] = layerwise_pretraining.pretrain(
                layers,
                (None, config.embedding_dim),
                _embedded_batches(ids, embedding, train_config.batch_size, train_config.seed, reverse),
                lambda: make_optimizer(train_config),
                config.pretrain_steps,
                "glorot_uniform",
                verbose=1 if train_config.verbose == 1 else 0,
            )
        return stats

    return pretrain
