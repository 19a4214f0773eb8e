"""One data-parallel rank of the learner: a DeepSpeed ZeRO-3 engine of the policy, the RL step, weight export.

A plain class (Ray wraps it in group.py). The torch.distributed variables (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT) must be set before it is built; every method that touches parameters is
collective, so all ranks call it together.
"""

from __future__ import annotations

import datetime
import importlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import deepspeed
import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LambdaLR
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.integrations import HfDeepSpeedConfig

from etr_dist.config.schema import AlgorithmConfig, LearnerConfig, ModelConfig, RootConfig
from etr_dist.learner.batch import MicroBatch, TrainBatch, micro_batches, split_mini_batches
from etr_dist.learner.metrics import RankMetrics, StepMetrics
from etr_dist.learner.objective import Objective
from etr_dist.learner.response_forward import ResponseLogits, response_logits
from etr_dist.precision import autocast
from etr_dist.registry import import_plugins
from etr_dist.sync.buckets import bucketize

# model.dtype=auto keeps float32 weights and optimizer state; _response_logits autocasts the compute (precision.py)
DTYPES = {
    "auto": torch.float32,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
PRECISION_SECTIONS = {
    "auto": {},
    "float32": {},
    "bfloat16": {"bf16": {"enabled": True}},
    "float16": {"fp16": {"enabled": True}},
}
CHECKPOINT_TAG = "learner"


def resolve_backend(name: str) -> str:
    """learner.backend: auto = nccl where CUDA is available, else gloo."""
    if name == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    return name


def init_distributed(
    backend: str, rank: int, world_size: int, store: dist.Store | None = None, timeout_s: float = 1800.0
) -> None:
    """The ranks' process group: on `store` (a rendezvous whose host holds its port), else from the env
    variables; every collective fails after timeout_s. On gloo skip the ~45 s JIT build of DeepSpeed's shm op."""
    if backend == "gloo":
        importlib.import_module("deepspeed.comm.torch")
        sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None  # the module's name shadows torch
    timeout = datetime.timedelta(seconds=timeout_s)
    if store is not None and not dist.is_initialized():
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    deepspeed.init_distributed(dist_backend=backend, timeout=timeout)  # adopts an initialised group


@dataclass(frozen=True)
class LearnerSetup:
    """What a learner rank needs from the config tree, typed; built once where the group is built."""

    model_path: str
    model: ModelConfig
    learner: LearnerConfig
    algorithm: AlgorithmConfig
    # rollout.temperature and rollout.top_p: the log-probs describe the distribution the engine sampled
    temperature: float
    top_p: float
    plugins: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: RootConfig, model_path: str) -> LearnerSetup:
        return cls(
            model_path=str(model_path),
            model=cfg.model,
            learner=cfg.learner,
            algorithm=cfg.algorithm,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            plugins=tuple(cfg.plugins),
        )

    @property
    def skips_zero_advantage(self) -> bool:
        """A = 0 rows add nothing to the loss unless a KL or entropy term is on: shard_batch may leave them out."""
        algorithm = self.algorithm
        return self.learner.skip_zero_advantage and algorithm.kl_coef == 0 and algorithm.entropy_coef == 0


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout probabilities to 0, so the model can stay in train mode (gradient checkpointing needs it)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)
    for name, value in model.config.to_dict().items():
        if "dropout" in name and isinstance(value, float):
            setattr(model.config, name, 0.0)


def deepspeed_config(learner_cfg: LearnerConfig, model_dtype: str, world_size: int) -> dict[str, Any]:
    """ZeRO-3, plain torch AdamW; the caller owns accumulation (step() after any number of backwards)."""
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "train_batch_size": world_size,
        "managed_gradient_accumulation": False,
        "gradient_clipping": learner_cfg.grad_clip,
        "zero_optimization": {"stage": learner_cfg.zero_stage, "stage3_param_persistence_threshold": 0},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**62,
        "wall_clock_breakdown": False,
        **PRECISION_SECTIONS[model_dtype],
    }


def linear_warmup(warmup_steps: int) -> Callable[[torch.optim.Optimizer], LambdaLR] | None:
    """learner.warmup_steps: optimizer update u (from 1) uses lr * min(1, u / warmup_steps); 0: no scheduler.
    DeepSpeed steps it after each applied update and keeps its position in the checkpoint."""
    if warmup_steps == 0:
        return None
    return lambda optimizer: LambdaLR(optimizer, lambda done: min(1.0, (done + 1) / warmup_steps))


class PolicyLearner:
    def __init__(
        self,
        setup: LearnerSetup,
        rank: int,
        world_size: int,
        store: dist.Store | None = None,
        timeout_s: float = 1800.0,
    ) -> None:
        self.setup, self.rank, self.world_size = setup, rank, world_size
        self.learner_cfg, self.model_path = setup.learner, setup.model_path
        import_plugins(setup.plugins)
        if setup.algorithm.kl_coef > 0 and not setup.learner.use_reference:
            raise ValueError("algorithm.kl_coef > 0 needs a reference model: set learner.use_reference=true")
        init_distributed(resolve_backend(setup.learner.backend), rank, world_size, store, timeout_s)
        torch.manual_seed(setup.learner.seed)
        self.objective = Objective(setup.algorithm)
        self._ds_config = deepspeed_config(setup.learner, setup.model.dtype, world_size)
        self.engine = self._build_policy()
        self.reference = self._build_reference() if setup.learner.use_reference else None

    def _load_model(self, ds_config: dict[str, Any]) -> torch.nn.Module:
        # transformers partitions the weights at load while this object is alive (it holds a weakref)
        self._hf_ds_config = HfDeepSpeedConfig(ds_config)
        return AutoModelForCausalLM.from_pretrained(
            self.model_path,
            dtype=DTYPES[self.setup.model.dtype],
            trust_remote_code=self.setup.model.trust_remote_code,
        )

    def _build_policy(self) -> deepspeed.DeepSpeedEngine:
        model = self._load_model(self._ds_config)
        disable_dropout(model)
        model.train()  # dropout is 0; train mode keeps gradient checkpointing active
        if self.learner_cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        learner = self.learner_cfg
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=learner.lr,
            betas=tuple(learner.betas),
            weight_decay=learner.weight_decay,
            fused=learner.fused_adamw,
        )
        engine, *_ = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=linear_warmup(learner.warmup_steps),
            config=self._ds_config,
        )
        engine.train()
        return engine

    def _build_reference(self) -> deepspeed.DeepSpeedEngine:
        """The frozen initial policy, partitioned like the policy, without an optimizer."""
        model = self._load_model(self._ds_config).requires_grad_(False)
        engine, *_ = deepspeed.initialize(model=model, config=self._ds_config)
        engine.eval()
        return engine

    @property
    def device(self) -> torch.device:
        return self.engine.device

    def _response_logits(self, engine: Any, micro: TrainBatch) -> ResponseLogits:
        learner = self.learner_cfg
        with autocast(self.setup.model.dtype, self.device):  # backward runs in the dtypes autocast chose
            return response_logits(engine, micro, learner.response_logits_only, learner.shared_prefix_forward)

    def _log_probs(self, engine: Any, micro: TrainBatch) -> torch.Tensor:
        setup = self.setup
        return self._response_logits(engine, micro).log_probs(
            self.learner_cfg.logprob_chunk_size, setup.temperature, setup.top_p
        )

    @torch.no_grad()
    def _fixed_inputs(self, micro: TrainBatch, old: bool = True) -> dict[str, torch.Tensor]:
        """What stays constant over the PPO epochs: old log-probs (current weights) and the reference's.

        old=False leaves the old log-probs to the rows' first forward (_micro_step), which comes before any update.
        """
        fixed = {"old_log_prob": self._log_probs(self.engine, micro)} if old else {}
        if self.reference is not None:
            fixed["ref_log_prob"] = self._log_probs(self.reference, micro)
        return fixed

    def _micro_step(self, micro: MicroBatch, fixed: dict[str, torch.Tensor], loss_norm: float) -> dict:
        batch = micro.batch
        response = self._response_logits(self.engine, batch)
        chunk, setup = self.learner_cfg.logprob_chunk_size, self.setup
        log_prob = response.log_probs(chunk, setup.temperature, setup.top_p)
        if "old_log_prob" not in fixed:  # the step's first update: this forward is the old policy
            fixed["old_log_prob"] = log_prob.detach()
        with torch.set_grad_enabled(bool(setup.algorithm.entropy_coef)):
            entropy = response.entropy(chunk, setup.temperature, setup.top_p)
        loss, metrics = self.objective(batch, loss_norm, log_prob, entropy=entropy, **fixed)
        # DeepSpeed averages gradients over ranks; the shares of all ranks must add up instead
        self.engine.backward(loss * (micro.loss_weight * self.world_size), scale_wrt_gas=False)
        return metrics

    def train_step(self, shard: TrainBatch) -> RankMetrics:
        """PPO epochs x the shard's mini-batches of accumulated micro-batches, one optimizer step each."""
        learner = self.learner_cfg
        minis = split_mini_batches(shard.to(self.device))
        plan = [
            (
                micro_batches(
                    mini,
                    learner.micro_batch_size,
                    info.max_rows,
                    learner.micro_batches_by_length,
                    learner.shared_prefix_forward,
                ),
                info.loss_norm,
            )
            for mini, info in minis
        ]
        # before any update: the old log-probs of every row whose first forward comes after one
        fixed = [
            [
                self._fixed_inputs(micro.batch, old=index > 0 or not learner.old_from_first_forward)
                for micro in micros
            ]
            for index, (micros, _) in enumerate(plan)
        ]
        metrics = StepMetrics(self.world_size)
        for _ in range(learner.ppo_epochs):
            for (micros, loss_norm), fixed_inputs in zip(plan, fixed, strict=True):
                for micro, inputs in zip(micros, fixed_inputs, strict=True):
                    step_metrics = self._micro_step(micro, inputs, loss_norm)
                    metrics.add_micro_batch(step_metrics, micro.loss_weight, micro.batch.num_response_tokens)
                skipped_before, lr = self.engine.skipped_steps, self.engine.get_lr()[0]  # this update's lr
                self.engine.step()  # DeepSpeed skips the update when the gradient norm is not finite
                skipped = self.engine.skipped_steps > skipped_before
                grad_norm = float(self.engine.get_global_grad_norm())
                metrics.add_optimizer_step(grad_norm, lr, skipped)
        return metrics.result()

    def export_weights(self, bucket_mb: float, device: torch.device | str = "cpu") -> Iterator[list]:
        """Full weights, bucket by bucket, gathered from the ZeRO-3 partitions: [(HF name, tensor)] on rank 0.

        Collective: every rank must consume the iterator in step (the others get empty buckets).
        """
        params = dict(self.engine.module.named_parameters())
        sizes = [(name, getattr(p, "ds_numel", p.numel()) * p.element_size()) for name, p in params.items()]
        for names in bucketize(sizes, bucket_mb):
            bucket_params = [params[name] for name in names]
            with deepspeed.zero.GatheredParameters(bucket_params, modifier_rank=None):
                bucket = (
                    [
                        (name, p.detach().to(device, copy=True))
                        for name, p in zip(names, bucket_params, strict=True)
                    ]
                    if self.rank == 0
                    else []
                )
            yield bucket

    def gathered_state_dict(self) -> dict[str, torch.Tensor]:
        """Collective; the full weights on rank 0, {} elsewhere."""
        return {name: t for bucket in self.export_weights(bucket_mb=256) for name, t in bucket}

    def save_checkpoint(self, directory: str, client_state: dict[str, Any]) -> None:
        """Collective: partitions, optimizer state and client_state (on a filesystem all ranks see)."""
        self.engine.save_checkpoint(directory, tag=CHECKPOINT_TAG, client_state=client_state)

    def load_checkpoint(self, directory: str) -> dict[str, Any]:
        """Collective: restore what save_checkpoint wrote; returns its client_state."""
        path, client_state = self.engine.load_checkpoint(directory, tag=CHECKPOINT_TAG)
        if path is None:
            raise FileNotFoundError(f"no learner checkpoint (tag '{CHECKPOINT_TAG}') under {directory}")
        return client_state

    def save_hf(self, directory: str) -> None:
        """Collective: the full policy as a Hugging Face folder (weights + tokenizer), written by rank 0."""
        state_dict = self.gathered_state_dict()
        if self.rank == 0:
            self.engine.module.save_pretrained(directory, state_dict=state_dict)
            AutoTokenizer.from_pretrained(self.model_path).save_pretrained(directory)
