"""``scorehoi --help`` must answer at once: the command line imports no heavy library until a command runs."""
import os
import subprocess
import sys

import pytest

# Each of these takes from a tenth of a second to seconds to import; none is needed to print help.
HEAVY_MODULES = (
    "torch", "diffusers", "transformers", "trimesh", "scipy", "PIL", "smplx", "datasets", "mediapipe", "cv2", "gradio",
)

PROBE = """
import sys
from scorehoi_diffusers.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    assert exit.code == 0, exit.code
print("heavy:" + ",".join(name for name in {heavy!r} if name in sys.modules))
"""


def imported_heavy_modules(*args: str) -> list[str]:
    """The heavy modules that running ``scorehoi ARGS`` in a fresh interpreter has imported."""
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY_MODULES), *args], capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: scorehoi" in result.stdout
    heavy = result.stdout.rsplit("heavy:", 1)[1].strip()
    return [name for name in heavy.split(",") if name]


@pytest.mark.parametrize("command", [None, "reconstruct", "demo", "app", "synthesize", "evaluate"])
def test_help_imports_no_heavy_library(command):
    args = ("--help",) if command is None else (command, "--help")
    assert imported_heavy_modules(*args) == []


def test_public_names_still_import_from_the_package():
    import scorehoi_diffusers
    from scorehoi_diffusers import GuidedDDIMScheduler, ModelMixin, ScoreHOIPipeline

    assert ScoreHOIPipeline.__name__ == "ScoreHOIPipeline"
    assert issubclass(GuidedDDIMScheduler, scorehoi_diffusers.SchedulerMixin)
    assert ModelMixin.__module__.startswith("diffusers")
    assert set(scorehoi_diffusers.__all__) <= set(dir(scorehoi_diffusers))
    for name in scorehoi_diffusers.__all__:
        assert getattr(scorehoi_diffusers, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        scorehoi_diffusers.NoSuchName  # noqa: B018
