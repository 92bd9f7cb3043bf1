"""Videos of trained (R)TRBM runs for reports: the truth, next-frame predictions and a generated
continuation side by side, as animated GIFs (thesis §3.11, Alg. 3)."""

import os

import numpy as np
import tensorflow as tf

from rnnzoo.data.bouncing_balls import BouncingBalls
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.zoo.rtrbm import DEFAULT_FRAMES, RTRBMConfig


def video_frames(model_dir, video_index=0, prefix_frames=10, gibbs_steps=25, seed=0):
    """`(truth, predicted, generated)` videos `(T, pixels)` of the run in `model_dir` on its test
    video `video_index`: the truth, every frame predicted from its true history (the run's metric
    settings) and a generated continuation of the first `prefix_frames` true frames (Alg. 3)."""
    run_dir = RunDirectory(model_dir)
    config = RTRBMConfig(**run_dir.model_config())
    run = run_dir.train_config()
    model = run_dir.load_model(compile=False)
    data = BouncingBalls(frames=run["seq_len"] or DEFAULT_FRAMES, balls=config.balls,
                         resolution=config.resolution, seed=run["seed"])
    truth = data.test_videos(video_index + 1)[video_index:]
    predicted = tf.function(model.rbm.predict_frames)(
        truth, config.prediction_gibbs_steps, config.prediction_expectation, config.prediction_chains)
    generated = tf.function(model.rbm.generate)(
        truth.shape[1] - prefix_frames, prefix=truth[:, :prefix_frames], gibbs_steps=gibbs_steps, seed=seed)
    generated = np.concatenate([truth[:, :prefix_frames], np.asarray(generated)], axis=1)
    return truth[0], np.asarray(predicted)[0], generated[0]


def write_gif(path, videos, scale=3, milliseconds=80):
    """Writes videos `[(T, side^2)]` in [0, 1] side by side (2-pixel grey gaps) as an animated GIF."""
    from PIL import Image

    side = int(round(np.sqrt(videos[0].shape[1])))
    gap = np.full((side, 2), 0.5)
    images = []
    for t in range(len(videos[0])):
        row = np.concatenate(sum(([np.clip(v[t].reshape(side, side), 0, 1), gap] for v in videos), [])[:-1],
                             axis=1)
        image = Image.fromarray((row * 255).astype(np.uint8), mode="L")
        images.append(image.resize((image.width * scale, image.height * scale), Image.NEAREST))
    images[0].save(path, save_all=True, append_images=images[1:], duration=milliseconds, loop=0)
    return path


def illustrate(results, out_dir, prefix_frames=10):
    """An experiment's pictures: for every run, `video_<label>.gif` with the true test video, its
    next-frame predictions and a generated continuation of its first frames, side by side;
    returns the report's markdown lines."""
    lines = ["## Videos", "",
             f"Left to right: a test video, each frame predicted from its true history (the metric), "
             f"and frames generated after the first {prefix_frames} true frames (thesis Alg. 3, "
             "25 Gibbs steps per frame, pixel probabilities shown).", ""]
    for result in results:
        name = f"video_{result['label'].lower().replace(' ', '_')}.gif"
        write_gif(os.path.join(out_dir, name), video_frames(result["config"]["model_dir"],
                                                            prefix_frames=prefix_frames))
        lines += [f"{result['label']}:", "", f"![{result['label']} truth, predicted, generated]({name})", ""]
    return lines
