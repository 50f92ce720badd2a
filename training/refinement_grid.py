"""How the refinement's step grid (``t_start``, ``stride``) moves a perfect estimate, and whether a finer grid helps.

1. Round trip: the ground truth of validation scenes sent through ``--cycles`` cycles of DDIM inversion and
   denoising with guidance off (``guidance_scale=0``), for each ``T_START:STRIDE`` in ``--grids``; reported is the
   mean root-relative drift of the 22 body joints (cm) with its standard error.
2. With ``--compare-stride S``: the full method (regressor start, simulated keypoints, N = ``--cycles``) on the same
   validation scenes with the default grid and with stride ``S``, paired (stride ``S`` minus default).

Only validation scenes (``training/validation_slice.py``) are used.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python training/refinement_grid.py --num-samples 48 \
           --grids 50:5 50:1 20:5 20:2 10:1 [--compare-stride 1 --compare-samples 96]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from validation_slice import FIRST_INDEX

from scorehoi_diffusers.data.schema import PARAM_FIELDS, sample_to_params
from scorehoi_diffusers.data.synthetic import generate_dataset, generate_samples
from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, paired_differences
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline

REPORTED = ("cd_human", "cd_object", "mpjpe", "pa_mpjpe", "contact_precision", "contact_recall", "penetration_depth")


def round_trip_drift(pipeline, samples: list[dict], cycles: int, t_start: int, stride: int) -> torch.Tensor:
    """``(n,)`` root-relative joint drift (cm) of each sample's ground truth after the guidance-free round trip."""
    objects = [sample["object_name"] for sample in samples]
    drifts = []
    for name in sorted(set(objects)):  # one object template per call
        rows = [i for i, obj in enumerate(objects) if obj == name]
        truth = sample_to_params({key: np.stack([samples[i][key] for i in rows]) for key in PARAM_FIELDS})
        output = pipeline(initial_params=truth, object=name, num_cycles=cycles, t_start=t_start, stride=stride,
                          guidance_scale=0.0, generator=torch.Generator().manual_seed(0))
        before, after = pipeline.body_model(truth).joints[:, :22], pipeline.body_model(output.params).joints[:, :22]
        drift = (after - after[:, :1]) - (before - before[:, :1])
        drifts.append(100 * drift.norm(dim=-1).mean(-1))
    return torch.cat(drifts)


class WithStride:
    """``initial_estimate_fn``: ``estimate``'s start, with the pipeline's ``stride`` set."""

    def __init__(self, estimate: RegressorEstimate, stride: int):
        self.estimate, self.stride = estimate, stride

    def __call__(self, batch):
        start = list(self.estimate(batch))
        kwargs = dict(start[4]) if len(start) > 4 and start[4] else {}
        return (*start[:4], {**kwargs, "stride": self.stride})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="scorehoi_diffusers/assets/scorehoi-synthetic")
    parser.add_argument("--num-samples", type=int, default=48)
    parser.add_argument("--first-index", type=int, default=FIRST_INDEX)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--grids", nargs="+", default=["50:5", "50:1", "20:5", "20:2", "10:1"],
                        help="T_START:STRIDE settings of the round trip")
    parser.add_argument("--compare-stride", type=int, default=None)
    parser.add_argument("--compare-samples", type=int, default=96)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = ScoreHOIPipeline.from_pretrained(args.pipeline)
    pipeline.set_progress_bar_config(disable=True)

    samples = list(generate_samples(args.num_samples, seed=0, split="train", start=args.first_index, image_size=64))
    for grid in args.grids:
        t_start, stride = (int(value) for value in grid.split(":"))
        drift = round_trip_drift(pipeline, samples, args.cycles, t_start, stride)
        print(f"round trip, N = {args.cycles}, t_start {t_start}, stride {stride}: joint drift "
              f"{drift.mean():.3f} ± {drift.std() / len(drift) ** 0.5:.3f} cm (n = {len(drift)})", flush=True)

    if args.compare_stride is not None:
        data = generate_dataset(args.compare_samples, seed=0, split="train", start=args.first_index, image_size=192,
                                body=pipeline.body_model, progress=False)
        estimate = RegressorEstimate(pipeline, keypoints="simulated", seed=0)
        rows = {}
        for stride in (None, args.compare_stride):  # None: the pipeline's default grid
            start = estimate if stride is None else WithStride(estimate, stride)
            rows[stride] = evaluate(pipeline, data, split=None, mode="full", num_cycles=args.cycles,
                                    initial_estimate_fn=start)
            print(f"full, stride {stride or 'default'}: " + " ".join(f"{key}={rows[stride][key]:.4g}"
                                                                   for key in REPORTED), flush=True)
        difference = paired_differences(rows[args.compare_stride], rows[None])
        print(f"stride {args.compare_stride} minus default, paired: " + " ".join(
            f"{key}={difference[key]['mean']:+.4f}±{difference[key]['standard_error'] or 0:.4f}" for key in REPORTED
            if key in difference))


if __name__ == "__main__":
    main()
