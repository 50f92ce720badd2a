"""The `scorehoi` command on the shipped pipeline and a shipped example, as a user runs it."""
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE, main
from scorehoi_diffusers.export import result_folder
from scorehoi_diffusers.params import HOIParams

EXAMPLE = DEFAULT_EXAMPLES / "astronaut"
REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = [str(EXAMPLE / "image.jpg"), "--human-mask", str(EXAMPLE / "human_mask.png"),
             "--object-mask", str(EXAMPLE / "object_mask.png")]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scorehoi_diffusers.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scorehoi_diffusers.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_reconstruct_writes_picture_scene_and_matching_json(tmp_path, one_torch_thread):
    result = run_cli(
        "reconstruct", str(EXAMPLE / "image.jpg"), "--human-mask", str(EXAMPLE / "human_mask.png"),
        "--object-mask", str(EXAMPLE / "object_mask.png"), "--object", "ball", "--cycles", "2",
        "--out", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "overlay" in result.stdout and "scene" in result.stdout
    tmp_path = tmp_path / "image"  # each picture's results go to a folder named after it
    assert str(tmp_path / "image.glb") in result.stdout
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == ["image"]  # no temporary folder left behind
    overlay = Image.open(tmp_path / "image_overlay.png")
    photo = Image.open(EXAMPLE / "image.jpg")
    assert overlay.size == photo.size
    assert np.abs(np.asarray(overlay, np.int16) - np.asarray(photo.convert("RGB"), np.int16)).max() > 0
    Image.open(tmp_path / "image_before_after.png").verify()
    scene = trimesh.load(tmp_path / "image.glb")
    assert isinstance(scene, trimesh.Scene) and set(scene.geometry) == {"body", "object"}
    record = json.loads((tmp_path / "image.json").read_text())

    # The JSON holds what the pipeline returns for the same inputs and seed, on the CLI's one thread.
    from scorehoi_diffusers import ScoreHOIPipeline

    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    grey = lambda name: np.asarray(Image.open(EXAMPLE / name).convert("L"))  # noqa: E731
    from scorehoi_diffusers.pipelines.photo_inputs import detect_keypoints

    rgb = np.asarray(photo.convert("RGB"))
    keypoints = detect_keypoints(rgb, grey("human_mask.png") > 0)  # the CLI gives every photo detected keypoints
    assert keypoints is not None and (keypoints[:, 2] > 0.5).sum() >= 10
    out = pipe(image=rgb, human_mask=grey("human_mask.png"), object_mask=grey("object_mask.png"), object="ball",
               num_cycles=2, keypoints=keypoints, generator=torch.Generator().manual_seed(0))
    for name in ("betas", "object_translation", "camera_translation", "body_pose"):
        np.testing.assert_allclose(np.asarray(record["params"][name]), getattr(out.params, name)[0].numpy(),
                                   atol=1e-5)
    np.testing.assert_allclose(record["contacts"]["human"], out.contacts.human[0].numpy(), atol=1e-6)
    body = scene.geometry["body"]
    np.testing.assert_allclose(np.asarray(body.vertices), out.body_vertices[0].numpy(), atol=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["reconstruct", "missing.jpg", "--human-mask", "a.png", "--object-mask", "b.png", "--object", "box"],
         "no file at"),
        (["reconstruct", str(EXAMPLE / "image.jpg"), "--human-mask", str(EXAMPLE / "human_mask.png"),
          "--object-mask", str(EXAMPLE / "object_mask.png"), "--object", "spaceship"], "spaceship"),
        (["demo", "--pipeline", "/nonexistent"], "No pipeline folder"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `demo` writes to ./outputs/demo: start from an empty folder
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("scorehoi ") and "Traceback" not in err, err
    return lines[0]


def _no_pipeline_load(monkeypatch):
    """Make loading the pipeline fail loudly: the checks under test must come before it."""
    import scorehoi_diffusers.cli as cli

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline was loaded before the inputs were checked")

    monkeypatch.setattr(cli, "_load_pipeline", refuse)


@pytest.mark.parametrize("command", ["reconstruct", "demo", "synthesize", "evaluate"])
@pytest.mark.parametrize("case", ["file", "under-file", "read-only"])
def test_bad_out_is_one_line_before_loading(command, case, tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    read_only = tmp_path / "locked"
    read_only.mkdir()
    out = {"file": blocker, "under-file": blocker / "sub", "read-only": read_only / "out"}[case]
    if case == "read-only":
        read_only.chmod(0o555)
        if os.geteuid() == 0:  # root writes anywhere: stand in for the operating system's refusal
            real = tempfile.TemporaryFile

            def refuse(*args, dir=None, **kwargs):
                if dir is not None and Path(dir) == read_only:
                    raise PermissionError(13, "Permission denied")
                return real(*args, dir=dir, **kwargs)

            monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    args = {"reconstruct": ["reconstruct", *ASTRONAUT, "--object", "ball"], "demo": ["demo"],
            "synthesize": ["synthesize", "--num", "1"], "evaluate": ["evaluate"]}[command]
    try:
        assert main(args + ["--out", str(out)]) == 2
    finally:
        read_only.chmod(0o755)
    line = _one_error_line(capsys)
    expected = {"file": "is a file, not a folder", "under-file": "is a file, so no folder can be made under it",
                "read-only": "cannot write in"}[case]
    assert "--out" in line and expected in line, line
    assert not (read_only / "out").exists() and blocker.read_text() == "not a folder"


def test_existing_result_needs_overwrite(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    (tmp_path / "image").mkdir()
    assert main(["reconstruct", *ASTRONAUT, "--object", "ball", "--out", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert str(tmp_path / "image") in line and "pass --overwrite" in line
    (tmp_path / "demo" / "synthetic_bag").mkdir(parents=True)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert "synthetic_bag" in _one_error_line(capsys)


def test_synthesize_into_non_empty_folder_advises_the_cli_flag(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["synthesize", "--num", "1", "--out", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert "--overwrite" in line and "overwrite=True" not in line
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_result_folder_is_written_as_a_unit_and_replaced_only_on_request(tmp_path):
    with result_folder(tmp_path, "photo") as folder:
        (folder / "a.txt").write_text("first")
        assert not (tmp_path / "photo").exists()  # invisible until complete
    assert (tmp_path / "photo" / "a.txt").read_text() == "first"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with result_folder(tmp_path, "photo"):
            pass
    with pytest.raises(RuntimeError):
        with result_folder(tmp_path, "photo", overwrite=True) as folder:
            (folder / "a.txt").write_text("broken")
            raise RuntimeError("export failed")
    assert (tmp_path / "photo" / "a.txt").read_text() == "first"  # a failed run changes nothing
    with result_folder(tmp_path, "photo", overwrite=True) as folder:
        (folder / "b.txt").write_text("second")
    assert sorted(p.name for p in (tmp_path / "photo").iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo"]  # no temporary folders left


def test_two_runs_at_once_into_one_out_never_mix(tmp_path):
    # Different seeds, so the two runs' files differ; exactly one may win, and the folder is all from it.
    common = ["reconstruct", *ASTRONAUT, "--object", "ball", "--cycles", "0", "--out", str(tmp_path)]
    runs = [start_cli(*common, "--seed", str(seed)) for seed in (0, 1)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "--overwrite" in loser.strip().splitlines()[-1]
    record = json.loads((tmp_path / "image" / "image.json").read_text())
    scene = trimesh.load(tmp_path / "image" / "image.glb")
    body = np.asarray(scene.geometry["body"].vertices)
    from scorehoi_diffusers import ScoreHOIPipeline

    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    vertices = pipe.body_model(HOIParams(**{k: torch.tensor(v)[None] for k, v in record["params"].items()}),
                               frame="camera").vertices[0].numpy()
    np.testing.assert_allclose(body, vertices, atol=1e-4)  # the scene and the JSON come from the same run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image"]


def test_demo_example_without_object_names_file_and_key(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    example = tmp_path / "examples" / "mine"
    shutil.copytree(EXAMPLE, example)
    spec = json.loads((example / "example.json").read_text())
    del spec["object"]
    (example / "example.json").write_text(json.dumps(spec))
    assert main(["demo", "--examples", str(tmp_path / "examples"), "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert str(example / "example.json") in line and "['object']" in line


@pytest.mark.parametrize("entry", ["guidance", "keypoint_guidance"])
def test_unknown_guidance_field_names_the_file_and_field(tmp_path, capsys, entry):
    index = json.loads((DEFAULT_PIPELINE / "model_index.json").read_text())
    index[entry]["penetraton"] = 1.0
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "model_index.json").write_text(json.dumps(index))
    code = main(["reconstruct", *ASTRONAUT, "--object", "ball", "--pipeline", str(tmp_path / "pipe"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    line = _one_error_line(capsys)
    assert str(tmp_path / "pipe" / "model_index.json") in line and "penetraton" in line and entry in line


def test_mesh_folder_and_mesh_unit(tmp_path, capsys, caplog, monkeypatch):
    _no_pipeline_load(monkeypatch)
    assert main(["reconstruct", *ASTRONAUT, "--object", str(tmp_path) + "/", "--out", str(tmp_path)]) == 2
    assert "is a folder; give the mesh file inside it" in _one_error_line(capsys)
    crate = tmp_path / "crate.ply"
    trimesh.creation.box(extents=(300.0, 200.0, 400.0)).export(crate)  # millimetres
    with caplog.at_level(logging.WARNING, logger="scorehoi_diffusers.objects"), pytest.raises(AssertionError):
        main(["reconstruct", *ASTRONAUT, "--object", str(crate), "--out", str(tmp_path / "out")])
    assert "--mesh-unit mm" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scorehoi_diffusers.objects"), pytest.raises(AssertionError):
        main(["reconstruct", *ASTRONAUT, "--object", str(crate), "--mesh-unit", "mm", "--out", str(tmp_path / "o")])
    assert "across" not in caplog.text


def test_wheel_ships_the_pipeline_and_examples_and_runs_outside_the_checkout(tmp_path):
    # Build from a copy, so the checkout gets no build/ or .egg-info.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__",
                                                                  "outputs", "runs", ".venv", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in [*DEFAULT_PIPELINE.rglob("*"), *DEFAULT_EXAMPLES.rglob("*")]:
        if path.is_file() and "__pycache__" not in path.parts:
            assert path.relative_to(REPO).as_posix() in names
    # Unpacked (what pip install does) and run from elsewhere: the defaults resolve inside the install.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(site)}
    example = site / "scorehoi_diffusers" / "assets" / "examples" / "synthetic_ball"
    command = "import sys, scorehoi_diffusers.cli as c; print(c.DEFAULT_PIPELINE); sys.exit(c.main(sys.argv[1:]))"
    run = subprocess.run(
        [sys.executable, "-c", command, "reconstruct", str(example / "image.png"), "--human-mask",
         str(example / "human_mask.png"), "--object-mask", str(example / "object_mask.png"), "--object", "ball",
         "--cycles", "0", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[0] == str(site / "scorehoi_diffusers" / "assets" / "scorehoi-synthetic")
    assert (tmp_path / "out" / "image" / "image.glb").is_file()


def test_empty_mask_is_reported(tmp_path, capsys):
    empty = tmp_path / "empty.png"
    Image.new("L", Image.open(EXAMPLE / "image.jpg").size, 0).save(empty)
    code = main(["reconstruct", str(EXAMPLE / "image.jpg"), "--human-mask", str(empty), "--object-mask",
                 str(EXAMPLE / "object_mask.png"), "--object", "ball", "--out", str(tmp_path)])
    assert code == 2 and "human_mask" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["reconstruct", "demo", "app", "synthesize", "evaluate"])
def test_every_subcommand_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0 and "usage: scorehoi" in result.stdout


@pytest.mark.parametrize("port", ["0", "70000"])
def test_app_port_out_of_range_is_one_line_before_loading(port, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    assert main(["app", "--port", port]) == 2
    assert "--port must be in 1..65535" in _one_error_line(capsys)


def test_app_port_in_use_is_one_line(capsys, monkeypatch):
    import socket

    import gradio as gr

    import scorehoi_diffusers.cli as cli
    import scorehoi_diffusers.web_app as web_app

    def empty_page(pipeline):
        with gr.Blocks() as page:
            gr.Markdown("empty")
        return page

    monkeypatch.setattr(cli, "_load_pipeline", lambda *args, **kwargs: None)
    monkeypatch.setattr(web_app, "build_app", empty_page)  # the real launch, of an empty page
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["app", "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot serve there" in _one_error_line(capsys)


def test_evaluate_refuses_to_replace_results_without_overwrite(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    existing = tmp_path / "synthetic_test_full_n1_N10_seed0.json"
    existing.write_text("[]")
    code = main(["evaluate", "--num-samples", "1", "--image-size", "64", "--out", str(tmp_path)])
    assert code == 2
    line = _one_error_line(capsys)
    assert str(existing) in line and "--overwrite" in line
    assert existing.read_text() == "[]"


def test_evaluate_with_simulated_keypoints_writes_its_own_results_file(tmp_path, capsys, monkeypatch):
    _no_pipeline_load(monkeypatch)
    existing = tmp_path / "synthetic_test_full_n1_N10_seed0_keypoints-simulated.json"
    existing.write_text("[]")
    code = main(["evaluate", "--num-samples", "1", "--keypoints", "simulated", "--out", str(tmp_path)])
    assert code == 2 and str(existing) in _one_error_line(capsys)


def test_evaluate_with_detected_keypoints_runs_the_detector(tmp_path, capsys, restore_diffusers_logging):
    code = main(["evaluate", "--num-samples", "2", "--image-size", "192", "--mode", "regressor", "--keypoints",
                 "detected", "--out", str(tmp_path), "--quiet"])
    assert code == 0, capsys.readouterr().err
    (path,) = tmp_path.glob("synthetic_test_regressor_n2_*keypoints-detected.json")
    (result,) = json.loads(path.read_text())
    assert result["num_samples"] == 2 and result["facing_error"] is not None
    assert result["keypoints"] == "detected" and isinstance(result["detector_missed"], list)


def test_quiet_evaluate_draws_no_progress_bars(tmp_path, capsys, restore_diffusers_logging):
    code = main(["evaluate", "--num-samples", "1", "--image-size", "64", "--mode", "regressor", "--out",
                 str(tmp_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and "Synthesizing" not in captured.err and "it/s" not in captured.err, captured.err
    assert list(tmp_path.glob("synthetic_test_regressor_n1_*.json"))


# ---------------------------------------------------------------------- --device, --quiet, --verbose


@pytest.mark.parametrize(
    "device, message",
    [("bogus", "is not a torch device"), ("cuda:7" if torch.cuda.is_available() else "cuda", "is not available")],
)
def test_unknown_or_unavailable_device_is_one_line(device, message, tmp_path, capsys):
    assert main(["synthesize", "--num", "1", "--out", str(tmp_path / "out"), "--device", device]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"--device {device!r} {message}" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_device_defaults_to_cuda_when_available_and_the_pipeline_moves_there(monkeypatch):
    from scorehoi_diffusers import cli
    from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline

    args = cli.build_parser().parse_args(["demo"])
    cli.apply_run_options(args)
    assert args.device == ("cuda" if torch.cuda.is_available() else "cpu")
    moved = []
    original = ScoreHOIPipeline.to
    monkeypatch.setattr(ScoreHOIPipeline, "to", lambda self, *a, **k: moved.append((a, k)) or original(self, *a, **k))
    pipeline = cli._load_pipeline(None, None, device="cpu")
    assert moved == [(("cpu",), {})] and pipeline.device == torch.device("cpu")


def test_threads_apply_while_the_command_runs_and_are_given_back(tmp_path, capsys, monkeypatch):
    from scorehoi_diffusers import cli

    before = torch.get_num_threads()
    seen = []
    monkeypatch.setattr(cli, "cmd_synthesize", lambda args: seen.append(torch.get_num_threads()))
    assert main(["synthesize", "--num", "1", "--out", str(tmp_path / "a")]) == 0
    assert main(["synthesize", "--num", "1", "--out", str(tmp_path / "b"), "--threads", "2"]) == 0
    assert seen == [1, 2] and torch.get_num_threads() == before  # default one thread; the caller's count back
    assert main(["synthesize", "--num", "1", "--out", str(tmp_path / "c"), "--threads", "0"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--threads must be at least 1, got 0" in error


@pytest.fixture
def restore_diffusers_logging():
    from diffusers.utils import logging as diffusers_logging

    verbosity, bars = diffusers_logging.get_verbosity(), diffusers_logging.is_progress_bar_enabled()
    yield diffusers_logging
    diffusers_logging.set_verbosity(verbosity)
    (diffusers_logging.enable_progress_bar if bars else diffusers_logging.disable_progress_bar)()


def test_quiet_and_verbose_set_diffusers_verbosity_and_progress_bars(restore_diffusers_logging, tmp_path, capsys):
    from scorehoi_diffusers import cli

    diffusers_logging = restore_diffusers_logging
    diffusers_logging.set_verbosity_warning()
    cli.apply_run_options(cli.build_parser().parse_args(["demo", "--verbose"]))
    assert diffusers_logging.get_verbosity() == diffusers_logging.INFO and diffusers_logging.is_progress_bar_enabled()
    cli.apply_run_options(cli.build_parser().parse_args(["demo", "--quiet"]))
    assert diffusers_logging.get_verbosity() == diffusers_logging.ERROR
    assert not diffusers_logging.is_progress_bar_enabled()
    pipeline = cli._load_pipeline(None, None, device="cpu")
    assert pipeline._progress_bar_config.get("disable") is True
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["demo", "--quiet", "--verbose"])
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_library_code_logs_through_diffusers_logging_not_print_or_warnings():
    import ast

    package = Path(__file__).resolve().parents[1] / "scorehoi_diffusers"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "cli.py":  # the command prints its results
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                function = node.func
                if (isinstance(function, ast.Name) and function.id == "print") or (
                    isinstance(function, ast.Attribute) and function.attr == "warn"
                    and isinstance(function.value, ast.Name) and function.value.id == "warnings"
                ):
                    offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not offenders, f"print/warnings.warn in library code: {offenders}"
