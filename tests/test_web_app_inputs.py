"""The web app's input reading, preview and Space entry point, without a browser (tests/test_web_app.py drives
the page itself in Chromium)."""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

gr = pytest.importorskip("gradio")
from scorehoi_diffusers import web_app  # noqa: E402
from scorehoi_diffusers.guidance import TERMS, GuidanceConfig  # noqa: E402
from scorehoi_diffusers.objects import PRIMITIVE_DIR, ObjectTemplate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def upload(path: Path, name: str | None = None) -> dict:
    """What Gradio hands an event with preprocess=False: the server-side path and the user's file name."""
    return {"path": str(path), "orig_name": name or path.name, "meta": {"_type": "gradio.FileData"}}


def test_pictures_are_read_with_their_own_name_in_errors(tmp_path):
    photo = tmp_path / "upload123" / "photo.png"
    photo.parent.mkdir()
    Image.fromarray(np.full((8, 10, 3), 7, np.uint8)).save(photo)
    assert web_app._read_picture(upload(photo), "Photo").shape == (8, 10, 3)
    assert web_app._read_picture(upload(photo), "Person mask", mask=True).shape == (8, 10)
    assert web_app._read_picture(None, "Photo") is None

    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(gr.Error) as error:
        web_app._read_picture(upload(text, "my notes.png"), "Photo")
    assert error.value.message == "Photo: my notes.png is not a picture; upload a PNG or JPEG file."
    assert str(tmp_path) not in error.value.message  # the server's folders are not shown to the user


def test_a_photo_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    photo = tmp_path / "big.png"
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(photo)
    monkeypatch.setattr(web_app, "MAX_PHOTO_PIXELS", 1000)
    monkeypatch.setattr(web_app, "load_image", lambda *args, **kwargs: pytest.fail("decoded a refused photo"))
    with pytest.raises(gr.Error, match="40 x 30 pixels, more than this app's limit"):
        web_app._read_picture(upload(photo), "Photo")


@pytest.mark.parametrize("values, box", [
    ((10, 20, 30, 40), [10.0, 20.0, 30.0, 40.0]),
    ((10, 20, 0, 40), None),  # Gradio's empty number boxes read 0: no box yet
    ((None, 20, 30, 40), None),
    (("", 20, 30, 40), None),
])
def test_object_box_is_used_only_when_complete(values, box):
    assert web_app._object_box(*values) == box


def test_preview_draws_person_keypoints_object_mask_and_box():
    image = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[5:35, 5:20] = True
    keypoints = np.zeros((33, 2), np.float32)
    keypoints[:] = (12, 20)
    keypoints[0] = (50, 8)
    visibility = np.ones(33, np.float32)
    visibility[0] = 0.1
    person = SimpleNamespace(mask=mask, keypoints=keypoints, visibility=visibility)
    object_mask = np.zeros((40, 60), np.uint8)
    object_mask[30:38, 40:55] = 255
    picture, scale = web_app.preview_picture(image, [person], None, object_mask, [30, 2, 25, 20])
    assert scale == 1.0 and picture.shape == image.shape
    assert (picture[30, 8] != image[30, 8]).any()  # person tinted
    assert (picture[36, 50] != picture[30, 8]).any() and (picture[36, 50] != image[36, 50]).any()  # object tinted
    assert tuple(picture[12, 30]) == web_app.BOX_COLOR  # left edge of the box
    assert tuple(picture[20, 12]) == web_app.VISIBLE_COLOR and tuple(picture[8, 50]) == web_app.HIDDEN_COLOR
    assert (picture[1, 1] == image[1, 1]).all()  # the rest untouched


def test_preview_with_the_users_person_mask_draws_no_detection():
    image = np.full((40, 60, 3), 100, np.uint8)
    detected = np.zeros((40, 60), bool)
    detected[0:10, 0:10] = True
    person = SimpleNamespace(mask=detected, keypoints=np.full((33, 2), 30, np.float32),
                             visibility=np.ones(33, np.float32))
    users = np.zeros((40, 60), np.uint8)
    users[20:40, 40:60] = 255
    picture, _ = web_app.preview_picture(image, [person], users, None, None)
    assert (picture[5, 5] == image[5, 5]).all() and (picture[30, 30] == image[30, 30]).all()
    assert (picture[30, 50] != image[30, 50]).any()


def test_preview_of_a_large_photo_is_downscaled_and_reports_its_scale():
    image = np.zeros((600, 3000, 3), np.uint8)
    picture, scale = web_app.preview_picture(image, [], None, None, None)
    assert picture.shape == (205, 1024, 3) and scale == pytest.approx(1024 / 3000)


def test_mesh_uploads_name_the_users_file(tmp_path):
    points = tmp_path / "abc" / "points.ply"
    points.parent.mkdir()
    points.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                      "property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(gr.Error) as error:
        web_app._template("box", upload(points), "m")
    assert "'points.ply' has no faces" in error.value.message and str(tmp_path) not in error.value.message
    with pytest.raises(gr.Error, match="not a .obj, .ply, .glb file"):
        web_app._template("box", upload(points, "scene.fbx"), "m")
    template, name = web_app._template("stool", None, "m")
    assert isinstance(template, ObjectTemplate) and name == "stool"
    # An uploaded .glb of the same stool (its signed-distance grid is cached): named as the user named it.
    glb = tmp_path / "upload" / "stool.glb"
    glb.parent.mkdir()
    trimesh.load(PRIMITIVE_DIR / "stool.ply").export(glb)
    uploaded, name = web_app._template("box", upload(glb, "my stool.glb"), "m")
    assert name == "my stool.glb"
    torch.testing.assert_close(uploaded.vertices, template.vertices, atol=1e-4, rtol=0)


def test_advanced_weights_are_guidance_config_fields():
    fields = GuidanceConfig.__dataclass_fields__
    assert all(isinstance(getattr(GuidanceConfig(), name), float) for name in web_app.GUIDANCE_WEIGHTS)
    assert set(web_app.GUIDANCE_WEIGHTS) <= set(fields)


def test_advanced_offers_every_guidance_term_and_the_contact_decision_with_0_for_probabilities():
    assert web_app.GUIDANCE_WEIGHTS == ("scale", *TERMS)
    assert web_app._contact_decision_slider(GuidanceConfig(contact_decision=0.3)).value == 0.3
    assert web_app._contact_decision_slider(GuidanceConfig(contact_decision=None)).value == 0.0


def test_the_space_entry_point_serves_the_app_where_the_space_says(monkeypatch):
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "0"}
    result = subprocess.run([sys.executable, str(REPO / "app.py")], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=120)
    # Port 0 is refused by `scorehoi app` before anything loads: the Space's port reached the command.
    assert result.returncode == 2 and "scorehoi app: --port must be in 1..65535, got 0." in result.stderr


def test_the_space_entry_point_defaults_to_all_addresses_on_7860(monkeypatch):
    import app

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    assert app.space_arguments() == ["app", "--host", "0.0.0.0", "--port", "7860"]


def test_every_guidance_slider_starts_on_its_own_grid():
    """A slider whose step does not divide its default (the pose prior's 0.01 on a 0.05 grid) could not return to
    it once moved, and might snap it away before the first run."""
    defaults = GuidanceConfig(pose_prior=0.01, keypoints_2d=1000.0, mask_coverage=100.0, contact=0.75)
    for slider in web_app._guidance_sliders(defaults):
        ratio = slider.value / slider.step
        assert abs(ratio - round(ratio)) < 1e-6, slider.label
        assert slider.minimum <= slider.value <= slider.maximum
