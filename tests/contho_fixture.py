"""A tiny BEHAVE / InterCap copy in CONTHO's real layout and conventions, for the loader's tests.

Every layout and convention below is taken from CONTHO's dataset code (github dqj5182/CONTHO_RELEASE at
commit 2c49444f), never from our loader; each comment cites the file and line it follows. Nothing of CONTHO's
is copied: the pictures are flat colours (BEHAVE's example pictures are not used), the meshes are boxes and
the body is a fake SMPL-H-format ellipsoid with SMPL-H's 6890 vertices.

The ground truth is written in our schema's convention (camera frame, pelvis position, hands relative to the
mean hand) and converted to the file's convention with the inverse of what CONTHO's code does to the file.
"""
import json
from pathlib import Path

import numpy as np
import torch
import trimesh
from conftest import fake_smplh_arrays_on_mesh
from PIL import Image, ImageDraw

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.params import axis_angle_to_matrix, matrix_to_axis_angle

# lib/models/templates.py:22: CONTHO's SMPL-H has 6890 vertices; its h_contacts in the test split label each
# of them (lib/utils/eval_utils.py:56 and :75 compare them with per-vertex predictions of the full mesh).
SMPLH_VERTICES = 6890
# lib/models/templates.py:87-89 and lib/dataset/base_dataset.py:84: the train split's labels index CONTHO's
# 431-vertex downsampling instead.
DOWNSAMPLED_LABELS = 431
# data/BEHAVE/dataset.py:19-24: 73 keypoints, joint 0 the pelvis.
NUM_KEYPOINTS = 73
NUM_SMPLH_BETAS = 16  # SMPL-H model files hold 16 shape components; CONTHO keeps 10 (lib/utils/aug_utils.py:201)

BOX_EXTENTS = np.array([0.4, 0.3, 0.3])
# The pose frame's origin is not the box's centre: BEHAVE's template is centred at the vertex mean of the
# simplified mesh, not at the bounding-box centre of the full mesh, so a loader centring on the wrong thing fails.
BOX_OFFSET = np.array([0.03, -0.02, 0.01])
# Where the raw (uncentred) BEHAVE mesh sits: the vertex mean of its simplified mesh.
RAW_CENTRE = np.array([0.41, 0.93, -0.27])

IMAGE_SIZE = (48, 32)  # width, height
HUMAN_RECT = (8, 8, 24, 32)  # left, top, right (excl.), bottom (excl.): 8-pixel aligned, so JPEG keeps it
OBJECT_RECT = (24, 0, 40, 16)


# ---------------------------------------------------------------------- body


def fake_smplh_arrays(seed: int) -> dict:
    """A random but valid SMPL-H-format body with 6890 vertices (a latitude-longitude ellipsoid)."""
    rng = np.random.default_rng(seed)
    rings, segments = 82, 84  # 2 poles + 82 * 84 = 6890 vertices
    theta = np.linspace(0, np.pi, rings + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.outer(np.sin(theta), np.cos(phi)), np.outer(np.cos(theta), np.ones(segments)),
                     np.outer(np.sin(theta), np.sin(phi))], axis=-1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * np.array([0.3, 0.9, 0.2])
    faces = []
    for r in range(rings - 1):
        for s in range(segments):
            a, b = 1 + r * segments + s, 1 + r * segments + (s + 1) % segments
            faces += [[a, b + segments, b], [a, a + segments, b + segments]]
    for s in range(segments):
        faces += [[0, 1 + (s + 1) % segments, 1 + s]]
        last = 1 + (rings - 1) * segments
        faces += [[len(vertices) - 1, last + s, last + (s + 1) % segments]]
    arrays = fake_smplh_arrays_on_mesh(vertices, faces, rng, num_betas=NUM_SMPLH_BETAS, posedirs_scale=0.0)
    for name in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        arrays[name] = arrays[name].astype(np.float32)
    return arrays


def write_bodies(folder: Path):
    """``({gender: BodyModel}, {gender: arrays})`` for a male and a female fake SMPL-H."""
    arrays = {"male": fake_smplh_arrays(seed=0), "female": fake_smplh_arrays(seed=1)}
    models = {}
    for gender, values in arrays.items():
        path = folder / f"SMPLH_{gender.upper()}.npz"
        np.savez(path, **values)
        models[gender] = BodyModel(model_path=str(path))
    return models, arrays


def pelvis_at_rest(arrays: dict, betas: np.ndarray) -> np.ndarray:
    """Joint 0 of the shaped body, straight from the model arrays (independent of the loader)."""
    shaped = arrays["v_template"].astype(np.float64) + arrays["shapedirs"][:, :, :10].astype(np.float64) @ betas
    return arrays["J_regressor"][0].astype(np.float64) @ shaped


# ---------------------------------------------------------------------- objects


def object_mesh() -> trimesh.Trimesh:
    """The object in the frame its poses refer to."""
    box = trimesh.creation.box(extents=BOX_EXTENTS)
    box.apply_translation(BOX_OFFSET)
    return box


def write_contho_object_models(base: Path, dataset: str, name: str) -> Path:
    """CONTHO's object models: ``data/base_data/object_models/{dataset}/_info.json`` and the meshes it names."""
    # lib/models/templates.py:197-200: the index is data/base_data/object_models/{behave,intercap}/_info.json.
    folder = base / "data" / "base_data" / "object_models" / dataset
    (folder / name).mkdir(parents=True, exist_ok=True)
    object_mesh().export(folder / name / f"{name}.obj")
    keypoints = trimesh.sample.sample_surface(object_mesh(), 64, seed=0)[0]
    # lib/models/templates.py:176-177: an entry holds 'path' (read relative to CONTHO's checkout, whose root
    # holds data/) and 'kps' (64 points); :209: the object's name is the path's file stem, not the entry's key.
    info = {"0": {"path": f"data/base_data/object_models/{dataset}/{name}/{name}.obj", "kps": keypoints.tolist()}}
    (folder / "_info.json").write_text(json.dumps(info))
    return folder


def write_raw_behave_object(folder: Path, name: str) -> Path:
    """BEHAVE's raw ``objects/NAME/NAME.obj`` (uncentred) with its simplified ``NAME_f1000.ply``.

    Not from CONTHO's code (it ships its own meshes): BEHAVE's poses apply to the template centred at the vertex
    mean of the simplified mesh. The simplified mesh here is a slightly smaller box around ``RAW_CENTRE``, so its
    vertex mean is ``RAW_CENTRE`` while the full mesh's centre is ``RAW_CENTRE + BOX_OFFSET``.
    """
    (folder / name).mkdir(parents=True, exist_ok=True)
    raw = object_mesh()
    raw.apply_translation(RAW_CENTRE)
    raw.export(folder / name / f"{name}.obj")
    simplified = trimesh.creation.box(extents=BOX_EXTENTS * 0.98)
    simplified = trimesh.Trimesh(simplified.vertices + RAW_CENTRE, simplified.faces, process=False)
    simplified.export(folder / name / f"{name}_f1000.ply")
    return folder


def box_signed_distance(points, rotation, translation):
    """Exact signed distance to the posed object box (negative inside)."""
    local = (points - translation) @ rotation - BOX_OFFSET
    q = np.abs(local) - BOX_EXTENTS / 2
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(axis=-1), 0)


# ---------------------------------------------------------------------- samples


def random_rotation(rng) -> np.ndarray:
    return axis_angle_to_matrix(torch.as_tensor(rng.normal(scale=0.8, size=3))).numpy()


def make_sample(seed, gender, object_name, place="side", extrinsics="none"):
    """Our-convention ground truth of one scene (camera frame, hands relative to the mean hand).

    ``extrinsics``: ``"none"`` (the file is in camera space), ``"Rt"`` (``cam_param`` has ``R`` and ``t``) or
    ``"t"`` (only ``t``).
    """
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=156)
    pose[:3] = [np.pi - 0.3, 0.2, 0.1]  # upright body seen from the front: a rotation of ~pi about x
    return {
        "pose": pose,
        "betas": rng.normal(scale=1.0, size=10),
        "extra_betas": rng.normal(scale=1.0, size=NUM_SMPLH_BETAS - 10),
        "camera_translation": np.array([0.1, -0.05, 2.8]) + rng.normal(scale=0.05, size=3),
        "object_pose": rng.normal(scale=0.5, size=3),
        "R": random_rotation(rng) if extrinsics == "Rt" else None,
        "t": rng.normal(scale=0.5, size=3) if extrinsics in ("Rt", "t") else None,
        "place": place,
        "gender": gender,
        "object_name": object_name,
        "contacts": rng.uniform(size=SMPLH_VERTICES) < 0.05,
    }


def place_object(sample, body):
    """Object translation (pelvis-relative) from the posed body: touching its side, on the floor, or high up."""
    params = sample_to_params({
        "pose": sample["pose"].astype(np.float32),
        "betas": sample["betas"].astype(np.float32),
        "object_rotation": np.eye(3, dtype=np.float32),
        "object_translation": np.zeros(3, dtype=np.float32),
        "camera_translation": sample["camera_translation"].astype(np.float32),
    })
    vertices = body(params).vertices[0].double().numpy()  # pelvis at the origin, camera axes
    if sample["place"] == "side":  # the box (half-sides >= 15 cm) swallows the outermost downsampled vertex
        downsampled = vertices[body.downsample_index.numpy()]
        return downsampled[np.argmax(downsampled[:, 0])] + np.array([0.1, 0.0, 0.0])
    if sample["place"] == "floor":  # camera +y is down: put the box below the lowest body point
        return np.array([0.6, vertices[:, 1].max() + 0.5, 0.0])
    return np.array([0.6, vertices[:, 1].min() - 0.3, 0.0])  # "high": above the head, far from the body


def file_values(sample, arrays, object_translation):
    """The annotation's smpl_param / obj_param / cam_param extrinsics for our-convention ground truth."""
    rotation = np.eye(3) if sample["R"] is None else sample["R"]
    shift = np.zeros(3) if sample["t"] is None else sample["t"]
    # lib/utils/aug_utils.py:209-214: with cam_param R, the camera-frame root is R @ (file root); so the file
    # holds R^T @ root. The body is otherwise unchanged (CONTHO's forward takes no trans, templates.py:126).
    root = axis_angle_to_matrix(torch.as_tensor(sample["pose"][:3])).numpy()
    pose = sample["pose"].copy()
    pose[:3] = matrix_to_axis_angle(torch.as_tensor(rotation.T @ root)).numpy()
    # lib/models/templates.py:16-17 and :126: smplx SMPL-H with use_pca=False and the default
    # flat_hand_mean=False gets the file's hand values as they are: they are relative to the mean hand, as ours.
    # The pelvis in camera space is R @ (J_0 + trans) + t, the same rigid map as the object's (below).
    trans = rotation.T @ (sample["camera_translation"] - shift) - pelvis_at_rest(arrays, sample["betas"])
    # lib/utils/aug_utils.py:251-257: object pose R @ pose, translation R @ trans, then + t (t also without R).
    object_rotation = axis_angle_to_matrix(torch.as_tensor(sample["object_pose"])).numpy()
    object_pose = matrix_to_axis_angle(torch.as_tensor(rotation.T @ object_rotation)).numpy()
    object_trans = rotation.T @ (object_translation + sample["camera_translation"] - shift)
    return pose, trans, object_pose, object_trans


def write_dataset(base, dataset, samples, bodies, split="test"):
    """Write CONTHO's layout under ``base`` (pictures, masks, annotations); return our-convention ground truth.

    Layout (CONTHO's README "Data" section and dataset code)::

        base/data/base_data/annotations/{dataset}_{split}.json   data/BEHAVE/dataset.py:15 and :47
        base/data/BEHAVE/sequences/<file_name>                   data/BEHAVE/dataset.py:14 and :55
        base/data/InterCap/sequences/<file_name>                 data/InterCap/dataset.py:14 and :55
    """
    models, arrays = bodies
    annotation_root = base / "data" / "base_data" / "annotations"
    image_root = base / "data" / ("BEHAVE" if dataset == "behave" else "InterCap") / "sequences"
    annotation_root.mkdir(parents=True, exist_ok=True)
    images, annotations, truth = [], [], []
    for index, sample in enumerate(samples):
        gender = sample["gender"]
        object_translation = place_object(sample, models[gender])
        pose, trans, object_pose, object_trans = file_values(sample, arrays[gender], object_translation)
        if dataset == "behave":
            # BEHAVE's frames: <sequence>/tNNNN.000/kC.color.jpg, masks by suffix
            # (lib/dataset/base_dataset.py:117-119).
            file_name = f"Date03_Sub03_{sample['object_name']}/t{index:04d}.000/k1.color.jpg"
            masks = (".color.jpg", ".person_mask.jpg", ".obj_rend_mask.jpg")
            mask_paths = [image_root / file_name.replace(masks[0], suffix) for suffix in masks[1:]]
            object_name = sample["object_name"]
        else:
            # InterCap's frames: .../color/N.jpg, masks .../mask/N_human.png, N_object.png (base_dataset.py:120-123).
            file_name = f"01/01/Seg_{index}/Frames_Cam1/color/{index:05d}.jpg"
            stem = f"{index:05d}"
            folder = (image_root / file_name).parent.parent / "mask"
            mask_paths = [folder / f"{stem}_human.png", folder / f"{stem}_object.png"]
            object_name = int(sample["object_name"])  # InterCap's objects are numbered; a file may give the number
        (image_root / file_name).parent.mkdir(parents=True, exist_ok=True)
        mask_paths[0].parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", IMAGE_SIZE, (40 * index, 120, 200)).save(image_root / file_name)
        for path, rect in zip(mask_paths, (HUMAN_RECT, OBJECT_RECT)):
            mask = Image.new("L", IMAGE_SIZE, 0)
            ImageDraw.Draw(mask).rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=255)
            mask.save(path, quality=95) if path.suffix == ".jpg" else mask.save(path)

        # lib/utils/funcs_utils.py:464-473: cam_param's focal is [fx, fy] and princpt [cx, cy];
        # lib/utils/aug_utils.py:209-210 and :256-257: optional R (3x3) and t (3) beside them.
        cam_param = {"focal": [500.0 + index, 505.0], "princpt": [24.0, 15.5]}
        if sample["R"] is not None:
            cam_param["R"] = sample["R"].tolist()
        if sample["t"] is not None:
            cam_param["t"] = sample["t"].tolist()
        images.append({"id": 100 + index, "file_name": file_name, "width": IMAGE_SIZE[0], "height": IMAGE_SIZE[1],
                       "cam_param": cam_param})
        # data/BEHAVE/dataset.py:64: h3d_keypoints are (73, 3) in camera space (the object's camera-space
        # translation is taken relative to joint 0, lib/utils/aug_utils.py:267 with base_dataset.py:40).
        # Joint 0 is the posed pelvis, a regressed joint that differs from J_0 + trans by millimetres.
        keypoints = sample["camera_translation"] + np.random.default_rng(index).normal(scale=0.3, size=(73, 3))
        keypoints[0] = sample["camera_translation"] + np.array([0.002, -0.001, 0.002])
        labels = sample["contacts"].astype(float) if split == "test" else np.zeros(DOWNSAMPLED_LABELS)
        annotations.append({
            "id": 7 + index,
            "image_id": 100 + index,
            "bbox": [2.0, 3.0, 40.0, 25.0 + index],
            # aug_utils.py:201: 'shape' holds as many betas as the fit (16 for SMPL-H), 'pose' 156, 'trans' 3;
            # base_dataset.py:61: 'gender'.
            "smpl_param": {"pose": pose.tolist(),
                           "shape": np.concatenate([sample["betas"], sample["extra_betas"]]).tolist(),
                           "trans": trans.tolist(), "gender": gender},
            # aug_utils.py:245: obj_param holds 'pose' (axis-angle), 'trans' and 'name'.
            "obj_param": {"pose": object_pose.tolist(), "trans": object_trans.tolist(), "name": object_name},
            "h2d_keypoints": np.full((NUM_KEYPOINTS, 2), 20.0).tolist(),  # data/BEHAVE/dataset.py:60
            "h3d_keypoints": keypoints.tolist(),
            "h_contacts": labels.tolist(),  # data/BEHAVE/dataset.py:72
            "o_contacts": [0.0] * 64,  # data/BEHAVE/dataset.py:73; 64 object points (templates.py:176)
        })
        truth.append(dict(sample, object_translation=object_translation, file_name=file_name))
    with open(annotation_root / f"{dataset}_{split}.json", "w") as handle:
        json.dump({"images": images, "annotations": annotations}, handle)
    return truth


def layout(base: Path, dataset: str) -> dict:
    """The three roots a user passes: annotations, pictures, CONTHO's object models."""
    return {
        "root": base / "data" / "base_data" / "annotations",
        "image_root": base / "data" / ("BEHAVE" if dataset == "behave" else "InterCap") / "sequences",
        "object_root": base / "data" / "base_data" / "object_models",
    }
