"""Typed schema for every config node: a wrong key or type fails at load with the key's full path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class EtrConfig:
    """ETR v2's knobs (docs/algorithms.md); checked by etr_dist.config.checks.check_algorithm."""

    lambda_micro: float = 1.0  # exponent of u_i = |z_i| / s in the micro factor phi_i
    lambda_macro: float = 0.5  # exponent of v_q in the macro factor psi_q
    phi_min: float = 0.25
    phi_max: float = 4.0
    eps_min: float = 0.02  # hard range of every elastic bound
    eps_max: float = 0.6
    eps_low_base: float = 0.2  # the per-side budget: mean lower bound over responses with z < 0
    eps_high_base: float = 0.28  # mean upper bound over responses with z > 0
    micro: bool = True  # ablation: false sets phi_i = 1
    macro: bool = True  # ablation: false sets psi_q = 1
    budget: str = "preserve"  # preserve (per-side mean = base) | absolute (ablation: b_i = w_i)
    side: str = "both"  # both | upper (only the upper bound is elastic)


@dataclass
class SapoConfig:
    """SAPO's soft-gate temperatures (arXiv 2511.20347); checked by check_algorithm."""

    tau_pos: float = 1.0  # gate temperature for A > 0
    tau_neg: float = 1.05  # for A < 0 (faster decay: negative updates spread to many unsampled tokens)


@dataclass
class BandpoConfig:
    """BandPO's trust-region radius (arXiv 2603.04918); checked by check_algorithm."""

    delta: float = 0.05  # chi-square radius mapped to per-token ratio bounds


@dataclass
class RolloutCorrectionConfig:
    """Off-policy correction between the engine's and the learner's log-probs (docs/baselines.md)."""

    mode: str = "token_truncate"  # ROLLOUT_CORRECTIONS: none | token_truncate | token_mask | sequence_*
    c_low: float = 0.5  # mask modes: lower threshold (IcePop's; = 1 / c_high, verl's derived default)
    c_high: float = 2.0  # truncation cap and mask upper threshold


@dataclass
class AlgorithmConfig:
    name: str = "etr"  # policy-loss registry name (etr_dist.algos.POLICY_LOSSES)
    adv_estimator: str = "grpo"  # advantage registry name (ADVANTAGES)
    clip_ratio_low: Optional[float] = None  # None: the loss's own default (each loss's one home)
    clip_ratio_high: Optional[float] = None
    clip_ratio_c: Optional[float] = 3.0
    loss_agg_mode: str = "token-mean"
    unbiased_std: bool = False
    reward_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    kl_coef: float = 0.0
    kl_estimator: str = "k3"  # k1 | k2 | k3
    entropy_coef: float = 0.0
    etr: EtrConfig = field(default_factory=EtrConfig)
    sapo: SapoConfig = field(default_factory=SapoConfig)
    bandpo: BandpoConfig = field(default_factory=BandpoConfig)
    rollout_correction: RolloutCorrectionConfig = field(default_factory=RolloutCorrectionConfig)


@dataclass
class ModelConfig:
    source: str = "tiny"  # tiny | smollm2 | hf (a local HF folder at `path`)
    path: Optional[str] = None
    dtype: str = "float32"  # auto: bf16 compute where the hardware has bf16 matmuls (etr_dist/precision.py)
    cache_dir: str = "${oc.env:ETR_DIST_CACHE,.cache/etr_dist}"
    trust_remote_code: bool = False


@dataclass
class DataConfig:
    source: str = "arithmetic"  # arithmetic | gsm_symbolic | jsonl | parquet
    train_path: Optional[str] = None
    eval_path: Optional[str] = None
    question_key: str = "question"
    answer_key: str = "answer"
    seed: int = 0
    # rows per split; null = every row of a jsonl/parquet file (eval: the whole eval_path, else a held-out 100),
    # the generator's own size for arithmetic/gsm_symbolic (2000 train, 100 eval)
    train_size: Optional[int] = None
    eval_size: Optional[int] = None
    max_operand: int = 20
    num_operands: int = 2
    # arithmetic: each question draws its operand count in [2, num_operands] and its operand bound in
    # [1, max_operand], so pass rates spread across groups; false: every question has both maxima
    mixed_difficulty: bool = False
    system_prompt: Optional[str] = None
    prompt_template: str = "{question}"
    use_chat_template: bool = True
    max_prompt_tokens: int = 256
    # grade the last number of a reply that gives no explicit answer: for arithmetic data (bare-number
    # replies), never for MATH-style data (it rewards stray digits); carried with each grading request
    last_number_fallback: bool = False


@dataclass
class VllmConfig:
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.5
    cpu_kvcache_gb: int = 1
    enforce_eager: bool = True
    max_model_len: int = 1024


@dataclass
class RolloutConfig:
    engine: str = "hf"  # hf | vllm
    num_workers: int = 1
    group_size: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    generate_batch_size: int = 64
    prompts_per_request: int = 4  # prompts per generate call: the streaming granularity of grading
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0
    seed: int = 0
    vllm: VllmConfig = field(default_factory=VllmConfig)


@dataclass
class LearnerConfig:
    num_ranks: int = 2
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | gloo | nccl
    zero_stage: int = 3
    lr: float = 1e-5
    warmup_steps: int = 0  # linear warmup over this many optimizer updates (0: none; docs/configuration.md)
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0
    micro_batch_size: int = 8
    ppo_mini_batches: int = 4  # optimizer steps per epoch, each on 1/ppo_mini_batches of the batch's groups
    ppo_epochs: int = 1  # passes over the batch per train step
    logprob_chunk_size: int = 1024
    # the step's fast paths, each exact (off: the plain path, to compare against)
    response_logits_only: bool = True  # lm_head only at the positions that predict response tokens
    old_from_first_forward: bool = True  # the first optimizer step's old log-probs from its own forward
    micro_batches_by_length: bool = True  # rows of similar length share a micro-batch: less padding
    skip_zero_advantage: bool = True  # no forward/backward for A = 0 rows when kl_coef = entropy_coef = 0
    fused_adamw: bool = True  # torch's fused AdamW kernel (one pass over the weights; CPU, CUDA and more)
    shared_prefix_forward: bool = (
        True  # a group's prompt runs once for its rows of a micro-batch (one packed row)
    )
    use_reference: bool = False
    gradient_checkpointing: bool = False
    num_cpus_per_rank: float = 1.0
    num_gpus_per_rank: float = 0.0
    seed: int = 0


# LearnerConfig's switches of the exact fast paths (benchmarks and tests turn them all off to compare)
LEARNER_FAST_PATHS = (
    "response_logits_only",
    "old_from_first_forward",
    "micro_batches_by_length",
    "skip_zero_advantage",
    "fused_adamw",
    "shared_prefix_forward",
)


@dataclass
class SyncConfig:
    transport: str = "object_store"  # object_store | nccl
    bucket_mb: int = 64


@dataclass
class RewardConfig:
    fn: Optional[str] = None  # "package.module:function" with grade's signature; None = built-in math grader
    num_workers: int = 2
    timeout_s: float = 5.0
    max_input_chars: int = 20000
    batch_timeout_s: float = 300.0  # a whole grade_batch call: past it, its unfinished items score timeout
    max_worker_start_failures: int = 3  # replacement workers failing to start in a row before the pool stops
    worker_memory_mb: int = 1024  # MB of address space a worker may add after start-up; 0 = no cap
    # written by the driver into the run's config.yaml (the built-in grader's and its libraries' versions):
    # a grader change changes the rewards; null with a custom fn
    grader_version: Optional[str] = None


@dataclass
class TimeoutsConfig:
    """Deadlines in seconds on every remote call: a call past its deadline is a fault, never a silent hang.

    The defaults sit far above what a step needs on a 2-core CPU; lower them on a cluster to notice a hung
    node sooner.
    """

    generate_s: float = 900.0  # one generate request; past it the worker is restarted and the request re-sent
    grade_s: float = 900.0  # one grade_batch call on the grader actor (its pool has its own batch deadline)
    train_s: float = 3600.0  # one learner train step, all ranks
    sync_s: float = 900.0  # one weight sync: gather on the ranks and delivery to every worker
    checkpoint_s: float = 3600.0  # save or load a checkpoint, or export a model, all ranks
    rendezvous_s: float = 300.0  # torch.distributed start-up of the learner ranks and of the weight group
    actor_start_s: float = 1800.0  # an actor's construction (loading a model) and a restarted worker's reload
    rollout_s: float = 7200.0  # the training loop waiting for one step's rollouts
    placement_s: float = (
        600.0  # a role's placement group being placed (a layout the cluster cannot fit fails)
    )


@dataclass
class RolePlacement:
    """Where one role's actors go: a placement group with one bundle per actor (docs/cluster.md)."""

    strategy: str = "PACK"  # PACK | SPREAD | STRICT_PACK | STRICT_SPREAD (Ray's placement strategies)
    # custom resources each bundle asks for besides its CPUs/GPUs, as "name:amount": pins the role to nodes
    # started with them, e.g. [rollout_node:1] with `ray start --resources='{"rollout_node": 8}'` there
    resources: list[str] = field(default_factory=list)


@dataclass
class RolesConfig:
    learner: RolePlacement = field(default_factory=RolePlacement)  # PACK: ranks close together
    rollout: RolePlacement = field(default_factory=RolePlacement)
    grader: RolePlacement = field(default_factory=RolePlacement)  # CPU-only bundles


@dataclass
class ClusterConfig:
    address: Optional[str] = None  # None: join the cluster this job runs in, else start a local one
    num_cpus: Optional[int] = 8  # logical CPUs for a local cluster
    num_gpus: Optional[int] = None
    # a rollout or grader actor that dies is restarted up to this many times (learner ranks never are: a
    # DeepSpeed group cannot take a new member, so a lost rank ends the run and resume continues it)
    max_actor_restarts: int = 3
    max_redispatch: int = (
        3  # times one generate or grade request is re-sent after a fault before the run fails
    )
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    roles: RolesConfig = field(default_factory=RolesConfig)


@dataclass
class LoggingConfig:
    tensorboard: bool = True
    progress_bar: bool = True
    samples_per_step: int = 4
    log_every: int = 1


@dataclass
class TrainerConfig:
    experiment: str = "default"
    output_dir: str = "runs"
    run_dir: Optional[str] = None  # fixed run folder; None = <output_dir>/<experiment>/<timestamp>
    total_steps: int = 10
    prompts_per_step: int = 8
    dynamic_sampling: bool = True
    max_refill_rounds: int = 8
    max_staleness: int = 0
    max_skipped_steps: int = 3  # consecutive steps whose every update was skipped (non-finite) end the run
    save_every: int = 20  # checkpoint every N steps and at the end: a crash loses at most N steps; 0 = never
    keep_last: int = 2
    eval_every: int = 0
    eval_at_start: bool = False
    eval_samples: int = 1  # k of pass@k
    eval_temperature: float = 0.0  # 0 = greedy; must be > 0 when eval_samples > 1
    # presets of configs/eval/ scored beside the held-out split, each with its own eval/<set>/* curves
    eval_sets: list[str] = field(default_factory=list)
    resume: str = "never"  # never | auto | <checkpoint path>
    seed: int = 0


@dataclass
class RootConfig:
    # modules imported at start by the driver and every Ray actor, e.g. to register a policy loss
    plugins: list[str] = field(default_factory=list)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
