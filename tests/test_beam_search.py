"""In-graph beam search against numpy references on a tiny recurrent decoder."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.decoding.beam_search import beam_search, length_penalty

VOCAB, HIDDEN, BOS, EOS = 4, 5, 2, 3


@pytest.fixture
def decoder():
    """A tiny tanh RNN decoder (h' = tanh(E[y] + h W), logits = h' U) and per-example start states."""
    rng = np.random.default_rng(7)
    weights = {"E": rng.normal(0, 1.5, (VOCAB, HIDDEN)), "W": rng.normal(0, 0.8, (HIDDEN, HIDDEN)),
               "U": rng.normal(0, 1.5, (HIDDEN, VOCAB))}
    states = rng.normal(0, 1, (4, HIDDEN)).astype(np.float32)
    return {k: v.astype(np.float32) for k, v in weights.items()}, states


def tf_step(weights):
    E, W, U = (tf.constant(weights[k]) for k in "EWU")

    def step(tokens, state):
        h = tf.tanh(tf.gather(E, tokens) + state["h"] @ W)
        return h @ U, {"h": h}

    return step


def np_log_probs(weights, token, h):
    h = np.tanh(weights["E"][token] + h @ weights["W"])
    logits = (h @ weights["U"]).astype(np.float64)
    return logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max(), h


def np_penalty(n, alpha):
    return ((5.0 + n) / 6.0) ** alpha


def enumerate_hypotheses(weights, h0, max_length, alpha):
    """Every hypothesis (ending in EOS, or max_length tokens without one), sorted by score."""
    found = []
    for n in range(1, max_length + 1):
        for prefix in itertools.product([v for v in range(VOCAB) if v != EOS], repeat=n - 1):
            endings = [EOS] if n < max_length else list(range(VOCAB))
            for last in endings:
                tokens, logp, h, previous = (*prefix, last), 0.0, h0, BOS
                for token in tokens:
                    log_p, h = np_log_probs(weights, previous, h)
                    logp, previous = logp + log_p[token], token
                found.append((logp / np_penalty(n, alpha), logp, tokens))
    return sorted(found, key=lambda f: -f[0])


def np_beam_search(weights, h0, width, alpha, max_length, steps_run=None):
    """The module docstring's algorithm, one example, in plain Python; `steps_run` (a list) gets
    the number of alive hypotheses each step extends."""
    alive, finished = [((), 0.0, h0)], []
    for n in range(1, max_length + 1):
        if steps_run is not None:
            steps_run.append(len(alive))
        candidates = []
        for tokens, logp, h in alive:
            log_p, h2 = np_log_probs(weights, tokens[-1] if tokens else BOS, h)
            candidates += [((*tokens, v), logp + log_p[v], h2) for v in range(VOCAB)]
        best = sorted(candidates, key=lambda c: -c[1])[:width]
        ended = [c for c in best if c[0][-1] == EOS or n == max_length]
        alive = [c for c in best if c[0][-1] != EOS and n < max_length]
        finished += [(logp / np_penalty(n, alpha), logp, tokens) for tokens, logp, _ in ended]
        finished = sorted(finished, key=lambda f: -f[0])[:width]
        if not alive or (len(finished) == width
                         and finished[-1][0] >= max(a[1] for a in alive) / np_penalty(max_length, alpha)):
            break
    return finished


def run(decoder, widths, alphas, lengths, beam_size, max_steps, rows=None, jit=False, skip_dead_rows=True,
        step_rows=None):
    """The beam search of `rows` of the decoder's states; under `jit` every row runs (XLA needs
    static shapes). `step_rows` (a tf.Variable) adds up the rows the decoder step ran on."""
    weights, states = decoder
    rows = list(range(len(widths))) if rows is None else rows
    step = tf_step(weights)
    if step_rows is not None:
        def step(tokens, state, step=step):
            step_rows.assign_add(tf.shape(tokens)[0])
            return step(tokens, state)

    @tf.function(jit_compile=jit)
    def search(h0, width, alpha, length):
        return beam_search(step, {"h": h0}, width, alpha, length, beam_size, max_steps, BOS, EOS,
                           skip_dead_rows=skip_dead_rows and not jit)

    out = search(tf.constant(states[rows]), tf.constant(widths, tf.int32), tf.constant(alphas, tf.float32),
                 tf.constant(lengths, tf.int32))
    return [np.asarray(x) for x in out]


def hypotheses(out, row):
    ids, lengths, scores, log_probs = out
    return [(scores[row, k], log_probs[row, k], tuple(ids[row, k, : lengths[row, k]]))
            for k in range(ids.shape[1]) if np.isfinite(scores[row, k])]


def assert_same(found, expected):
    assert [h[2] for h in found] == [h[2] for h in expected]
    np.testing.assert_allclose([h[0] for h in found], [h[0] for h in expected], rtol=1e-5)
    np.testing.assert_allclose([h[1] for h in found], [h[1] for h in expected], rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_beam_covering_every_hypothesis_returns_them_all_exactly_ranked(decoder, alpha):
    every = enumerate_hypotheses(decoder[0], decoder[1][0], 3, alpha)
    assert len(every) == 1 + 3 + 9 + 27
    out = run(decoder, [40], [alpha], [3], beam_size=40, max_steps=3)
    assert_same(hypotheses(out, 0), every)


def test_the_length_penalty_changes_the_ranking_as_the_formula_says(decoder):
    weights, states = decoder
    rankings = {}
    for alpha in (0.0, 3.0):
        every = enumerate_hypotheses(weights, states[1], 3, alpha)
        out = run(decoder, [40], [alpha], [3], beam_size=40, max_steps=3, rows=[1])
        found = hypotheses(out, 0)
        assert_same(found, every)
        scores, log_probs, lengths = out[2][0], out[3][0], out[1][0]
        np.testing.assert_allclose(scores, log_probs / np_penalty(lengths, alpha), rtol=1e-6)
        rankings[alpha] = [h[2] for h in found]
    assert rankings[0.0] != rankings[3.0]
    assert np.mean([len(t) for t in rankings[3.0][:5]]) > np.mean([len(t) for t in rankings[0.0][:5]])
    np.testing.assert_allclose(length_penalty(tf.constant([1, 7]), 0.6), [1.0, 2.0**0.6], rtol=1e-6)


def test_narrow_beams_match_the_reference_and_finished_hypotheses_are_never_extended(decoder):
    weights, states = decoder
    widths, alphas, lengths = [2, 3, 1, 4], [0.0, 0.6, 0.0, 1.5], [6, 4, 7, 5]
    out = run(decoder, widths, alphas, lengths, beam_size=4, max_steps=8)
    for row in range(4):
        found = hypotheses(out, row)
        assert_same(found, np_beam_search(weights, states[row], widths[row], alphas[row], lengths[row]))
        assert len(found) == widths[row]
        for _, _, tokens in found:
            assert EOS not in tokens[:-1] and len(tokens) <= lengths[row]
            assert tokens[-1] == EOS or len(tokens) == lengths[row]
        assert not out[0][row][:, max(len(t) for *_, t in found):].any()
        assert np.all(np.isneginf(out[2][row, widths[row]:])) and not out[1][row, widths[row]:].any()


def test_width_one_is_greedy_decoding(decoder):
    weights, states = decoder
    out = run(decoder, [1, 1], [0.0, 2.0], [8, 8], beam_size=3, max_steps=8, rows=[2, 3])
    for row, h0 in enumerate(states[2:]):
        tokens, previous, h = [], BOS, h0
        while len(tokens) < 8 and (not tokens or tokens[-1] != EOS):
            log_p, h = np_log_probs(weights, previous, h)
            previous = int(np.argmax(log_p))
            tokens.append(previous)
        assert hypotheses(out, row)[0][2] == tuple(tokens)


def test_a_batch_gives_what_each_example_gives_alone_and_xla_agrees(decoder):
    widths, alphas, lengths = [3, 1, 4, 2], [0.6, 0.0, 1.0, 0.2], [5, 8, 3, 6]
    together = run(decoder, widths, alphas, lengths, beam_size=4, max_steps=8)
    compiled = run(decoder, widths, alphas, lengths, beam_size=4, max_steps=8, jit=True)
    for row in range(4):
        alone = run(decoder, widths[row:row + 1], alphas[row:row + 1], lengths[row:row + 1], beam_size=4,
                    max_steps=8, rows=[row])
        assert_same(hypotheses(together, row), hypotheses(alone, 0))
        assert_same(hypotheses(compiled, row), hypotheses(alone, 0))


def test_the_step_runs_on_alive_hypotheses_only_and_every_row_gives_the_same(decoder):
    weights, states = decoder
    widths, alphas, lengths = [3, 1, 4, 2], [0.6, 0.0, 1.0, 0.2], [5, 8, 3, 6]
    alive_per_step = [[] for _ in widths]  # each example's alive hypotheses at each of its steps
    for row, steps_run in enumerate(alive_per_step):
        np_beam_search(weights, states[row], widths[row], alphas[row], lengths[row], steps_run=steps_run)
    counted = tf.Variable(0)
    alive_only = run(decoder, widths, alphas, lengths, beam_size=4, max_steps=8, step_rows=counted)
    assert int(counted.numpy()) == sum(map(sum, alive_per_step))
    counted.assign(0)
    every_row = run(decoder, widths, alphas, lengths, beam_size=4, max_steps=8, skip_dead_rows=False,
                    step_rows=counted)
    assert int(counted.numpy()) == 4 * 4 * max(map(len, alive_per_step))  # batch x beam_size per step
    assert sum(map(sum, alive_per_step)) < int(counted.numpy()) / 2
    for row in range(4):
        assert_same(hypotheses(alive_only, row), hypotheses(every_row, row))
        np.testing.assert_array_equal(alive_only[0][row], every_row[0][row])
