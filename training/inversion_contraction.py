"""How fast does exact inversion's fixed-point iteration converge, step by step up the refinement grid?

A diagnosis for issue 17's round trip (nothing is chosen on it). Validation scenes' ground truth, with their pictures
as the condition and no keypoints, goes through one cycle of the shipped pipeline with guidance off (as
``training/round_trip_bias.py`` sends it); during that cycle's inversion every step ``t → t′`` is iterated
``--iterations`` times (``x_t′ ← invert(x_t, ε(x_t′, t′))``, ``pipelines/ddim_inversion.py``) and each iteration's
largest change over the batch's latents is recorded. Printed per step: the change after iterations 1, 2, 3, 5, 10, 20
and 40, the factor each iteration shrinks it by (geometric mean over iterations 1 → 4, before float32's floor), and
the factor ``1 − √(ᾱ_t′ / ᾱ_t) · σ_t / σ_t′`` that an iteration would apply where the noise prediction behaves like
``(x − x̂0) / σ`` (off the data).

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 PYTHONPATH=training python training/inversion_contraction.py \
           --num-samples 16 --first-index 25200
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from round_trip_bias import round_trip_displacements
from validation_slice import add_arguments, load_slice

from scorehoi_diffusers.pipelines import pipeline_scorehoi

SHOWN = (1, 2, 3, 5, 10, 20, 40)


class RecordingInversion:
    """Stands in for ``ddim_inversion.invert`` during one pipeline call: ``iterations`` fixed-point iterations per
    step, each one's largest change kept in ``changes[t]`` (one list per call)."""

    def __init__(self, iterations: int):
        self.iterations, self.changes = iterations, {}

    def __call__(self, predict_noise, scheduler, sample, timesteps, iterations=0, on_step=None, return_path=False):
        for t, t_next in zip(timesteps[:-1], timesteps[1:]):
            noise = predict_noise(sample, t)
            candidate = scheduler.invert_step(noise, t, sample, next_timestep=t_next).next_sample
            changes = []
            for _ in range(self.iterations):
                noise = predict_noise(candidate, t_next)
                better = scheduler.invert_step(noise, t, sample, next_timestep=t_next).next_sample
                changes.append((better - candidate).abs().max().item())
                candidate = better
            self.changes.setdefault(t, []).append(changes)
            sample = candidate
            if on_step is not None:
                on_step()
        return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, num_samples=16)
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data = load_slice(args)
    recorder = RecordingInversion(args.iterations)
    original = pipeline_scorehoi.invert
    pipeline_scorehoi.invert = recorder
    try:
        round_trip_displacements(pipeline, data, num_cycles=1, direct_inversion=False)
    finally:
        pipeline_scorehoi.invert = original
    alphas = pipeline.scheduler.alphas_cumprod.double()
    shown = [n for n in SHOWN if n <= args.iterations]
    print("step | largest change after iterations " + ", ".join(map(str, shown)) + " | shrink per iteration, "
          "seen (1 → 4) | predicted")
    for t, calls in sorted(recorder.changes.items()):
        t_next = t + (pipeline.scheduler.config.num_train_timesteps // pipeline.scheduler.num_inference_steps)
        changes = np.max(np.array(calls), axis=0)  # the largest over the batches (one call per object)
        seen = (changes[3] / changes[0]) ** (1 / 3) if args.iterations >= 4 else float("nan")
        sigma, sigma_next = (1 - alphas[t]).sqrt(), (1 - alphas[t_next]).sqrt()
        predicted = float(1 - (alphas[t_next] / alphas[t]).sqrt() * sigma / sigma_next)
        print(f"{t:>3} → {t_next:<3} | " + " ".join(f"{changes[n - 1]:.1e}" for n in shown)
              + f" | {seen:.2f} | {predicted:.2f}")


if __name__ == "__main__":
    main()
