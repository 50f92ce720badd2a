"""Which scenes the facing restarts turn the wrong way, on the validation slice only.

``KeypointFit.facing_restart_margin`` fits the start's silhouette twin too where the front/back check is undecided
and keeps the lower fit objective. On both real photos that turns the body the right way; on validation scenes with
simulated detections its first version flipped more scenes, all without landmarks, which is why restarts now need
``FACING_RESTART_MIN_LANDMARKS`` confident ones (docs/results.md, "The regressor taught the detector's person
mask"). This runs
the start of the cycles (N = 0: regressor, check and fit) with and without the restarts on the same scenes and
detections, and for every scene whose facing error crosses 90° between the two prints both errors and whether the
detection is left/right swapped (``detector_flips.swap_distances``: its visible landmarks' mean distance to the true
body's points, as they are and mirrored). A diagnosis: nothing is chosen on it.

Usage: PYTHONPATH=training python training/facing_restart_flips.py --first-index 20048 --num-samples 200 \\
    [--margin 0.02] [--simulator learned]
"""
import argparse
import dataclasses

import torch
from choose_keypoints import MeasuredDetections, run, true_landmarks
from detector_flips import facing_by_row, swap_distances
from validation_slice import add_arguments, load

from scorehoi_diffusers.evaluation import FLIPPED_DEGREES, DetectedPictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, num_samples=200)
    parser.add_argument("--margin", type=float, default=0.02, help="KeypointFit.facing_restart_margin")
    parser.add_argument("--simulator", choices=("learned", "detector"), default="learned")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data, estimate, _ = load(args)
    simulate = MeasuredDetections(pipeline.body_model) if args.simulator == "learned" else DetectedPictures()
    config = pipeline.default_guidance_config(keypoints=True)
    plain = facing_by_row(run(pipeline, data, estimate, simulate, config, 0, "no facing restarts"))
    pipeline.keypoint_fit = dataclasses.replace(pipeline.keypoint_fit, facing_restart_margin=args.margin)
    restarted = facing_by_row(run(pipeline, data, estimate, simulate, config, 0, f"restarts under {args.margin:g}"))
    changed = sorted(row for row in plain if (plain[row] > FLIPPED_DEGREES) != (restarted[row] > FLIPPED_DEGREES))
    print(f"\n{len(changed)} of {len(plain)} scenes cross {FLIPPED_DEGREES:g}° between the two runs.")
    print("| row | facing error, no restarts (°) | with restarts (°) | visible | to the truth (px) | to its mirror "
          "(px) |")
    print("|---|---|---|---|---|---|")
    for row in changed:
        truth = true_landmarks(pipeline.body_model, data[row:row + 1])[0][0].numpy()
        batch = data[row:row + 1]
        batch["index"] = [row]
        keypoints = simulate(batch)
        keypoints = keypoints["keypoints"] if isinstance(keypoints, dict) else keypoints
        visible, direct, swapped = swap_distances(keypoints[0], truth)
        print(f"| {row} | {plain[row]:.0f} | {restarted[row]:.0f} | {visible} | {direct:.1f} | {swapped:.1f} |")


if __name__ == "__main__":
    main()
