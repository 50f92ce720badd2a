"""The Hub layout of a saved ScoreHOI pipeline folder, and its upload.

A folder loads with stock ``DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`` because it carries a
one-line ``pipeline.py`` shim and names ``["pipeline", <class name>]`` as its ``_class_name``; its README.md is
the project's model card (:mod:`.model_card`), not diffusers' default one. :func:`write_hub_files` completes a
folder that ``DiffusionPipeline.save_pretrained`` wrote, and :func:`upload_pipeline_folder` uploads it only then,
so what reaches the Hub is always a complete, loadable folder.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from diffusers.utils import logging
from huggingface_hub import create_repo, upload_folder

from .model_card import write_model_card

logger = logging.get_logger(__name__)

# The one-line module a saved folder carries so that stock `DiffusionPipeline.from_pretrained(...,
# trust_remote_code=True)` finds the pipeline class.
HUB_SHIM_MODULE = "pipeline"
HUB_SHIM_SOURCE = "from scorehoi_diffusers import ScoreHOIPipeline  # noqa: F401\n"
MODEL_CARD_NAME = "README.md"
# The keyword arguments `DiffusionPipeline.save_pretrained(push_to_hub=True)` takes for the upload.
PUSH_KWARGS = ("repo_id", "commit_message", "private", "create_pr", "token")


def write_hub_files(folder: str | os.PathLike, class_name: str, source: str | os.PathLike | None = None) -> None:
    """Complete a folder written by ``DiffusionPipeline.save_pretrained`` for the Hub.

    Writes the ``pipeline.py`` shim, names ``["pipeline", class_name]`` in ``model_index.json`` and gives the
    folder a model card unless it has one: the card of ``source`` (the folder the pipeline was loaded from, whose
    card describes the same weights) when there is one, else a card rendered from the folder itself.

    Args:
        folder: the saved pipeline folder.
        class_name: the pipeline's class name, e.g. ``"ScoreHOIPipeline"``.
        source: the local folder the pipeline was loaded from, or ``None`` (or a Hub id: then not used).
    """
    folder = Path(folder)
    source_card = Path(source) / MODEL_CARD_NAME if source else None
    (folder / f"{HUB_SHIM_MODULE}.py").write_text(HUB_SHIM_SOURCE)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["_class_name"] = [HUB_SHIM_MODULE, class_name]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    card_path = folder / MODEL_CARD_NAME
    if card_path.is_file():
        return
    if source_card is not None and source_card.is_file() and source_card.resolve() != card_path.resolve():
        shutil.copyfile(source_card, card_path)
    else:
        write_model_card(folder)


def upload_pipeline_folder(
    folder: str | os.PathLike,
    repo_id: str,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    create_pr: bool = False,
    subfolder: str | None = None,
) -> str:
    """Create the Hub repository if needed and upload a complete pipeline folder to it.

    Args:
        folder: a folder written by ``save_pretrained`` and completed by :func:`write_hub_files`.
        repo_id: ``"owner/name"`` (or ``"name"`` in the token's namespace).
        commit_message, private, token, create_pr, subfolder: as in ``huggingface_hub.upload_folder`` /
            ``create_repo``.

    Returns:
        The upload's commit URL (``huggingface_hub.CommitInfo``).
    """
    repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    logger.info(f"Uploading the files of {folder} to {repo_id}.")
    return upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        path_in_repo=subfolder,
        token=token,
        commit_message=commit_message or "Upload ScoreHOI pipeline",
        create_pr=create_pr,
    )


def push_pipeline_to_hub(
    pipeline,
    repo_id: str,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    create_pr: bool = False,
    safe_serialization: bool = True,
    variant: str | None = None,
    subfolder: str | None = None,
) -> str:
    """Save ``pipeline`` with its ``save_pretrained`` into a temporary folder and upload that folder.

    Args:
        pipeline: a ``ScoreHOIPipeline``.
        repo_id, commit_message, private, token, create_pr, subfolder: as in :func:`upload_pipeline_folder`.
        safe_serialization, variant: as in ``DiffusionPipeline.save_pretrained``.

    Returns:
        The upload's commit URL.
    """
    with tempfile.TemporaryDirectory() as folder:
        pipeline.save_pretrained(folder, safe_serialization=safe_serialization, variant=variant)
        return upload_pipeline_folder(folder, repo_id, commit_message=commit_message, private=private, token=token,
                                      create_pr=create_pr, subfolder=subfolder)
