"""Where the real detector's flipped scenes come from, on the validation slice only.

Runs the start of the cycles (regressor and front/back check, no keypoint fit: ``KeypointFit(steps=0)``, N = 0) on
validation renders with the bundled detector's landmarks and person mask
(``scorehoi_diffusers.evaluation.DetectedPictures``), and the regressor alone without keypoints on the same scenes.
For every scene the check leaves more than 90° off the true facing, it prints the regressor's own facing error and
whether the detection is left/right swapped: the mean distance of its visible landmarks to the true body's points,
as they are and mirrored (``BLAZEPOSE_MIRRORED``). It also prints how the detector's person mask compares with the
rendered one over the scenes it found someone in (IoU, and its size over the rendered mask's).

Usage: PYTHONPATH=training python training/detector_flips.py --randomized --first-index 20048 --num-samples 200
"""
import argparse

import numpy as np
import torch
from choose_keypoints import run, true_landmarks
from validation_slice import add_arguments, load

from scorehoi_diffusers.evaluation import FLIPPED_DEGREES, DetectedPictures
from scorehoi_diffusers.metrics import silhouette_iou
from scorehoi_diffusers.person_detection import VISIBLE
from scorehoi_diffusers.pipelines.keypoint_fit import KeypointFit
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED, BLAZEPOSE_MIRRORED


def swap_distances(keypoints: np.ndarray, truth: np.ndarray) -> tuple[int, float, float]:
    """``(visible, to the truth, to its mirror)``: how many of the ``(33, 3)`` detections' fitted landmarks are
    visible, and their mean pixel distance to the true body's points ``(33, 2)`` as they are and left/right mirrored
    (``BLAZEPOSE_MIRRORED``); a detection nearer the mirror is left/right swapped."""
    seen = np.array(BLAZEPOSE_FITTED) & (keypoints[:, 2] > VISIBLE)
    if not seen.any():
        return 0, float("nan"), float("nan")
    direct = np.linalg.norm(keypoints[seen, :2] - truth[seen], axis=1).mean()
    swapped = np.linalg.norm(keypoints[seen, :2] - truth[np.array(BLAZEPOSE_MIRRORED)][seen], axis=1).mean()
    return int(seen.sum()), float(direct), float(swapped)


def facing_by_row(row: dict) -> dict[int, float]:
    recorder = row["recorder"]
    return dict(zip(np.concatenate(recorder.rows).tolist(), np.concatenate(recorder.facing).tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, num_samples=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data, estimate, _ = load(args)
    pipeline.keypoint_fit = KeypointFit(steps=0)
    detector = DetectedPictures()
    config = pipeline.default_guidance_config(keypoints=True)
    checked = facing_by_row(run(pipeline, data, estimate, detector, config, 0, "front/back check"))
    alone = facing_by_row(run(pipeline, data, estimate, None, config, 0, "no keypoints"))
    flipped = sorted(row for row, angle in checked.items() if angle > FLIPPED_DEGREES)
    found = [row for row in detector.by_row if row not in detector.missed]  # rows with a detection
    masks = [(np.asarray(detector.by_row[row][1]) > 127, np.asarray(data[row]["human_mask"]) > 127) for row in found]
    iou = np.array([silhouette_iou(mine, rendered) for mine, rendered in masks])
    size = np.array([mine.sum() / rendered.sum() for mine, rendered in masks])
    print(f"\nDetector mask against the rendered person mask over {len(found)} scenes: IoU mean {iou.mean():.3f}, "
          f"median {np.median(iou):.3f}; size over the rendered mask's: median {np.median(size):.3f}, mean "
          f"{size.mean():.3f}.")
    by_regressor = sum(angle > FLIPPED_DEGREES for angle in alone.values())
    print(f"\n{len(flipped)} of {len(checked)} scenes flipped after the check, {by_regressor} by the regressor alone; "
          f"the detector found nobody in {len(detector.missed)}.")
    print("| row | facing error, check (°) | regressor alone (°) | visible | to the truth (px) | to its mirror (px) |")
    print("|---|---|---|---|---|---|")
    for row in flipped:
        truth = true_landmarks(pipeline.body_model, data[row:row + 1])[0][0].numpy()
        visible, direct, swapped = swap_distances(detector.by_row[row][0], truth)
        print(f"| {row} | {checked[row]:.0f} | {alone[row]:.0f} | {visible} | {direct:.1f} | {swapped:.1f} |")


if __name__ == "__main__":
    main()
