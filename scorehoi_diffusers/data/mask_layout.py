"""Where the human and object masks of a dataset picture are (BEHAVE's and InterCap's naming)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PathLike = str | os.PathLike


@dataclass(frozen=True)
class MaskLayout:
    """Where the human and object masks of a picture are.

    The picture's name must end with ``image_suffix``; the masks replace that suffix with ``human_suffix``
    and ``object_suffix``. When ``image_folder`` is set, the picture's parent folder must have that name
    and the masks are in the sibling folder ``mask_folder``.
    """

    image_suffix: str
    human_suffix: str
    object_suffix: str
    image_folder: str | None = None
    mask_folder: str | None = None

    def __post_init__(self) -> None:
        if (self.image_folder is None) != (self.mask_folder is None):
            raise ValueError("MaskLayout: give both `image_folder` and `mask_folder`, or neither.")

    def mask_paths(self, image_path: PathLike) -> tuple[Path, Path]:
        """``(human_mask_path, object_mask_path)`` of a picture."""
        image_path = Path(image_path)
        if not image_path.name.endswith(self.image_suffix):
            raise ValueError(
                f"Picture {str(image_path)!r} does not end with {self.image_suffix!r}, so its masks cannot be "
                "found; pass a `mask_layout` that matches your files."
            )
        stem = image_path.name[: len(image_path.name) - len(self.image_suffix)]
        folder = image_path.parent
        if self.image_folder is not None:
            if folder.name != self.image_folder:
                raise ValueError(
                    f"Picture {str(image_path)!r} is not in a folder named {self.image_folder!r}, so its masks "
                    f"(expected in a sibling folder {self.mask_folder!r}) cannot be found; pass a matching "
                    "`mask_layout`."
                )
            folder = folder.parent / self.mask_folder
        return folder / (stem + self.human_suffix), folder / (stem + self.object_suffix)


BEHAVE_MASKS = MaskLayout(".color.jpg", ".person_mask.jpg", ".obj_rend_mask.jpg")
INTERCAP_MASKS = MaskLayout(".jpg", "_human.png", "_object.png", image_folder="color", mask_folder="mask")
