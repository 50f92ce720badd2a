"""Record the geometry the refinement cycles hand the contact estimator, on training scenes, with their true contacts.

The shipped contact estimator was trained on true geometry with a little jitter, or on the regressor's estimate. The
cycles hand it something else: a reconstruction the contact term has pulled towards the labels it gave before, so it
reads the pulled points, and their neighbours, as touching (docs/results.md, "Release-only contact refresh"). This
script runs the shipped pipeline (``pipeline(image=...)``, the full method, ``--cycles`` cycles) on train-stream
scenes the regressor was trained on and records every state the estimator is asked about (the start and the result
of each cycle), with the image evidence it was bound to and the scene's true contacts and true geometry;
``train_contact_estimator.py`` then fine-tunes the estimator on them.

Output (``--out``, safetensors), with K recorded states of Q scenes:
  ``body_points (K, S, 3)``, ``object_points (K, M, 3)``, ``camera_translation (K, 3)``: the states, as the
  estimator reads them; ``cycle (K,)``: 0 for the start, c for the result of cycle c; ``scene (K,)``: row of the
  per-scene tensors; ``feature_map (Q, C, h, w)``, ``intrinsics (Q, 3, 3)``, ``image_size (2,)``: the bound image
  evidence; ``human_contact (Q, S)``, ``object_contact (Q, M)``, ``floor_contact (Q,)``: the true labels;
  ``true_body_points (Q, S, 3)``, ``true_object_points (Q, M, 3)``, ``true_camera_translation (Q, 3)``: the true
  geometry; ``dataset_row (Q,)``: each scene's row in ``--data``.

Run: PYTHONPATH=training python training/record_contact_states.py --data runs/data/mixed-kp-n12000 \
         --num-scenes 600 --seed 1 --keypoints simulated --out runs/dagger/states_simulated.safetensors
"""
import argparse

import datasets
import numpy as np
import torch
from safetensors.torch import save
from train_regressor import posed_points

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.atomic_files import atomic_write_bytes
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate
from scorehoi_diffusers.models.contact_estimator import BoundContactEstimator


class StateRecorder:
    """Stands in for the pipeline's ``contact_estimator.bind``: every bound estimator it returns records the states
    it is called on. ``estimate`` (the evaluation's ``initial_estimate_fn``) records each batch's truth first."""

    def __init__(self, pipeline, estimate):
        self.model, self.estimate, self.body = pipeline.contact_estimator, estimate, pipeline.body_model
        self.scenes: dict[str, list[torch.Tensor]] = {}
        self.states: dict[str, list[torch.Tensor]] = {}
        self.num_scenes = 0
        self.image_size = None

    def __call__(self, batch):
        params = sample_to_params(batch)
        keypoints = batch["object"].keypoints.expand(params.batch_size, -1, -1)
        with torch.no_grad():
            body_points, object_points = posed_points(self.body, params, keypoints)
        self._add(self.scenes, human_contact=torch.as_tensor(np.asarray(batch["human_contact"], dtype=np.float32)),
                  object_contact=torch.as_tensor(np.asarray(batch["object_contact"], dtype=np.float32)),
                  floor_contact=torch.as_tensor(np.asarray(batch["floor_contact"], dtype=np.float32)),
                  true_body_points=body_points, true_object_points=object_points,
                  true_camera_translation=params.camera_translation,
                  dataset_row=torch.as_tensor(np.asarray(batch["dataset_row"], dtype=np.int64)))
        return self.estimate(batch)

    def bind(self, feature_map, intrinsics, image_size):
        self._add(self.scenes, feature_map=feature_map.detach(), intrinsics=intrinsics.detach())
        self.image_size = tuple(image_size)
        first = self.num_scenes
        self.num_scenes += feature_map.shape[0]
        return RecordingEstimator(BoundContactEstimator(self.model, feature_map, intrinsics, image_size), self, first)

    @staticmethod
    def _add(store, **tensors):
        for name, value in tensors.items():
            store.setdefault(name, []).append(value.detach().cpu() if not value.is_floating_point()
                                               else value.detach().float().cpu())

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {name: torch.cat(values) for name, values in {**self.scenes, **self.states}.items()}
        out["image_size"] = torch.tensor(self.image_size)
        return {name: value.contiguous() for name, value in out.items()}


class RecordingEstimator:
    """A bound estimator that records each state (and which cycle it is) before answering."""

    def __init__(self, bound, recorder: StateRecorder, first_scene: int):
        self.bound, self.recorder, self.first_scene, self.calls = bound, recorder, first_scene, 0

    def __call__(self, state):
        batch = state.body_points.shape[0]
        self.recorder._add(self.recorder.states, body_points=state.body_points, object_points=state.object_points,
                           camera_translation=state.params.camera_translation,
                           scene=torch.arange(self.first_scene, self.first_scene + batch),
                           cycle=torch.full((batch,), self.calls))
        self.calls += 1
        return self.bound(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="scorehoi_diffusers/assets/scorehoi-synthetic")
    parser.add_argument("--data", required=True, help="a rendered training table (datasets.save_to_disk folder)")
    parser.add_argument("--num-scenes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1, help="picks the scenes and seeds the detections")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first SKIP of the seeded scene order "
                        "(so two runs with the same seed record disjoint scenes)")
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = ScoreHOIPipeline.from_pretrained(args.pipeline)
    pipeline.set_progress_bar_config(disable=True)
    table = datasets.load_from_disk(args.data)
    order = np.random.default_rng(args.seed).permutation(len(table))[args.skip: args.skip + args.num_scenes]
    rows = np.sort(order)
    data = table.select(rows.tolist()).add_column("dataset_row", rows.tolist())
    keypoints = None if args.keypoints == "none" else args.keypoints
    recorder = StateRecorder(pipeline, RegressorEstimate(pipeline, keypoints, seed=args.seed))
    pipeline.contact_estimator.bind = recorder.bind
    evaluate(pipeline, data, split=None, mode="full", num_cycles=args.cycles, initial_estimate_fn=recorder)
    tensors = recorder.tensors()
    atomic_write_bytes(args.out, save(tensors))
    print(f"{len(tensors['cycle'])} states of {recorder.num_scenes} scenes written to {args.out}")


if __name__ == "__main__":
    main()
