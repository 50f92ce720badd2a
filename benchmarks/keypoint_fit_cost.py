"""What the keypoint fit costs: time to the start of the cycles, and how much a photo's result depends on its batch.

1. Time. ``pipeline(image=..., keypoints=..., num_cycles=0)`` (regressor, front/back check and keypoint fit; with
   ``object_box`` also GrabCut) on a shipped real photo with its detected keypoints, at batch 1 and batch 8 (copies of
   the photo), seconds per image (best of ``--repeats``), for the shipped fit, the shipped fit without facing
   restarts and without limb restarts, and the previous default fit (30 steps at learning rate 0.01, quadratic pose
   prior, no restarts).
2. Batch dependence. The shipped ``synthetic_ball`` example reconstructed by ``scorehoi reconstruct`` alone and in a
   folder together with the astronaut (one batch), N = 1, as ``tests/test_reconstruct_many.py`` does; the largest
   difference of each exported SMPL-H field between the two.

Run from the repo root: ``OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/keypoint_fit_cost.py``.
"""
import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE
from scorehoi_diffusers.cli import main as scorehoi
from scorehoi_diffusers.person_detection import default_person_detector


def photo_inputs(name: str, batch: int) -> dict:
    """``pipeline`` arguments for ``batch`` copies of the shipped example ``name`` with its detected keypoints."""
    folder = DEFAULT_EXAMPLES / name
    spec = json.loads((folder / "example.json").read_text())
    image = np.asarray(Image.open(folder / spec["image"]).convert("RGB"))
    person = default_person_detector().detect(image)[0]
    inputs = {"image": [image] * batch, "object": spec["object"],
              "keypoints": np.stack([person.keypoints_with_visibility()] * batch)}
    if spec.get("object_box") is not None:
        inputs.update(human_mask=[person.mask] * batch, object_box=[spec["object_box"]] * batch)
    else:
        masks = [np.asarray(Image.open(folder / spec[key]).convert("L")) for key in ("human_mask", "object_mask")]
        inputs.update(human_mask=[masks[0]] * batch, object_mask=[masks[1]] * batch)
    return inputs


def start_seconds(pipe: ScoreHOIPipeline, inputs: dict, repeats: int) -> float:
    """Best seconds per image of ``pipe(**inputs, num_cycles=0)``."""
    batch, times = len(inputs["image"]), []
    for _ in range(repeats):
        start = time.perf_counter()
        pipe(**inputs, num_cycles=0, generator=torch.Generator().manual_seed(0))
        times.append((time.perf_counter() - start) / batch)
    return min(times)


def batch_dependence() -> dict[str, float]:
    """Largest difference of each floating SMPL-H export field: ``synthetic_ball`` alone against batched."""
    ball, astronaut = DEFAULT_EXAMPLES / "synthetic_ball", DEFAULT_EXAMPLES / "astronaut"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        entries = [{"image": str(path / image), "human_mask": str(path / "human_mask.png"),
                    "object_mask": str(path / "object_mask.png"), "name": name}
                   for path, image, name in ((ball, "image.png", "ball"), (astronaut, "image.jpg", "astronaut"))]
        (folder / "manifest.json").write_text(json.dumps(entries))
        common = ["--object", "ball", "--cycles", "1", "--quiet"]
        scorehoi(["reconstruct", str(folder), *common, "--out", f"{tmp}/batched"])
        scorehoi(["reconstruct", entries[0]["image"], "--human-mask", entries[0]["human_mask"], "--object-mask",
                  entries[0]["object_mask"], *common, "--out", f"{tmp}/alone"])
        batched = np.load(f"{tmp}/batched/ball/ball_smplh.npz")
        alone = np.load(f"{tmp}/alone/image/image_smplh.npz")
        return {key: float(np.abs(batched[key] - alone[key]).max()) for key in batched.files
                if batched[key].dtype.kind == "f"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", default=["astronaut", "cameraman"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    shipped = pipe.keypoint_fit
    fits = {
        "shipped fit": shipped,
        "shipped, no facing restarts": dataclasses.replace(shipped, facing_restart_margin=None),
        "shipped, no limb restarts": dataclasses.replace(shipped, limb_restart_threshold=None),
        "previous fit": dataclasses.replace(shipped, steps=30, learning_rate=0.01, prior_scale=None,
                                            limb_restart_threshold=None, facing_restart_margin=None),
    }
    print("start of the cycles (num_cycles=0), seconds per image, one torch thread:")
    for photo in args.photos:
        for batch in (1, 8):
            inputs = photo_inputs(photo, batch)
            for name, fit in fits.items():
                pipe.keypoint_fit = fit
                print(f"  {photo}, batch {batch}, {name}: {start_seconds(pipe, inputs, args.repeats):.3f} s",
                      flush=True)
    print("synthetic_ball batched with the astronaut minus alone, largest difference per SMPL-H field:")
    for key, value in batch_dependence().items():
        print(f"  {key}: {value:.3g}")


if __name__ == "__main__":
    main()
