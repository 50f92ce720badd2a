"""Compare guidance settings of a trained pipeline on a validation slice of the synthetic *train* stream.

The slice (indices 20000.. of the seed-0 train stream) lies past every table the training scripts rendered for the
shipped weights (the first 6000 indices), and it is disjoint from the test split, so choosing guidance here touches
neither training nor test data.
Prints one table row per setting, pictures in (the pipeline's own regressor gives the initial estimate).
The shipped default is the setting that beats the regressor alone on contact F, penetration depth and penetration
volume at both N = 2 and N = 10, with the smallest object-Chamfer cost among those.

Run: .venv/bin/python training/choose_guidance.py [--pipeline DIR] [--num-samples 48] [--cycles 2 10]
"""
import argparse

import validation_slice

from scorehoi_diffusers import GuidanceConfig
from scorehoi_diffusers.evaluation import evaluate, format_table

CANDIDATES = {
    "release (s=1)": GuidanceConfig.release(),
    "s=10, penetration 1": GuidanceConfig(scale=10.0, penetration=1.0),
    "s=10, penetration 10": GuidanceConfig(scale=10.0, penetration=10.0),
    "s=10, penetration 10, floor 0": GuidanceConfig(scale=10.0, penetration=10.0, floor=0.0),
    "s=10, penetration 10, floor 0, mask 10": GuidanceConfig(scale=10.0, penetration=10.0, floor=0.0, mask=10.0),
    "s=30, penetration 10, floor 0, mask 10": GuidanceConfig(scale=30.0, penetration=10.0, floor=0.0, mask=10.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    validation_slice.add_arguments(parser, num_samples=48)
    parser.add_argument("--cycles", type=int, nargs="+", default=[2])
    args = parser.parse_args()
    pipeline, data, estimate, regressor_row = validation_slice.load(args)
    rows = [regressor_row]
    for cycles in args.cycles:
        for name, config in CANDIDATES.items():
            row = evaluate(pipeline, data, split=None, mode="full", num_cycles=cycles,
                           initial_estimate_fn=estimate, guidance_config=config)
            row["mode"] = f"full N={cycles}, {name}"
            rows.append(row)
            print(format_table([row]), flush=True)
    print(format_table(rows))


if __name__ == "__main__":
    main()
