"""training/detector_mask_archive.py: the detector's masks travel without the pictures and land on the same rows."""
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
import detector_mask_archive as archive  # noqa: E402
from detector_masks import DETECTOR_FOUND_COLUMN, DETECTOR_MASK_COLUMN  # noqa: E402


def table(ids, seed, detector=False):
    rng = np.random.default_rng(seed)
    masks = [Image.fromarray((rng.random((12, 10)) > 0.5).astype(np.uint8) * 255) for _ in ids]
    columns = {"sample_id": list(ids), "human_mask": masks}
    features = {"sample_id": datasets.Value("string"), "human_mask": datasets.Image()}
    if detector:
        detected = [Image.fromarray((rng.random((12, 10)) > 0.3).astype(np.uint8) * 255) for _ in ids]
        columns |= {DETECTOR_MASK_COLUMN: detected, DETECTOR_FOUND_COLUMN: [i % 3 != 0 for i in range(len(ids))]}
        features |= {DETECTOR_MASK_COLUMN: datasets.Image(), DETECTOR_FOUND_COLUMN: datasets.Value("bool")}
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def test_pack_and_unpack_are_inverse():
    masks = np.random.default_rng(0).random((5, 7, 9)) > 0.5
    packed = archive.pack_masks(masks)
    assert packed.shape == (5, 8) and packed.dtype == np.uint8
    assert np.array_equal(archive.unpack_masks(packed, (7, 9)), masks)


def test_attach_puts_each_mask_on_its_own_row_in_any_order(tmp_path):
    ids = [f"s-{i}" for i in range(6)]
    with_detector = table(ids, 0, detector=True)
    with_detector.save_to_disk(tmp_path / "a")
    archive.pack([str(tmp_path / "a")], str(tmp_path / "masks.npz"))
    table(ids[::-1], 1).save_to_disk(tmp_path / "b")  # the same rows, rendered again, another order
    archive.attach(str(tmp_path / "b"), str(tmp_path / "c"), str(tmp_path / "masks.npz"), None)
    attached = datasets.load_from_disk(str(tmp_path / "c"))
    expected = {row["sample_id"]: row for row in with_detector}
    for row in attached:
        source = expected[row["sample_id"]]
        assert np.array_equal(np.asarray(row[DETECTOR_MASK_COLUMN]), np.asarray(source[DETECTOR_MASK_COLUMN]))
        assert row[DETECTOR_FOUND_COLUMN] == source[DETECTOR_FOUND_COLUMN]


def test_own_masks_are_marked_not_found(tmp_path):
    table(["x", "y"], 2).save_to_disk(tmp_path / "a")
    archive.attach(str(tmp_path / "a"), str(tmp_path / "b"), None, None)
    for row in datasets.load_from_disk(str(tmp_path / "b")):
        assert np.array_equal(np.asarray(row[DETECTOR_MASK_COLUMN]), np.asarray(row["human_mask"]))
        assert row[DETECTOR_FOUND_COLUMN] is False


def test_a_row_missing_from_the_archive_is_named(tmp_path):
    table(["a", "b"], 3, detector=True).save_to_disk(tmp_path / "a")
    archive.pack([str(tmp_path / "a")], str(tmp_path / "masks.npz"))
    table(["a", "z"], 4).save_to_disk(tmp_path / "b")
    with pytest.raises(ValueError, match="no mask for 1 rows .*first: 'z'"):
        archive.attach(str(tmp_path / "b"), str(tmp_path / "c"), str(tmp_path / "masks.npz"), None)
