"""Keypoint input for training: simulated BlazePose detections of each sample's ground truth, in the crop.

With `--body_keypoints` the regressor and the denoiser read detected 2D body keypoints. Training samples have no
detector output, so each one gets simulated detections (`scorehoi_diffusers.data.simulated_detections`) of its
true body, at the error rates measured on the real detector (`DetectionNoise()`'s defaults), made directly in the
crop: the crop is a pinhole camera of its own (`data/crop.py`), and the detector's errors are in units of the
person's box, so projecting the rolled ground truth through the crop's intrinsics is the same as detecting in the
picture and mapping the landmarks into the crop. On top of the detector's own misses, `--keypoint_dropout_prob`
removes a sample's keypoints altogether, so the models also work when no detection is given.

The draws come from their own stream of `(seed, micro-step, process)`, so they do not shift any other random
choice of the scripts.
"""
from __future__ import annotations

import argparse

import torch
from training_setup import step_generator

from scorehoi_diffusers.body import BodyModel, BodyOutput, blazepose_points
from scorehoi_diffusers.data.crop import crop_intrinsics_around
from scorehoi_diffusers.data.simulated_detections import DetectionNoise, simulate_detections
from scorehoi_diffusers.models.body_keypoints import crop_keypoints, with_body_keypoints
from scorehoi_diffusers.objects import ObjectTemplate
from scorehoi_diffusers.params import HOIParams

STREAM_KEYPOINTS = 4  # after training_setup's STREAM_RENDERED, _PARAMETERS, _AUGMENTATION and _NOISE
STREAM_PARAMETER_KEYPOINTS = 6  # parameter-only samples' detections (5 is training_setup.STREAM_DETECTOR_MASK)


def add_keypoint_arguments(parser: argparse.ArgumentParser) -> None:
    """`--body_keypoints` and `--keypoint_dropout_prob`."""
    group = parser.add_argument_group("keypoints")
    group.add_argument("--body_keypoints", action="store_true",
                       help="train the models with simulated 2D body keypoints as input (adds the keypoint layers "
                       "to --init_from weights that lack them, starting at zero).")
    group.add_argument("--keypoint_dropout_prob", type=float, default=0.1,
                       help="share of samples given no keypoints at all (besides the detector's measured misses).")
    group.add_argument("--keypoint_lr_multiplier", type=float, default=1.0,
                       help="learning rate of the keypoint layers over --learning_rate (new layers in a warm start "
                       "learn faster with a larger one).")


def parameter_groups(models, args: argparse.Namespace) -> list[dict]:
    """The optimizer's parameter groups over `models`: the keypoint encoder's weights at `--learning_rate` x
    `--keypoint_lr_multiplier`, everything else at `--learning_rate`."""
    if not args.keypoint_lr_multiplier > 0:
        raise ValueError(f"--keypoint_lr_multiplier must be > 0, got {args.keypoint_lr_multiplier}.")
    keypoint, other = [], []
    for model in models:
        for name, parameter in model.named_parameters():
            (keypoint if name.startswith("body_keypoint_encoder.") else other).append(parameter)
    groups = [{"params": other, "lr": args.learning_rate}]
    if keypoint:
        groups.append({"params": keypoint, "lr": args.learning_rate * args.keypoint_lr_multiplier})
    return groups


def with_keypoint_input(model, args: argparse.Namespace):
    """`model`, with keypoint input added when `--body_keypoints` asks for it (see `with_body_keypoints`)."""
    return with_body_keypoints(model) if args.body_keypoints else model


class SimulatedKeypoints:
    """Crop-normalised simulated detections `(B, 33, 3)` of a batch's true bodies (see the module docstring)."""

    def __init__(self, body: BodyModel, seed: int, process_index: int, dropout_prob: float,
                 noise: DetectionNoise | None = None, stream: int = STREAM_KEYPOINTS):
        if not 0.0 <= dropout_prob <= 1.0:
            raise ValueError(f"--keypoint_dropout_prob must lie in [0, 1], got {dropout_prob}.")
        self.body, self.seed, self.process_index, self.stream = body, seed, process_index, stream
        self.dropout_prob, self.noise = dropout_prob, noise if noise is not None else DetectionNoise()

    @torch.no_grad()
    def __call__(self, truth: HOIParams, intrinsics: torch.Tensor, crop_size: tuple[int, int],
                 micro_step: int, posed: BodyOutput | None = None) -> torch.Tensor:
        """`truth` (batch B, camera frame of the crop), `intrinsics (B, 3, 3)` of the crop, `crop_size (H, W)`;
        `posed`: `body(truth, frame="camera")`, where the caller has it already."""
        generator = step_generator(self.seed, micro_step, self.process_index, self.stream, torch.device("cpu"))
        output = posed if posed is not None else self.body(truth, frame="camera")
        points = blazepose_points(output.joints, output.landmarks).cpu()
        height, width = (int(n) for n in crop_size)
        detections = simulate_detections(points, intrinsics.cpu().float(), (height, width), self.noise, generator)
        keep = torch.rand(truth.batch_size, generator=generator) >= self.dropout_prob
        return crop_keypoints(detections * keep[:, None, None], (height, width)).to(intrinsics.device)


@torch.no_grad()
def parameter_crop_intrinsics(vertices: torch.Tensor, truth: HOIParams, object_keypoints: torch.Tensor,
                              intrinsics: torch.Tensor, resolution: int) -> torch.Tensor:
    """`(B, 3, 3)` crop intrinsics for samples with no picture: the crop the pipeline would make around the person
    and the object, its box taken from the projected body vertices and object keypoints (a rendered sample's comes
    from its masks). `vertices (B, V, 3)` of `body(truth, frame="camera")`, `truth` in the scene camera's frame,
    `object_keypoints (B, K, 3)` in the template frame, `intrinsics (B, 3, 3)` of the scene camera."""
    posed = ObjectTemplate.pose(object_keypoints.to(vertices.dtype), truth.object_rotation,
                                truth.object_translation + truth.camera_translation)
    return crop_intrinsics_around(torch.cat([vertices, posed], dim=1), intrinsics.to(vertices.dtype), resolution)
