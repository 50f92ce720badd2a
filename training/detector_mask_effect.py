"""What the person detector's mask does to the regressor: the same pictures with the render's mask and with the
detector's, no keypoints, paired.

The regressor reads the person mask as one of its five input channels and was trained on exact render masks. This
evaluates ``evaluate``'s regressor mode twice on the same scenes: with each picture's own mask, and with the bundled
detector's person mask in its place (``scorehoi_diffusers.evaluation.DetectedPictures``; a picture where it finds
nobody keeps its own), the detector's keypoints withheld, and prints both rows and the paired differences (detector
mask minus own, mean ± standard error). With ``--cycles N`` it also runs the full method at N cycles with the
detector's keypoints twice, with the detector's mask and with each picture's own, and prints those rows. A diagnosis:
nothing is chosen on it.

Usage: PYTHONPATH=training python training/detector_mask_effect.py --split test --num-samples 200 [--cycles 2]
"""
import argparse

import torch

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.data.synthetic import synthetic_split
from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, paired_differences

REPORTED = ("mpjpe", "pa_mpjpe", "cd_human", "cd_object", "facing_error")


class DetectorMaskOnly:
    """``initial_estimate_fn``: the pictures with the detector's person mask, without its keypoints."""

    def __init__(self, estimate: RegressorEstimate):
        self.estimate = estimate

    def __call__(self, batch):
        *start, pictures = self.estimate(batch)
        return (*start, {name: value for name, value in pictures.items() if name != "keypoints"})


class DetectorKeypointsOnly(DetectorMaskOnly):
    """``initial_estimate_fn``: the pictures with their own person mask and the detector's keypoints."""

    def __call__(self, batch):
        *start, pictures = self.estimate(batch)
        return (*start, {**pictures, "human_mask": batch["human_mask"]})


def print_rows(title: str, rows: dict) -> None:
    print(f"\n{title}\n")
    print("| input | " + " | ".join(REPORTED) + " |")
    print("|---|" + "---|" * len(REPORTED))
    for name, row in rows.items():
        errors = row["standard_errors"]
        print(f"| {name} | " + " | ".join(f"{row[key]:.3f} ± {errors[key]:.3f}" for key in REPORTED) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="scorehoi_diffusers/assets/scorehoi-synthetic")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--cycles", type=int, help="also the full method at this many cycles, detector keypoints")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = ScoreHOIPipeline.from_pretrained(args.pipeline)
    pipeline.set_progress_bar_config(disable=True)
    data = synthetic_split(args.split, args.num_samples, seed=0, image_size=args.image_size, body=pipeline.body_model,
                           progress=False)
    detected = RegressorEstimate(pipeline, "detected")
    own = evaluate(pipeline, data, split=None, mode="regressor", initial_estimate_fn=RegressorEstimate(pipeline))
    theirs = evaluate(pipeline, data, split=None, mode="regressor", initial_estimate_fn=DetectorMaskOnly(detected))
    differences = paired_differences(theirs, own)
    print(f"Regressor alone, {args.num_samples} {args.split} scenes; the detector found nobody in "
          f"{len(detected.detected.missed)} (they keep their own mask).")
    print("| metric | own mask | detector's mask | paired difference |")
    print("|---|---|---|---|")
    for key in REPORTED:
        print(f"| {key} | {own[key]:.3f} | {theirs[key]:.3f} | {differences[key]['mean']:+.3f} ± "
              f"{differences[key]['standard_error']:.3f} |")
    if args.cycles is not None:
        rows = {name: evaluate(pipeline, data, split=None, mode="full", num_cycles=args.cycles, initial_estimate_fn=fn)
                for name, fn in (("detector keypoints and mask", detected),
                                 ("detector keypoints, own mask", DetectorKeypointsOnly(detected)))}
        print_rows(f"Full method, N = {args.cycles} (mean ± standard error):", rows)


if __name__ == "__main__":
    main()
