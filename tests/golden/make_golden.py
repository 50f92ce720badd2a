"""Record the shipped pipeline's outputs so a refactor can be checked to leave them bit-identical.

Run from the repository root: ``python tests/golden/make_golden.py``. It rewrites ``tests/golden/outputs.npz``;
do that only when a change is *meant* to alter outputs, and say why in the commit.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_cases import MACHINE_KEY, compute_cases, machine  # noqa: E402

if __name__ == "__main__":
    arrays = compute_cases()  # the "learned" case with the pipeline's defaults, as test_golden_outputs runs it
    out = Path(__file__).resolve().parent / "outputs.npz"
    np.savez_compressed(out, **arrays, **{MACHINE_KEY: np.array(machine())})
    print(f"wrote {len(arrays)} arrays to {out}")
