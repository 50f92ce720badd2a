"""Add the bundled person detector's mask to a saved training table, so the regressor can learn from it.

The regressor reads the person mask as an input channel. On a photo without a hand-drawn mask that channel is the
detector's mask, which is not the render's exact silhouette: it takes in what the person holds, and it cost the
shipped regressor about a centimetre of MPJPE on synthetic renders (see the README's masks section). This runs
the detector once per row and stores its mask in the column ``DETECTOR_MASK_COLUMN`` (a mode-"L" picture, like
``human_mask``); a row where it finds nobody keeps its own mask there (``DETECTOR_FOUND_COLUMN`` is False).
``train_regressor.py --detector_mask_prob P`` then hands the regressor that mask instead of the render's for a share
``P`` of the samples.

Usage: python training/detector_masks.py --input runs/data/TABLE --output runs/data/TABLE-detector-masks [--num-proc 2]
"""
import argparse
import os
import shutil
from pathlib import Path

import datasets

DETECTOR_MASK_COLUMN = "detector_human_mask"
DETECTOR_FOUND_COLUMN = "detector_found_person"


def detector_masks(batch: dict) -> dict:
    """``datasets.map`` function: the detector's person mask of each picture in ``batch`` (own mask if missed)."""
    from scorehoi_diffusers.evaluation import DetectedPictures
    from scorehoi_diffusers.person_detection import default_person_detector

    detected = DetectedPictures(default_person_detector())  # the detector is built once per worker process
    people = [detected.detect(image) for image in batch["image"]]
    return {DETECTOR_MASK_COLUMN: [own if person is None else person[1]
                                   for own, person in zip(batch["human_mask"], people)],
            DETECTOR_FOUND_COLUMN: [person is not None for person in people]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="a saved dataset folder (`scorehoi synthesize`)")
    parser.add_argument("--output", required=True, help="where the table with the new column is saved")
    parser.add_argument("--num-proc", type=int, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    table = datasets.load_from_disk(args.input)
    features = table.features.copy()
    features[DETECTOR_MASK_COLUMN] = datasets.Image()
    features[DETECTOR_FOUND_COLUMN] = datasets.Value("bool")
    table = table.map(detector_masks, batched=True, batch_size=32, num_proc=args.num_proc, features=features,
                      desc="Detecting people")
    missed = len(table) - sum(table[DETECTOR_FOUND_COLUMN])
    output = Path(args.output)
    temporary = output.with_name(output.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    table.save_to_disk(str(temporary))
    os.replace(temporary, output)
    print(f"Saved {len(table)} rows to {output}; the detector found nobody in {missed}.")


if __name__ == "__main__":
    main()
