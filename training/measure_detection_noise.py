"""Measure how mediapipe's pose detector errs on synthetic renders: the rates of ``DetectionNoise``.

Runs mediapipe's pose model (``mp.solutions.pose``, complexity 1, static images) on renders of the validation slice
of the seed-0 *train* stream (indices 20000.., never rendered for training, disjoint from the test split) and
compares its 33 landmarks with the ground truth projected through each sample's camera. Lengths are in fractions
of the person's box height (the vertical extent of the projected true landmarks), as ``DetectionNoise`` takes them:

- ``miss_rate``: renders with no person detected;
- ``swap_rate``: detected people whose landmarks fit the ground truth better with left and right exchanged;
- ``low_visibility_rate``: landmarks with a body point, inside the picture, reported with visibility < 0.5;
- ``position_error``: 1.4826 x the median absolute coordinate error of the reported (visibility >= 0.5)
  landmarks, after undoing swaps (a robust standard deviation);
- ``outlier_rate`` / ``outlier_error``: the share of reported landmarks off by more than 4 of those standard
  deviations (in either coordinate), and the root-mean-square coordinate error of those.

    python training/measure_detection_noise.py --num-samples 512 --out training/detection_noise.json
    python training/measure_detection_noise.py --num-samples 512 --randomized \
        --out training/detection_noise_randomized.json
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from scorehoi_diffusers.atomic_files import atomic_write_bytes
from scorehoi_diffusers.body import BodyModel, blazepose_points
from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.data.simulated_detections import VISIBLE, person_box_heights
from scorehoi_diffusers.data.synthetic import generate_samples
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED, BLAZEPOSE_MIRRORED

sys.path.insert(0, os.path.dirname(__file__))
from validation_slice import FIRST_INDEX  # noqa: E402

OUTLIER_SIGMAS = 4.0


def detect(pose, image: np.ndarray) -> np.ndarray | None:
    """``(33, 3)`` (u, v, visibility) in pixels from mediapipe, or None when nobody is found."""
    result = pose.process(image)
    if result.pose_landmarks is None:
        return None
    height, width = image.shape[:2]
    return np.array([[p.x * width, p.y * height, p.visibility] for p in result.pose_landmarks.landmark])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-samples", type=int, default=512)
    parser.add_argument("--first-index", type=int, default=FIRST_INDEX)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--randomized", action="store_true", help="measure on the randomised renders")
    parser.add_argument("--out", default="training/detection_noise.json")
    args = parser.parse_args()

    import mediapipe as mp

    body = BodyModel()
    fitted = np.array(BLAZEPOSE_FITTED)
    mirrored = np.array(BLAZEPOSE_MIRRORED)
    render_options = {"randomized": True} if args.randomized else {}
    misses = swaps = detected = low = reportable = 0
    errors = []  # (N, 2) coordinate errors of reported landmarks, in box heights
    start = time.time()
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        samples = generate_samples(args.num_samples, seed=0, split="train", start=args.first_index,
                                   image_size=args.image_size, body=body, **render_options)
        for sample in samples:
            params = sample_to_params(sample)
            with torch.no_grad():
                output = body(params, frame="camera")
                points = blazepose_points(output.joints, output.landmarks)
                intrinsics = torch.as_tensor(np.asarray(sample["intrinsics"]))[None]
                truth = project_points(points, intrinsics)
                box = float(person_box_heights(truth)[0])
            truth = truth[0].numpy()
            image = np.asarray(sample["image"].convert("RGB"))
            found = detect(pose, image)
            if found is None:
                misses += 1
                continue
            detected += 1
            size = args.image_size
            inside = fitted & (truth[:, 0] >= 0) & (truth[:, 0] < size) & (truth[:, 1] >= 0) & (truth[:, 1] < size)
            reported = inside & (found[:, 2] >= VISIBLE)
            direct = np.linalg.norm(found[reported, :2] - truth[reported], axis=1).mean()
            swapped_truth = truth[mirrored]
            swapped = np.linalg.norm(found[reported, :2] - swapped_truth[reported], axis=1).mean()
            if reported.any() and swapped < direct:
                swaps += 1
                truth = swapped_truth
            low += int((inside & (found[:, 2] < VISIBLE)).sum())
            reportable += int(inside.sum())
            errors.append((found[reported, :2] - truth[reported]) / box)
    errors = np.concatenate(errors)
    sigma = 1.4826 * float(np.median(np.abs(errors)))
    wild = (np.abs(errors) > OUTLIER_SIGMAS * sigma).any(1)
    norms = np.linalg.norm(errors, axis=1)
    rates = {
        "position_error": sigma,
        "outlier_rate": float(wild.mean()),
        "outlier_error": float(math.sqrt(np.mean(errors[wild] ** 2))) if wild.any() else 0.0,
        "low_visibility_rate": low / max(reportable, 1),
        "miss_rate": misses / args.num_samples,
        "swap_rate": swaps / max(detected, 1),
    }
    report = {
        "detection_noise": {name: round(value, 4) for name, value in rates.items()},
        "measured_on": {
            "detector": f"mediapipe {mp.__version__} solutions.pose, model_complexity=1, static_image_mode=True",
            "renders": "randomized" if args.randomized else "default (flat-shaded)",
            "split": "train", "seed": 0, "first_index": args.first_index, "num_samples": args.num_samples,
            "image_size": args.image_size,
        },
        "landmark_error_percent_of_box_height": {
            "median": round(100 * float(np.median(norms)), 2),
            "p90": round(100 * float(np.quantile(norms, 0.9)), 2),
            "mean": round(100 * float(norms.mean()), 2),
        },
        "counts": {"detected": detected, "missed": misses, "swapped": swaps, "reported_landmarks": len(errors),
                   "landmarks_inside_picture": reportable},
        "seconds": round(time.time() - start, 1),
    }
    text = json.dumps(report, indent=2) + "\n"
    atomic_write_bytes(args.out, text.encode())
    print(text)


if __name__ == "__main__":
    main()
