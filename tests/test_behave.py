"""BEHAVE / InterCap loader on a tiny dataset in CONTHO's layout that the tests write themselves."""
import json
import shutil

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image, ImageDraw

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.data.behave import (
    BEHAVE_MASKS,
    INTERCAP_MASKS,
    MaskLayout,
    iter_contho_samples,
    load_contho_dataset,
)
from scorehoi_diffusers.data.crop import CropConfig, crop_sample, to_model_input
from scorehoi_diffusers.data.schema import FEATURES, sample_to_params
from scorehoi_diffusers.params import axis_angle_to_matrix

from conftest import make_fake_smplh_arrays

BOX_EXTENTS = np.array([0.4, 0.3, 0.3])
IMAGE_SIZE = (48, 32)  # width, height
HUMAN_RECT = (8, 8, 24, 32)  # left, top, right (excl.), bottom (excl.): 8-pixel aligned, so JPEG keeps it
OBJECT_RECT = (24, 0, 40, 16)


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    """Two different fake SMPL-H bodies, to check that each annotation's gender picks its body."""
    folder = tmp_path_factory.mktemp("bodies")
    arrays = {"male": make_fake_smplh_arrays(seed=0), "female": make_fake_smplh_arrays(seed=1)}
    models = {}
    for gender, values in arrays.items():
        path = folder / f"SMPLH_{gender.upper()}.npz"
        np.savez(path, **values)
        # Dense downsampling (300 of 642 vertices), so that contacts have vertices near every threshold.
        models[gender] = BodyModel(model_path=str(path), num_downsampled_vertices=300)
    return models, arrays


def pelvis_at_rest(arrays, betas):
    """Joint 0 of the shaped body, straight from the model arrays (independent of the loader)."""
    shaped = arrays["v_template"] + arrays["shapedirs"][:, :, :10] @ betas
    return arrays["J_regressor"][0] @ shaped


def make_sample(seed, gender, object_name, place="side"):
    """Our-convention parameters of one scene; the box is placed against the body or held up high."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=156)
    pose[:3] = [np.pi - 0.3, 0.2, 0.1]  # upright body seen from the front: a rotation of ~pi about x
    betas = rng.normal(scale=1.0, size=10)
    object_pose = rng.normal(scale=0.5, size=3)
    return {
        "pose": pose,
        "betas": betas,
        "camera_translation": np.array([0.1, -0.05, 2.8]) + rng.normal(scale=0.05, size=3),
        "object_pose": object_pose,
        "place": place,
        "gender": gender,
        "object_name": object_name,
    }


def place_object(sample, body):
    """Object translation (pelvis-relative) from the posed body: touching its side, on the floor, or high up."""
    params = sample_to_params(
        {
            "pose": sample["pose"].astype(np.float32),
            "betas": sample["betas"].astype(np.float32),
            "object_rotation": np.eye(3, dtype=np.float32),
            "object_translation": np.zeros(3, dtype=np.float32),
            "camera_translation": sample["camera_translation"].astype(np.float32),
        }
    )
    vertices = body(params).vertices[0].double().numpy()  # pelvis at the origin, camera axes
    if sample["place"] == "side":  # the box (half-sides >= 15 cm) swallows the outermost downsampled vertex
        downsampled = vertices[body.downsample_index.numpy()]
        return downsampled[np.argmax(downsampled[:, 0])] + np.array([0.1, 0.0, 0.0])
    if sample["place"] == "floor":  # camera +y is down: put the box below the lowest body point
        return np.array([0.6, vertices[:, 1].max() + 0.5, 0.0])
    return np.array([0.6, vertices[:, 1].min() - 0.3, 0.0])  # "high": above the head, far from the body


def write_dataset(root, dataset, samples, bodies, flat_hand_mean=True):
    """Write pictures, masks, object meshes and `{dataset}_test.json`; return our-convention ground truth."""
    models, arrays = bodies
    root.mkdir(parents=True, exist_ok=True)
    images, annotations, truth = [], [], []
    for index, sample in enumerate(samples):
        gender = sample["gender"]
        object_translation = place_object(sample, models[gender])
        hands_mean = np.concatenate([arrays[gender]["hands_meanl"], arrays[gender]["hands_meanr"]])
        file_pose = sample["pose"].copy()
        if flat_hand_mean:
            file_pose[66:] += hands_mean  # absolute hand rotations, as a flat-hand-mean SMPL-H takes them
        trans = sample["camera_translation"] - pelvis_at_rest(arrays[gender], sample["betas"])
        object_trans = object_translation + sample["camera_translation"]
        if dataset == "behave":
            file_name = f"sequences/Date01_Sub01/t{index:04d}.000/k1.color.jpg"
            human_mask, object_mask = BEHAVE_MASKS.mask_paths(root / file_name)
            object_name = sample["object_name"]
        else:
            file_name = f"sub01/obj01/seg{index}/Frames_Cam1/color/{index:05d}.jpg"
            human_mask, object_mask = INTERCAP_MASKS.mask_paths(root / file_name)
            object_name = int(sample["object_name"])  # InterCap files may give the number
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        human_mask.parent.mkdir(parents=True, exist_ok=True)
        colour = Image.new("RGB", IMAGE_SIZE, (40 * index, 120, 200))
        colour.save(root / file_name)
        for path, rect in ((human_mask, HUMAN_RECT), (object_mask, OBJECT_RECT)):
            mask = Image.new("L", IMAGE_SIZE, 0)
            ImageDraw.Draw(mask).rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=255)
            mask.save(path, quality=95) if path.suffix == ".jpg" else mask.save(path)
        images.append(
            {
                "id": 100 + index,
                "file_name": file_name,
                "width": IMAGE_SIZE[0],
                "height": IMAGE_SIZE[1],
                "cam_param": {"focal": [500.0 + index, 505.0], "princpt": [24.0, 15.5]},
            }
        )
        annotations.append(
            {
                "id": 7 + index,
                "image_id": 100 + index,
                "bbox": [2.0, 3.0, 40.0, 25.0 + index],
                "smpl_param": {
                    "pose": file_pose.tolist(),
                    "shape": sample["betas"].tolist(),
                    "trans": trans.tolist(),
                    "gender": gender,
                },
                "obj_param": {
                    "pose": sample["object_pose"].tolist(),
                    "trans": object_trans.tolist(),
                    "name": object_name,
                },
                "h_contacts": [0.0] * 431,
                "o_contacts": [0.0] * 64,
            }
        )
        truth.append(dict(sample, object_translation=object_translation, file_name=file_name))
    with open(root / f"{dataset}_test.json", "w") as handle:
        json.dump({"images": images, "annotations": annotations}, handle)

    box = trimesh.creation.box(extents=BOX_EXTENTS)
    if dataset == "behave":
        (root / "objects" / "boxmedium").mkdir(parents=True, exist_ok=True)
        box.export(root / "objects" / "boxmedium" / "boxmedium.obj")
    else:
        (root / "objects").mkdir(parents=True, exist_ok=True)
        box.export(root / "objects" / "01.ply")
    return truth


@pytest.fixture(scope="module")
def behave(tmp_path_factory, bodies):
    root = tmp_path_factory.mktemp("behave")
    samples = [
        make_sample(0, "male", "boxmedium", "side"),
        make_sample(1, "female", "boxmedium", "floor"),
        make_sample(2, "male", "boxmedium", "high"),
    ]
    truth = write_dataset(root, "behave", samples, bodies)
    dataset = load_contho_dataset(root, "behave", "test", body=bodies[0], object_root=root / "objects", progress=False)
    return root, truth, dataset


def box_signed_distance(points, rotation, translation):
    """Exact signed distance to the posed box (negative inside)."""
    local = (points - translation) @ rotation
    q = np.abs(local) - BOX_EXTENTS / 2
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(axis=-1), 0)


def test_parameters_round_trip(behave):
    _, truth, dataset = behave
    assert dataset.features == FEATURES and len(dataset) == 3
    for row, expected in zip(dataset, truth):
        np.testing.assert_allclose(row["pose"], expected["pose"], atol=1e-5)  # incl. mean-relative hands
        np.testing.assert_allclose(row["betas"], expected["betas"], atol=1e-5)
        np.testing.assert_allclose(row["camera_translation"], expected["camera_translation"], atol=1e-5)
        np.testing.assert_allclose(row["object_translation"], expected["object_translation"], atol=1e-5)
        rotation = axis_angle_to_matrix(torch.tensor(expected["object_pose"])).numpy()
        np.testing.assert_allclose(row["object_rotation"], rotation, atol=1e-6)
        assert row["gender"] == expected["gender"] and row["object_name"] == "boxmedium"
        assert row["source"] == "behave" and row["sample_id"] == expected["file_name"]
    first = dataset[1]
    np.testing.assert_allclose(first["intrinsics"], [[501.0, 0, 24.0], [0, 505.0, 15.5], [0, 0, 1]])
    np.testing.assert_allclose(first["bbox"], [2.0, 3.0, 40.0, 26.0])


def test_rows_feed_the_crop(behave):
    _, _, dataset = behave
    cropped = crop_sample(dataset[0], CropConfig.training(out_size=32), np.random.default_rng(0))
    assert to_model_input(cropped).shape == (5, 32, 32)
    assert cropped["human_mask"].any() and cropped["object_mask"].any()


def test_errors_come_when_iterating_starts(broken, bodies):
    root, content = broken
    del content["annotations"][0]["obj_param"]["name"]
    rewrite(root, content)
    with pytest.raises(KeyError, match="obj_param lacks the key 'name'"):
        iter_contho_samples(root, "behave", "test", bodies[0], root / "objects")  # no next() needed


def test_flat_hand_mean_false_keeps_file_hands(tmp_path, bodies):
    samples = [make_sample(5, "male", "boxmedium", "side")]
    truth = write_dataset(tmp_path, "behave", samples, bodies, flat_hand_mean=False)
    row = next(iter_contho_samples(tmp_path, "behave", "test", bodies[0], tmp_path / "objects", flat_hand_mean=False))
    np.testing.assert_allclose(row["pose"], truth[0]["pose"], atol=1e-5)
    # Read as flat-hand-mean instead, the hands would be shifted by the mean hand: the option matters.
    shifted = next(iter_contho_samples(tmp_path, "behave", "test", bodies[0], tmp_path / "objects"))
    hands_mean = np.concatenate([bodies[1]["male"]["hands_meanl"], bodies[1]["male"]["hands_meanr"]])
    np.testing.assert_allclose(shifted["pose"][66:], truth[0]["pose"][66:] - hands_mean, atol=1e-5)
    assert isinstance(row["image"], str) and row["image"].endswith(".color.jpg")


def test_gender_picks_its_body_and_a_single_body_serves_all(behave, bodies):
    root, truth, dataset = behave
    # One body for everyone: the female sample's pelvis is then computed with the male body.
    single = load_contho_dataset(
        root, "behave", "test", body=bodies[0]["male"], object_root=root / "objects", progress=False
    )
    np.testing.assert_allclose(single[0]["camera_translation"], truth[0]["camera_translation"], atol=1e-5)
    female_pelvis = np.asarray(single[1]["camera_translation"])
    arrays = bodies[1]
    offset = pelvis_at_rest(arrays["male"], truth[1]["betas"]) - pelvis_at_rest(arrays["female"], truth[1]["betas"])
    np.testing.assert_allclose(female_pelvis, truth[1]["camera_translation"] + offset, atol=1e-5)
    assert np.abs(offset).max() > 1e-3


def test_masks_and_pictures_load(behave):
    _, _, dataset = behave
    row = dataset[0]
    assert row["image"].size == IMAGE_SIZE
    expected = {}
    for key, rect in (("human_mask", HUMAN_RECT), ("object_mask", OBJECT_RECT)):
        mask = np.zeros(IMAGE_SIZE[::-1], dtype=bool)
        mask[rect[1] : rect[3], rect[0] : rect[2]] = True
        expected[key] = mask
        loaded = np.asarray(row[key].convert("L")) >= 128
        np.testing.assert_array_equal(loaded, mask)
    assert not np.array_equal(expected["human_mask"], expected["object_mask"])


def test_contacts_follow_the_geometry(behave, bodies):
    _, truth, dataset = behave
    models, _ = bodies
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
        from scorehoi_diffusers.objects import load_object

        template = load_object("boxmedium", object_root=behave[0] / "objects")
        keypoints = template.keypoints.double().numpy() @ rotation.T + translation
        nearest = np.linalg.norm(keypoints[:, None] - vertices[None], axis=-1).min(axis=1)
        np.testing.assert_array_equal(np.asarray(row["object_contact"]) > 0.5, nearest < 0.05)

        corners = trimesh.creation.box(extents=BOX_EXTENTS).vertices @ rotation.T + translation
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
    samples = [make_sample(3, "female", "01", "side"), make_sample(4, "male", "01", "floor")]
    truth = write_dataset(tmp_path, "intercap", samples, bodies)
    dataset = load_contho_dataset(
        tmp_path, "intercap", "test", body=bodies[0], object_root=tmp_path / "objects", max_samples=1, progress=False
    )
    assert len(dataset) == 1
    row = dataset[0]
    assert row["object_name"] == "01" and row["source"] == "intercap"
    np.testing.assert_allclose(row["object_translation"], truth[0]["object_translation"], atol=1e-5)
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
    root = tmp_path / "copy"
    shutil.copytree(behave[0], root)
    with open(root / "behave_test.json") as handle:
        content = json.load(handle)
    return root, content


def rewrite(root, content):
    with open(root / "behave_test.json", "w") as handle:
        json.dump(content, handle)


def test_missing_annotation_file(tmp_path, bodies):
    with pytest.raises(FileNotFoundError, match="behave_train.json"):
        load_contho_dataset(tmp_path, "behave", "train", body=bodies[0], progress=False)
    with pytest.raises(ValueError, match="dataset"):
        load_contho_dataset(tmp_path, "hoi4d", "train", body=bodies[0], progress=False)


def test_missing_key_names_file_annotation_and_key(broken, bodies):
    root, content = broken
    del content["annotations"][1]["smpl_param"]["shape"]
    rewrite(root, content)
    with pytest.raises(KeyError) as error:
        load_contho_dataset(root, "behave", "test", body=bodies[0], object_root=root / "objects", progress=False)
    message = str(error.value)
    assert "behave_test.json" in message and "annotation id 8" in message and "'shape'" in message


def test_wrong_length_and_missing_camera(broken, bodies):
    root, content = broken
    content["annotations"][2]["smpl_param"]["pose"] = [0.0] * 72
    rewrite(root, content)
    with pytest.raises(ValueError, match=r"annotation id 9.*'smpl_param.pose' must have 156 values, got 72"):
        load_contho_dataset(root, "behave", "test", body=bodies[0], object_root=root / "objects", progress=False)
    content["annotations"][2]["smpl_param"]["pose"] = [0.0] * 156
    del content["images"][0]["cam_param"]["princpt"]
    rewrite(root, content)
    with pytest.raises(KeyError, match="annotation id 7.*cam_param lacks the key 'princpt'"):
        load_contho_dataset(root, "behave", "test", body=bodies[0], object_root=root / "objects", progress=False)


def test_missing_mask_file_names_the_path(broken, bodies):
    root, content = broken
    missing = BEHAVE_MASKS.mask_paths(root / content["images"][2]["file_name"])[1]
    missing.unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_contho_dataset(root, "behave", "test", body=bodies[0], object_root=root / "objects", progress=False)
    assert str(missing) in str(error.value) and "annotation id 9" in str(error.value)


def test_missing_object_mesh(broken, bodies):
    root, _ = broken
    shutil.rmtree(root / "objects" / "boxmedium")
    with pytest.raises(FileNotFoundError, match="boxmedium"):
        load_contho_dataset(root, "behave", "test", body=bodies[0], object_root=root / "objects", progress=False)
