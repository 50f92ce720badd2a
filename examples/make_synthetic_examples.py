"""Make the shipped held-out synthetic examples (test split, never seen in training).

Run from the repo root: ``.venv/bin/python examples/make_synthetic_examples.py``.
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from scorehoi_diffusers.data.synthetic import generate_samples

OUT = Path(__file__).resolve().parents[1] / "scorehoi_diffusers" / "assets" / "examples"
# Test-split scenes picked to show different interactions (indices into the seed-0 test stream).
PICKS = {"synthetic_bag": 0, "synthetic_ball": 1}


def main() -> None:
    wanted = max(PICKS.values()) + 1
    samples = list(generate_samples(wanted, seed=0, image_size=256, split="test"))
    for name, index in PICKS.items():
        sample = samples[index]
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(sample["image"])).save(folder / "image.png")
        for key in ("human_mask", "object_mask"):
            mask = np.asarray(sample[key])
            Image.fromarray(((mask > 0) * 255).astype(np.uint8)).save(folder / f"{key}.png")
        (folder / "example.json").write_text(json.dumps({
            "image": "image.png", "human_mask": "human_mask.png", "object_mask": "object_mask.png",
            "object": sample["object_name"], "intrinsics": np.asarray(sample["intrinsics"]).tolist(),
            "source": f"synthetic test split, seed 0, index {index} (held out from training)",
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
