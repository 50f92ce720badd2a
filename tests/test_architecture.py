"""The package's layers (docs/architecture.md): a module imports from its own layer or the layers below it."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scorehoi_diffusers"

# Bottom up, as in docs/architecture.md.
LAYERS = (
    ("skeleton", "params", "contacts", "camera", "input_checks", "strict_config", "safetensors_only",
     "manifest", "precision", "atomic_files"),
    ("kinematics", "point_sampling", "signed_distance_grid", "template_cache", "guidance", "mask_coverage",
     "image_evidence", "camera_refinement", "pose_prior"),
    ("body", "objects", "standin_body", "facing"),
    ("image_processor", "data.crop", "rendering", "person_detection", "object_mask"),
    ("models", "schedulers"),
    ("pipelines", "optimization_baseline"),
    ("data", "metrics", "evaluation", "export", "smplh_export", "batch_reconstruction"),
    ("cli", "web_app"),
)


def layer_of(module: str) -> int:
    """The layer of a dotted module path inside the package (the longest listed prefix wins)."""
    best = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (index, name)
    if best is None:
        raise KeyError(module)
    return best[0]


def package_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] != "__init__" and parts[0] != "assets":  # assets hold data (a pipeline folder's shim)
            yield ".".join(parts), path


def relative_imports(module: str, path: Path):
    """Dotted targets of the module's relative imports (``from .x import y`` may import module ``x.y``)."""
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - node.level + 1]
            if node.module:
                yield ".".join(base + [node.module])
            else:
                yield from (".".join(base + [alias.name]) for alias in node.names)


@pytest.mark.parametrize("module,path", list(package_modules()), ids=lambda value: str(value))
def test_imports_point_down_the_layers(module, path):
    own = layer_of(module)
    upward = [target for target in relative_imports(module, path) if layer_of(target) > own]
    assert not upward, f"{module} (layer {own}) imports from higher layers: {upward}"


def test_layer_of_finds_the_longest_prefix():
    assert layer_of("data.crop") == 3 and layer_of("data.behave") == 6 and layer_of("models.denoiser") == 4
    with pytest.raises(KeyError):
        layer_of("unknown_module")
