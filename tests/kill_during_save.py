"""Run a training script, but SIGKILL rank 0 half-way through writing checkpoint `SCOREHOI_KILL_AT_STEP`.

`accelerate launch tests/kill_during_save.py training/train_regressor.py ARGS...` runs the script unchanged until
rank 0's checkpoint writes its first `checkpoint_state.save_file` file (the optimizer state, after the weights)
into the temporary folder of that step; there it keeps half of the bytes and kills the process, as a power cut or the
OOM killer would. The launcher then tears the other rank down. What is left on disk is what a real crash leaves.
"""
import os
import runpy
import signal
import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1] / "training"
sys.path.insert(0, str(TRAINING))

import checkpoint_state  # noqa: E402
from training_setup import TEMPORARY_CHECKPOINT_PREFIX  # noqa: E402

KILL_FOLDER = f"{TEMPORARY_CHECKPOINT_PREFIX}{int(os.environ['SCOREHOI_KILL_AT_STEP'])}"
real_save = checkpoint_state.save_file


def save_then_die(tensors, filename, *args, **kwargs):
    if os.environ.get("RANK") == "0" and Path(filename).parent.name == KILL_FOLDER:
        real_save(tensors, filename, *args, **kwargs)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(tensors, filename, *args, **kwargs)


checkpoint_state.save_file = save_then_die
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
