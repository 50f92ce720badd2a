"""Choose the keypoint guidance term's weight and sigma and the camera step on the validation slice.

The slice (indices 20000.. of the seed-0 synthetic *train* stream, see ``validation_slice.py``) is disjoint from
training and from the test split. Pictures in, as ``pipeline(image=...)`` runs, plus 2D keypoints from a detection
simulator (``--simulator``):

- ``noisy-gt``: the ground-truth body's 33 BlazePose points projected with the sample's camera, each coordinate
  moved by Gaussian noise of ``--noise`` x the person's box height (default 2 %), each landmark dropped (visibility
  0) with probability ``--dropout`` (default 10 %), seeded by the sample's index;
- ``learned``: ``scorehoi_diffusers.data.simulated_detections`` (noise, dropout and left/right swap rates measured
  by running the real detector on synthetic renders), when that module is present;
- ``detector`` (``choose_keypoint_fit.py`` only): no simulation: the bundled detector itself runs on each render and
  hands the pipeline its landmarks and its person mask, as on a real photo without a hand-drawn mask
  (``scorehoi_diffusers.evaluation.DetectedPictures``).

Each setting gets the evaluation row (CD_h, CD_o, contacts, penetration) and two keypoint measures against the
noiseless ground truth: the facing error (angle between the predicted and true body forward directions; % of scenes
over 90 degrees, i.e. flipped) and the reprojection error of the body points (% of the true box height). The rule:
the lowest CD_h + CD_o at N = 2 among the settings that flip no more scenes than the best; the first stage picks
the weight (sigma 0.1, camera fixed), the second sigma, the third the camera step.

Run: .venv/bin/python training/choose_keypoints.py [--num-samples 48] [--cycles 2] [--simulator noisy-gt]
"""
import argparse
import dataclasses
import math

import numpy as np
import torch
import validation_slice

from scorehoi_diffusers.body import blazepose_points
from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.evaluation import FLIPPED_DEGREES, evaluate, format_table
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED


def true_landmarks(body_model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixels (B, 33, 2), box height (B,))`` of the ground-truth body's BlazePose points."""
    gt = sample_to_params(batch)
    intrinsics = torch.as_tensor(np.asarray(batch["intrinsics"], dtype=np.float32))
    with torch.no_grad():
        output = body_model(gt, frame="camera")
        pixels = project_points(blazepose_points(output.joints, output.landmarks), intrinsics)
    fitted = torch.tensor(BLAZEPOSE_FITTED)
    v = pixels[:, fitted, 1]
    return pixels, v.amax(1) - v.amin(1)


class NoisyGroundTruthDetections:
    """The stand-in simulator: projected ground truth + Gaussian noise, with dropout (see the module docstring)."""

    def __init__(self, body_model, noise: float = 0.02, dropout: float = 0.1, seed: int = 0):
        self.body_model, self.noise, self.dropout, self.seed = body_model, noise, dropout, seed

    def __call__(self, batch) -> np.ndarray:
        pixels, height = true_landmarks(self.body_model, batch)
        rows = []
        for pixel, box, index in zip(pixels.numpy(), height.numpy(), batch["index"]):
            rng = np.random.default_rng([self.seed, int(index)])
            noisy = pixel + rng.normal(scale=self.noise * box, size=pixel.shape)
            visibility = (rng.uniform(size=len(pixel)) >= self.dropout).astype(np.float64)
            rows.append(np.concatenate([noisy, visibility[:, None]], axis=1))
        return np.stack(rows)


class MeasuredDetections:
    """The measured simulator, ``scorehoi_diffusers.data.simulated_detections.simulate_detections`` with its default
    rates, one generator per sample seeded by its index (a sample's detections do not depend on its batch)."""

    def __init__(self, body_model, seed: int = 0):
        from scorehoi_diffusers.data.simulated_detections import simulate_detections

        self.body_model, self.seed, self.simulate = body_model, seed, simulate_detections

    def __call__(self, batch) -> np.ndarray:
        gt = sample_to_params(batch)
        intrinsics = torch.as_tensor(np.asarray(batch["intrinsics"], dtype=np.float32))
        with torch.no_grad():
            output = self.body_model(gt, frame="camera")
            points = blazepose_points(output.joints, output.landmarks)
        rows = []
        for i, index in enumerate(batch["index"]):
            width, height = batch["image"][i].size
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
            rows.append(self.simulate(points[i:i + 1], intrinsics[i:i + 1], (height, width), generator=generator)[0])
        return torch.stack(rows).double().numpy()


class WithKeypoints:
    """``initial_estimate_fn``: the pictures (``RegressorEstimate``) plus the simulator's keypoints (or, from a
    source that returns a dict such as ``DetectedPictures``, the picture fields it returns); remembers each batch's
    ground truth so that :class:`Recorder` can score the output."""

    def __init__(self, estimate, simulate):
        self.estimate, self.simulate, self.last = estimate, simulate, None

    def __call__(self, batch):
        params, contacts, tokens, estimator, pictures = self.estimate(batch)
        self.last = batch
        if self.simulate is None:  # the reference run: pictures only
            return params, contacts, tokens, estimator, pictures
        fields = self.simulate(batch)
        if not isinstance(fields, dict):
            fields = {"keypoints": fields}
        return params, contacts, tokens, estimator, {**pictures, **fields}


class Recorder:
    """Stands in for the pipeline inside ``evaluate``: runs it and scores facing and reprojection per sample.

    ``evaluate`` runs the scenes grouped by object, so the per-call arrays are in that order, not the dataset's;
    :attr:`rows` holds each call's dataset rows, in the same order."""

    def __init__(self, pipeline, estimate: WithKeypoints):
        self.pipeline, self.estimate = pipeline, estimate
        self.facing, self.reprojection, self.rows = [], [], []

    def __getattr__(self, name):
        return getattr(self.pipeline, name)

    def __call__(self, **kwargs):
        output = self.pipeline(**kwargs)
        batch = self.estimate.last
        self.rows.append(np.asarray(batch["index"]).reshape(-1))
        gt = sample_to_params(batch)
        forward_true = gt.global_orient[:, :, 2]
        forward_pred = output.params.global_orient[:, :, 2].float()
        cosine = (forward_true * forward_pred).sum(-1).clamp(-1, 1)
        self.facing.append(torch.rad2deg(torch.acos(cosine)).numpy())
        true_pixels, height = true_landmarks(self.pipeline.body_model, batch)
        with torch.no_grad():
            body = self.pipeline.body_model(output.params.to(dtype=torch.float32), frame="camera")
            pixels = project_points(blazepose_points(body.joints, body.landmarks),
                                    torch.as_tensor(np.asarray(batch["intrinsics"], dtype=np.float32)))
        fitted = torch.tensor(BLAZEPOSE_FITTED)
        error = (pixels - true_pixels)[:, fitted].norm(dim=-1).mean(-1) / height
        self.reprojection.append(100 * error.numpy())
        return output


def run(pipeline, data, estimate, simulate, config, cycles, name, recorder_class=None):
    """The evaluation row of one setting, with the recorder's facing and reprojection means (``recorder_class``:
    a :class:`Recorder` subclass that measures more; the row's ``recorder`` holds it)."""
    with_keypoints = WithKeypoints(estimate, simulate)
    recorder = (recorder_class or Recorder)(pipeline, with_keypoints)
    row = evaluate(recorder, data, split=None, mode="full", num_cycles=cycles, initial_estimate_fn=with_keypoints,
                   guidance_config=config)
    facing, reprojection = np.concatenate(recorder.facing), np.concatenate(recorder.reprojection)
    row["mode"] = f"N={cycles}, {name}"
    row["facing_deg"], row["flipped_pct"] = float(facing.mean()), float(100 * (facing > FLIPPED_DEGREES).mean())
    row["reprojection_pct"] = float(reprojection.mean())
    row["recorder"] = recorder
    print(format_table([row]), flush=True)
    print(f"    {name}: facing {row['facing_deg']:.1f} deg, flipped {row['flipped_pct']:.1f} %, "
          f"reprojection {row['reprojection_pct']:.2f} % of box height", flush=True)
    return row


def best(rows):
    fewest_flips = min(row["flipped_pct"] for row in rows)
    eligible = [row for row in rows if row["flipped_pct"] <= fewest_flips]
    return min(eligible, key=lambda row: row["cd_human"] + row["cd_object"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    validation_slice.add_arguments(parser, num_samples=48)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--simulator", choices=("noisy-gt", "learned"), default="noisy-gt")
    parser.add_argument("--noise", type=float, default=0.02, help="noisy-gt: noise in box heights")
    parser.add_argument("--dropout", type=float, default=0.1, help="noisy-gt: probability of a dropped landmark")
    parser.add_argument("--weights", type=float, nargs="+", default=[100.0, 1000.0, 3000.0, 10000.0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--camera-steps", type=float, nargs="+", default=[0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3])
    args = parser.parse_args()
    pipeline, data, estimate, regressor_row = validation_slice.load(args)
    if args.simulator == "learned":
        simulate = MeasuredDetections(pipeline.body_model)
    else:
        simulate = NoisyGroundTruthDetections(pipeline.body_model, args.noise, args.dropout)
    default = pipeline.default_guidance_config(keypoints=True)
    rows = [regressor_row, run(pipeline, data, estimate, None, pipeline.default_guidance_config(), args.cycles,
                               "no keypoints")]

    def run_setting(weight, sigma, step):
        config = dataclasses.replace(default, keypoints_2d=weight, keypoints_2d_sigma=sigma, camera_step_size=step)
        return run(pipeline, data, estimate, simulate, config, args.cycles,
                   f"weight {weight:g}, sigma {sigma:g}, camera step {step:g}")

    def refine(leader, current, candidates, setting):
        """One setting varied with the others held: ``leader`` (the best row so far, run at ``current``) against a
        run of ``setting(value)`` for every other candidate; returns ``(new rows, best row, chosen value)``."""
        others = [value for value in candidates if not math.isclose(value, current)]
        new_rows = [run_setting(*setting(value)) for value in others]
        contenders = [leader, *new_rows]
        winner = best(contenders)
        return new_rows, winner, [current, *others][contenders.index(winner)]

    sigma, step = 0.1, 0.0
    stage = [run_setting(w, sigma, step) for w in args.weights]
    rows += stage
    leader = best(stage)
    weight = args.weights[stage.index(leader)]
    new_rows, leader, sigma = refine(leader, sigma, args.sigmas, lambda s: (weight, s, step))
    rows += new_rows
    new_rows, leader, step = refine(leader, step, args.camera_steps, lambda c: (weight, sigma, c))
    rows += new_rows
    print(format_table(rows))
    for row in rows[1:]:
        print(f"{row['mode']}: facing {row['facing_deg']:.1f} deg, flipped {row['flipped_pct']:.1f} %, "
              f"reprojection {row['reprojection_pct']:.2f} %")
    print(f"chosen: keypoints_2d={weight:g}, keypoints_2d_sigma={sigma:g}, camera_step_size={step:g}")


if __name__ == "__main__":
    main()
