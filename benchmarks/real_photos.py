"""How well reconstructions of the shipped real photos match the photo's own evidence, as a markdown table.

For each shipped real photo (``scorehoi_diffusers/assets/examples``: the astronaut, with hand-drawn masks, and
the cameraman, with only an object box), the bundled person detector finds the person, the shipped pipeline
reconstructs the photo as ``scorehoi demo`` does, and the body, before and after refinement, is compared with
the detection:

* keypoint reprojection error: the body's BlazePose points projected into the photo against the detected
  landmarks with visibility > 0.5, mean distance in % of the detected person box height
  (``metrics.keypoint_reprojection_error``);
* silhouette IoU: the rendered body's pixels against the detector's person mask (``metrics.silhouette_iou``).

Detector time per photo (median of ``--repeats`` runs after a warm-up) is printed too. When the pipeline takes
a ``keypoints`` argument, the detected keypoints are passed to it. "initial" is the start of the refinement
cycles (``output.initial_params``): the regressor's estimate after the front/back check and, with keypoints, the
keypoint fit (``pipelines/keypoint_fit.py``; ``--keypoint-fit STEPS LR PRIOR SIGMA`` replaces its settings,
``--keypoint-fit 0 0.01 1 0.3`` turns it off). ``--guidance NAME=VALUE ...`` replaces fields of the pipeline's
guidance (``GuidanceConfig``), e.g. ``--guidance mask_coverage=300``.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/real_photos.py [--cycles 10] [--repeats 5]
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from scorehoi_diffusers import GuidanceConfig, ScoreHOIPipeline
from scorehoi_diffusers.body import blazepose_points
from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE, load_example
from scorehoi_diffusers.metrics import keypoint_reprojection_error, silhouette_iou
from scorehoi_diffusers.person_detection import VISIBLE, default_person_detector
from scorehoi_diffusers.pipelines.keypoint_fit import KeypointFit
from scorehoi_diffusers.pipelines.photo_inputs import choose_person
from scorehoi_diffusers.rendering import MeshLayer, render
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED

REAL_PHOTOS = ("astronaut", "cameraman")


def body_evidence(pipe: ScoreHOIPipeline, params, intrinsics: torch.Tensor, shape) -> tuple[np.ndarray, np.ndarray]:
    """``(33, 2)`` projected BlazePose body points and the ``(H, W)`` rendered body mask of one sample."""
    body = pipe.body_model(params, frame="camera")
    points = blazepose_points(body.joints, body.landmarks)
    projected = project_points(points, intrinsics[None].to(points.dtype))[0].numpy()
    projected[~np.asarray(BLAZEPOSE_FITTED)] = np.nan  # landmarks without a body point are not scored
    layer = MeshLayer(body.vertices[0].numpy(), pipe.body_model.faces, name="body")
    return projected, render([layer], intrinsics.numpy(), shape).masks[0]


def guidance_config(default: GuidanceConfig, pairs: list[str]) -> GuidanceConfig:
    """``default`` with the numeric fields named in ``NAME=VALUE`` strings replaced; a bad one ends the run with a
    one-line message."""
    overrides = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            overrides[name] = float(value)
        except ValueError:
            raise SystemExit(f"--guidance: {pair!r} is not NAME=NUMBER") from None
    try:
        GuidanceConfig.from_dict(overrides, source="the list")  # unknown names and bad values
        return dataclasses.replace(default, **overrides)
    except ValueError as error:
        raise SystemExit(f"--guidance: {error}") from None


def measure(name: str, pipe: ScoreHOIPipeline, cycles: int, repeats: int, guidance: GuidanceConfig) -> dict:
    folder = DEFAULT_EXAMPLES / name
    spec = json.loads((folder / "example.json").read_text())
    item = load_example(folder)
    image = item["image"]
    detector = default_person_detector()
    detector.detect(image)  # warm-up: builds the graph
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.detect(image)
        times.append(time.perf_counter() - start)
    box = None if spec.get("object_box") is None else np.asarray(spec["object_box"], np.float32)
    person_box = None if spec.get("person_box") is None else np.asarray(spec["person_box"], np.float32)
    person = choose_person(detector, image, box, person_box, name)
    keypoints = person.keypoints_with_visibility()
    arguments = dict(image=image, human_mask=item["human_mask"], object_mask=item["object_mask"],
                     object=item["object"], object_box=spec.get("object_box"), person_box=spec.get("person_box"),
                     num_cycles=cycles, generator=torch.Generator().manual_seed(0), guidance_config=guidance)
    if "keypoints" in inspect.signature(pipe.__call__).parameters:
        arguments["keypoints"] = keypoints[None]
    output = pipe(**arguments)
    row = {"photo": name, "masks": "hand-drawn" if item["human_mask"] is not None else "detector + GrabCut",
           "visible": int((person.visibility > VISIBLE).sum()), "detector_ms": 1000 * statistics.median(times),
           "keypoints_passed": "keypoints" in arguments}
    height = float(person.box[3])
    for stage, params in (("initial", output.initial_params), ("refined", output.params)):
        projected, rendered = body_evidence(pipe, params, output.intrinsics[0], image.shape[:2])
        row[f"{stage}_reprojection"] = float(keypoint_reprojection_error(
            projected[None], person.keypoints[None], person.visibility[None], height)[0])
        row[f"{stage}_iou"] = silhouette_iou(rendered, person.mask)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE))
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keypoint-fit", nargs=4, type=float, metavar=("STEPS", "LR", "PRIOR", "SIGMA"),
                        help="the keypoint fit's settings (default: the pipeline's)")
    parser.add_argument("--guidance", nargs="+", default=[], metavar="NAME=VALUE",
                        help="replace these fields of the pipeline's guidance, e.g. mask_coverage=300")
    args = parser.parse_args()
    pipe = ScoreHOIPipeline.from_pretrained(args.pipeline)
    if args.keypoint_fit is not None:
        steps, learning_rate, prior_weight, sigma = args.keypoint_fit
        pipe.keypoint_fit = KeypointFit(int(steps), learning_rate, prior_weight, sigma)
    pipe.set_progress_bar_config(disable=True)
    guidance = guidance_config(pipe.default_guidance_config(), args.guidance)
    rows = [measure(name, pipe, args.cycles, args.repeats, guidance) for name in REAL_PHOTOS]
    print(f"Real photos, pipeline {Path(args.pipeline).name}, {args.cycles} cycles, seed 0; keypoints passed to "
          f"the pipeline: {'yes' if rows[0]['keypoints_passed'] else 'no (it takes no `keypoints`)'}; "
          f"keypoint fit: {pipe.keypoint_fit}; guidance: {guidance}.\n")
    print("| photo | masks | visible landmarks | detector (ms) | reprojection error, % box height (initial → "
          "refined) | silhouette IoU (initial → refined) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['photo']} | {row['masks']} | {row['visible']} | {row['detector_ms']:.0f} | "
              f"{row['initial_reprojection']:.1f} → {row['refined_reprojection']:.1f} | "
              f"{row['initial_iou']:.2f} → {row['refined_iou']:.2f} |")
    fit = "" if args.keypoint_fit is None else " --keypoint-fit " + " ".join(f"{v:g}" for v in args.keypoint_fit)
    overrides = " --guidance " + " ".join(args.guidance) if args.guidance else ""
    print("\nReproduce: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/real_photos.py "
          f"--cycles {args.cycles} --repeats {args.repeats}{fit}{overrides}")


if __name__ == "__main__":
    main()
