"""Choose the step size of the "w/o diffusion" ablation (``GuidanceOptimization``) on a validation slice.

The slice is the one ``training/choose_guidance.py`` uses: indices 20000.. of the seed-0 synthetic *train* stream,
past every table the training scripts rendered for the shipped weights and disjoint from the test split, so the
choice touches neither training nor test data. Pictures in: the pipeline's own regressor gives the initial
estimate, as in ``scorehoi evaluate``.

Rule: at N = 2 cycles, the candidate with the lowest mean CD_h + CD_o + penetration depth (all in cm), i.e.
accuracy and plausibility weighed equally. The candidates span three orders of magnitude (1e-4 .. 0.1; a first
pass showed 0.032 already worse than the regressor alone and 1 diverging). A candidate that diverges
(``ValueError``) is out. The chosen value is ``optimization_baseline.DEFAULT_STEP_SIZE``.

Run: .venv/bin/python training/choose_step_size.py [--pipeline DIR] [--num-samples 50] [--cycles 2]
"""
import argparse

import numpy as np
import validation_slice

from scorehoi_diffusers.evaluation import evaluate, format_table

CANDIDATES = tuple(float(f"{value:.2g}") for value in np.logspace(-4, -1, 5))  # 0.0001, 0.00056, 0.0032, 0.018, 0.1
CRITERION = ("cd_human", "cd_object", "penetration_depth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    validation_slice.add_arguments(parser, num_samples=50)
    parser.add_argument("--cycles", type=int, default=2)
    args = parser.parse_args()
    pipeline, data, estimate, regressor_row = validation_slice.load(args)
    rows = [regressor_row]
    print(format_table(rows), flush=True)
    scores = {}
    for step_size in CANDIDATES:
        try:
            row = evaluate(pipeline, data, split=None, mode="optimization", num_cycles=args.cycles,
                           initial_estimate_fn=estimate, step_size=step_size)
        except ValueError as error:
            print(f"step {step_size:g}: {error}", flush=True)
            continue
        scores[step_size] = sum(row[key] for key in CRITERION)
        row["mode"] = f"optimization, step {step_size:g}"
        rows.append(row)
        print(format_table([row]), f"CD_h + CD_o + pen. depth = {scores[step_size]:.3f} cm", flush=True)
    print(format_table(rows))
    for step_size, score in scores.items():
        print(f"step {step_size:g}: CD_h + CD_o + pen. depth = {score:.3f} cm")
    print(f"chosen step size: {min(scores, key=scores.get):g}")


if __name__ == "__main__":
    main()
