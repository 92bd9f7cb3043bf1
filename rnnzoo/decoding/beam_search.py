"""Left-to-right beam search in TensorFlow ops: length penalty, n-best, EOS handling, batches.

rnn-critical-review §5.3 (Sutskever et al. 2014): "a left to right beam search is used to
determine which words to output. A few among the most likely next words are chosen for
expansion after each time step", until the decoder emits EOS. `beam_search` is the one
implementation behind evaluation and the exported `translate` signature:

- a hypothesis y_1..y_n ends with EOS, or is cut at `max_length` tokens without one; its
  log-probability is sum_i log P(y_i | y_<i, source) and its score that divided by the GNMT
  length penalty lp(n) = ((5 + n) / 6)^alpha (Wu et al. 2016, eq. 14), n counting the EOS;
- each step extends the alive hypotheses by every token and keeps the `beam_width` most
  probable extensions; those ending in EOS (and, at `max_length`, all of them) move to the
  finished list, the others stay alive (so the beam narrows as hypotheses finish). The
  finished list keeps the `beam_width` best scores, sorted. Finished hypotheses are never
  extended;
- an example stops once it has `beam_width` finished hypotheses and no alive one can beat
  the worst of them (alive log-probabilities only fall, and lp grows with n for alpha >= 0, so
  logp / lp(max_length) bounds every continuation), or nothing is alive;
- beam width, alpha and max length are per example (`beam_size` and `max_steps`, the static
  capacity, bound them); the decoder state (any nest of [b, ...] tensors, e.g. each LSTM
  layer's h and c) is reordered with gathers; everything runs in one `tf.while_loop`;
- the decoder step runs only on the rows of alive hypotheses (`skip_dead_rows`): an example
  that has stopped, a slot whose hypothesis finished and a slot beyond the example's width cost
  nothing, and the first step runs one row per example. The row count then changes from step to
  step, which XLA cannot compile: with `skip_dead_rows=False` every row runs and the loop
  compiles with XLA when `beam_size` and `max_steps` are Python ints. Both give the same
  hypotheses.

Beam width 1 is greedy decoding (the argmax token until EOS or `max_length`), whatever alpha.
"""

from typing import NamedTuple

import tensorflow as tf

NEG_INF = float("-inf")


class BeamSearchOutput(NamedTuple):
    """The n-best lists, best first; unused slots have score -inf and length 0.

    ids: int32[b, beam_size, max_steps], each hypothesis's tokens (EOS included), 0 after them.
    lengths: int32[b, beam_size], tokens of each hypothesis (its EOS included).
    scores: float32[b, beam_size], log-probabilities divided by the length penalty.
    log_probs: float32[b, beam_size], the log-probabilities.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    log_probs: tf.Tensor


def length_penalty(length, alpha):
    """GNMT's lp(n) = ((5 + n) / 6)^alpha (Wu et al. 2016, eq. 14)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _flatten(tensor):
    """[b, k, ...] -> [b * k, ...]."""
    return tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[2:]], 0))


def _unflatten(tensor, beam_size):
    """[b * k, ...] -> [b, k, ...]."""
    return tf.reshape(tensor, tf.concat([[-1, beam_size], tf.shape(tensor)[1:]], 0))


def _gather_beams(tensor, indices):
    """tensor[b, indices[b, j]] for every row b: [b, k, ...] -> [b, j, ...]."""
    return tf.gather(tensor, indices, batch_dims=1)


def _top(scores, tensors, count):
    """The `count` best of `scores` [b, n] (sorted) and the same slots of each tensor [b, n, ...]."""
    best, indices = tf.math.top_k(scores, k=count)
    return best, [_gather_beams(t, indices) for t in tensors]


def _every_step(step, tokens, state, alive_logp):
    """Log-probabilities [b * k, V] and the new state of every row."""
    logits, state = step(_flatten(tokens), state)
    return tf.nn.log_softmax(tf.cast(logits, tf.float32)), state


def _alive_step(step, tokens, state, alive_logp):
    """`_every_step` computed on the rows whose hypothesis is alive: the other rows get
    log-probabilities 0 (their hypotheses' -inf log-probability keeps them out of the top k)
    and keep their state."""
    rows = tf.cast(tf.where(tf.reshape(alive_logp > NEG_INF, [-1]))[:, 0], tf.int32)[:, None]
    logits, alive_state = step(tf.gather_nd(_flatten(tokens), rows), tf.nest.map_structure(
        lambda s: tf.gather_nd(s, rows), state))
    log_p = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    log_p = tf.scatter_nd(rows, log_p, tf.stack([tf.size(alive_logp), tf.shape(log_p)[1]]))
    state = tf.nest.map_structure(lambda s, new: tf.tensor_scatter_nd_update(s, rows, tf.cast(new, s.dtype)),
                                  state, alive_state)
    return log_p, state


def beam_search(step, initial_state, beam_width, alpha, max_length, beam_size, max_steps, bos_id, eos_id,
                skip_dead_rows=True):
    """Beam search of every example of a batch (see the module docstring).

    Args:
        step: `step(tokens int32[n], state) -> (logits float32[n, vocab], state)`: one decoder step
            for n = batch * beam_size rows; `state` is a nest of [n, ...] tensors.
        initial_state: the decoder state of each example, a nest of [batch, ...] tensors.
        beam_width: int32[batch], 1 <= beam_width <= beam_size.
        alpha: float32[batch] >= 0, the length penalty's exponent (0: none).
        max_length: int32[batch], 1 <= max_length <= max_steps: tokens of a hypothesis, EOS included.
        beam_size: the beams kept per example (int, or an int32 scalar tensor), >= max(beam_width).
        max_steps: the longest hypothesis (int, or an int32 scalar tensor), >= max(max_length).
        bos_id: the first decoder input.
        eos_id: the end-of-sentence token.
        skip_dead_rows: call `step` on the alive hypotheses' rows only (False: on all
            batch * beam_size rows, as XLA needs).

    Returns:
        A `BeamSearchOutput`.
    """
    batch = tf.shape(beam_width)[0]
    beam_width = tf.cast(beam_width, tf.int32)
    alpha = tf.cast(alpha, tf.float32)
    max_length = tf.cast(max_length, tf.int32)
    slots = tf.range(beam_size)[None, :]
    in_beam = slots < beam_width[:, None]  # [b, k]: the slots an example uses
    columns = tf.range(max_steps)[None, None, :]
    final_penalty = length_penalty(max_length, alpha)

    def tile(tensor):  # [b, ...] -> [b * k, ...], each example's state in each of its beams
        return tf.repeat(tensor, beam_size, axis=0)

    def body(t, tokens, state, alive_ids, alive_logp, done, finished):
        finished_ids, finished_lengths, finished_scores, finished_logp = finished
        log_p, state = (_alive_step if skip_dead_rows else _every_step)(step, tokens, state, alive_logp)
        log_p = _unflatten(log_p, beam_size)  # [b, k, V]
        vocab = tf.shape(log_p)[2]
        extended = alive_logp[:, :, None] + log_p  # -inf on the rows of dead hypotheses
        n = t + 1  # tokens of the hypotheses this step makes

        # The beam_width most probable extensions; those ending in EOS (and, at max_length, all
        # of them) are finished candidates, the others stay alive.
        new_logp, choice = tf.math.top_k(tf.reshape(extended, [batch, -1]), k=beam_size)
        new_logp = tf.where(in_beam, new_logp, NEG_INF)
        parents, new_tokens = choice // vocab, choice % vocab
        new_ids = tf.where(columns == t, new_tokens[:, :, None], _gather_beams(alive_ids, parents))
        flat_parents = _flatten(tf.range(batch)[:, None] * beam_size + parents)
        state = tf.nest.map_structure(lambda s: tf.gather(s, flat_parents), state)
        ends = tf.equal(new_tokens, eos_id) | (n >= max_length)[:, None]
        ended_logp = tf.where(ends, new_logp, NEG_INF)
        ended_scores = ended_logp / length_penalty(n, alpha)[:, None]
        candidates_logp = tf.concat([finished_logp, ended_logp], 1)
        candidates_scores = tf.concat([finished_scores, ended_scores], 1)
        candidates_lengths = tf.concat([finished_lengths, tf.fill(tf.shape(ended_logp), n)], 1)
        candidates_ids = tf.concat([finished_ids, new_ids], 1)
        scores, (ids, lengths, logp) = _top(
            candidates_scores, [candidates_ids, candidates_lengths, candidates_logp], beam_size
        )
        kept = in_beam & (scores > NEG_INF)
        finished = (
            tf.where(kept[:, :, None], ids, 0),
            tf.where(kept, lengths, 0),
            tf.where(in_beam, scores, NEG_INF),
            tf.where(in_beam, logp, NEG_INF),
        )

        # Alive hypotheses end with EOS, at max_length, or once no continuation can enter the n-best.
        alive_logp = tf.where(ends, NEG_INF, new_logp)
        best_alive = tf.reduce_max(alive_logp, axis=1)
        worst_kept = tf.reduce_min(tf.where(in_beam, finished[2], float("inf")), axis=1)
        done = done | (best_alive == NEG_INF) | (worst_kept >= best_alive / final_penalty)
        alive_logp = tf.where(done[:, None], NEG_INF, alive_logp)
        return t + 1, new_tokens, state, new_ids, alive_logp, done, finished

    def cond(t, tokens, state, alive_ids, alive_logp, done, finished):
        return (t < max_steps) & tf.logical_not(tf.reduce_all(done))

    start_logp = tf.where(slots == 0, 0.0, NEG_INF) + tf.zeros([batch, 1])  # one live beam per example
    empty_ids = tf.zeros([batch, beam_size, max_steps], tf.int32)
    empty_scores = tf.fill([batch, beam_size], NEG_INF)
    finished = (empty_ids, tf.zeros([batch, beam_size], tf.int32), empty_scores, empty_scores)
    loop_vars = (
        tf.constant(0),
        tf.fill([batch, beam_size], tf.constant(bos_id, tf.int32)),
        tf.nest.map_structure(tile, initial_state),
        empty_ids,
        start_logp,
        tf.zeros([batch], tf.bool),
        finished,
    )
    shapes = tf.nest.map_structure(lambda v: v.shape, loop_vars)

    def shaped_body(*loop_vars):  # reshapes through the flat beams lose the static batch size
        return tf.nest.map_structure(tf.ensure_shape, body(*loop_vars), shapes)

    outputs = tf.while_loop(cond, shaped_body, loop_vars, maximum_iterations=max_steps)
    ids, lengths, scores, log_probs = outputs[-1]
    return BeamSearchOutput(ids, lengths, scores, log_probs)
