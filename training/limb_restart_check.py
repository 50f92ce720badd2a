"""Check the keypoint fit's limb restarts where they matter: starts with one limb turned far off.

On the validation slice the regressor rarely leaves a limb far from its keypoints (restarts fire on about 1 scene in
200), so a paired check there says little about them. Here every scene's regressor estimate gets one limb turned
away before the keypoint fit: scene ``i`` turns limb ``i mod 4`` of ``limb_restarts.LIMBS`` (its shoulder or hip)
by ``--angle`` radians about the parent's ``+x, +y, +z, -x, -y, -z`` axis in turn (``(i // 4) mod 6``), as a
regressor that put an arm or a leg in the wrong place would. Then the pipeline's front/back check and keypoint fit
run (``num_cycles=0``, seeded simulated detections, as ``scorehoi evaluate --keypoints simulated``) with each fit
in ``--screen-steps`` (``KeypointFit.restart_screen_steps``; ``steps`` or more refits every restart fully) and
without restarts, and the results are paired against the first.

The slice is ``validation_slice``'s (indices 20000.. of the seed-0 synthetic train stream, never the test split).

Run: PYTHONPATH=training python training/limb_restart_check.py [--num-samples 96] [--screen-steps 100 50 25]
"""
import argparse
import dataclasses
import functools

import torch
import validation_slice

from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, format_table
from scorehoi_diffusers.params import axis_angle_to_matrix
from scorehoi_diffusers.pipelines.limb_restarts import LIMBS
from scorehoi_diffusers.skeleton import JOINT_INDEX

PAIRED_METRICS = ("mpjpe", "pa_mpjpe", "cd_human", "cd_object", "facing_error")
AXES = torch.cat([torch.eye(3), -torch.eye(3)])  # +x, +y, +z, -x, -y, -z


def turn_one_limb(prepare, angle: float):
    """``pipeline.prepare_initial_estimate`` with one limb of each sample turned (see the module docstring); the
    samples are numbered in the order the evaluation hands them over (grouped by object, then in the slice's
    order)."""
    seen = [0]

    @functools.wraps(prepare)
    def prepared(*args, **kwargs):
        params, tokens, bound = prepare(*args, **kwargs)
        indices = range(seen[0], seen[0] + params.batch_size)
        seen[0] += params.batch_size
        body_pose = params.body_pose.clone()
        for row, index in enumerate(indices):
            root = JOINT_INDEX[LIMBS[index % len(LIMBS)][0]] - 1  # body_pose leaves out the root joint
            turn = axis_angle_to_matrix(AXES[(index // len(LIMBS)) % len(AXES)] * angle).to(body_pose)
            body_pose[row, root] = turn @ body_pose[row, root]
        return dataclasses.replace(params, body_pose=body_pose), tokens, bound

    return prepared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    validation_slice.add_arguments(parser, num_samples=96)
    parser.add_argument("--screen-steps", type=int, nargs="+", default=[100, 50])
    parser.add_argument("--angle", type=float, default=1.5, help="radians the limb is turned by")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data = validation_slice.load_slice(args)
    estimate = RegressorEstimate(pipeline, "simulated", seed=0)
    shipped, prepare = pipeline.keypoint_fit, pipeline.prepare_initial_estimate
    fits = {f"screen {steps}": dataclasses.replace(shipped, restart_screen_steps=steps) for steps in args.screen_steps}
    fits["no restarts"] = dataclasses.replace(shipped, limb_restart_threshold=None)
    rows = {}
    for name, fit in fits.items():
        pipeline.keypoint_fit = fit
        pipeline.prepare_initial_estimate = turn_one_limb(prepare, args.angle)
        rows[name] = evaluate(pipeline, data, split=None, mode="regressor", initial_estimate_fn=estimate)
        rows[name]["mode"] = f"limb turned, fit {name}"
    print(format_table(list(rows.values())))
    reference = next(iter(rows))
    for name in list(rows)[1:]:
        validation_slice.print_paired(f"{name} minus {reference}", rows[name], rows[reference], PAIRED_METRICS)


if __name__ == "__main__":
    main()
