"""Does the prior's round trip move a ground-truth start *on average*, or only scatter it around where it was?

Issue 17 asks that a ground-truth sample sent through inversion and denoising with guidance off does not move on
average. The round trip's MPJPE (``training/exact_inversion.py``) is a mean of per-scene error *magnitudes*, which is
above zero whenever the scenes scatter, even with no pull in any direction. This script measures the displacement's
*mean* (its bias) directly, on validation scenes only (``training/validation_slice.py``; the test split is never
read):

- each scene's ground truth (its pictures as the condition, no keypoints, so no keypoint fit moves the start) goes
  through N cycles of the shipped pipeline with guidance off (``evaluate``'s ``"prior"`` mode); with ``--keypoints
  simulated`` the condition also holds seeded simulated detections and the configuration is the keypoint guidance's
  (plain inversion as shipped), its keypoint term off so that still no keypoint fit moves the start;
- body: the root-relative displacement ``d_sj`` of each of MPJPE's 22 joints j (root and body) in each scene s
  (cm); the bias of joint j is ``mean_s d_sj``, a 3-vector, and the statistic is its length averaged over joints,
  ``B = mean_j |mean_s d_sj|``; the scatter is the MPJPE, ``mean_s mean_j |d_sj|``;
- object: the displacement of its translation in camera space (cm), ``B_o = |mean_s d_s|``, and its scatter
  ``mean_s |d_s|``;
- a sign-flip test for each: flipping the sign of whole scenes' displacements (``--flips`` random flips, seeded)
  gives B's distribution when there is no bias and each scene's displacement is as likely as its negative; the
  p-value is the share of flips whose B reaches the measured one. Scenes are independent, so this test is exact
  under that null.

The answer for issue 17: "does not move on average" holds if p is large (the bias is indistinguishable from the
scatter of a sample this size); B / scatter says how much of the per-scene movement is a shared pull.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 PYTHONPATH=training python training/round_trip_bias.py \
           --num-samples 200 --first-index 24600 --cycles 2 10 [--inversion-iterations -1 0] \
           [--direct-inversion on] [--keypoints simulated] --out round_trip_bias.json
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json

import numpy as np
import torch
from validate_keypoints import StartFromTruth
from validation_slice import add_arguments, load_slice

from scorehoi_diffusers.atomic_files import atomic_write_bytes
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.evaluation import _MPJPE_JOINTS as JOINTS
from scorehoi_diffusers.evaluation import RegressorEstimate
from scorehoi_diffusers.metrics import CM
from scorehoi_diffusers.objects import load_object


def round_trip_displacements(pipeline, data, num_cycles: int, inversion_iterations: int | None = None,
                             batch_size: int = 16, direct_inversion: bool | None = None, keypoints: bool = False
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Per-scene displacements of the unguided round trip from the truth (``inversion_iterations`` and
    ``direct_inversion``: the pipeline's, ``None`` for the shipped configuration's). With ``keypoints``, seeded
    simulated detections go into the denoiser's condition and the keypoint guidance is the configuration, with its
    keypoint term off so that no keypoint fit moves the start.

    Returns:
        ``(joints, object)``: ``(S, 22, 3)`` root-relative body-joint displacements and ``(S, 3)`` object
        translation displacements (camera space), in cm, in the slice's row order.
    """
    start = StartFromTruth(RegressorEstimate(pipeline, "simulated" if keypoints else None, seed=0))
    config = pipeline.default_guidance_config(keypoints=keypoints)
    if keypoints:
        config = dataclasses.replace(config, keypoints_2d=0.0)
    if direct_inversion is not None:
        config = dataclasses.replace(config, direct_inversion=direct_inversion)
    names = np.asarray(data["object_name"])
    joints = np.zeros((len(data), JOINTS.stop, 3))
    objects = np.zeros((len(data), 3))
    for name in sorted(set(names.tolist())):
        template = load_object(name)
        rows = np.flatnonzero(names == name)
        for first in range(0, len(rows), batch_size):
            index = rows[first: first + batch_size]
            batch = dict(data[index.tolist()])
            batch["index"], batch["object"] = index, template
            params, _, _, _, call = start(batch)
            output = pipeline(initial_params=params, object=template, num_cycles=num_cycles, guidance_scale=0.0,
                              inversion_iterations=inversion_iterations, guidance_config=config,
                              generator=torch.Generator().manual_seed(0), output_type="pt", **call)
            truth = sample_to_params(batch)
            with torch.no_grad():
                truth = truth.to(dtype=output.params.global_orient.dtype)
                moved = pipeline.body_model(output.params).joints[:, JOINTS].double()
                stayed = pipeline.body_model(truth).joints[:, JOINTS].double()
            moved, stayed = moved - moved[:, :1], stayed - stayed[:, :1]
            joints[index] = CM * (moved - stayed).numpy()
            moved_object = output.params.object_translation + output.params.camera_translation
            true_object = truth.object_translation + truth.camera_translation
            objects[index] = CM * (moved_object.double() - true_object.double()).numpy()
    return joints, objects


def bias(displacements: np.ndarray) -> float:
    """``mean_j |mean_s d_sj|`` of ``(S, ..., 3)`` displacements (a single point: ``(S, 3)``)."""
    return float(np.linalg.norm(displacements.mean(0), axis=-1).mean())


def sign_flip_test(displacements: np.ndarray, flips: int, generator: np.random.Generator) -> dict:
    """The bias, the scatter, and the sign-flip p-value of the bias (see the module docstring)."""
    measured = bias(displacements)
    signs = generator.choice((-1.0, 1.0), size=(flips, displacements.shape[0]))
    shape = (displacements.shape[0],) + (1,) * (displacements.ndim - 1)
    null = np.array([bias(displacements * sign.reshape(shape)) for sign in signs])
    return {
        "bias_cm": measured,
        "scatter_cm": float(np.linalg.norm(displacements, axis=-1).mean()),
        "null_bias_mean_cm": float(null.mean()),
        "p_value": float((1 + (null >= measured).sum()) / (1 + flips)),
        "mean_displacement_cm": displacements.mean(0).tolist(),
        "standard_error_cm": (displacements.std(0, ddof=1) / np.sqrt(displacements.shape[0])).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, num_samples=200)
    parser.add_argument("--cycles", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--inversion-iterations", type=int, nargs="+", default=[-1],
                        help="fixed-point iterations per inversion step; -1: the shipped configuration's")
    parser.add_argument("--direct-inversion", choices=("shipped", "on", "off"), default="shipped",
                        help="direct inversion's path correction: the shipped configuration's, or on/off")
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none",
                        help="simulated detections in the condition, with the keypoint guidance's configuration")
    parser.add_argument("--flips", type=int, default=10000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data = load_slice(args)
    results = {"arguments": vars(args)}
    direct = {"shipped": None, "on": True, "off": False}[args.direct_inversion]
    for cycles, k in itertools.product(args.cycles, args.inversion_iterations):
        joints, objects = round_trip_displacements(pipeline, data, cycles, None if k < 0 else k,
                                                   direct_inversion=direct, keypoints=args.keypoints != "none")
        generator = np.random.default_rng(0)
        name = f"N{cycles}" + ("" if k < 0 else f"_k{k}")
        name += "" if direct is None else f"_direct_{args.direct_inversion}"
        name += "" if args.keypoints == "none" else "_keypoints"
        results[name] = {"body": sign_flip_test(joints, args.flips, generator),
                         "object": sign_flip_test(objects, args.flips, generator)}
        for part in ("body", "object"):
            row = results[name][part]
            print(f"{name}, {part}: bias {row['bias_cm']:.4f} cm (no-bias flips: {row['null_bias_mean_cm']:.4f}),"
                  f" scatter {row['scatter_cm']:.4f} cm, p = {row['p_value']:.4f}", flush=True)
        atomic_write_bytes(args.out, json.dumps(results, indent=2).encode())


if __name__ == "__main__":
    main()
