"""Give a pipeline folder the guidance weights of another, so that two pipelines differ only in their models.

``train_denoiser.py`` writes a pipeline folder without guidance weights (a new folder gets ``GuidanceConfig``'s
defaults, which are not the shipped weights), so a trained candidate is compared with the shipped pipeline after
its ``model_index.json`` gets the shipped ``"guidance"`` and ``"keypoint_guidance"`` entries.

Usage: python training/copy_guidance.py --source scorehoi_diffusers/assets/scorehoi-synthetic --target runs/NEW
"""
import argparse
import json
from pathlib import Path

from scorehoi_diffusers.atomic_files import atomic_write_bytes

GUIDANCE_ENTRIES = ("guidance", "keypoint_guidance")


def copy_guidance(source: Path, target: Path) -> None:
    """Set ``target/model_index.json``'s guidance entries to ``source``'s, dropping those ``source`` lacks (written
    atomically)."""
    shipped = json.loads((source / "model_index.json").read_text())
    index = json.loads((target / "model_index.json").read_text())
    for entry in GUIDANCE_ENTRIES:
        index.pop(entry, None)
        if shipped.get(entry) is not None:
            index[entry] = shipped[entry]
    atomic_write_bytes(target / "model_index.json", (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("scorehoi_diffusers/assets/scorehoi-synthetic"))
    parser.add_argument("--target", type=Path, required=True)
    args = parser.parse_args()
    copy_guidance(args.source, args.target)


if __name__ == "__main__":
    main()
