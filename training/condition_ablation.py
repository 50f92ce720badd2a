"""Does the prior use its condition? The full method with the denoiser's condition dropped, paired with it kept.

Runs ``evaluate``'s full mode on the synthetic test split twice over the same scenes (and, with ``--keypoints
simulated``, the same seeded detections): once as shipped, once with every sample's condition replaced by the
denoiser's learned null tokens (``encode_condition(..., drop_mask=all True)``, the state condition dropout trained
it for), and prints the paired differences (dropped minus kept, mean ± standard error). A report, never a choice:
nothing is selected on these numbers.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python training/condition_ablation.py --cycles 2 --keypoints simulated
"""
import argparse
import json

import torch

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.atomic_files import atomic_write_bytes
from scorehoi_diffusers.cli import DEFAULT_PIPELINE
from scorehoi_diffusers.data.synthetic import synthetic_split
from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, paired_differences

METRICS = ("cd_human", "cd_object", "contact_precision", "contact_recall", "contact_f", "penetration_depth", "mpjpe",
           "pa_mpjpe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE))
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="simulated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of the pipeline (both runs use it)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", help="also write both runs (with per-sample values) to this JSON file")
    args = parser.parse_args()
    pipeline = ScoreHOIPipeline.from_pretrained(args.pipeline).to(args.device)
    pipeline.set_progress_bar_config(disable=True)
    dataset = synthetic_split("test", args.num_samples, seed=args.seed, image_size=192, body=pipeline.body_model)
    keypoints = None if args.keypoints == "none" else args.keypoints

    def run() -> dict:
        estimate = RegressorEstimate(pipeline, keypoints, args.seed)
        return evaluate(pipeline, dataset, split=None, mode="full", num_samples=args.num_samples,
                        num_cycles=args.cycles, seed=args.seed, initial_estimate_fn=estimate,
                        batch_size=args.batch_size)

    kept = run()
    encode = pipeline.denoiser.encode_condition

    def dropped_condition(image_tokens, object_keypoints, **kwargs):
        drop = torch.ones(image_tokens.shape[0], dtype=torch.bool, device=image_tokens.device)
        return encode(image_tokens, object_keypoints, drop_mask=drop, **kwargs)

    pipeline.denoiser.encode_condition = dropped_condition  # this instance only, for this report
    dropped = run()
    print(f"Condition dropped minus kept, full method, N = {args.cycles}, keypoints {args.keypoints}, "
          f"{args.num_samples} test scenes (mean ± standard error, paired):")
    differences = paired_differences(dropped, kept)
    if args.out:
        atomic_write_bytes(args.out, json.dumps({"kept": kept, "dropped": dropped}).encode())
    for name in METRICS:
        mean, error = differences[name]["mean"], differences[name]["standard_error"]
        print(f"  {name:18s} {mean:+.4f} ± {error:.4f}  (kept {kept[name]:.3f})")


if __name__ == "__main__":
    main()
