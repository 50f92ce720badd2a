"""Choose the step size and pose-prior weight of the "w/o diffusion" ablation (``GuidanceOptimization``) on a
validation slice.

The slice is the one ``training/choose_guidance.py`` uses: indices 20000.. of the seed-0 synthetic *train* stream,
past every table the training scripts rendered for the shipped weights and disjoint from the test split, so the
choice touches neither training nor test data. Pictures in: the pipeline's own regressor gives the initial
estimate, as in ``scorehoi evaluate``.

Without keypoints (``--keypoints none``, how ``DEFAULT_STEP_SIZE`` was chosen): at N = 2 cycles, the candidate with
the lowest mean CD_h + CD_o + penetration depth (all in cm), i.e. accuracy and plausibility weighed equally. The
step candidates span three orders of magnitude (1e-4 .. 0.1; a first pass showed 0.032 already worse than the
regressor alone and 1 diverging).

With keypoints (``--keypoints simulated``: seeded simulated detections of each ground-truth body, as
``scorehoi evaluate --keypoints simulated`` hands them, which gave ``KEYPOINT_STEP_SIZE`` and
``KEYPOINT_POSE_PRIOR_WEIGHT``): the same at N = 2, with MPJPE and PA-MPJPE added to the sum (all in cm), since
joint accuracy is what keypoint fitting is measured on.

Every step size is tried with every ``--pose-prior-weights`` value (0: no prior); a pair that diverges
(``ValueError``) is out.

Run: .venv/bin/python training/choose_step_size.py [--pipeline DIR] [--num-samples 50] [--cycles 2]
     [--keypoints simulated] [--step-sizes ...] [--pose-prior-weights 0 0.001 0.01 0.1]
"""
import argparse

import numpy as np
import torch
import validation_slice

from scorehoi_diffusers.evaluation import evaluate, format_table

CANDIDATES = tuple(float(f"{value:.2g}") for value in np.logspace(-4, -1, 5))  # 0.0001, 0.00056, 0.0032, 0.018, 0.1
CRITERION = ("cd_human", "cd_object", "penetration_depth")
KEYPOINT_CRITERION = ("mpjpe", "pa_mpjpe", *CRITERION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    validation_slice.add_arguments(parser, num_samples=50)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--step-sizes", type=float, nargs="+", default=list(CANDIDATES))
    parser.add_argument("--pose-prior-weights", type=float, nargs="+", default=[0.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    keypoints = None if args.keypoints == "none" else args.keypoints
    pipeline, data, estimate, regressor_row = validation_slice.load(args, keypoints)
    criterion = CRITERION if keypoints is None else KEYPOINT_CRITERION
    label = " + ".join(criterion)
    rows = [regressor_row]
    print(format_table(rows), f"{label} = {sum(regressor_row[key] for key in criterion):.3f} cm", flush=True)
    scores = {}
    for step_size in args.step_sizes:
        for weight in args.pose_prior_weights:
            try:
                row = evaluate(pipeline, data, split=None, mode="optimization", num_cycles=args.cycles,
                               initial_estimate_fn=estimate, step_size=step_size, pose_prior_weight=weight)
            except ValueError as error:
                print(f"step {step_size:g}, prior weight {weight:g}: {error}", flush=True)
                continue
            scores[step_size, weight] = sum(row[key] for key in criterion)
            row["mode"] = f"optimization, step {step_size:g}, prior {weight:g}"
            rows.append(row)
            print(format_table([row]), f"{label} = {scores[step_size, weight]:.3f} cm", flush=True)
    print(format_table(rows))
    for (step_size, weight), score in scores.items():
        row = next(r for r in rows if r["mode"] == f"optimization, step {step_size:g}, prior {weight:g}")
        parts = ", ".join(f"{key} {row[key]:.3f} ± {row['standard_errors'][key]:.3f}" for key in criterion)
        print(f"step {step_size:g}, prior weight {weight:g}: {label} = {score:.3f} cm ({parts})")
    step_size, weight = min(scores, key=scores.get)
    print(f"chosen step size: {step_size:g}, pose prior weight: {weight:g}")


if __name__ == "__main__":
    main()
