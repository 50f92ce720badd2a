"""The shipped pipeline's outputs and the synthetic data stay bit-identical across refactors.

``tests/golden/outputs.npz`` was recorded with ``tests/golden/make_golden.py``. The "learned" case is
``pipe(image=...)`` with its defaults: it must use the registered learned contact estimator.

Bit-identical holds on a machine like the recording's (``golden_cases.machine``). Another processor rounds
float32 differently in the last bits (measured: at most 1e-5 on the contacts, 2e-6 on the betas, between two
2-core x86 machines), so there the outputs must agree to ``CROSS_MACHINE_TOLERANCE``; any change of the method
moves them by orders of magnitude more (one exact-inversion iteration: 1e-2).
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from golden_cases import MACHINE_KEY, compute_cases, machine  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden" / "outputs.npz"
CROSS_MACHINE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def recorded():
    with np.load(GOLDEN) as data:
        return {name: data[name] for name in data.files if name != MACHINE_KEY}


@pytest.fixture(scope="module")
def same_machine():
    with np.load(GOLDEN) as data:
        return MACHINE_KEY in data.files and str(data[MACHINE_KEY]) == machine()


@pytest.fixture(scope="module")
def current():
    return compute_cases(learned_contacts={})


def test_golden_cases_are_recorded_and_distinguish_the_contact_estimators(recorded):
    assert not np.array_equal(recorded["learned/contacts/human"], recorded["proximity/contacts/human"])
    assert any(name.startswith("synthetic/render") for name in recorded)


def test_outputs_are_bit_identical_to_the_recording(recorded, current, same_machine):
    assert sorted(current) == sorted(recorded)
    if same_machine:
        different = [name for name in recorded if not np.array_equal(current[name], recorded[name])]
    else:
        different = [name for name in recorded if current[name].shape != recorded[name].shape or not np.allclose(
            current[name], recorded[name], rtol=CROSS_MACHINE_TOLERANCE, atol=CROSS_MACHINE_TOLERANCE)]
    assert not different, f"outputs changed ({'bit-identical' if same_machine else 'another machine'}): {different}"
