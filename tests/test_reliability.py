"""Reliability: bad inputs give clear errors, runs are reproducible across processes, nothing unpickles,
the x0 codec stays finite, and a NaN in one sample does not leak into the others."""
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import roma
import torch
import trimesh
from conftest import masks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pipeline import holding_params, small_denoiser

from scorehoi_diffusers import GuidedDDIMScheduler, ScoreHOIDenoiser, ScoreHOIPipeline
from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE, main
from scorehoi_diffusers.params import RIGHT_HAND_SLICE, X0_DIM, HOIParamCodec, HOIParams
from scorehoi_diffusers.pipelines.pipeline_scorehoi import MAX_STRIDE, MAX_T_START

REPO = Path(__file__).resolve().parents[1]
BAG = DEFAULT_EXAMPLES / "synthetic_bag"


# ------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def small_pipe():
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), BodyModel())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def shipped_pipe():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small bad files shared by the cases."""
    d = tmp_path_factory.mktemp("bad_files")
    (d / "nofaces.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (d / "degenerate.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    box = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    trimesh.Trimesh(box.vertices, box.faces[:-2]).export(d / "open_box.ply")  # two triangles missing: a hole
    (d / "model.pkl").write_bytes(b"not read")
    np.savez(d / "incomplete.npz", v_template=np.zeros((4, 3)))
    (d / "garbage.npz").write_bytes(b"this is not a zip archive")
    (d / "garbage.png").write_bytes(b"this is not a picture")
    return d


def picture(size=(64, 64), channels=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = size + ((channels,) if channels else ())
    return rng.integers(0, 255, shape, dtype=np.uint8)


def image_call(env, **overrides):
    human, obj = masks()
    kwargs = dict(image=picture(), human_mask=human, object_mask=obj, object="box", num_cycles=0)
    kwargs.update(overrides)
    return env.shipped(**kwargs)


def params_with(**fields):
    params = holding_params(1)
    values = {name: getattr(params, name) for name in HOIParams._TRAILING_SHAPES}
    values.update(fields)
    return HOIParams(**values)


def nan_params(field, sample, value=float("nan")):
    params = holding_params(2)
    getattr(params, field)[sample].view(-1)[0] = value
    return params


def copied_pipeline(tmp_path, edit):
    folder = tmp_path / "pipe"
    shutil.copytree(DEFAULT_PIPELINE, folder)
    edit(folder)
    return folder


def truncate_denoiser_weights(folder):
    path = folder / "denoiser" / "diffusion_pytorch_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def pickle_weights(component):
    """An edit that replaces a component's safetensors file with the same weights pickled, as older diffusers
    saved them."""

    def edit(folder):
        from safetensors.torch import load_file

        path = folder / component / "diffusion_pytorch_model.safetensors"
        torch.save(load_file(path), path.with_suffix(".bin"))  # writes a pickle; the test checks it is never read
        path.unlink()

    return edit


pickle_denoiser_weights = pickle_weights("denoiser")


def edit_denoiser_config(**changes):
    return edit_config("denoiser/config.json", **changes)


def edit_config(relative_path, **changes):
    def edit(folder):
        path = folder / relative_path
        config = json.loads(path.read_text())
        config.update(changes)
        path.write_text(json.dumps(config))
    return edit


# ------------------------------------------------------------------------------------------------------------
# 1. Bad inputs: (id, call(env), exception type, message fragment)

ERROR_CASES = [
    # HOIParams construction
    ("params-betas-shape", lambda e: params_with(betas=torch.zeros(1, 9)), ValueError, "HOIParams.betas"),
    ("params-orient-shape", lambda e: params_with(global_orient=torch.zeros(1, 3)), ValueError,
     "HOIParams.global_orient"),
    ("params-body-pose-numpy", lambda e: params_with(body_pose=np.zeros((1, 21, 3, 3))), TypeError,
     "HOIParams.body_pose"),
    ("params-hand-joints", lambda e: params_with(left_hand_pose=torch.zeros(1, 14, 3, 3)), ValueError,
     "HOIParams.left_hand_pose"),
    ("params-batch-mismatch", lambda e: params_with(object_translation=torch.zeros(2, 3)), ValueError,
     "HOIParams.object_translation"),
    ("params-camera-list", lambda e: params_with(camera_translation=[[0.0, 0.0, 3.0]]), TypeError,
     "HOIParams.camera_translation"),
    # pipeline call with initial_params
    ("initial-params-dict", lambda e: e.small(initial_params={"betas": 0}, object="box"), TypeError,
     "initial_params"),
    ("initial-params-nan", lambda e: e.small(initial_params=nan_params("betas", 1), object="box", num_cycles=1),
     ValueError, "re:initial_params.*samples \\[1\\]"),
    ("initial-params-inf", lambda e: e.small(initial_params=nan_params("object_translation", 0, float("inf")),
                                             object="box", num_cycles=1), ValueError,
     "`initial_params` holds NaN or Inf values in samples [0]"),
    ("output-type", lambda e: e.small(initial_params=holding_params(1), object="box", output_type="pil"),
     ValueError, "output_type"),
    ("num-cycles-negative", lambda e: e.small(initial_params=holding_params(1), object="box", num_cycles=-1),
     ValueError, "num_cycles"),
    ("num-cycles-float", lambda e: e.small(initial_params=holding_params(1), object="box", num_cycles=1.5),
     ValueError, "num_cycles"),
    ("callback-tensor-name", lambda e: e.small(initial_params=holding_params(1), object="box",
                                               callback_on_step_end_tensor_inputs=["noise_pred"]),
     ValueError, "noise_pred"),
    ("object-missing", lambda e: e.small(initial_params=holding_params(1)), ValueError, "`object` is required"),
    ("object-unknown-name", lambda e: e.small(initial_params=holding_params(1), object="spaceship"), ValueError,
     "spaceship"),
    ("object-dataset-name-without-root", lambda e: e.small(initial_params=holding_params(1), object="backpack"),
     ValueError, "object_root"),
    ("object-mesh-missing", lambda e: e.small(initial_params=holding_params(1), object=str(e.files / "nope.obj")),
     FileNotFoundError, "nope.obj"),
    ("object-mesh-no-faces", lambda e: e.small(initial_params=holding_params(1),
                                               object=str(e.files / "nofaces.obj")), ValueError, "no faces"),
    ("object-mesh-degenerate", lambda e: e.small(initial_params=holding_params(1),
                                                 object=str(e.files / "degenerate.obj")), ValueError, "degenerate"),
    ("object-root-not-folder", lambda e: e.small(initial_params=holding_params(1), object="stool",
                                                 object_root=str(e.files / "nope")), FileNotFoundError,
     "object_root"),
    # pictures (shipped pipeline, which has a regressor)
    ("image-nan", lambda e: image_call(e, image=np.full((64, 64, 3), np.nan, np.float32)), ValueError,
     "`image[0]` contains NaN"),
    ("image-one-pixel", lambda e: image_call(e, image=np.zeros((1, 1, 3), np.uint8)), ValueError, "image[0]"),
    ("image-wrong-type", lambda e: image_call(e, image="picture.png"), TypeError, "image[0]"),
    ("image-five-channels", lambda e: image_call(e, image=np.zeros((64, 64, 5), np.uint8)), ValueError,
     "image[0]"),
    ("human-mask-empty", lambda e: image_call(e, human_mask=np.zeros((64, 64), bool)), ValueError,
     "`human_mask` is empty"),
    ("object-mask-empty", lambda e: image_call(e, object_mask=np.zeros((64, 64), bool)), ValueError,
     "`object_mask` is empty"),
    ("human-mask-nan", lambda e: image_call(e, human_mask=np.full((64, 64), np.nan)), ValueError, "human_mask"),
    ("mask-size-mismatch", lambda e: image_call(e, human_mask=np.ones((32, 64), bool)), ValueError,
     "`human_mask` is 64x32 but the image is 64x64"),
    ("mask-count-mismatch", lambda e: image_call(e, image=[picture(), picture(seed=1)]), ValueError,
     "human_mask"),
    ("bbox-outside", lambda e: image_call(e, bbox=[100, 100, 10, 10]), ValueError, "outside the 64x64 image"),
    ("bbox-zero-width", lambda e: image_call(e, bbox=[10, 10, 0, 20]), ValueError, "positive width"),
    ("bbox-nan", lambda e: image_call(e, bbox=[10, np.nan, 10, 20]), ValueError, "bbox[0]"),
    ("bbox-wrong-count", lambda e: image_call(e, image=[picture(), picture(seed=1)], human_mask=[masks()[0]] * 2,
                                              object_mask=[masks()[1]] * 2,
                                              bbox=[[0, 0, 10, 10]] * 3), ValueError, "`bbox` has 3 boxes"),
    ("bbox-leaves-out-person", lambda e: image_call(e, bbox=[56, 0, 8, 8]), ValueError,
     "leaves the person (`human_mask`) out of the crop"),
    ("human-mask-three-pixels",
     lambda e: image_call(e, human_mask=np.pad(np.ones((1, 3), bool), ((30, 33), (30, 31)))), ValueError,
     "`human_mask` marks only 3 pixels"),
    ("intrinsics-implausible-focal", lambda e: image_call(e, intrinsics=np.diag([1e9, 1e9, 1.0])), ValueError,
     "needs a focal length between"),
    ("intrinsics-negative-focal", lambda e: image_call(e, intrinsics=np.diag([-70.0, 70.0, 1.0])), ValueError,
     "positive focal"),
    ("intrinsics-wrong-shape", lambda e: image_call(e, intrinsics=np.eye(4)[None]), ValueError,
     "(3, 3) pinhole"),
    ("intrinsics-wrong-count", lambda e: image_call(e, intrinsics=np.stack([np.eye(3)] * 2)), ValueError,
     "`intrinsics` has 2 matrices"),
    ("no-regressor-for-image", lambda e: e.small(image=picture(), human_mask=masks()[0], object_mask=masks()[1],
                                                 object="box"), ValueError, "no regressor"),
    # body model files
    ("smplh-missing", lambda e: BodyModel(model_path=e.files / "absent.npz"), FileNotFoundError, "absent.npz"),
    ("smplh-pkl", lambda e: BodyModel(model_path=e.files / "model.pkl"), ValueError, "pickle"),
    ("smplh-npz-missing-fields", lambda e: BodyModel(model_path=e.files / "incomplete.npz"), ValueError,
     "lacks the fields"),
    ("smplh-npz-garbage", lambda e: BodyModel(model_path=e.files / "garbage.npz"), ValueError, "Could not read"),
    # codec
    ("codec-decode-width", lambda e: HOIParamCodec.default().decode(torch.zeros(2, X0_DIM - 1)), ValueError,
     "`x0` must have shape (B, 331)"),
    ("codec-decode-numpy", lambda e: HOIParamCodec.default().decode(np.zeros((1, X0_DIM))), TypeError, "x0"),
    ("codec-encode-not-params", lambda e: HOIParamCodec.default().encode(torch.zeros(1, X0_DIM)), TypeError,
     "params"),
    ("codec-betas-stats", lambda e: HOIParamCodec([0.0] * 9, [1.0] * 9), ValueError, "betas_min"),
    ("codec-betas-order", lambda e: HOIParamCodec([1.0] * 10, [0.0] * 10), ValueError, "betas_max"),
    # saved pipeline folders
    ("from-pretrained-no-index", lambda e: ScoreHOIPipeline.from_pretrained(e.tmp), OSError, "model_index.json"),
    # A truncated safetensors file: diffusers raises OSError("Unable to load weights from checkpoint file ...").
    ("from-pretrained-truncated-weights",
     lambda e: ScoreHOIPipeline.from_pretrained(copied_pipeline(e.tmp, truncate_denoiser_weights)), OSError,
     "diffusion_pytorch_model.safetensors"),
    ("from-pretrained-config-wrong-type",
     lambda e: ScoreHOIPipeline.from_pretrained(copied_pipeline(e.tmp, edit_denoiser_config(hidden_size="big"))),
     TypeError, "hidden_size"),
    ("from-pretrained-config-wrong-size",
     lambda e: ScoreHOIPipeline.from_pretrained(copied_pipeline(e.tmp, edit_denoiser_config(hidden_size=64))),
     ValueError, "expected shape"),
    # A folder from a newer version: a field this version cannot build is an error, not a silently ignored log line.
    ("from-pretrained-config-newer-model-field",
     lambda e: ScoreHOIPipeline.from_pretrained(copied_pipeline(e.tmp, edit_denoiser_config(attention_window=16))),
     ValueError, "re:ScoreHOIDenoiser config .*denoiser.* does not know: \\['attention_window'\\]"),
    ("from-pretrained-config-newer-scheduler-field",
     lambda e: ScoreHOIPipeline.from_pretrained(
         copied_pipeline(e.tmp, edit_config("scheduler/scheduler_config.json", guidance_schedule="cosine"))),
     ValueError, "guidance_schedule"),
    # Safetensors only: pickled weights are refused by name before anything reads them.
    ("from-pretrained-pickled-weights",
     lambda e: ScoreHOIPipeline.from_pretrained(copied_pipeline(e.tmp, pickle_denoiser_weights)), ValueError,
     "diffusion_pytorch_model.bin"),
    ("model-from-pretrained-pickled-weights",
     lambda e: ScoreHOIDenoiser.from_pretrained(copied_pipeline(e.tmp, pickle_denoiser_weights) / "denoiser"),
     ValueError, "diffusion_pytorch_model.bin"),
    ("body-model-from-pretrained-pickled-weights",
     lambda e: BodyModel.from_pretrained(copied_pipeline(e.tmp, pickle_weights("body_model")) / "body_model"),
     ValueError, "diffusion_pytorch_model.bin"),
    ("pipeline-pickled-body-model-weights",
     lambda e: ScoreHOIPipeline.from_pretrained(copied_pipeline(e.tmp, pickle_weights("body_model"))),
     ValueError, "diffusion_pytorch_model.bin"),
    ("model-from-pretrained-subfolder-pickled-weights",
     lambda e: ScoreHOIDenoiser.from_pretrained(copied_pipeline(e.tmp, pickle_denoiser_weights), subfolder="denoiser"),
     ValueError, "diffusion_pytorch_model.bin"),
    ("from-pretrained-use-safetensors-false",
     lambda e: ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE, use_safetensors=False), ValueError,
     "use_safetensors"),
    ("from-pretrained-other-pipeline-class",
     lambda e: ScoreHOIPipeline.from_pretrained(
         copied_pipeline(e.tmp, edit_config("model_index.json", _class_name="StableDiffusionPipeline"))),
     ValueError, "re:`_class_name`.*'StableDiffusionPipeline'"),
    # pipeline call arguments
    ("generator-int", lambda e: e.small(initial_params=holding_params(1), object="box", generator=42), TypeError,
     "`generator` must be a torch.Generator"),
    ("generator-list-length", lambda e: e.small(initial_params=holding_params(1), object="box", num_cycles=1,
                                                generator=[torch.Generator(), torch.Generator()]), ValueError,
     "`generator` is a list of 2 generators for 1 samples"),
    ("guidance-config-unknown-key", lambda e: e.small(initial_params=holding_params(1), object="box",
                                                      guidance_config={"scale": 1.0, "strength": 2.0}),
     ValueError, "re:`guidance_config` has unknown keys \\['strength'\\]"),
    ("from-pretrained-unknown-guidance-field",
     lambda e: ScoreHOIPipeline.from_pretrained(
         copied_pipeline(e.tmp, edit_config("model_index.json", guidance={"scale": 1.0, "strength": 2.0}))),
     ValueError, "re:`guidance` \\(model_index.json\\) has unknown keys \\['strength'\\]"),
    ("guidance-config-bad-value", lambda e: e.small(initial_params=holding_params(1), object="box",
                                                    guidance_config={"contact": -1.0}), ValueError,
     "GuidanceConfig.contact"),
    ("guidance-config-wrong-type", lambda e: e.small(initial_params=holding_params(1), object="box",
                                                     guidance_config=[1.0]), TypeError, "guidance_config"),
    ("guidance-scale-inf", lambda e: e.small(initial_params=holding_params(1), object="box",
                                             guidance_scale=float("inf")), ValueError, "guidance_scale"),
    ("guidance-scale-nan", lambda e: e.small(initial_params=holding_params(1), object="box",
                                             guidance_scale=float("nan")), ValueError, "guidance_scale"),
    ("guidance-scale-negative", lambda e: e.small(initial_params=holding_params(1), object="box",
                                                  guidance_scale=-1.0), ValueError, "guidance_scale"),
    ("eta-above-one", lambda e: e.small(initial_params=holding_params(1), object="box", eta=1.5), ValueError,
     "`eta` must be a number in [0, 1]"),
    ("eta-nan", lambda e: e.small(initial_params=holding_params(1), object="box", eta=float("nan")), ValueError,
     "`eta`"),
    ("t-start-too-deep", lambda e: e.small(initial_params=holding_params(1), object="box", t_start=MAX_T_START + 5),
     ValueError, f"in [5, {MAX_T_START}]"),
    ("t-start-not-multiple", lambda e: e.small(initial_params=holding_params(1), object="box", t_start=52),
     ValueError, "`t_start` must be a multiple of `stride`=5"),
    ("t-start-float", lambda e: e.small(initial_params=holding_params(1), object="box", t_start=50.0),
     ValueError, "`t_start`"),
    ("stride-zero", lambda e: e.small(initial_params=holding_params(1), object="box", stride=0), ValueError,
     "`stride` must be an integer in [1,"),
    ("stride-not-divisor", lambda e: e.small(initial_params=holding_params(1), object="box", t_start=49, stride=7),
     ValueError, "dividing 1000"),
    ("stride-too-large", lambda e: e.small(initial_params=holding_params(1), object="box", t_start=100, stride=25),
     ValueError, f"`stride` must be an integer in [1, {MAX_STRIDE}]"),
    ("num-cycles-bool", lambda e: e.small(initial_params=holding_params(1), object="box", num_cycles=True),
     ValueError, "num_cycles"),
    ("contacts-wrong-type", lambda e: e.small(initial_params=holding_params(1), object="box", contacts={}),
     TypeError, "`contacts` must be Contacts"),
    ("contact-estimator-not-callable", lambda e: e.small(initial_params=holding_params(1), object="box",
                                                         contact_estimator="proximity"), TypeError,
     "contact_estimator"),
    ("callback-returns-wrong-shape", lambda e: e.small(
        initial_params=holding_params(1), object="box", num_cycles=1,
        callback_on_step_end=lambda pipe, i, t, kwargs: {"latents": kwargs["latents"][:, :10]}),
     ValueError, "`callback_on_step_end` returned `latents` (1, 10)"),
    ("bbox-ragged", lambda e: image_call(e, image=[picture(), picture(seed=1)], human_mask=[masks()[0]] * 2,
                                         object_mask=[masks()[1]] * 2, bbox=[[0, 0, 10, 10], [0, 0, 10]]),
     ValueError, "`bbox[1]` must be four numbers"),
    ("bbox-without-image", lambda e: e.small(initial_params=holding_params(1), object="box", bbox=[0, 0, 10, 10]),
     ValueError, "`bbox` only applies to `image`"),
    ("image-empty-list", lambda e: image_call(e, image=[], human_mask=[], object_mask=[]), ValueError,
     "`image` is an empty list"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_bad_input_is_a_clear_error(call, error, message, small_pipe, shipped_pipe, files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = SimpleNamespace(small=small_pipe, shipped=shipped_pipe, files=files, tmp=tmp_path)
    pattern = message[3:] if message.startswith("re:") else re.escape(message)
    monkeypatch.setattr(torch, "load", _refuse_unpickling)
    with pytest.raises(error, match=pattern) as raised:
        call(env)
    assert "\n" not in str(raised.value), "the error must be one line"


def _refuse_unpickling(*args, **kwargs):
    raise AssertionError("torch.load (unpickling) was called")


# Documented graceful behaviour: a warning and a finite result.
GRACEFUL_CASES = [
    ("mask-all-ones", lambda e: image_call(e, object_mask=np.ones((64, 64), bool)), "covers the whole image"),
    ("image-rgba", lambda e: image_call(e, image=picture(channels=4)), "alpha channel"),
    ("image-rgba-pil", lambda e: image_call(e, image=__import__("PIL.Image").Image.fromarray(picture(channels=4))),
     "alpha channel"),
    ("image-grayscale", lambda e: image_call(e, image=picture(channels=0)), None),
    ("image-float-01", lambda e: image_call(e, image=picture().astype(np.float32) / 255.0), None),
    ("image-tensor-chw", lambda e: image_call(e, image=torch.from_numpy(picture()).permute(2, 0, 1)), None),
    ("object-mesh-not-watertight", lambda e: e.small(initial_params=holding_params(1),
                                                     object=str(e.files / "open_box.ply"), num_cycles=1),
     "not watertight"),
]


@pytest.mark.parametrize("call, warning", [c[1:] for c in GRACEFUL_CASES], ids=[c[0] for c in GRACEFUL_CASES])
def test_graceful_inputs_warn_and_give_finite_results(call, warning, small_pipe, shipped_pipe, files, tmp_path,
                                                      caplog):
    env = SimpleNamespace(small=small_pipe, shipped=shipped_pipe, files=files, tmp=tmp_path)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("WARNING"):
        warnings.simplefilter("always")
        out = call(env)
    # Warnings reach the user either as Python warnings or through the library's (diffusers) logger.
    messages = [str(w.message) for w in caught] + [record.getMessage() for record in caplog.records]
    if warning is not None:
        assert any(warning in m for m in messages), messages
    assert torch.isfinite(out.body_vertices).all() and torch.isfinite(out.object_vertices).all()


def _bag_args(**overrides):
    args = {"image": str(BAG / "image.png"), "--human-mask": str(BAG / "human_mask.png"),
            "--object-mask": str(BAG / "object_mask.png"), "--object": "bag", "--cycles": "0"}
    args.update(overrides)
    image = args.pop("image")
    return ["reconstruct", image] + [x for kv in args.items() for x in kv]


CLI_CASES = [
    ("missing-image", _bag_args(image="missing.png"), "no file at"),
    ("missing-human-mask", _bag_args(**{"--human-mask": "missing_mask.png"}), "--human-mask"),
    ("unreadable-image", "garbage", "not a readable picture"),
    ("unknown-object", _bag_args(**{"--object": "spaceship"}), "spaceship"),
    ("missing-mesh-file", _bag_args(**{"--object": "nowhere/thing.obj"}), "thing.obj"),
    ("no-pipeline-folder", _bag_args(**{"--pipeline": "/nonexistent/pipe"}), "No pipeline folder"),
    ("smplh-pkl", "pkl", "pickle"),
    ("negative-focal", _bag_args(**{"--focal": "-5"}), "--focal"),
    ("nan-focal", _bag_args(**{"--focal": "nan"}), "--focal"),
    ("huge-focal", _bag_args(**{"--focal": "1e9"}), "--focal"),
    ("bbox-leaves-out-person", _bag_args(**{"--bbox": "0"}) + ["0", "10", "10"], "--bbox"),
    ("bbox-outside", _bag_args(**{"--bbox": "1000"}) + ["1000", "5", "5"], "outside"),
    ("demo-no-examples", ["demo", "--examples", "/nonexistent/examples", "--cycles", "0"], "No examples"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_user_errors_exit_2_with_one_line(args, message, files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if args == "garbage":
        args = _bag_args(image=str(files / "garbage.png"))
    elif args == "pkl":
        args = _bag_args(**{"--body-model": str(files / "model.pkl")})
    args = args + ["--out", str(tmp_path)] if args[0] == "reconstruct" or args[0] == "demo" else args
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    # Inputs are checked before the pipeline loads, so not even its loading progress bar shows: one line, the error.
    lines = [line for line in re.split(r"[\r\n]+", err) if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("scorehoi "), err


# ------------------------------------------------------------------------------------------------------------
# 2. Determinism across processes

DETERMINISM_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from pathlib import Path
    from scorehoi_diffusers import ScoreHOIPipeline
    from scorehoi_diffusers.cli import DEFAULT_PIPELINE, load_example

    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    item = load_example(Path(sys.argv[1]))
    out = pipe(image=item["image"], human_mask=item["human_mask"], object_mask=item["object_mask"],
               object=item["object"], intrinsics=item["intrinsics"], num_cycles=1, eta=0.5,
               generator=torch.Generator().manual_seed(1234))
    np.save(sys.argv[2], out.body_vertices.numpy())
    np.save(sys.argv[3], out.object_vertices.numpy())
""")


def test_shipped_pipeline_is_bit_identical_across_processes(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    outputs = []
    for run in range(2):
        body, obj = tmp_path / f"body{run}.npy", tmp_path / f"object{run}.npy"
        result = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT, str(BAG), str(body), str(obj)],
                                capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append((np.load(body), np.load(obj)))
    assert np.isfinite(outputs[0][0]).all()
    assert outputs[0][0].tobytes() == outputs[1][0].tobytes()
    assert outputs[0][1].tobytes() == outputs[1][1].tobytes()


# ------------------------------------------------------------------------------------------------------------
# 3. Nothing of ours unpickles

UNSAFE_LOADS = [
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"\bcPickle\b|\b_pickle\b"), "cPickle"),
    (re.compile(r"\b(joblib|dill|cloudpickle)\.loads?\("), "joblib/dill/cloudpickle load"),
    (re.compile(r"^\s*(import|from)\s+(joblib|dill|cloudpickle)\b", re.M), "joblib/dill/cloudpickle import"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"pd\.read_pickle\("), "pandas.read_pickle"),
]


def _calls(source: str, name: str):
    """The argument text of every ``name(`` call, balanced parentheses."""
    for match in re.finditer(re.escape(name) + r"\(", source):
        depth, i = 1, match.end()
        while depth and i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        yield source.count("\n", 0, match.start()) + 1, source[match.end():i - 1]


def test_no_source_file_unpickles():
    sources = sorted((REPO / "scorehoi_diffusers").rglob("*.py")) + sorted((REPO / "training").glob("*.py"))
    assert len(sources) > 10
    found = []
    for path in sources:
        source = path.read_text()
        rel = path.relative_to(REPO)
        for pattern, what in UNSAFE_LOADS:
            for match in pattern.finditer(source):
                found.append(f"{rel}:{source.count(chr(10), 0, match.start()) + 1}: {what}")
        for line, args in _calls(source, "torch.load"):
            if not re.search(r"weights_only\s*=\s*True", args):
                found.append(f"{rel}:{line}: torch.load without weights_only=True")
        for line, args in list(_calls(source, "np.load")) + list(_calls(source, "numpy.load")):
            if "allow_pickle" in args and not re.search(r"allow_pickle\s*=\s*False", args):
                found.append(f"{rel}:{line}: np.load with allow_pickle not False")
    assert not found, "\n".join(found)


# ------------------------------------------------------------------------------------------------------------
# 4. The x0 codec stays finite and is idempotent after one round

CODEC = HOIParamCodec.default()
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=32)


def _rotations(params: HOIParams):
    return [params.global_orient, params.body_pose, params.left_hand_pose, params.right_hand_pose,
            params.object_rotation]


def _check_round_trip(x0: torch.Tensor, rotation_atol: float = 1e-4):
    decoded = CODEC.decode(x0)
    for field in HOIParams._TRAILING_SHAPES:
        assert torch.isfinite(getattr(decoded, field)).all(), field
    encoded = CODEC.encode(decoded)
    assert torch.isfinite(encoded).all()
    again = CODEC.decode(encoded)
    for a, b in zip(_rotations(again), _rotations(decoded)):
        torch.testing.assert_close(a, b, atol=rotation_atol, rtol=0)
    # Betas and translation pass through linearly.
    torch.testing.assert_close(again.object_translation, decoded.object_translation)
    torch.testing.assert_close(again.betas, decoded.betas, atol=1e-3, rtol=1e-5)
    # Rotations are proper.
    for rotation in _rotations(decoded):
        eye = torch.eye(3).expand_as(rotation)
        torch.testing.assert_close(rotation.transpose(-1, -2) @ rotation, eye, atol=rotation_atol, rtol=0)
        torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(rotation.shape[:-2]), atol=rotation_atol,
                                   rtol=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(finite, min_size=X0_DIM, max_size=X0_DIM), st.floats(min_value=1e-3, max_value=1e3))
def test_codec_wide_finite_inputs_round_trip(values, scale):
    x0 = torch.tensor(values, dtype=torch.float32)[None]
    x0[:, :318] = x0[:, :318].clamp(-1e3, 1e3)
    # A zero or (nearly) parallel column pair is the one undefined input (test_codec_exactly_degenerate_6d_...);
    # repair those blocks so every 6D block is well conditioned (sine of the column angle >= 0.1).
    columns = x0[:, :318].reshape(-1, 3, 2).double()
    a, b = columns[..., 0], columns[..., 1]
    sine = torch.linalg.cross(a, b).norm(dim=-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30)
    bad = (sine < 0.1) | (a.norm(dim=-1) < 1e-3) | (b.norm(dim=-1) < 1e-3)
    fixed = torch.tensor([[scale, 0.0], [0.0, scale], [0.0, 0.0]], dtype=torch.float64)
    columns = torch.where(bad[:, None, None], fixed, columns)
    x0[:, :318] = columns.float().reshape(1, -1)
    _check_round_trip(x0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1.0, max_value=1.0, width=32), min_size=3, max_size=3).filter(
           lambda v: sum(x * x for x in v) > 1e-2),
       st.lists(st.floats(min_value=-1.0, max_value=1.0, width=32), min_size=3, max_size=3),
       st.floats(min_value=1e-3, max_value=1e-1), st.floats(min_value=1e-2, max_value=1e3))
def test_codec_nearly_parallel_columns_stay_finite(first, direction, angle, magnitude):
    """6D blocks whose second column is the first one turned by a small angle (>= 1e-3 rad) decode finitely.

    In float32 the orthonormalised second column carries a relative error of about eps / angle, so the round trip
    holds to 1e-4 from angle 1e-2 on and to about 1e-3 at angle 1e-3.
    """
    a = torch.tensor(first, dtype=torch.float64)
    a = a / a.norm()
    d = torch.tensor(direction, dtype=torch.float64)
    d = d - (d @ a) * a
    if d.norm() < 1e-3:
        d = torch.linalg.cross(a, torch.tensor([1.0, 0, 0], dtype=torch.float64) if abs(a[0]) < 0.9
                               else torch.tensor([0, 1.0, 0], dtype=torch.float64))
    d = d / d.norm()
    b = np.cos(angle) * a + np.sin(angle) * d
    block = (torch.stack([a, b], dim=-1) * magnitude).reshape(6).float()  # row-major [a0 b0 a1 b1 a2 b2]
    x0 = torch.zeros(1, X0_DIM)
    x0[:, :318] = block.repeat(53)
    _check_round_trip(x0, rotation_atol=1e-4 if angle >= 1e-2 else 1e-3)


def test_codec_exactly_degenerate_6d_decodes_finite():
    x0 = torch.zeros(2, X0_DIM)  # sample 0: every 6D block has zero columns
    # Sample 1: parallel columns in every joint's 6D block.
    x0[1, :RIGHT_HAND_SLICE.stop] = torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0, 0.0]).repeat(52)
    decoded = CODEC.decode(x0)
    for rotations in (decoded.global_orient, decoded.body_pose, decoded.left_hand_pose, decoded.object_rotation):
        assert torch.isfinite(rotations).all()
        assert roma.is_rotation_matrix(rotations, epsilon=1e-5)


# ------------------------------------------------------------------------------------------------------------
# 5. A NaN injected into one sample's latents stays in that sample


def test_nan_in_one_sample_does_not_leak_into_another(small_pipe, caplog):
    params = HOIParams.cat([holding_params(1, gap=0.05), holding_params(1, gap=0.1)])

    def inject(pipeline, step_index, timestep, callback_kwargs):
        latents = callback_kwargs["latents"]
        if step_index == 0:
            latents = latents.clone()
            latents[0] = float("nan")
        return {"latents": latents}

    def identity(pipeline, step_index, timestep, callback_kwargs):
        return callback_kwargs

    kwargs = dict(initial_params=params, object="box", num_cycles=2, eta=0.0)
    clean = small_pipe(**kwargs, callback_on_step_end=identity)
    with caplog.at_level(logging.WARNING, logger="scorehoi_diffusers.pipelines.pipeline_scorehoi"):
        poisoned = small_pipe(**kwargs, callback_on_step_end=inject)
    # Observed: the NaN sample comes out NaN, and the guidance logs a warning that it took unguided steps.
    assert torch.isnan(poisoned.body_vertices[0]).any()
    assert any(r.levelno == logging.WARNING and "samples [0]" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]
    # The other sample is untouched.
    assert torch.isfinite(poisoned.body_vertices[1]).all()
    torch.testing.assert_close(poisoned.body_vertices[1], clean.body_vertices[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(poisoned.object_vertices[1], clean.object_vertices[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(poisoned.contacts.human[1], clean.contacts.human[1], atol=0, rtol=0)
