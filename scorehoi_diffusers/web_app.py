"""The web app: reconstruct a person and an object from one photo in the browser (``scorehoi app``).

A Gradio Blocks page. The user uploads a photo (the detected people's masks and keypoints are drawn on a
preview), marks the object with a box (typed, or two clicks on the preview) or an object mask, picks a shipped
primitive or uploads a mesh, and presses Run. The results are the overlay, the before/after figure, the ``.glb``
scene in a 3D viewer and the files of :func:`~scorehoi_diffusers.export.export_reconstruction` to download.

Offline by construction: the theme uses the system's fonts, analytics are off, and Gradio's frontend is served
from the installed package. Every run writes into its own folder under the app's temporary folder, named by the
browser session, so two sessions never see each other's files; the only object the sessions share is the loaded
pipeline, and runs are queued one at a time because a pipeline call keeps its timesteps on the scheduler.
Uploads that cannot be used (not a picture, too many pixels, a mesh without faces, no person found) are reported
in the page with one line, never a traceback.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

from .atomic_files import atomic_write_bytes
from .cli import DEFAULT_EXAMPLES
from .export import export_reconstruction
from .guidance import TERMS, GuidanceConfig
from .image_processor import load_image, to_mask_array
from .input_checks import mask_inside
from .objects import MESH_UNITS, PRIMITIVE_NAMES, load_object
from .person_detection import VISIBLE, PersonDetection, PersonDetector, default_person_detector

__all__ = ["GUIDANCE_WEIGHTS", "MAX_PHOTO_PIXELS", "build_app", "detect_people", "launch_app", "preview_picture"]

# A photo with more pixels than this is refused before it is decoded: 40 megapixels covers every camera's
# default output, and the work on a photo (detection, GrabCut, the overlay) grows with its pixels.
MAX_PHOTO_PIXELS = 40_000_000
# Uploads larger than this are refused by Gradio before they reach the app.
MAX_UPLOAD_SIZE = "50mb"
# The GuidanceConfig weights the "Advanced" section offers (and, on its own slider, ``contact_decision``).
GUIDANCE_WEIGHTS = ("scale", *TERMS)
MESH_SUFFIXES = (".obj", ".ply", ".glb")
# Longest side of the preview picture the user clicks the box on.
PREVIEW_MAX_SIDE = 1024
PERSON_TINT, OBJECT_TINT, BOX_COLOR = (80, 160, 255), (255, 140, 40), (255, 220, 0)
# Keypoints the detector sees (visibility above person_detection.VISIBLE) and those it guesses.
VISIBLE_COLOR, HIDDEN_COLOR = (0, 255, 120), (255, 60, 60)
# System fonts only: Gradio's other fonts would be fetched from the server or, for Google fonts, from the web.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def detect_people(detector: PersonDetector, image: np.ndarray) -> list[PersonDetection]:
    """The people ``detector`` finds in ``image`` (``(H, W, 3)`` uint8), the most prominent first: the preview
    draws them, and the run hands the same detector to the pipeline. Detectors lock themselves, so the preview
    and a run in another worker thread can share one."""
    return list(detector.detect(image))


# --------------------------------------------------------------------------------------------------------------
# Reading what the page sends. Events run with preprocess=False, so uploads arrive as Gradio's file records and
# are read here with the package's own reader and its one-line errors.


def _upload_path(payload: Any) -> tuple[str, str] | None:
    """``(path on the server, name the user gave it)`` of an uploaded file record, or ``None`` when empty."""
    if not payload:
        return None
    if isinstance(payload, (str, os.PathLike)):
        return str(payload), Path(payload).name
    path = payload.get("path")
    return (path, payload.get("orig_name") or Path(path).name) if path else None


def _read_picture(payload: Any, what: str, mask: bool = False) -> np.ndarray | None:
    """An uploaded picture as ``(H, W, 3)`` (or, for a mask, ``(H, W)``) uint8; ``None`` when nothing was uploaded.

    Raises:
        gr.Error: the file is not a picture or has more than :data:`MAX_PHOTO_PIXELS` pixels.
    """
    upload = _upload_path(payload)
    if upload is None:
        return None
    path, name = upload
    try:
        with PIL.Image.open(path) as picture:  # reads the header only
            width, height = picture.size
    except (OSError, ValueError) as error:
        raise gr.Error(f"{what}: {name} is not a picture; upload a PNG or JPEG file.",
                       print_exception=False) from error
    if width * height > MAX_PHOTO_PIXELS:
        raise gr.Error(f"{what}: {name} has {width} x {height} pixels, more than this app's limit of "
                       f"{MAX_PHOTO_PIXELS / 1e6:.0f} megapixels; downscale it first.", print_exception=False)
    try:
        return load_image(path, what, mask=mask)
    except ValueError as error:
        raise gr.Error(str(error).replace(path, name), print_exception=False) from error


def _checked_mask(payload: Any, what: str, image: np.ndarray) -> np.ndarray | None:
    """An uploaded mask as ``(H, W)`` bool, checked against the photo as the pipeline will check it (size, not
    empty), so that a wrong mask is reported when it is uploaded; ``None`` when nothing was uploaded."""
    mask = _read_picture(payload, what, mask=True)
    if mask is None:
        return None
    try:
        return to_mask_array(mask, what, image.shape[:2])
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from error


def _object_box(x, y, w, h) -> list[float] | None:
    """The typed object box ``[x, y, w, h]`` in photo pixels, or ``None`` while it is incomplete or empty."""
    values = [x, y, w, h]
    if any(value is None or value == "" for value in values):
        return None
    values = [float(value) for value in values]
    return values if values[2] > 0 and values[3] > 0 else None


# --------------------------------------------------------------------------------------------------------------
# The preview: the photo with the detected people (mask and keypoints), the masks given and the object box.


def _tint(picture: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    inside = mask_inside(mask, "mask")
    out = picture.astype(np.float32)
    out[inside] = 0.55 * out[inside] + 0.45 * np.asarray(color, dtype=np.float32)
    return out.round().astype(np.uint8)


def preview_picture(image: np.ndarray, people: list, human_mask: np.ndarray | None, object_mask: np.ndarray | None,
                    box: list[float] | None) -> tuple[np.ndarray, float]:
    """The photo with the person masks and keypoints, the object mask and the object box drawn on it.

    Args:
        image: ``(H, W, 3)`` uint8 photo.
        people: detections (see :func:`detect_people`), drawn (mask and keypoints) unless ``human_mask`` is
            given: the run uses the user's mask then, not the detector.
        human_mask, object_mask: ``(H, W)`` masks the user uploaded (bool, 0/1 or 0/255), or ``None``.
        box: the object box ``x, y, w, h`` in photo pixels, or ``None``.

    Returns:
        ``(picture (h, w, 3) uint8, scale)``: the picture at most :data:`PREVIEW_MAX_SIDE` pixels on its longer
        side, and its size over the photo's (to map clicks on it back to photo pixels).
    """
    picture = image
    if human_mask is not None:
        people = []
        picture = _tint(picture, human_mask, PERSON_TINT)
    for person in people:
        picture = _tint(picture, person.mask, PERSON_TINT)
    if object_mask is not None:
        picture = _tint(picture, object_mask, OBJECT_TINT)
    height, width = image.shape[:2]
    scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
    drawn = PIL.Image.fromarray(picture)
    if scale < 1.0:
        drawn = drawn.resize((max(1, round(width * scale)), max(1, round(height * scale))), PIL.Image.BILINEAR)
    draw = PIL.ImageDraw.Draw(drawn)
    radius = max(3, round(max(drawn.size) / 90))
    for person in people:
        for (u, v), visibility in zip(person.keypoints * scale, person.visibility, strict=True):
            color = VISIBLE_COLOR if visibility > VISIBLE else HIDDEN_COLOR
            draw.ellipse((u - radius, v - radius, u + radius, v + radius), fill=color, outline=(0, 0, 0))
    if box is not None:
        x, y, w, h = (value * scale for value in box)
        draw.rectangle((x, y, x + w, y + h), outline=BOX_COLOR, width=max(2, radius // 2))
    return np.asarray(drawn), scale


def _preview_status(people: list, human_mask: np.ndarray | None, object_mask: np.ndarray | None,
                    box: list[float] | None) -> str:
    """What the preview shows, and what is still missing before Run."""
    if human_mask is not None:
        person = "Person: your mask."
    elif len(people) == 1:
        person = "Person: found (mask and keypoints shown; green: seen, red: guessed)."
    elif people:
        person = (f"Person: {len(people)} found; the run takes the one the object box overlaps (or upload a "
                  "person mask).")
    else:
        person = "Person: none found; upload a person mask."
    if object_mask is not None:
        obj = "Object: your mask."
    elif box is not None:
        obj = "Object: the box (its mask is cut out of the photo at Run)."
    else:
        obj = "Object: enter its box or click two opposite corners on this preview."
    return f"{person}  \n{obj}"


# --------------------------------------------------------------------------------------------------------------
# The page.


def _guidance_sliders(defaults: GuidanceConfig) -> list:
    sliders = []
    for name in GUIDANCE_WEIGHTS:
        default = getattr(defaults, name)
        # A step no coarser than a tenth of the default, so that a small default (the pose prior's 0.01) is on the
        # slider's grid and moving the slider can return to it.
        step = min(0.05, default / 10) if default > 0 else 0.05
        sliders.append(gr.Slider(0.0, max(1.0, 4 * default), value=default, step=step,
                                 label="guidance scale" if name == "scale" else f"{name.replace('_', ' ')} weight",
                                 elem_id=f"guidance-{name}"))
    return sliders


def _contact_decision_slider(defaults: GuidanceConfig):
    """``GuidanceConfig.contact_decision`` as a slider: 0 stands for ``None`` (weigh by the probabilities)."""
    return gr.Slider(0.0, 0.95, value=defaults.contact_decision or 0.0, step=0.05,
                     label="contact decision threshold (0: weigh contacts by their probability)",
                     elem_id="guidance-contact_decision")


def _examples() -> tuple[list[list], list[str]]:
    """The shipped examples (``example.json`` of :func:`~scorehoi_diffusers.cli.load_example`) as rows of the
    inputs they fill: photo, person mask, object mask (files or ``None``), object, and the object box's x, y,
    width and height (or ``None``); and their names."""
    rows, names = [], []
    for spec_file in sorted(DEFAULT_EXAMPLES.glob("*/example.json")):
        spec = json.loads(spec_file.read_text())
        files = [str(spec_file.parent / spec[key]) if key in spec else None
                 for key in ("image", "human_mask", "object_mask")]
        rows.append([*files, spec["object"], *spec.get("object_box", [None] * 4)])
        names.append(spec_file.parent.name)
    return rows, names


def build_app(pipeline, person_detector=None, work_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """The page, bound to a loaded pipeline.

    Args:
        pipeline: a loaded :class:`~scorehoi_diffusers.ScoreHOIPipeline` with a regressor; runs only read it.
        person_detector: finds the person where no person mask is uploaded, for the preview and the run
            (default: the bundled mediapipe detector, ``default_person_detector()``).
        work_dir: folder for the runs' result folders (default: a new temporary folder removed at exit).

    Returns:
        The ``gr.Blocks`` app; start it with :func:`launch_app`.
    """
    detector = person_detector if person_detector is not None else default_person_detector()
    if work_dir is None:
        work_dir = tempfile.mkdtemp(prefix="scorehoi-app-")
        atexit.register(shutil.rmtree, work_dir, ignore_errors=True)
    runs_root = Path(work_dir)
    # The sliders start at the guidance for a photo whose person the detector finds (keypoints in hand); left at
    # those values the pipeline picks its default for the input at hand (it differs without keypoints).
    defaults = pipeline.default_guidance_config(keypoints=True)

    def show_preview(photo, human_mask, object_mask, x, y, w, h, people_state):
        image = _read_picture(photo, "Photo")
        if image is None:
            return None, None, None, ""
        person = _checked_mask(human_mask, "Person mask", image)
        obj = _checked_mask(object_mask, "Object mask", image)
        path = _upload_path(photo)[0]
        if people_state is not None and people_state["photo"] == path:
            people = people_state["people"]
        else:
            people = detect_people(detector, image)
        box = _object_box(x, y, w, h)
        picture, scale = preview_picture(image, people, person, obj, box)
        # A new preview forgets a half-drawn box (its first corner).
        return picture, {"photo": path, "people": people, "scale": scale}, None, _preview_status(
            people, person, obj, box)

    def click_corner(people_state, corner, event: gr.SelectData):
        """Two clicks on the preview, at opposite corners of the object, fill in the box."""
        if people_state is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
        u, v = (value / people_state["scale"] for value in event.index)
        if corner is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), (u, v)
        x0, y0 = corner
        return round(min(u, x0)), round(min(v, y0)), round(abs(u - x0)), round(abs(v - y0)), None

    # Gradio finds the progress tracker by its default value: the call in the signature is its documented idiom.
    def run(values: dict, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        # The inputs arrive as one {component: value} dict (the event's inputs are a set).
        photo, human_mask, object_mask, object_name, mesh, mesh_unit, cycles, seed = (
            values[component] for component in (photo_input, human_mask_input, object_mask_input, object_input,
                                                 mesh_input, mesh_unit_input, cycles_input, seed_input))
        x, y, w, h = (values[number] for number in box_inputs)
        weights = [values[slider] for slider in weight_sliders]
        contact_decision = float(values[decision_slider]) or None
        image = _read_picture(photo, "Photo")
        if image is None:
            raise gr.Error("Photo: upload a photo first (or click one of the examples).", print_exception=False)
        person = _checked_mask(human_mask, "Person mask", image)
        obj = _checked_mask(object_mask, "Object mask", image)
        box = _object_box(x, y, w, h)
        if obj is None and box is None:
            raise gr.Error("Object: enter or draw a box around the object (x, y, width, height), or upload an "
                           "object mask.", print_exception=False)
        inputs = {"image": image}
        if person is not None:
            inputs["human_mask"] = person
        else:
            inputs["person_detector"] = detector
        if obj is not None:
            inputs["object_mask"] = obj
        if box is not None:
            inputs["object_box"] = box
        template, object_label = _template(object_name, mesh, mesh_unit)
        config = dataclasses.replace(defaults, **dict(zip(GUIDANCE_WEIGHTS, map(float, weights), strict=True)),
                                     contact_decision=contact_decision)
        config = None if config == defaults else config
        cycles = int(cycles)
        steps_per_cycle = len(pipeline.scheduler.refinement_timesteps()) - 1

        def on_step(pipe, step_index, timestep, callback_kwargs):
            done = step_index + 1
            progress(done / (cycles * steps_per_cycle),
                     desc=f"refinement cycle {min(cycles, step_index // steps_per_cycle + 1)} of {cycles}")
            return {}

        progress(0.0, desc="initial estimate")
        start = time.perf_counter()
        try:
            output = pipeline(**inputs, object=template, num_cycles=cycles, guidance_config=config,
                              generator=torch.Generator().manual_seed(int(seed)), callback_on_step_end=on_step)
        except (ValueError, TypeError) as error:
            raise gr.Error(str(error), print_exception=False) from error
        seconds = time.perf_counter() - start
        progress(1.0, desc="writing the results")
        session = runs_root / (request.session_hash or "session")
        shutil.rmtree(session, ignore_errors=True)  # the session's previous results are no longer shown
        folder = session / uuid.uuid4().hex
        name = Path(_upload_path(photo)[1]).stem or "photo"
        paths = export_reconstruction(
            output, 0, pipeline.body_model, template, folder, name, image=image,
            intrinsics=output.intrinsics[0].cpu().numpy(),
            extra={"inputs": {"image": _upload_path(photo)[1]}, "object": object_label, "object_box": box,
                   "seed": int(seed), "num_cycles": cycles, "seconds": seconds},
        )
        status = (f"Reconstructed **{name}** with **{object_label}** in {seconds:.1f} s "
                  f"({cycles} refinement cycles).")
        downloads = [str(paths[kind]) for kind in ("json", "smplh", "scene")]
        return str(paths["overlay"]), str(paths["figure"]), str(_upright_scene(paths["scene"])), downloads, status

    def forget_session(request: gr.Request):
        if request.session_hash:
            shutil.rmtree(runs_root / request.session_hash, ignore_errors=True)

    with gr.Blocks(title="ScoreHOI", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("# ScoreHOI: a person and an object from one photo\n"
                    "Upload a photo, mark the object with a box (type it, or click two opposite corners on the "
                    "preview) or an object mask, pick the object, and press **Run**. Everything runs on this "
                    "machine.")
        people_state, corner_state = gr.State(None), gr.State(None)
        with gr.Row():
            with gr.Column():
                photo_input = gr.Image(label="Photo", type="filepath", sources=["upload"], elem_id="photo",
                                       height=300)
                examples_slot = gr.Column()
                with gr.Row():
                    human_mask_input = gr.Image(label="Person mask (optional)",
                                                type="filepath", sources=["upload"], elem_id="human-mask", height=150)
                    object_mask_input = gr.Image(label="Object mask (or a box)", type="filepath",
                                                 sources=["upload"], elem_id="object-mask", height=150)
                with gr.Row():
                    box_inputs = [gr.Number(label=label, minimum=0, precision=0, placeholder="pixels", min_width=80,
                                            elem_id=f"box-{key}")
                                  for key, label in (("x", "box x"), ("y", "box y"), ("w", "box width"),
                                                     ("h", "box height"))]
                with gr.Row():
                    object_input = gr.Dropdown(list(PRIMITIVE_NAMES), value=PRIMITIVE_NAMES[0], label="Object",
                                               elem_id="object-name")
                    mesh_input = gr.File(label="or your mesh (.obj, .ply, .glb)", file_types=list(MESH_SUFFIXES),
                                         elem_id="mesh")
                with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                    cycles_input = gr.Slider(0, 20, value=10, step=1, label="refinement cycles", elem_id="cycles")
                    seed_input = gr.Number(value=0, precision=0, label="seed")
                    mesh_unit_input = gr.Dropdown(list(MESH_UNITS), value="m", label="unit of your mesh")
                    weight_sliders = _guidance_sliders(defaults)
                    decision_slider = _contact_decision_slider(defaults)
                run_button = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                preview = gr.Image(label="Person, keypoints and object box (click two opposite corners to draw "
                                         "the box)", interactive=False, elem_id="preview", height=300)
                status = gr.Markdown(elem_id="status")
                overlay = gr.Image(label="Overlay", interactive=False, elem_id="overlay", height=300)
        figure = gr.Image(label="Before / after refinement", interactive=False, elem_id="figure")
        with gr.Row():
            scene = gr.Model3D(label="3D scene (.glb)", elem_id="scene", height=360)
            downloads = gr.File(label="Downloads: JSON, SMPL-H .npz, .glb", file_count="multiple",
                                interactive=False, elem_id="downloads")
        with examples_slot:
            rows, names = _examples()
            gr.Examples(rows, inputs=[photo_input, human_mask_input, object_mask_input, object_input, *box_inputs],
                        example_labels=names, label="Examples (one click fills the inputs)")

        preview_inputs = [photo_input, human_mask_input, object_mask_input, *box_inputs, people_state]
        preview_outputs = [preview, people_state, corner_state, status]
        pictures = (photo_input, human_mask_input, object_mask_input)
        for trigger in (*(picture.change for picture in pictures), *(number.change for number in box_inputs)):
            trigger(show_preview, preview_inputs, preview_outputs, preprocess=False, concurrency_id="preview",
                    concurrency_limit=1, show_progress="hidden")
        preview.select(click_corner, [people_state, corner_state], [*box_inputs, corner_state], show_progress="hidden")
        run_button.click(
            run, {*pictures, *box_inputs, object_input, mesh_input, mesh_unit_input, cycles_input, seed_input,
                  *weight_sliders, decision_slider},
            [overlay, figure, scene, downloads, status], preprocess=False, concurrency_id="pipeline",
            concurrency_limit=1,
        )
        app.unload(forget_session)
    return app


def _upright_scene(scene: Path) -> Path:
    """A copy of the ``.glb`` scene turned from the camera's axes (y down, z forward) to glTF's (y up, z towards
    the viewer), so that the 3D viewer shows it upright and from the photo's side; the download keeps the
    camera-space file of ``scorehoi reconstruct``."""
    import trimesh

    upright = trimesh.load(scene, force="scene")
    upright.apply_transform(np.diag([1.0, -1.0, -1.0, 1.0]))
    return atomic_write_bytes(scene.with_name(f"{scene.stem}_upright.glb"), upright.export(file_type="glb"))


def _template(object_name, mesh, mesh_unit):
    """The object template of the uploaded mesh, else of the chosen primitive, and how the results name it."""
    upload = _upload_path(mesh)
    if upload is None:
        if object_name not in PRIMITIVE_NAMES:
            raise gr.Error(f"Object: choose one of {', '.join(PRIMITIVE_NAMES)} or upload a mesh.",
                           print_exception=False)
        return load_object(object_name), object_name
    path, name = upload
    if Path(name).suffix.lower() not in MESH_SUFFIXES:
        raise gr.Error(f"Object mesh: {name} is not a {', '.join(MESH_SUFFIXES)} file; upload one of those.",
                       print_exception=False)
    try:
        return load_object(Path(path), mesh_unit=mesh_unit), name
    except (ValueError, TypeError, OSError) as error:
        message = str(error).replace(path, name)
        raise gr.Error(message if name in message else f"Object mesh {name}: {message}",
                       print_exception=False) from error


def launch_app(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, **options) -> None:
    """Serve ``app`` with a queue, offline: no analytics, no share link, uploads up to :data:`MAX_UPLOAD_SIZE`.

    Args:
        app: from :func:`build_app`.
        host: address to listen on (``0.0.0.0`` to serve other machines).
        port: port (default: Gradio's, 7860, or ``GRADIO_SERVER_PORT``).
        **options: more :meth:`gradio.Blocks.launch` arguments (e.g. ``prevent_thread_lock=True``).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    app.queue(default_concurrency_limit=1, max_size=32)
    app.launch(server_name=host, server_port=port, share=False, theme=THEME, max_file_size=MAX_UPLOAD_SIZE,
               allowed_paths=[str(DEFAULT_EXAMPLES)], footer_links=[], ssr_mode=False, pwa=False,
               mcp_server=False, **options)
