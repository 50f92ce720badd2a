"""Classifier-free guidance on the denoiser's condition (``condition_scale`` w) on the validation slice.

The full method (regressor start, simulated keypoints, as the README's runs) for every w in ``--scales`` over the
same validation scenes, paired:

- w minus 1 (does guidance on the condition help the full method?);
- 0 minus w (does zeroing the condition hurt at scale w?). With w = 0 the prediction is the null-token one,
  ``ε_null + 0 · (ε − ε_null)``, which is what dropping every sample's condition gives at any scale, so one w = 0 run
  is the "condition zeroed" row of every scale.

Only validation scenes (``training/validation_slice.py``) are used; the test split is never read.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python training/condition_guidance.py --num-samples 96 \
           --scales 0 1 2 4 --cycles 2 --out condition_guidance.json
"""
from __future__ import annotations

import argparse

import torch
from exact_inversion import REPORTED, WithCallArguments, difference_line, save, summary
from validation_slice import add_arguments, load_slice

from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, paired_differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, num_samples=96)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--inversion-iterations", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data = load_slice(args)
    estimate = RegressorEstimate(pipeline, keypoints="simulated", seed=0)
    results: dict = {"full": {}, "paired": {}}
    for scale in args.scales:
        start = WithCallArguments(estimate, condition_scale=scale, inversion_iterations=args.inversion_iterations)
        row = evaluate(pipeline, data, split=None, mode="full", num_cycles=args.cycles, initial_estimate_fn=start)
        results["full"][f"w{scale:g}"] = row
        print(f"full N = {args.cycles}, k = {args.inversion_iterations}, w = {scale:g}: {summary(row, REPORTED)}",
              flush=True)
        save(args.out, {"arguments": vars(args), **results})
    pairs = [(scale, 1.0) for scale in args.scales if scale != 1.0 and 1.0 in args.scales]
    pairs += [(0.0, scale) for scale in args.scales if scale not in (0.0, 1.0) and 0.0 in args.scales]
    for scale, reference in pairs:
        name = f"w{scale:g} - w{reference:g}"
        rows = results["full"]
        results["paired"][name] = paired_differences(rows[f"w{scale:g}"], rows[f"w{reference:g}"])
        print(f"{name}, paired: {difference_line(results['paired'][name])}", flush=True)
    save(args.out, {"arguments": vars(args), **results})


if __name__ == "__main__":
    main()
