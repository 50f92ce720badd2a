"""Many photos in one process: batches of photos that share an object template, each result exported on its own.

``scorehoi reconstruct`` and ``scorehoi demo`` hand their checked photos (dicts with ``name``, ``image``,
``human_mask``, ``object_mask``, ``template`` and optional ``bbox``, ``intrinsics``, ``keypoints``, ``sources``,
``object``) to :func:`reconstruct_items`.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["batches_sharing_a_template", "export_item", "reconstruct_items", "run_batch"]


def batches_sharing_a_template(items: Sequence[dict], batch_size: int) -> list[list[dict]]:
    """``items`` in batches of at most ``batch_size`` that the pipeline can take in one call: one object template,
    and boxes and cameras given for all or for none."""
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        key = (id(item["template"]), item.get("bbox") is None, item.get("intrinsics") is None,
               item.get("keypoints") is None)
        groups.setdefault(key, []).append(item)
    return [group[i:i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def run_batch(pipeline, batch: Sequence[dict], cycles: int, seed: int):
    """The pipeline's output for a batch of items sharing one template, and the seconds it took per item. Each
    item gets its own generator seeded with ``seed``, so its result does not depend on its batch."""
    import torch

    start = time.perf_counter()
    intrinsics = [item.get("intrinsics") for item in batch]
    keypoints = [item.get("keypoints") for item in batch]
    output = pipeline(
        image=[item["image"] for item in batch], human_mask=[item["human_mask"] for item in batch],
        object_mask=[item["object_mask"] for item in batch], object=batch[0]["template"],
        bbox=None if batch[0].get("bbox") is None else [item["bbox"] for item in batch],
        intrinsics=None if intrinsics[0] is None else np.stack(intrinsics),
        keypoints=None if keypoints[0] is None else np.stack(keypoints),
        num_cycles=cycles, generator=[torch.Generator().manual_seed(seed) for _ in batch],
    )
    return output, (time.perf_counter() - start) / len(batch)


def export_item(pipeline, output, index: int, item: dict, out_dir: Path, cycles: int, seed: int, seconds: float,
                 overwrite: bool) -> dict:
    """Write sample ``index`` of ``output`` into ``out_dir/<item name>`` as a unit; the printed summary."""
    from .export import export_reconstruction, result_folder
    from .image_processor import to_rgb_array

    final = out_dir / item["name"]
    try:
        with result_folder(out_dir, item["name"], overwrite=overwrite) as folder:
            paths = export_reconstruction(
                output, index, pipeline.body_model, item["template"], folder, item["name"],
                image=to_rgb_array(item["image"]), intrinsics=output.intrinsics[index].cpu().numpy(),
                extra={"inputs": item.get("sources", {}), "object": str(item["object"]), "seed": seed,
                       "num_cycles": cycles, "seconds": seconds},
            )
    except FileExistsError as error:
        raise FileExistsError(f"--out: {final} was written by another run meanwhile; pass --overwrite to "
                              "replace it or choose another --out.") from error
    return {"name": item["name"], "seconds": seconds, **{kind: str(final / path.name) for kind, path in paths.items()}}


def reconstruct_items(
    pipeline, items: Sequence[dict], out_dir: Path, cycles: int, seed: int, overwrite: bool = False,
    batch_size: int = 1, on_error=None,
) -> list[dict]:
    """Reconstruct a list of photos (the module's dicts, checked as ``scorehoi reconstruct`` checks them),
    ``batch_size`` at a time where they share a template, and export each into its own folder ``out_dir/name``,
    written as a unit.

    With ``on_error(name, error)`` a photo that fails is reported through it and the others go on (a batch that
    fails is retried photo by photo, so only the failing photo is lost); without, the first failure is raised.
    Several items get a progress bar counting photos.
    """
    from diffusers.utils import logging
    from tqdm.auto import tqdm

    written = []
    pending = batches_sharing_a_template(items, batch_size)
    quiet = not logging.is_progress_bar_enabled()  # --quiet
    with tqdm(total=len(items), unit="photo", disable=len(items) < 2 or quiet) as progress:
        while pending:
            batch = pending.pop(0)
            try:
                output, seconds = run_batch(pipeline, batch, cycles, seed)
            except Exception as error:
                if on_error is None:
                    raise
                if len(batch) > 1:
                    pending[:0] = [[item] for item in batch]
                    continue
                on_error(batch[0]["name"], error)
                progress.update(1)
                continue
            for index, item in enumerate(batch):
                try:
                    written.append(export_item(pipeline, output, index, item, out_dir, cycles, seed, seconds,
                                                overwrite))
                except Exception as error:
                    if on_error is None:
                        raise
                    on_error(item["name"], error)
                progress.update(1)
    return written
