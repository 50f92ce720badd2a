#!/usr/bin/env bash
# How scorehoi_diffusers/assets/scorehoi-synthetic (the shipped pipeline) was trained, in seven warm-started stages:
# stages 1-3, 5, 7 and 8 on a 2-core CPU (about 4 h 15 min in all), stage 4 on one NVIDIA H200 GPU (about 2.5 min).
# (Stage 6, keypoint input, was an experiment that was not shipped: training/train_keypoints.sh.)
# Every random choice in the scripts depends only on (seed, step, rank), so the CPU stages reproduce the weights
# bit for bit; the GPU stage reproduces them up to the GPU's floating-point nondeterminism.
#
# Stage 1 (about 45 min): 2000 renders at 192 px; a regressor on a 1500-step cosine schedule, stopped at its
# step-1000 checkpoint for time (resuming that checkpoint with --max_train_steps 1000 writes the final folders);
# a 3000-step prior. This was the first shipped version.
# Stage 2 (about 30 min): both models warm-started from stage 1 (--init_from) on 6000 renders (the first 2000 are
# stage 1's) with fresh cosine schedules: 2400 regressor steps, then 2000 prior steps on the new regressor's tokens.
# Stage 3 (about 45 min): the same again from stage 2, on the same 6000 renders with another data order (seed 1).
# Stage 4 (one H200, about 2.5 min; it needs a GPU): the regressor from stage 3 on 12000 renders (the first 6000
# are stage 2's), 1200 steps of batch 128 (154 k samples, twice stage 3's). No prior is trained here: stage 5
# changes the regressor again. The recorded run rendered the table beforehand with
# `generate_dataset(12000, seed=0, image_size=192, num_proc=15)`, which gives the same rows.
# Stage 5 (about 35 + 7 min): the regressor from stage 4 on the same 12000 renders at a lower learning rate
# (2e-4, seed 3), then the prior from stage 3 on the new regressor's tokens.
set -euo pipefail
export ACCELERATE_USE_CPU=true OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
LAUNCH=".venv/bin/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no"
COMMON="--synthetic_image_size 192 --resolution 128 --lr_scheduler cosine --use_ema --checkpoints_total_limit 2
  --resume_from_checkpoint latest --seed 0"

# The prior of stages 2, 3 and 5, warm-started: train_prior OUTPUT_DIR INIT_FROM REGRESSOR_PATH TRAIN_DATA_DIR SEED
train_prior() {
  $LAUNCH training/train_denoiser.py --output_dir "$1" --init_from "$2" --regressor_path "$3" --train_data_dir "$4" \
    --num_param_samples 12000 --train_batch_size 32 --param_only_fraction 0.5 --max_train_steps 2000 \
    --learning_rate 5e-4 --lr_warmup_steps 50 --checkpointing_steps 1000 ${COMMON/--seed 0/--seed $5}
}

# Stage 1
REGRESSOR_ARGS="--output_dir runs/regressor --num_train_samples 2000 --train_batch_size 16 --learning_rate 1e-3
  --lr_warmup_steps 100 --checkpointing_steps 500 $COMMON"
$LAUNCH training/train_regressor.py $REGRESSOR_ARGS --max_train_steps 1500 &
until [ -f runs/regressor/checkpoint-1000/training_state.json ]; do sleep 10; done
pkill -f train_regressor.py || true
wait || true
$LAUNCH training/train_regressor.py $REGRESSOR_ARGS --max_train_steps 1000
$LAUNCH training/train_denoiser.py --output_dir runs/pipeline --regressor_path runs/regressor \
  --train_data_dir runs/regressor/data/synthetic-train-n2000-seed0-192px --num_param_samples 4000 \
  --train_batch_size 32 --param_only_fraction 0.5 --max_train_steps 3000 --learning_rate 1e-3 \
  --lr_warmup_steps 100 --checkpointing_steps 1000 $COMMON

# Stage 2
$LAUNCH training/train_regressor.py --output_dir runs/regressor2 --init_from runs/pipeline \
  --num_train_samples 6000 --train_batch_size 16 --learning_rate 5e-4 --lr_warmup_steps 50 \
  --checkpointing_steps 400 --max_train_steps 2400 $COMMON
train_prior runs/pipeline2 runs/pipeline runs/regressor2 runs/regressor2/data/synthetic-train-n6000-seed0-192px 0

# Stage 3
$LAUNCH training/train_regressor.py --output_dir runs/regressor3 --init_from runs/regressor2 \
  --train_data_dir runs/regressor2/data/synthetic-train-n6000-seed0-192px --train_batch_size 16 \
  --learning_rate 5e-4 --lr_warmup_steps 50 --checkpointing_steps 400 --max_train_steps 2400 ${COMMON/--seed 0/--seed 1}
train_prior runs/pipeline3 runs/pipeline2 runs/regressor3 runs/regressor2/data/synthetic-train-n6000-seed0-192px 1

# Stage 4
env -u ACCELERATE_USE_CPU .venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
  --dynamo_backend no training/train_regressor.py --output_dir runs/regressor4 --init_from runs/pipeline3 \
  --num_train_samples 12000 --train_batch_size 128 --dataloader_num_workers 14 --learning_rate 5e-4 \
  --lr_warmup_steps 50 --checkpointing_steps 100000 --max_train_steps 1200 ${COMMON/--seed 0/--seed 2}

# Stage 5
$LAUNCH training/train_regressor.py --output_dir runs/regressor5 --init_from runs/regressor4 \
  --train_data_dir runs/regressor4/data/synthetic-train-n12000-seed0-192px --train_batch_size 16 \
  --learning_rate 2e-4 --lr_warmup_steps 50 --checkpointing_steps 400 --max_train_steps 2400 ${COMMON/--seed 0/--seed 3}
train_prior runs/pipeline5 runs/pipeline3 runs/regressor5 runs/regressor4/data/synthetic-train-n12000-seed0-192px 3

# Guidance weights of the shipped pipeline, chosen on a validation slice of the train stream that training never
# rendered (indices 20000-20047, seed 0) with training/choose_guidance.py run on the stage-2 pipeline
# (`--pipeline runs/pipeline2 --cycles 2 10`): the setting that beats the regressor alone on contact F, penetration
# depth and penetration volume at both N = 2 and N = 10 with the smallest object-Chamfer cost. Never the test split.
# Added later, each chosen on the validation slice with simulated detections, the others at their defaults then:
# contact_decision 0.3 (`training/choose_guidance.py --keypoints simulated --num-samples 100 --cycles 2 10
# --contact-decisions none 0.3 0.5 0.7`, lowest MPJPE + PA-MPJPE + CD_h + CD_o + penetration depth at N = 2) and
# mask_coverage 100 (`training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --simulator learned
# --mask-coverages 0 10 30 100 300 1000`, lowest CD_h + CD_o at N = 2).
.venv/bin/python - <<'PY'
import json, dataclasses
from scorehoi_diffusers.guidance import GuidanceConfig
path = "runs/pipeline5/model_index.json"
index = json.load(open(path))
index["guidance"] = dataclasses.asdict(GuidanceConfig(scale=10.0, penetration=10.0, floor=0.0, mask=10.0,
                                                         mask_coverage=100.0, contact_decision=0.3))
open(path, "w").write(json.dumps(index, indent=2, sort_keys=True) + "\n")
PY

# Stage 7 (about 25 min): the regressor taught the bundled detector's person mask (half of each batch gets it in place
# of the render's mask), then the prior on its tokens; the script copies stage 5's guidance weights above into the new
# folder. Shipped because it passed its validation rule (training/validate_detector_masks.py) and, with the keypoint
# fit's facing restarts, both real photos face the viewer (docs/results.md, "The regressor taught the detector's person mask").
bash training/train_detector_masks.sh runs/pipeline5

# Stage 8 (about 1 h): the stage-7 regressor taught the detected 2D body keypoints on a frozen image backbone, on
# 12000 renders (a third in the randomised style), then the prior on its tokens and keypoints; the script copies
# stage 7's guidance weights into the new folder. Shipped because it passed the validation rule fixed before its run
# (docs/results.md, "Keypoint input on a frozen backbone: stage 8, shipped").
bash training/train_keypoints_frozen.sh runs/pipeline7

rm -rf scorehoi_diffusers/assets/scorehoi-synthetic && mkdir -p scorehoi_diffusers/assets/scorehoi-synthetic
cp -r runs/pipelineK/{README.md,body_model,contact_estimator,denoiser,model_index.json,pipeline.py,regressor,scheduler,training_args.json} scorehoi_diffusers/assets/scorehoi-synthetic/
