"""Functions the CLI and the training code call: parameter batches, rendered samples, ``datasets`` output."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from ...body import BodyModel
from ...objects import load_object
from ...params import HOIParams
from ..schema import FEATURES, sample_to_params
from .generator import SyntheticHOIGenerator, SyntheticScenes, _check_count, _check_split, _default_body, _select

if TYPE_CHECKING:
    import datasets

# Generators are cached per (body, objects): building one measures the body and loads the templates.
_GENERATORS: dict[tuple, SyntheticHOIGenerator] = {}
# Bodies given by the caller, so that dataset workers forked from this process reuse them.
_BODIES: dict[str, BodyModel] = {}


def _body_key(body: BodyModel | None) -> dict | None:
    """A picklable description of ``body`` that :func:`_generator` can turn back into it."""
    if body is None:
        return None
    if not isinstance(body, BodyModel):
        raise TypeError(f"`body` must be a BodyModel or None, got {type(body).__name__}.")
    key = f"body-{id(body)}"
    # The scenes are CPU work (NumPy, ray casting): a body that a pipeline moved to a GPU is used through a CPU copy.
    _BODIES[key] = body if body.device.type == "cpu" else copy.deepcopy(body).to("cpu")
    names = ("model_path", "gender", "num_downsampled_vertices", "downsample_seed")
    config = {name: body.config[name] for name in names}
    return {"key": key, "config": config}


def _generator(body_key: dict | None, objects: Sequence[str] | None,
               interactions: Sequence[str] | None = None) -> SyntheticHOIGenerator:
    objects, interactions = _select(objects, interactions)
    cache_key = (None if body_key is None else body_key["key"], objects, interactions)
    if cache_key not in _GENERATORS:
        if body_key is None:
            body = None
        else:
            body = _BODIES.get(body_key["key"])
            if body is None:  # a fresh worker process: rebuild the body from its config
                body = _BODIES[body_key["key"]] = BodyModel(**body_key["config"])
        _GENERATORS[cache_key] = SyntheticHOIGenerator(body, objects, interactions)
    return _GENERATORS[cache_key]


def sample_scenes(
    num: int,
    seed: int = 0,
    body: BodyModel | None = None,
    objects: Sequence[str] | None = None,
    split: str = "train",
    start: int = 0,
    batch_size: int = 256,
    interactions: Sequence[str] | None = None,
) -> SyntheticScenes:
    """Scenes ``start .. start + num - 1`` without rendering: parameters, contacts and cameras.

    Args:
        num: number of samples.
        seed: dataset seed; sample ``i`` depends only on ``(seed, split, i)``.
        body: body model (default: the stand-in body).
        objects: primitive names to draw from (default: all).
        split: ``"train"`` or ``"test"`` (a disjoint random stream).
        start: index of the first sample.
        batch_size: scenes built together (speed only; the values do not depend on it).
        interactions: names from :data:`INTERACTIONS` to draw (default: all those of ``objects``).

    Returns:
        :class:`SyntheticScenes` of batch ``num``: the same ``(seed, split, i)`` gives the same parameters,
        contacts and camera as the rendered dataset.
    """
    num = _check_count("num", num, 1)
    start = _check_count("start", start)
    batch_size = _check_count("batch_size", batch_size, 1)
    generator = _generator(_body_key(body), objects, interactions)
    return SyntheticScenes.cat([
        generator.scenes(np.arange(first, min(first + batch_size, start + num)), seed, split)
        for first in range(start, start + num, batch_size)
    ])


def sample_params(
    num: int,
    seed: int = 0,
    body: BodyModel | None = None,
    objects: Sequence[str] | None = None,
    split: str = "train",
    start: int = 0,
    batch_size: int = 256,
    interactions: Sequence[str] | None = None,
) -> tuple[HOIParams, dict[str, torch.Tensor], list[str]]:
    """Parameters and contacts of samples ``start .. start + num - 1``, without rendering (the prior's data).

    Arguments as in :func:`sample_scenes`.

    Returns:
        ``(params, contacts, object_names)``: float32 :class:`HOIParams` of batch ``num``; contacts
        ``{"human": (num, S), "object": (num, 64), "floor": (num,)}``; the object name of each sample.
        The same ``(seed, split, i)`` gives the same parameters as the rendered dataset.
    """
    scenes = sample_scenes(num, seed, body, objects, split, start, batch_size, interactions)
    return scenes.params, scenes.contacts, scenes.object_names


def generate_samples(
    num_samples: int,
    seed: int = 0,
    image_size: int = 256,
    body: BodyModel | None = None,
    objects: Sequence[str] | None = None,
    split: str = "train",
    start: int = 0,
    batch_size: int = 16,
    interactions: Sequence[str] | None = None,
    randomized: bool = False,
) -> Iterator[dict]:
    """Yield rendered schema samples ``start .. start + num_samples - 1`` one by one (dicts of
    :data:`~scorehoi_diffusers.data.schema.FEATURES`; images as PIL images). Arguments as in
    :func:`generate_dataset`."""
    num_samples = _check_count("num_samples", num_samples, 1)
    start = _check_count("start", start)
    generator = _generator(_body_key(body), objects, interactions)
    yield from generator.samples(np.arange(start, start + num_samples), seed, split, image_size, batch_size,
                                 _check_randomized(randomized))


def _check_randomized(randomized) -> bool:
    if not isinstance(randomized, bool):
        raise TypeError(f"`randomized` must be True or False, got {randomized!r}.")
    return randomized


def _dataset_examples(chunks: list[list[int]], settings: dict) -> Iterator[dict]:
    """``datasets`` generator: renders the index ``chunks`` (a worker receives a share of them)."""
    from tqdm.auto import tqdm

    generator = _generator(settings["body"], settings["objects"], settings["interactions"])
    total = sum(len(chunk) for chunk in chunks)
    with tqdm(total=total, desc="Synthesizing HOI samples", unit="sample", disable=not settings["progress"]) as bar:
        for chunk in chunks:
            samples = generator.samples(chunk, settings["seed"], settings["split"], settings["image_size"], len(chunk),
                                        settings.get("randomized", False))
            for sample in samples:
                yield sample
                bar.update(1)


@contextlib.contextmanager
def _datasets_progress_bars(enabled: bool):
    """Turn the ``datasets`` library's progress bars on or off for a while."""
    import datasets

    were_enabled = datasets.is_progress_bar_enabled()
    if enabled:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if were_enabled:
            datasets.enable_progress_bars()
        else:
            datasets.disable_progress_bars()


def generate_dataset(
    num_samples: int,
    seed: int = 0,
    image_size: int = 256,
    body: BodyModel | None = None,
    objects: Sequence[str] | None = None,
    progress: bool = True,
    split: str = "train",
    start: int = 0,
    num_proc: int | None = None,
    batch_size: int = 16,
    cache_dir: str | Path | None = None,
    interactions: Sequence[str] | None = None,
    randomized: bool = False,
) -> datasets.Dataset:
    """Render a synthetic dataset as a ``datasets.Dataset`` (Arrow on disk, features = schema ``FEATURES``).

    Args:
        num_samples: number of samples; they are ``start .. start + num_samples - 1`` of ``(seed, split)``.
        seed: dataset seed. Same seed, same samples, byte for byte.
        image_size: side of the square images in pixels.
        body: body model (default: the stand-in body).
        objects: primitive names to draw from (default: all).
        progress: show a progress bar.
        split: ``"train"`` or ``"test"`` (a disjoint random stream).
        start: index of the first sample.
        num_proc: worker processes (``datasets`` shards the work; results do not depend on it).
        batch_size: scenes built together.
        cache_dir: where the Arrow files go (default: a new temporary folder, so nothing stale is reused).
        interactions: names from :data:`INTERACTIONS` to draw (default: all those of ``objects``).
        randomized: render in the randomised style (any colours, textures, clutter, light from any side), for
            training models that must not lean on colour; the scenes and masks are the same.
    """
    import datasets

    num_samples = _check_count("num_samples", num_samples, 1)
    start = _check_count("start", start)
    image_size = _check_count("image_size", image_size, 16)
    batch_size = _check_count("batch_size", batch_size, 1)
    _check_split(split)
    seed = _check_count("seed", seed)
    if num_proc is not None:
        num_proc = _check_count("num_proc", num_proc, 1)
    settings = {
        "seed": seed,
        "split": split,
        "image_size": image_size,
        "objects": list(_select(objects, interactions)[0]),
        "interactions": list(_select(objects, interactions)[1]),
        "body": _body_key(body),
        "progress": bool(progress) and (num_proc or 1) == 1,
    }
    if _check_randomized(randomized):  # only then, so the default's fingerprint and description stay as they were
        settings["randomized"] = True
    chunks = [
        list(range(first, min(first + batch_size, start + num_samples)))
        for first in range(start, start + num_samples, batch_size)
    ]
    if cache_dir is None:
        cache_dir = tempfile.mkdtemp(prefix="scorehoi-synthetic-")
    description = {key: value for key, value in settings.items() if key not in ("body", "progress")}
    description.update(num_samples=num_samples, start=start,
                       body=None if settings["body"] is None else settings["body"]["config"])
    fingerprint = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]
    # With one process our bar (which knows the total) replaces the builder's; workers only have the builder's.
    with _datasets_progress_bars(progress and (num_proc or 1) > 1):
        dataset = datasets.Dataset.from_generator(
            _dataset_examples,
            features=FEATURES,
            cache_dir=str(cache_dir),
            gen_kwargs={"chunks": chunks, "settings": settings},
            num_proc=num_proc,
            fingerprint=fingerprint,
        )
    dataset.info.description = "scorehoi_diffusers synthetic HOI: " + json.dumps(description, sort_keys=True)
    return dataset


def save_dataset(dataset: datasets.Dataset, out_dir: str | Path) -> Path:
    """Write ``dataset`` to ``out_dir`` with ``save_to_disk`` (read it back with ``datasets.load_from_disk``)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"`out_dir` {str(out_dir)!r} exists and is not a folder.")
    dataset.save_to_disk(str(out_dir))
    return out_dir


def synthesize(
    num_samples: int,
    out_dir: str | Path,
    seed: int = 0,
    image_size: int = 256,
    body: BodyModel | None = None,
    objects: Sequence[str] | None = None,
    split: str = "train",
    progress: bool = True,
    num_proc: int | None = None,
    overwrite: bool = False,
    interactions: Sequence[str] | None = None,
) -> datasets.Dataset:
    """Render ``num_samples`` synthetic samples and save them as a dataset in ``out_dir`` (``scorehoi synthesize``).

    Refuses to write into a non-empty ``out_dir`` unless ``overwrite``. Other arguments as in
    :func:`generate_dataset`. Returns the saved dataset, loaded back from ``out_dir``.
    """
    import datasets

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"`out_dir` {str(out_dir)!r} is not empty; choose another folder or pass overwrite=True."
        )
    with tempfile.TemporaryDirectory(prefix="scorehoi-synthetic-") as cache_dir:
        dataset = generate_dataset(num_samples, seed=seed, image_size=image_size, body=body, objects=objects,
                                   progress=progress, split=split, num_proc=num_proc, cache_dir=cache_dir,
                                   interactions=interactions)
        if out_dir.exists() and overwrite:
            shutil.rmtree(out_dir)
        with _datasets_progress_bars(progress):
            save_dataset(dataset, out_dir)
        del dataset
    return datasets.load_from_disk(str(out_dir))


def synthetic_split(split: str = "train", num_samples: int = 1000, seed: int = 0, **kwargs) -> datasets.Dataset:
    """The ``"train"`` or ``"test"`` split: the test split draws from a random stream disjoint from training's.

    Other arguments go to :func:`generate_dataset`.
    """
    return generate_dataset(num_samples, seed=seed, split=split, **kwargs)


def contact_sheet(samples: Sequence[dict], body: BodyModel | None = None, columns: int = 4) -> np.ndarray:
    """A picture for checking samples by eye: per sample the image, and the image with the human mask
    (blue) and object mask (orange) blended in, ground-truth body contacts (red dots) and object keypoint
    contacts (yellow dots).

    Args:
        samples: schema samples (e.g. from :func:`generate_samples` or a loaded dataset) of one body model.
        body: the body model they were made with (default: the stand-in body).
        columns: samples per row.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    from PIL import ImageDraw

    samples = list(samples)
    if not samples:
        raise ValueError("`samples` is empty.")
    columns = _check_count("columns", columns, 1)
    body = _default_body() if body is None else body
    tiles = []
    for sample in samples:
        image = np.asarray(sample["image"].convert("RGB") if hasattr(sample["image"], "convert") else sample["image"])
        human = np.asarray(sample["human_mask"]) > 127
        obj = np.asarray(sample["object_mask"]) > 127
        overlay = image.astype(np.float64)
        overlay[human] = 0.45 * overlay[human] + 0.55 * np.array([40, 110, 255])
        overlay[obj] = 0.45 * overlay[obj] + 0.55 * np.array([255, 140, 0])
        picture = Image.fromarray(np.round(overlay).astype(np.uint8))
        draw = ImageDraw.Draw(picture)
        params = sample_to_params(sample)
        K = np.asarray(sample["intrinsics"], dtype=np.float64)
        with torch.no_grad():
            points = body(params, frame="camera").downsampled_vertices[0].double().numpy()
        template = load_object(sample["object_name"])
        keypoints = template.pose(template.keypoints, params.object_rotation,
                                  params.object_translation + params.camera_translation)[0].double().numpy()
        labelled = ((points, sample["human_contact"], (255, 30, 30)),
                    (keypoints, sample["object_contact"], (255, 240, 0)))
        for cloud, flags, color in labelled:
            chosen = cloud[np.asarray(flags) > 0.5]
            pixels = (chosen / chosen[:, 2:]) @ K.T
            for u, v in pixels[:, :2]:
                draw.ellipse([u - 1.5, v - 1.5, u + 1.5, v + 1.5], fill=color)
        x, y, w, h = np.asarray(sample["bbox"], dtype=np.float64)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=(0, 200, 0))
        draw.text((3, 2), f"{sample['object_name']}  floor={int(sample['floor_contact'])}", fill=(255, 255, 255))
        tiles.append(np.concatenate([image, np.asarray(picture)], axis=1))
    height, width = tiles[0].shape[:2]
    gap = 4
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * (height + gap): r * (height + gap) + height, c * (width + gap): c * (width + gap) + width] = tile
    return sheet
