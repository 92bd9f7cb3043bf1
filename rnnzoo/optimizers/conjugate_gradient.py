"""Truncated conjugate gradient for Hessian-free steps (thesis Alg. 5 line 7; Martens 2010).

Minimises `phi(x) = x^T A x / 2 - b^T x` from a warm start `x0`, stopping on
the relative progress of `phi` (Martens 2010, §4.4): after step `i`, with
`k = max(10, floor(0.1 i))`, stop once

    i > k,  phi_i < 0  and  (phi_i - phi_{i-k}) / phi_i < k * tolerance,

or after `max_iterations` steps, or at a non-finite or non-positive
curvature `p^T A p` (the iterate before it is kept). Iterates after steps
`ceil(1.3^j)` and the last one are saved for CG backtracking (Martens 2010,
§4.6) in a tensor preallocated for all of them, so the loop has fixed shapes
and compiles with XLA (a dynamically sized TensorArray written inside
`tf.cond` does not). Runs as one `tf.while_loop`, so `apply_curvature` is
traced once.
"""

import math

import tensorflow as tf


def backtracking_steps(max_iterations, growth=1.3):
    """The CG steps after which iterates are saved: `ceil(growth^j) <= max_iterations`."""
    steps, j = [], 0
    while math.ceil(growth**j) <= max_iterations:
        step = math.ceil(growth**j)
        if not steps or step != steps[-1]:
            steps.append(step)
        j += 1
    return steps


def conjugate_gradient(apply_curvature, b, x0, max_iterations, tolerance=5e-4):
    """Partially minimises `x^T A x / 2 - b^T x` by CG from `x0`.

    Args:
        apply_curvature: `v -> A v` for flat vectors (A symmetric positive definite).
        b: flat right-hand side (`-gradient` in HF).
        x0: flat warm start.
        max_iterations: Python int, the cap on CG steps.
        tolerance: the relative-progress threshold `epsilon` above.

    Returns:
        `(iterates, values, count, steps)`: the saved iterates `(m, n)` in
        order, of which the first `count` are filled (iterate `count - 1` is
        the final one); `phi` at each `(m,)`; and the number of CG steps
        taken. The first product is `A x0` (one more than steps). `m` is
        `len(backtracking_steps(max_iterations)) + 1`, a static size.
    """
    dtype = b.dtype
    saving_steps = backtracking_steps(max_iterations)
    slots = len(saving_steps) + 1  # the saving steps and a final iterate between them
    save = tf.scatter_nd(
        [[s] for s in saving_steps], tf.ones([len(saving_steps)], tf.bool), [max_iterations + 1]
    )
    values = tf.zeros([max_iterations + 1], dtype)
    saved = tf.zeros(tf.concat([[slots], tf.shape(b)], 0), dtype)
    saved_steps = tf.fill([slots], -1)

    def phi(x, r):
        # With r = b - A x: phi(x) = -x^T (b + r) / 2.
        return -0.5 * tf.tensordot(x, b + r, 1)

    def body(i, x, r, p, rr, values, saved, saved_steps, count, done):
        # i == 0: the product A x0 sets up the residual; i >= 1: CG step i.
        direction = tf.where(i == 0, x, p)
        product = apply_curvature(direction)
        curvature = tf.tensordot(direction, product, 1)

        def start():
            r0 = b - product
            return x, r0, r0, tf.tensordot(r0, r0, 1), tf.math.is_finite(curvature)

        def step():
            alpha = rr / curvature
            x1 = x + alpha * p
            r1 = r - alpha * product
            rr1 = tf.tensordot(r1, r1, 1)
            return x1, r1, r1 + (rr1 / rr) * p, rr1, tf.math.is_finite(curvature) & (curvature > 0)

        x1, r1, p1, rr1, ok = tf.cond(i == 0, start, step)
        value = phi(x1, r1)
        ok = ok & tf.math.is_finite(value)
        x1, r1, p1, rr1 = [tf.where(ok, new, old) for new, old in ((x1, x), (r1, r), (p1, p), (rr1, rr))]
        values = tf.where(ok, tf.tensor_scatter_nd_update(values, [[i]], [value]), values)
        gap = tf.maximum(10, i // 10)
        previous = tf.gather(values, tf.maximum(i - gap, 0))
        converged = (i > gap) & (value < 0) & ((value - previous) / value < tf.cast(gap, dtype) * tolerance)
        stop = ~ok | converged | (i >= max_iterations) | tf.equal(rr1, 0)
        # The last good iterate is always saved (after a failed step it is x).
        keep = (ok & tf.gather(save, i)) | stop
        last = tf.where(ok, i, i - 1)
        saved = tf.where(keep, tf.tensor_scatter_nd_update(saved, [[count]], [x1]), saved)
        saved_steps = tf.where(
            keep, tf.tensor_scatter_nd_update(saved_steps, [[count]], [last]), saved_steps
        )
        return last + 1, x1, r1, p1, rr1, values, saved, saved_steps, count + tf.cast(keep, tf.int32), stop

    zero = tf.constant(0, tf.int32)
    i, _, _, _, _, values, saved, saved_steps, count, _ = tf.while_loop(
        lambda *state: ~state[-1],
        body,
        (zero, x0, b, b, tf.constant(1, dtype), values, saved, saved_steps, zero, tf.constant(False)),
        maximum_iterations=max_iterations + 1,
    )
    # A non-finite first product saves x0 at step -1: its phi is NaN (rejected by HF).
    phis = tf.where(saved_steps >= 0, tf.gather(values, tf.maximum(saved_steps, 0)), float("nan"))
    return saved, phis, count, tf.maximum(i - 1, 0)
