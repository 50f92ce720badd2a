#!/usr/bin/env bash
# A GPU variant of the keypoint stage (prepared, not yet run to the end): the shipped stage-7 regressor taught
# to read detected 2D body keypoints, on one lent NVIDIA H200, with far more samples than the CPU's stage 6.
# Run from the repository root on the GPU machine, with the packages the project needs importable: python3 there has
# torch, accelerate, transformers, huggingface_hub, pyarrow and pandas; diffusers, datasets, dill, multiprocess,
# fsspec, roma, smplx, trimesh, rtree and embreex travel as cp312 wheels. Do not leave embreex out: the renders are
# ray-cast through trimesh, whose pure-NumPy fallback is about 100x slower; on 2026-11-30 two tries without it
# spent the session's 15 GPU minutes rendering (in the first the worker processes of datasets' pool died, in the
# second, with single-process renders side by side, the renders ran out of time) and trained nothing. The wheels:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl diffusers==0.42.1 datasets==5.2.0 \
#       dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0 roma==1.8.0 smplx==0.1.28 trimesh==5.2.0 rtree==1.4.1 \
#       embreex==4.4.0.post1
# and the call there (carrying .whl and .carry):
#   pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site OUTPUT=/tmp/stage8 \
#       bash training/train_keypoints_gpu.sh && tar -C /tmp/stage8/regressor8 -cf $OUT/regressor8.tar .
# .carry/detector_masks.npz is made here beforehand by
#   PYTHONPATH=training python training/detector_mask_archive.py pack --output .carry/detector_masks.npz \
#       --input runs/data/synthetic-train-n4000-seed0-192px-detector-masks \
#               runs/data/synthetic-train-n4000-start12000-192px-detector-masks
# (the detector's masks of train-stream scenes 0-3999 and 12000-15999, from train_detector_masks.sh and the
# regressor-start runs; the GPU machine has no mediapipe, so the masks travel and the renders are made again there).
#
# Data: those 8000 scenes in the default style with the detector's masks, plus 4000 randomised renders (scenes
# 4000-7999: any colours, textures, clutter, light), so that colour is no giveaway; those keep their own masks.
# Every sample gets simulated detections at the measured rates (training/simulated_keypoints.py). The keypoint
# layers start at zero, so the run starts exactly as the shipped regressor, and learn at 10x the rate.
# The step count is the smaller of STEPS and what fits in the time left (the device's time is counted);
# training_args.json records the count used. The prior would be trained afterwards on the CPU, on its tokens.
set -euo pipefail
START=$SECONDS
PY=${PY:-python3}
OUTPUT=${OUTPUT:-runs/stage8}
N=${N:-4000}                # rows of each rendered part
STEPS=${STEPS:-1200}        # at most this many optimizer steps of batch BATCH
BATCH=${BATCH:-128}
CHUNKS=${CHUNKS:-5}         # rendering processes for each of the three parts, all side by side
WORKERS=${WORKERS:-14}      # data loader workers
BUDGET=${BUDGET:-420}       # seconds this script may take in all
RATE=${RATE:-5}             # optimizer steps per second assumed when sizing the run to the time left
SHIPPED=scorehoi_diffusers/assets/scorehoi-synthetic
DATA=$OUTPUT/data
export PYTHONPATH=training:.:${PYTHONPATH:-} HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
mkdir -p "$DATA"
# Fail in seconds, not after the GPU minutes are spent, when the renders would fall back to the slow ray caster.
$PY -c "import embreex" 2>/dev/null || { echo "embreex is not importable: carry its wheel (see the header)" >&2; exit 1; }

render() {  # render START RANDOMIZED NAME: CHUNKS single-process renders side by side (no worker pool)
  local chunk size=$((N / CHUNKS))
  for chunk in $(seq 0 $((CHUNKS - 1))); do
    $PY -c "
from scorehoi_diffusers.data.synthetic import generate_dataset
generate_dataset($size, seed=0, image_size=192, start=$(($1 + chunk * size)), progress=False, randomized=$2,
                 cache_dir='$DATA/cache-$3-$chunk').save_to_disk('$DATA/$3-$chunk')" &
  done
}
render 0 False default-0
render 12000 False default-12000
render 4000 True randomized-4000
wait
$PY -c "
import datasets
for name in ('default-0', 'default-12000', 'randomized-4000'):
    parts = [datasets.load_from_disk(f'$DATA/{name}-{chunk}') for chunk in range($CHUNKS)]
    datasets.concatenate_datasets(parts).save_to_disk(f'$DATA/{name}')"
echo "rendered after $((SECONDS - START)) s"
ARCHIVE="$PY training/detector_mask_archive.py attach"
$ARCHIVE --input "$DATA/default-0" --archive .carry/detector_masks.npz --output "$DATA/default-0-masks"
$ARCHIVE --input "$DATA/default-12000" --archive .carry/detector_masks.npz --output "$DATA/default-12000-masks"
$ARCHIVE --input "$DATA/randomized-4000" --own --output "$DATA/randomized-4000-masks"
$PY -c "
import datasets
parts = [datasets.load_from_disk('$DATA/' + name) for name in ('default-0-masks', 'default-12000-masks',
                                                              'randomized-4000-masks')]
datasets.concatenate_datasets(parts).save_to_disk('$DATA/mixed')"
LEFT=$((BUDGET - (SECONDS - START) - 60))
FIT=$((LEFT * RATE))
USE=$((FIT < STEPS ? FIT : STEPS))
echo "data ready after $((SECONDS - START)) s; training $USE steps (at most $STEPS)"
$PY -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
  training/train_regressor.py --output_dir "$OUTPUT/regressor8" --init_from $SHIPPED --train_data_dir "$DATA/mixed" \
  --body_keypoints --keypoint_lr_multiplier 10 --detector_mask_prob 0.5 --synthetic_image_size 192 --resolution 128 \
  --train_batch_size "$BATCH" --dataloader_num_workers "$WORKERS" --learning_rate 2e-4 --lr_warmup_steps 50 \
  --lr_scheduler cosine --use_ema --checkpointing_steps 100000 --max_train_steps "$USE" --seed 8
echo "trained after $((SECONDS - START)) s"
