"""The shipped pipeline's outputs and the synthetic data stay bit-identical across refactors.

``tests/golden/outputs.npz`` was recorded with ``tests/golden/make_golden.py``. The "learned" case is
``pipe(image=...)`` with its defaults: it must use the registered learned contact estimator.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from golden_cases import compute_cases  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden" / "outputs.npz"


@pytest.fixture(scope="module")
def recorded():
    with np.load(GOLDEN) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def current():
    return compute_cases(learned_contacts={})


def test_golden_cases_are_recorded_and_distinguish_the_contact_estimators(recorded):
    assert not np.array_equal(recorded["learned/contacts/human"], recorded["proximity/contacts/human"])
    assert any(name.startswith("synthetic/render") for name in recorded)


def test_outputs_are_bit_identical_to_the_recording(recorded, current):
    assert sorted(current) == sorted(recorded)
    different = [name for name in recorded if not np.array_equal(current[name], recorded[name])]
    assert not different, f"outputs changed: {different}"
