"""The learner's per-micro-batch objective: response log-probs from logits, policy loss + KL - entropy bonus.

Pure torch and etr_dist.algos (no DeepSpeed), so the sharding invariance is tested in milliseconds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from etr_dist.algos import PolicyLoss, aggregate_loss, kl_penalty, rollout_correction_weights
from etr_dist.config.schema import AlgorithmConfig
from etr_dist.learner.batch import TrainBatch

# Summed over micro-batches and ranks (each micro-batch holds its share of the step loss); the rest are means.
SHARE_METRICS = ("actor/pg_loss", "actor/kl_loss")


def response_positions(prompt_lens: Tensor, response_width: int, seq_len: int) -> Tensor:
    """[n, T] index of the logits that predict response token t: prompt_len - 1 + t (kept inside the row)."""
    offsets = torch.arange(response_width, device=prompt_lens.device)
    return (prompt_lens[:, None] - 1 + offsets).clamp(0, seq_len - 2)


def response_logits_and_labels(
    logits: Tensor, input_ids: Tensor, prompt_lens: Tensor, response_width: int
) -> tuple[Tensor, Tensor]:
    """logits [n, L, V] of the whole rows -> ([n, T, V] response logits, [n, T] response token ids)."""
    positions = response_positions(prompt_lens, response_width, logits.shape[1])  # [n, T]
    picked = logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1]))
    return picked, input_ids.gather(1, positions + 1)


def masked_token_mean(values: Tensor, mask: Tensor) -> float:
    return float((values.detach() * mask).sum() / mask.sum().clamp(min=1))


class Objective:
    """pg + kl_coef * kl - entropy_coef * entropy for one micro-batch, with the loss bound once to its config."""

    def __init__(self, algorithm: AlgorithmConfig) -> None:
        self.algorithm = algorithm
        self.policy_loss = PolicyLoss(algorithm.name, algorithm)

    def __call__(
        self,
        micro: TrainBatch,
        loss_norm: float,
        log_prob: Tensor,
        old_log_prob: Tensor,
        ref_log_prob: Tensor | None = None,
        entropy: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """This micro-batch's share of the mini-batch loss, and its metrics.

        Every term is aggregated with the mini-batch's global normaliser, so the shares of all micro-batches
        of all ranks add up to the mini-batch's loss. log_prob, old_log_prob, ref_log_prob and entropy are
        [n, T] over the micro-batch's response tokens. The policy term is weighted by the off-policy
        correction between the engine's log-probs (micro.rollout_logprobs) and old_log_prob.
        """
        algorithm, response_mask = self.algorithm, micro.response_mask
        token_weights, correction_metrics = rollout_correction_weights(
            old_log_prob, micro.rollout_logprobs, response_mask, algorithm.rollout_correction
        )
        loss, metrics = self.policy_loss(
            log_prob,
            old_log_prob,
            micro.advantages,
            response_mask,
            micro.group_var_norm,
            clip_bounds=(micro.eps_low, micro.eps_high),
            token_weights=token_weights,
            global_norm=loss_norm,
        )
        mode = algorithm.loss_agg_mode
        if ref_log_prob is not None:
            kl = kl_penalty(log_prob, ref_log_prob, algorithm.kl_estimator)  # [n, T]
            kl_loss = aggregate_loss(kl, response_mask, mode, global_norm=loss_norm)
            loss = loss + algorithm.kl_coef * kl_loss
            metrics["actor/kl_loss"] = float(kl_loss.detach())
        if entropy is not None:
            metrics["actor/entropy"] = masked_token_mean(entropy, response_mask)
            if algorithm.entropy_coef:
                loss = loss - algorithm.entropy_coef * aggregate_loss(entropy, response_mask, mode, loss_norm)
        return loss, {**metrics, **correction_metrics}
