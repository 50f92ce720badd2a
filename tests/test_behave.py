"""BEHAVE / InterCap loader on a tiny copy in CONTHO's real layout and conventions (tests/contho_fixture.py)."""
import json
import shutil

import numpy as np
import pytest
import torch
from contho_fixture import (
    HUMAN_RECT,
    IMAGE_SIZE,
    OBJECT_RECT,
    box_signed_distance,
    layout,
    make_sample,
    object_mesh,
    pelvis_at_rest,
    write_bodies,
    write_contho_object_models,
    write_dataset,
    write_raw_behave_object,
)

from scorehoi_diffusers.data.behave import (
    ANNOTATED_CONTACT,
    BEHAVE_MASKS,
    INTERCAP_MASKS,
    MaskLayout,
    iter_contho_samples,
    load_contho_dataset,
)
from scorehoi_diffusers.data.crop import CropConfig, crop_sample, to_model_input
from scorehoi_diffusers.data.dataset_objects import contho_mesh_paths, load_dataset_object
from scorehoi_diffusers.data.schema import FEATURES, sample_to_params
from scorehoi_diffusers.params import axis_angle_to_matrix


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    """Two different fake SMPL-H bodies (6890 vertices), to check that each annotation's gender picks its body."""
    return write_bodies(tmp_path_factory.mktemp("bodies"))


@pytest.fixture(scope="module")
def behave(tmp_path_factory, bodies):
    """BEHAVE's test split: one sample in camera space, one with cam_param R and t, one with t alone."""
    base = tmp_path_factory.mktemp("contho")
    samples = [
        make_sample(0, "male", "boxmedium", "side"),
        make_sample(1, "female", "boxmedium", "floor", extrinsics="Rt"),
        make_sample(2, "male", "boxmedium", "high", extrinsics="t"),
    ]
    truth = write_dataset(base, "behave", samples, bodies)
    write_contho_object_models(base, "behave", "boxmedium")
    write_raw_behave_object(base / "behave" / "objects", "boxmedium")
    roots = layout(base, "behave")
    dataset = load_contho_dataset(roots["root"], "behave", "test", body=bodies[0], object_root=roots["object_root"],
                                  image_root=roots["image_root"], progress=False)
    return base, roots, truth, dataset


def load(roots, bodies, **kwargs):
    options = dict(body=bodies[0], object_root=roots["object_root"], image_root=roots["image_root"], progress=False)
    options.update(kwargs)
    return load_contho_dataset(roots["root"], "behave", "test", **options)


def test_parameters_round_trip(behave):
    _, _, truth, dataset = behave
    assert len(dataset) == 3
    assert {key: value for key, value in dataset.features.items() if key != ANNOTATED_CONTACT} == dict(FEATURES)
    for row, expected in zip(dataset, truth):
        # Root in camera space (cam_param R applied), hands as in the file (CONTHO's mean-relative convention).
        np.testing.assert_allclose(row["pose"], expected["pose"], atol=1e-5)
        np.testing.assert_allclose(row["betas"], expected["betas"], atol=1e-5)  # the first 10 of the file's 16
        np.testing.assert_allclose(row["camera_translation"], expected["camera_translation"], atol=1e-5)
        np.testing.assert_allclose(row["object_translation"], expected["object_translation"], atol=1e-5)
        rotation = axis_angle_to_matrix(torch.tensor(expected["object_pose"])).numpy()
        np.testing.assert_allclose(row["object_rotation"], rotation, atol=1e-6)
        assert row["gender"] == expected["gender"] and row["object_name"] == "boxmedium"
        assert row["source"] == "behave" and row["sample_id"] == expected["file_name"]
        np.testing.assert_array_equal(np.asarray(row[ANNOTATED_CONTACT]) > 0.5, expected["contacts"])
    second = dataset[1]
    np.testing.assert_allclose(second["intrinsics"], [[501.0, 0, 24.0], [0, 505.0, 15.5], [0, 0, 1]])
    np.testing.assert_allclose(second["bbox"], [2.0, 3.0, 40.0, 26.0])


def test_extrinsics_are_applied(behave, bodies):
    """Without cam_param R, the R-sample's pelvis no longer matches its h3d_keypoints: the check catches it."""
    base, roots, _, _ = behave
    path = roots["root"] / "behave_test.json"
    content = json.loads(path.read_text())
    del content["images"][1]["cam_param"]["R"]
    broken = base.parent / "no_rotation"
    shutil.copytree(base, broken)
    (layout(broken, "behave")["root"] / "behave_test.json").write_text(json.dumps(content))
    expected = r"annotation id 8 \(sample 'Date03_Sub03_boxmedium/t0001.000/k1.color.jpg'\)"
    with pytest.raises(ValueError, match=expected):
        load(layout(broken, "behave"), bodies)


def test_pelvis_check_names_the_sample(behave, bodies, tmp_path):
    base, _, _, _ = behave
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    roots = layout(copy, "behave")
    path = roots["root"] / "behave_test.json"
    content = json.loads(path.read_text())
    content["annotations"][2]["smpl_param"]["trans"][0] += 0.02  # 2 cm off the keypoint
    path.write_text(json.dumps(content))
    expected = r"annotation id 9 \(sample '.*t0002.*'\): .* 1\.8 cm from h3d_keypoints\[0\]"
    with pytest.raises(ValueError, match=expected):
        load(roots, bodies)
    assert len(load(roots, bodies, pelvis_tolerance=None)) == 3
    with pytest.raises(ValueError, match="pelvis_tolerance"):
        load(roots, bodies, pelvis_tolerance=0.0)
    # Without h3d_keypoints there is nothing to check against.
    del content["annotations"][2]["h3d_keypoints"]
    path.write_text(json.dumps(content))
    assert len(load(roots, bodies)) == 3


def test_other_hand_convention_is_selectable(behave, bodies):
    _, roots, truth, _ = behave
    models, arrays = bodies
    flat = load(roots, bodies, flat_hand_mean=True)
    hands_mean = np.concatenate([arrays["male"]["hands_meanl"], arrays["male"]["hands_meanr"]])
    # Read as absolute rotations, the hands are stored relative to the mean: file value - mean.
    np.testing.assert_allclose(flat[0]["pose"][66:], truth[0]["pose"][66:] - hands_mean, atol=1e-5)
    np.testing.assert_allclose(flat[0]["pose"][:66], truth[0]["pose"][:66], atol=1e-5)


def test_raw_behave_objects_are_centred_like_contho_models(behave, bodies):
    base, roots, _, dataset = behave
    raw_root = base / "behave" / "objects"
    raw = load_dataset_object("boxmedium", raw_root, "behave")
    contho = load_dataset_object("boxmedium", roots["object_root"], "behave")
    expected = object_mesh()
    for template in (raw, contho):
        np.testing.assert_allclose(template.vertices.amin(0).numpy(), expected.bounds[0], atol=1e-6)
        np.testing.assert_allclose(template.vertices.amax(0).numpy(), expected.bounds[1], atol=1e-6)
    # The same annotations give the same contacts with either source.
    from_raw = load(roots, bodies, object_root=raw_root)
    for row, other in zip(from_raw, dataset):
        for key in ("human_contact", "object_contact", "floor_contact"):
            np.testing.assert_array_equal(row[key], other[key])
    # The dataset folder itself (holding _info.json) works as object_root too.
    direct = load_dataset_object("boxmedium", roots["object_root"] / "behave", "behave")
    np.testing.assert_allclose(direct.vertices.mean(0).numpy(), contho.vertices.mean(0).numpy(), atol=1e-6)


def test_object_model_errors(behave, tmp_path):
    _, roots, _, _ = behave
    with pytest.raises(FileNotFoundError, match=r"'chairwood' is not in CONTHO's object model index.*boxmedium"):
        load_dataset_object("chairwood", roots["object_root"], "behave")
    raw = write_raw_behave_object(tmp_path / "objects", "boxmedium")
    shutil.copy(raw / "boxmedium" / "boxmedium_f1000.ply", raw / "boxmedium" / "boxmedium_f2000.ply")
    with pytest.raises(ValueError, match="several simplified meshes"):
        load_dataset_object("boxmedium", raw, "behave")
    info = tmp_path / "models" / "_info.json"
    info.parent.mkdir()
    info.write_text(json.dumps({"0": {"path": "data/base_data/object_models/behave/gone/gone.obj"}}))
    with pytest.raises(FileNotFoundError, match="gone.obj"):
        contho_mesh_paths(info)


def test_image_root_is_separate(behave, bodies):
    _, roots, _, _ = behave
    with pytest.raises(FileNotFoundError, match="`image_root`"):
        load(roots, bodies, image_root=None)


def test_train_split_labels_are_not_kept(behave, bodies, tmp_path):
    """CONTHO's train labels index its 431-vertex downsampling, not ours: no annotated_contact column."""
    base, _, _, _ = behave
    samples = [make_sample(0, "male", "boxmedium", "side")]
    write_dataset(tmp_path, "behave", samples, bodies, split="train")
    write_contho_object_models(tmp_path, "behave", "boxmedium")
    roots = layout(tmp_path, "behave")
    dataset = load_contho_dataset(roots["root"], "behave", "train", body=bodies[0], object_root=roots["object_root"],
                                  image_root=roots["image_root"], progress=False)
    assert dataset.features == FEATURES and len(dataset) == 1


def test_rows_feed_the_crop(behave):
    dataset = behave[3]
    cropped = crop_sample(dataset[0], CropConfig.training(out_size=32), np.random.default_rng(0))
    assert to_model_input(cropped).shape == (5, 32, 32)
    assert cropped["human_mask"].any() and cropped["object_mask"].any()


def test_errors_come_when_iterating_starts(broken, bodies):
    roots, content = broken
    del content["annotations"][0]["obj_param"]["name"]
    rewrite(roots, content)
    with pytest.raises(KeyError, match="obj_param lacks the key 'name'"):
        iter_contho_samples(roots["root"], "behave", "test", bodies[0], roots["object_root"],
                            image_root=roots["image_root"])  # no next() needed


def test_gender_picks_its_body_and_a_single_body_serves_all(behave, bodies):
    _, roots, truth, _ = behave
    models, arrays = bodies
    # One body for everyone: the female sample's pelvis is then computed with the male body.
    single = load(roots, bodies, body=models["male"], pelvis_tolerance=None)
    np.testing.assert_allclose(single[0]["camera_translation"], truth[0]["camera_translation"], atol=1e-5)
    offset = pelvis_at_rest(arrays["male"], truth[1]["betas"]) - pelvis_at_rest(arrays["female"], truth[1]["betas"])
    rotation = truth[1]["R"]  # the offset arises in the annotation's frame, then turns with the camera
    np.testing.assert_allclose(single[1]["camera_translation"], truth[1]["camera_translation"] + rotation @ offset,
                               atol=1e-5)
    assert np.abs(offset).max() > 1e-3


def test_masks_and_pictures_load(behave):
    row = behave[3][0]
    assert row["image"].size == IMAGE_SIZE
    expected = {}
    for key, rect in (("human_mask", HUMAN_RECT), ("object_mask", OBJECT_RECT)):
        mask = np.zeros(IMAGE_SIZE[::-1], dtype=bool)
        mask[rect[1]: rect[3], rect[0]: rect[2]] = True
        expected[key] = mask
        np.testing.assert_array_equal(np.asarray(row[key].convert("L")) >= 128, mask)
    assert not np.array_equal(expected["human_mask"], expected["object_mask"])


def test_contacts_follow_the_geometry(behave, bodies):
    _, roots, truth, dataset = behave
    models, _ = bodies
    template = load_dataset_object("boxmedium", roots["object_root"], "behave")
    for row, expected in zip(dataset, truth):
        body = models[expected["gender"]]
        params = sample_to_params({k: np.asarray(row[k], dtype=np.float32) for k in
                                   ("pose", "betas", "object_rotation", "object_translation", "camera_translation")})
        vertices = body(params, frame="camera").vertices[0].double().numpy()
        rotation = np.asarray(row["object_rotation"], dtype=np.float64)
        translation = np.asarray(row["object_translation"], dtype=np.float64) + np.asarray(row["camera_translation"])

        # Human: downsampled vertices within 5 cm of the box (exact box distance; the loader uses the SDF grid).
        distance = box_signed_distance(vertices[body.downsample_index.numpy()], rotation, translation)
        human = np.asarray(row["human_contact"]) > 0.5
        assert len(human) == body.num_downsampled
        disagree = human != (distance < 0.05)
        assert np.all(np.abs(distance[disagree] - 0.05) < 0.005)

        # Object: keypoints within 5 cm of a body vertex.
        keypoints = template.keypoints.double().numpy() @ rotation.T + translation
        nearest = np.linalg.norm(keypoints[:, None] - vertices[None], axis=-1).min(axis=1)
        np.testing.assert_array_equal(np.asarray(row["object_contact"]) > 0.5, nearest < 0.05)

        corners = object_mesh().vertices @ rotation.T + translation
        if expected["place"] == "side":
            assert human.sum() > 0 and (nearest < 0.05).sum() > 0
            assert ((distance > 0.01) & (distance < 0.04)).sum() > 0  # contacts outside the object count too
        else:
            assert human.sum() == 0
        # Floor: lowest box corner (largest camera y) within 2 cm of the lowest point overall.
        object_low, body_low = -corners[:, 1].max(), -vertices[:, 1].max()
        assert row["floor_contact"] == float(object_low - min(object_low, body_low) < 0.02)
        if expected["place"] != "side":
            assert row["floor_contact"] == (1.0 if expected["place"] == "floor" else 0.0)


def test_intercap_layout(tmp_path, bodies):
    samples = [make_sample(3, "female", "01", "side", extrinsics="Rt"), make_sample(4, "male", "01", "floor")]
    truth = write_dataset(tmp_path, "intercap", samples, bodies)
    write_contho_object_models(tmp_path, "intercap", "01")
    roots = layout(tmp_path, "intercap")
    dataset = load_contho_dataset(roots["root"], "intercap", "test", body=bodies[0], object_root=roots["object_root"],
                                  image_root=roots["image_root"], max_samples=1, progress=False)
    assert len(dataset) == 1
    row = dataset[0]
    assert row["object_name"] == "01" and row["source"] == "intercap"  # the file's number 1 is object "01"
    np.testing.assert_allclose(row["object_translation"], truth[0]["object_translation"], atol=1e-5)
    np.testing.assert_allclose(row["pose"], truth[0]["pose"], atol=1e-5)
    human = np.asarray(row["human_mask"].convert("L")) >= 128
    assert human[HUMAN_RECT[1], HUMAN_RECT[0]] and not human[0, 0]


def test_mask_layout_paths():
    human, obj = BEHAVE_MASKS.mask_paths("/d/Date01/t0001.000/k2.color.jpg")
    assert str(human) == "/d/Date01/t0001.000/k2.person_mask.jpg"
    assert str(obj) == "/d/Date01/t0001.000/k2.obj_rend_mask.jpg"
    human, obj = INTERCAP_MASKS.mask_paths("/d/sub/Frames_Cam1/color/00012.jpg")
    assert str(human) == "/d/sub/Frames_Cam1/mask/00012_human.png"
    assert str(obj) == "/d/sub/Frames_Cam1/mask/00012_object.png"
    custom = MaskLayout(".png", ".h.png", ".o.png")
    assert str(custom.mask_paths("a/b.png")[0]) == "a/b.h.png"
    with pytest.raises(ValueError, match="does not end with"):
        BEHAVE_MASKS.mask_paths("/d/x.png")
    with pytest.raises(ValueError, match="folder named 'color'"):
        INTERCAP_MASKS.mask_paths("/d/rgb/00012.jpg")


@pytest.fixture
def broken(tmp_path, behave):
    """A fresh copy of the BEHAVE fixture to damage."""
    shutil.copytree(behave[0], tmp_path / "copy")
    roots = layout(tmp_path / "copy", "behave")
    content = json.loads((roots["root"] / "behave_test.json").read_text())
    return roots, content


def rewrite(roots, content):
    (roots["root"] / "behave_test.json").write_text(json.dumps(content))


def test_missing_annotation_file(tmp_path, bodies):
    with pytest.raises(FileNotFoundError, match="behave_train.json"):
        load_contho_dataset(tmp_path, "behave", "train", body=bodies[0], progress=False)
    with pytest.raises(ValueError, match="dataset"):
        load_contho_dataset(tmp_path, "hoi4d", "train", body=bodies[0], progress=False)


def test_missing_key_names_file_annotation_and_key(broken, bodies):
    roots, content = broken
    del content["annotations"][1]["smpl_param"]["shape"]
    rewrite(roots, content)
    with pytest.raises(KeyError) as error:
        load(roots, bodies)
    message = str(error.value)
    assert "behave_test.json" in message and "annotation id 8" in message and "'shape'" in message


def test_wrong_lengths_and_missing_camera(broken, bodies):
    roots, content = broken
    content["annotations"][2]["smpl_param"]["pose"] = [0.0] * 72
    rewrite(roots, content)
    with pytest.raises(ValueError, match=r"annotation id 9.*'smpl_param.pose' must have 156 values, got 72"):
        load(roots, bodies)
    content["annotations"][2]["smpl_param"]["pose"] = [0.0] * 156
    content["annotations"][0]["smpl_param"]["shape"] = [0.0] * 8
    rewrite(roots, content)
    with pytest.raises(ValueError, match=r"annotation id 7.*'smpl_param.shape' must have at least 10 values, got 8"):
        load(roots, bodies)
    content["annotations"][0]["smpl_param"]["shape"] = [0.0] * 10
    content["images"][1]["cam_param"]["R"] = (2 * np.eye(3)).tolist()
    rewrite(roots, content)
    with pytest.raises(ValueError, match=r"annotation id 8.*'cam_param.R' must be a rotation matrix"):
        load(roots, bodies)
    content["images"][1]["cam_param"]["R"] = np.eye(3).tolist()
    del content["images"][0]["cam_param"]["princpt"]
    rewrite(roots, content)
    with pytest.raises(KeyError, match="annotation id 7.*cam_param lacks the key 'princpt'"):
        load(roots, bodies)


def test_missing_mask_file_names_the_path(broken, bodies):
    roots, content = broken
    missing = BEHAVE_MASKS.mask_paths(roots["image_root"] / content["images"][2]["file_name"])[1]
    missing.unlink()
    with pytest.raises(FileNotFoundError) as error:
        load(roots, bodies)
    assert str(missing) in str(error.value) and "annotation id 9" in str(error.value)


def test_missing_object_mesh(broken, bodies):
    roots, _ = broken
    (roots["object_root"] / "behave" / "boxmedium" / "boxmedium.obj").unlink()
    with pytest.raises(FileNotFoundError, match="boxmedium"):
        load(roots, bodies)
