"""Bouncing-balls videos: the generator of Sutskever's RTRBM code (thesis §3.11.1).

As the code is published ("from the RTRBM code by Ilya Sutskever", republished in
zhegan27/TSBN_code_NIPS2015 bouncing_balls/data/data_handler_bouncing_balls.py):
`balls` balls of radius 1.2 and mass 1 in a 10 x 10 box; positions 2 + 8 U[0, 1)^2 redrawn
until every ball is inside the box and no two overlap; velocities randn(n, 2) scaled so the
whole array has norm 0.5. Each frame records the positions, then takes two sub-steps of
x += 0.5 v; after each sub-step a ball touching a wall gets that velocity component pointing
inwards (v = |v| at the low wall, -|v| at the high one) and every overlapping pair collides
elastically along the line between their centres. A frame is rendered on a `resolution` x
`resolution` grid of pixel centres ((k + 1/2) / resolution) * 10 as the sum over balls of
exp(-(d^2 / r^2)^4), clipped at 1, and flattened row by row (x along columns, y along rows).

Sequence `i` of stream `s` (0: training, 1: test) with seed `seed` is drawn from
`numpy.random.default_rng([seed, s, i])`: every sequence is reproducible on its own, so a
resumed run skips to its step without replaying the generator's state.
"""

import numpy as np
import tensorflow as tf

BOX = 10.0
RADIUS = 1.2
SUBSTEP = 0.5
TRAIN_STREAM, TEST_STREAM = 0, 1


def _positions(rng, balls, radius):
    while True:
        x = 2.0 + rng.random((balls, 2)) * 8.0
        inside = np.all((x - radius >= 0) & (x + radius <= BOX))
        apart = all(np.linalg.norm(x[i] - x[j]) >= 2 * radius for i in range(balls) for j in range(i))
        if inside and apart:
            return x


def trajectory(rng, frames, balls=3, radius=RADIUS):
    """Ball centres `(frames, balls, 2)` of one video (see the module docstring)."""
    x = _positions(rng, balls, radius)
    v = rng.standard_normal((balls, 2))
    v = v / np.sqrt(np.sum(v**2)) * 0.5
    positions = np.zeros((frames, balls, 2))
    for t in range(frames):
        positions[t] = x
        for _ in range(int(1 / SUBSTEP)):
            x += SUBSTEP * v
            v = np.where(x - radius < 0, np.abs(v), v)
            v = np.where(x + radius > BOX, -np.abs(v), v)
            for i in range(balls):
                for j in range(i):
                    if np.linalg.norm(x[i] - x[j]) < 2 * radius:
                        w = (x[i] - x[j]) / np.linalg.norm(x[i] - x[j])
                        v_i, v_j = w @ v[i], w @ v[j]
                        # 1-D elastic collision along w; with equal masses the speeds swap.
                        v[i] += w * (v_j - v_i)
                        v[j] += w * (v_i - v_j)
    return positions


def render(positions, resolution=30, radius=RADIUS):
    """Frames `(frames, resolution * resolution)` float32 in [0, 1] of ball centres `(frames, balls, 2)`."""
    centres = (np.arange(resolution) + 0.5) / resolution * BOX
    columns, rows = np.meshgrid(centres, centres)
    dx = columns[None, None] - positions[:, :, 0, None, None]
    dy = rows[None, None] - positions[:, :, 1, None, None]
    frames = np.exp(-(((dx**2 + dy**2) / radius**2) ** 4)).sum(axis=1)
    return np.minimum(frames, 1.0).reshape(len(positions), -1).astype(np.float32)


def video(seed, index, frames=100, balls=3, resolution=30, stream=TRAIN_STREAM):
    """Video `index` of `stream` for `seed`: `(frames, resolution^2)` float32."""
    rng = np.random.default_rng([int(seed), int(stream), int(index)])
    return render(trajectory(rng, frames, balls), resolution)


def _check(name, value, hint, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}; {hint}.")


class BouncingBalls:
    """Seeded bouncing-balls videos as `tf.data` pipelines.

    Args:
        frames: T, frames per video (the thesis: 100).
        balls: balls per video (the thesis: 3).
        resolution: frame side in pixels (the thesis: 30; 900 visible units).
        seed: non-negative seed of both the training and the test videos.
        train_size: `None` (default): a fresh video for every training example (thesis
            §3.11.1); else a fixed set of that many videos, reshuffled every epoch.
    """

    def __init__(self, frames=100, balls=3, resolution=30, seed=0, train_size=None):
        _check("frames (seq_len)", frames, "e.g. 100 as in thesis §3.11.1")
        _check("balls", balls, "e.g. 3")
        _check("resolution", resolution, "e.g. 30")
        _check("seed", seed, "e.g. 0", minimum=0)
        if train_size is not None:
            _check("train_size", train_size, "or None for a fresh video per example")
        self.frames, self.balls, self.resolution = int(frames), int(balls), int(resolution)
        self.seed, self.train_size = int(seed), train_size

    @property
    def pixels(self):
        return self.resolution**2

    def videos(self, start, count, stream=TRAIN_STREAM):
        """Videos `start .. start + count - 1` of a stream, `(count, frames, pixels)` float32."""
        return np.stack([video(self.seed, i, self.frames, self.balls, self.resolution, stream)
                         for i in range(start, start + count)]) if count else np.zeros(
            (0, self.frames, self.pixels), np.float32)

    def train_dataset(self, batch_size):
        """Endless batches `(batch_size, frames, pixels)` of training videos."""
        _check("batch_size", batch_size, "e.g. 1 (thesis §3.11: one sequence per update)")
        shape = (self.frames, self.pixels)
        if self.train_size is None:
            def make(index):
                return video(self.seed, int(index), self.frames, self.balls, self.resolution)

            dataset = tf.data.Dataset.counter().map(
                lambda i: tf.ensure_shape(tf.numpy_function(make, [i], tf.float32), shape))
        else:
            dataset = tf.data.Dataset.from_tensor_slices(self.videos(0, self.train_size))
            dataset = dataset.shuffle(self.train_size, seed=self.seed, reshuffle_each_iteration=True).repeat()
        return dataset.batch(batch_size, drop_remainder=True).prefetch(2)

    def test_videos(self, size):
        """The fixed test set: `size` videos of the test stream, `(size, frames, pixels)`."""
        _check("size", size, "e.g. 10")
        return self.videos(0, size, TEST_STREAM)
