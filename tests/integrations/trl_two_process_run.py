"""Run under ``torchrun --nproc_per_node 2``: two PKPOGRPOTrainer steps, one record per rank.

Usage: trl_two_process_run.py MODEL_DIR OUT_DIR. Each rank writes OUT_DIR/rank{r}.json with, per
generation call, its local prompts and completions (in row order), its local advantages, and the
gathered rewards it saw. The test compares them with a one-process computation.
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import trl_tiny

from pkpo.integrations.trl import PKPOGRPOConfig, PKPOGRPOTrainer

NUM_GENERATIONS = 4
PER_DEVICE = 6  # 2 ranks x 6 rows = 3 groups of 4: the middle group spans both ranks
K = 2


def reward(prompts, completions, **kwargs):
    """Continuous reward: letters of the completion equal to the prompt's letter (0..3), / 3."""
    return [
        sum(char == prompt[0] for char in completion) / 3
        for prompt, completion in zip(prompts, completions)
    ]


class RecordingTrainer(PKPOGRPOTrainer):
    records: list

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        gathered = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self.records.append(
            {
                "prompts": list(prompts),
                "completions": list(completions),
                "gathered_rewards": gathered[:, 0].tolist(),
            }
        )
        return gathered

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        self.records[-1]["advantages"] = output["advantages"].tolist()
        return output


def main(model_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    config = PKPOGRPOConfig(
        output_dir=os.path.join(out_dir, "trainer"),
        pkpo_k=K,
        num_generations=NUM_GENERATIONS,
        per_device_train_batch_size=PER_DEVICE,
        max_completion_length=3,
        max_steps=2,
        learning_rate=1e-3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    tokenizer = trl_tiny.build_tokenizer()
    trainer = RecordingTrainer(
        model=model_dir,
        reward_funcs=reward,
        args=config,
        train_dataset=trl_tiny.prompts_dataset(),
        processing_class=tokenizer,
    )
    trainer.records = []
    trainer.train()
    rank = trainer.accelerator.process_index
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
        json.dump(
            {"rank": rank, "world": trainer.accelerator.num_processes, "records": trainer.records},
            handle,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
