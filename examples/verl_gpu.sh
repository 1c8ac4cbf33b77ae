#!/usr/bin/env bash
# PKPO in verl 0.9.1 on a GPU node: GRPO-style outcome-reward training with the `pkpo` estimator.
#
# NOT RUN in this project's CI or on its CPU machines (needs GPUs, vLLM, Ray and model weights).
# What *is* tested on CPU against the real verl 0.9.1 (tests/integrations/test_verl.py): the
# estimator through verl's compute_advantage, the entry-point registration on `import verl`, and
# the `pkpo_sync` trainer's registration. The override keys below were checked by composing
# verl's Hydra config (ppo_trainer.yaml) with them on CPU; this script was not run end to end.
#
# Prerequisites:  pip install "pkpo[verl]" plus verl's GPU extras (vllm, flash-attn) in the same
# env on every node; data prepared by verl's examples/data_preprocess/gsm8k.py.
#
# The `pkpo` estimator is registered in every process that imports verl through the package's
# `verl.plugins` entry point (nothing to pass). If your env disables plugins
# (VERL_USE_EXTERNAL_PLUGINS=none), add
#   +ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=pkpo.integrations.verl
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
DATA=${DATA:-$HOME/data/gsm8k}
N=${N:-16}                       # samples per prompt (the group size n)
SCHEDULE=${SCHEDULE:-"8->1@150"} # k=8 until global step 150, then k=1 (paper's annealing, Fig. 3)
NGPUS=${NGPUS:-8}

python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=pkpo \
    +algorithm.pkpo.schedule="'${SCHEDULE}'" \
    +algorithm.pkpo.baseline=loo_minus_one \
    +algorithm.pkpo.rollout_n="${N}" \
    algorithm.use_kl_in_reward=False \
    trainer.v1.trainer_mode=pkpo_sync \
    data.train_files="${DATA}/train.parquet" \
    data.val_files="${DATA}/test.parquet" \
    data.train_batch_size=256 \
    data.max_prompt_length=512 \
    data.max_response_length=1024 \
    actor_rollout_ref.model.path="${MODEL}" \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.actor.loss_agg_mode=token-mean \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n="${N}" \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16 \
    trainer.n_gpus_per_node="${NGPUS}" \
    trainer.nnodes=1 \
    trainer.total_epochs=15 \
    trainer.logger='["console"]' \
    trainer.project_name=pkpo \
    trainer.experiment_name="pkpo-${SCHEDULE//[^0-9a-z]/_}-n${N}" \
    "$@"
