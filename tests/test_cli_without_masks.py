"""``scorehoi reconstruct`` and ``scorehoi demo`` without hand-drawn masks: a detected person and an object box."""
import json

import numpy as np
import pytest
from PIL import Image

from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, main
from scorehoi_diffusers.manifest import read_manifest
from tests.test_cli import _no_pipeline_load, _one_error_line

skimage_data = pytest.importorskip("skimage.data")
CAMERAMAN = DEFAULT_EXAMPLES / "cameraman"
TRIPOD = json.loads((CAMERAMAN / "example.json").read_text())["object_box"]


def box_args(box) -> list[str]:
    return [str(value) for value in box]


def test_reconstruct_with_only_an_object_box(tmp_path):
    code = main(["reconstruct", str(CAMERAMAN / "image.png"), "--object-box", *box_args(TRIPOD), "--object", "stool",
                 "--cycles", "1", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    record = json.loads((tmp_path / "image" / "image.json").read_text())
    assert record["inputs"]["object_box"] == [float(v) for v in TRIPOD]
    assert "human_mask" not in record["inputs"] and "object_mask" not in record["inputs"]
    assert (tmp_path / "image" / "image_overlay.png").is_file()


def test_the_cameraman_example_needs_no_mask():
    spec = json.loads((CAMERAMAN / "example.json").read_text())
    assert "human_mask" not in spec and "object_mask" not in spec
    assert "CC0" in spec["source"] and "Lav Varshney" in spec["source"]
    np.testing.assert_array_equal(np.asarray(Image.open(CAMERAMAN / "image.png")), skimage_data.camera())


def test_neither_object_mask_nor_box_is_one_line(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    assert main(["reconstruct", str(CAMERAMAN / "image.png"), "--object", "stool", "--out", str(tmp_path)]) == 2
    assert "--object-mask or --object-box" in _one_error_line(capsys)


def test_no_person_is_one_line(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    coffee = tmp_path / "coffee.png"
    Image.fromarray(skimage_data.coffee()).save(coffee)
    assert main(["reconstruct", str(coffee), "--object-box", "100", "100", "200", "200", "--object", "ball",
                 "--out", str(tmp_path / "out")]) == 2
    assert "No person found in `image`" in _one_error_line(capsys)


def test_object_box_outside_the_photo_is_one_line(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    assert main(["reconstruct", str(CAMERAMAN / "image.png"), "--object-box", "600", "10", "50", "50",
                 "--object", "stool", "--out", str(tmp_path)]) == 2
    assert "`object_box` [600.0, 10.0, 50.0, 50.0] lies outside the 512x512 image" in _one_error_line(capsys)


def test_several_people_need_a_person_box(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    import matplotlib.cbook

    grace = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((437, 512))
    pair = tmp_path / "pair.png"
    Image.fromarray(np.concatenate([np.asarray(grace), skimage_data.astronaut()], axis=1)).save(pair)
    between = ["--object-box", "380", "300", "140", "100", "--object", "ball"]  # touches both people
    assert main(["reconstruct", str(pair), *between, "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert "shows 2 people" in line and "--person-box" in line
    # With a box around the astronaut the inputs pass every check: only the (refused) pipeline load is left.
    with pytest.raises(AssertionError, match="pipeline was loaded"):
        main(["reconstruct", str(pair), *between, "--person-box", "450", "0", "400", "512",
              "--out", str(tmp_path / "out")])


def test_boxes_apply_to_one_photo_on_the_command_line(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    image = str(CAMERAMAN / "image.png")
    assert main(["reconstruct", image, image, "--object-box", *box_args(TRIPOD), "--object", "stool",
                 "--out", str(tmp_path)]) == 2
    assert "--object-box applies to one photo" in _one_error_line(capsys)


def test_manifest_entries_with_boxes_and_no_masks(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps([
        {"image": "a.png", "object_box": [1, 2, 30, 40], "person_box": "0 0 50 60", "object": "box"}]))
    spec = read_manifest(tmp_path / "manifest.json")[0]
    assert spec.human_mask is None and spec.object_mask is None
    assert spec.object_box == (1.0, 2.0, 30.0, 40.0) and spec.person_box == (0.0, 0.0, 50.0, 60.0)
    (tmp_path / "manifest.json").write_text(json.dumps([{"image": "a.png", "human_mask": "h.png"}]))
    with pytest.raises(ValueError, match=r"entry 0 lacks \['object_mask'\] and has no object_box"):
        read_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text(json.dumps([{"image": "a.png", "object_box": [1, 2]}]))
    with pytest.raises(ValueError, match="entry 0 object_box must be four numbers"):
        read_manifest(tmp_path / "manifest.json")
