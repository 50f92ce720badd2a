"""Carry the detector's person masks of a saved training table to a machine without the detector, and put them back.

``training/detector_masks.py`` runs the bundled person detector (mediapipe) once per rendered row. A lent GPU machine
has no mediapipe, and a rendered table is too large to send there, but the renders themselves are cheap to make
again from their seed and index (same seed, same scenes). So ``pack`` keeps only the detector's masks, bit-packed
and compressed (about 1 kB a row), and ``attach`` adds them to the same rows rendered again there. Rows whose table
has no detector (randomised renders, say) get their own mask and ``detector_found_person`` False with ``--own``,
which is what ``detector_masks.py`` stores where the detector finds nobody.

Usage:
    python training/detector_mask_archive.py pack --input TABLE-detector-masks [...] --output masks.npz
    python training/detector_mask_archive.py attach --input TABLE --archive masks.npz --output TABLE-detector-masks
    python training/detector_mask_archive.py attach --input RANDOMIZED_TABLE --own --output TABLE-detector-masks
"""
import argparse
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
from detector_masks import DETECTOR_FOUND_COLUMN, DETECTOR_MASK_COLUMN
from PIL import Image


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Boolean masks ``(N, H, W)`` → bytes ``(N, ceil(H * W / 8))`` (row-major bits)."""
    return np.packbits(masks.reshape(len(masks), -1), axis=1)


def unpack_masks(packed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pack_masks`: ``(N, ceil(H * W / 8))`` bytes → boolean ``(N, H, W)``."""
    height, width = size
    return np.unpackbits(packed, axis=1, count=height * width).reshape(len(packed), height, width).astype(bool)


def _save_table(table: datasets.Dataset, output: str) -> None:
    path = Path(output)
    temporary = path.with_name(path.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    table.save_to_disk(str(temporary))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(temporary, path)


def pack(inputs: list[str], output: str) -> None:
    """The detector columns of ``inputs`` (tables from ``detector_masks.py``, in order) into one ``.npz``."""
    ids, masks, found = [], [], []
    for path in inputs:
        columns = ["sample_id", DETECTOR_MASK_COLUMN, DETECTOR_FOUND_COLUMN]
        table = datasets.load_from_disk(path).select_columns(columns)
        ids += list(table["sample_id"])
        masks += [np.asarray(mask) > 127 for mask in table[DETECTOR_MASK_COLUMN]]
        found += list(table[DETECTOR_FOUND_COLUMN])
    stacked = np.stack(masks)
    np.savez_compressed(output, sample_id=np.array(ids), packed=pack_masks(stacked),
                        size=np.array(stacked.shape[1:]), found=np.array(found, dtype=bool))
    print(f"Packed {len(ids)} masks into {output} ({os.path.getsize(output) / 1e6:.1f} MB).")


def attach(input_path: str, output: str, archive: str | None, num_proc: int | None) -> None:
    """Add the detector columns to the table at ``input_path``: from ``archive`` (matched by ``sample_id``; every
    row must be there), or each row's own mask (``archive`` None)."""
    table = datasets.load_from_disk(input_path)
    features = table.features.copy()
    features[DETECTOR_MASK_COLUMN] = datasets.Image()
    features[DETECTOR_FOUND_COLUMN] = datasets.Value("bool")
    if archive is None:
        table = table.map(lambda batch: {DETECTOR_MASK_COLUMN: batch["human_mask"],
                                         DETECTOR_FOUND_COLUMN: [False] * len(batch["human_mask"])},
                          batched=True, num_proc=num_proc, features=features, desc="Own masks")
    else:
        stored = np.load(archive)
        row_of = {sample_id: row for row, sample_id in enumerate(stored["sample_id"].tolist())}
        sample_ids = table["sample_id"]
        missing = [sample_id for sample_id in sample_ids if sample_id not in row_of]
        if missing:
            raise ValueError(f"--archive {archive} has no mask for {len(missing)} rows of {input_path} "
                             f"(first: {missing[0]!r}); pack the table rendered with the same seed and indices.")
        rows = np.array([row_of[sample_id] for sample_id in sample_ids])
        masks = unpack_masks(stored["packed"][rows], tuple(stored["size"]))
        found = stored["found"][rows]

        def add(batch: dict, indices: list[int]) -> dict:
            return {DETECTOR_MASK_COLUMN: [Image.fromarray(masks[i].astype(np.uint8) * 255) for i in indices],
                    DETECTOR_FOUND_COLUMN: [bool(found[i]) for i in indices]}

        table = table.map(add, batched=True, with_indices=True, num_proc=num_proc, features=features,
                          desc="Attaching masks")
    _save_table(table, output)
    print(f"Saved {len(table)} rows to {output}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack")
    packing.add_argument("--input", nargs="+", required=True, help="tables saved by training/detector_masks.py")
    packing.add_argument("--output", required=True, help="the .npz to write")
    attaching = commands.add_parser("attach")
    attaching.add_argument("--input", required=True, help="a saved table without the detector columns")
    source = attaching.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", help="an .npz written by `pack`")
    source.add_argument("--own", action="store_true", help="each row's own mask, marked as not found")
    attaching.add_argument("--output", required=True)
    attaching.add_argument("--num-proc", type=int, default=None)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.input, args.output)
    else:
        attach(args.input, args.output, args.archive, args.num_proc)


if __name__ == "__main__":
    main()
