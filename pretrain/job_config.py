"""Typed schema of the trainer's Hydra config: every key, its default and what it is for.

`configs/train.yaml` and its groups fill these in; an unknown or mistyped key is an error at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class RunConfig:
    dir: str = "runs/default"
    """Run directory: resolved config.yaml, metrics.jsonl, tb/, checkpoints/ (DESIGN.md)."""


@dataclass
class ModelConfig:
    """A named shape from pretrain.configs; any field set here (not None) replaces the shape's."""

    name: str = "llama3_debug"
    """llama3_debug, llama3_8b, llama3_70b, llama3_405b, llama3_1_8b (see pretrain.configs)."""
    vocab_size: int | None = None
    """Embedding rows; must cover the tokenizer the data was packed with."""
    dim: int | None = None
    """Hidden size."""
    n_layers: int | None = None
    """Transformer blocks."""
    n_heads: int | None = None
    """Query heads."""
    n_kv_heads: int | None = None
    """Key/value heads (GQA)."""
    multiple_of: int | None = None
    """SwiGLU hidden size rounding."""
    ffn_dim_multiplier: float | None = None
    """SwiGLU hidden size multiplier."""
    rope_theta: float | None = None
    """RoPE base frequency."""
    max_seq_len: int | None = None
    """Longest sequence the model is built for."""
    attention: str | None = None
    """Document-masked attention kernel: auto (flex on CUDA, sdpa on CPU), sdpa or flex."""
    norm_eps: float | None = None
    """RMSNorm epsilon."""
    init_std: float | None = None
    """Std of the truncated-normal weight init."""

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "name" and v is not None}


@dataclass
class DataConfig:
    path: str = "???"
    """Directory of packed training shards (output of `andes-data pack`, with manifest.json)."""
    seq_len: int = 2048
    """Tokens per training sequence; must equal the shards' seq_len."""
    tokenizer: str | None = None
    """Tokenizer the shards were packed with (tiktoken ranks file; None = Llama 3's), for sampling."""
    shuffle: bool = True
    """Visit sequences in a seeded random order (a new permutation every epoch)."""


@dataclass
class ValidationConfig:
    path: str | None = None
    """Packed shards to compute validation loss on; None disables validation."""
    interval: int = 100
    """Run validation every this many steps (and after the last step)."""
    steps: int = 4
    """Global batches per validation run (fewer if the set is smaller)."""


@dataclass
class TrainingConfig:
    steps: int = 100
    """Optimizer steps to train for."""
    seed: int = 0
    """Seed of model init and data order; the same seed gives the same run in any layout."""
    global_batch_size: int = 8
    """Sequences per optimizer step, summed over data-parallel ranks and accumulation."""
    micro_batch_size: int = 8
    """Sequences per forward/backward on one rank; accumulation = global / (micro * dp)."""
    max_norm: float = 1.0
    """Gradient-norm clipping threshold; <= 0 disables clipping (the norm is still logged)."""
    dtype: str = "float32"
    """Compute dtype: float32 or bfloat16 (params and optimizer state stay fp32)."""
    deterministic: bool = True
    """Use deterministic kernels where PyTorch has them."""
    sample_prompt: str | None = None
    """If set, rank 0 prints a continuation of this prompt after training."""
    sample_tokens: int = 48
    """How many tokens to sample after `sample_prompt`."""
    sample_temperature: float = 0.0
    """Sampling temperature (0 = greedy); sampling is seeded by training.seed."""
    sample_top_k: int | None = None
    """Sample only among the k most likely tokens (None = all)."""
    max_nonfinite_skips: int = 0
    """Steps with a NaN/Inf loss or gradient norm that are skipped (no optimizer update) before the
    run stops with exit code 4; 0 = stop at the first one."""
    spike_zscore: float = 0.0
    """Flag a loss more than this many standard deviations above the recent window (0 = off)."""
    spike_window: int = 128
    """Steps of loss history the spike z-score is computed over."""
    skip_spikes: bool = False
    """Skip the optimizer update of a flagged spike (else it is only logged as loss_spike)."""
    step_timeout_s: float = 600.0
    """Watchdog: a step (after the first) taking longer dumps all stacks and exits with code 5;
    collectives time out at 1.5x this. 0 disables the watchdog."""
    first_step_timeout_s: float = 1800.0
    """Watchdog limit for the first step, which includes compilation and pipeline shape inference."""


@dataclass
class OptimConfig:
    lr: float = 3e-4
    """Peak learning rate."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas (Llama 3 paper: 0.9, 0.95)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.1
    """Decoupled weight decay on matrices; norms (1-D params) are never decayed."""
    decay_embeddings: bool = True
    """Also decay the input embedding (Megatron and Llama do; some recipes don't)."""


@dataclass
class LRConfig:
    schedule: str = "cosine"
    """cosine (warmup then cosine to min) | wsd (warmup, stable, decay) | constant (after warmup)."""
    warmup_steps: int = 10
    """Linear warmup from ~0 to the peak."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""
    decay_fraction: float = 0.2
    """wsd: fraction of all steps spent in the final decay."""
    decay_shape: str = "linear"
    """wsd: shape of the final decay: linear | sqrt | cosine."""


@dataclass
class ParallelConfig:
    dp_replicate: int = 1
    """HSDP replicas (outer data-parallel dim)."""
    dp_shard: int = -1
    """FSDP shard degree; -1 = the rest of the world size."""
    tp: int = 1
    """Tensor + sequence parallel degree."""
    pp: int = 1
    """Pipeline stages."""
    cp: int = 1
    """Context parallel degree (reserved: only 1 is accepted in this release)."""
    pp_schedule: str = "1F1B"
    """Pipeline schedule: GPipe, 1F1B (one stage per rank), Interleaved1F1B, InterleavedZeroBubble
    (pp_stages_per_rank stages per rank, looped) or ZBVZeroBubble (two stages per rank, V-shaped)."""
    pp_stages_per_rank: int = 2
    """Virtual stages per rank for the interleaved schedules (ZBVZeroBubble needs 2)."""
    pp_layers_per_stage: list[int] | None = None
    """Explicit blocks per pipeline stage (length pp * stages per rank); None = balanced split."""
    pp_first_stage_extra: float = 0.0
    """Cost of the embedding, in blocks, counted on the first stage when balancing the split."""
    pp_last_stage_extra: float = 1.0
    """Cost of the final norm + output projection + loss, in blocks, counted on the last stage."""
    fsdp_cpu_offload: bool = False
    """FSDP: keep sharded parameters, gradients and optimizer state in host memory."""
    reshard_after_forward: bool = True
    """FSDP: free gathered parameters after forward (ZeRO-3) instead of keeping them (ZeRO-2)."""
    loss_parallel: bool = True
    """TP: keep logits vocab-sharded and compute the cross-entropy on the shards."""
    activation_checkpoint: str = "none"
    """none, full (recompute whole blocks), selective_layer (every ac_every-th block) or
    selective_op (keep matmul/attention outputs, recompute element-wise ops)."""
    ac_every: int = 2
    """selective_layer: checkpoint one block in this many."""
    compile: bool = False
    """torch.compile each transformer block (inductor); first steps pay the compile time."""


@dataclass
class CheckpointConfig:
    enabled: bool = False
    """Save DCP checkpoints under run.dir/checkpoints and resume from the latest complete one."""
    interval: int = 500
    """Steps between checkpoints (and one after the last step)."""
    interval_s: float = 0.0
    """Also save when this many seconds have passed since the last save (0 = off)."""
    keep_last: int = 3
    """Complete checkpoints to keep; older ones are deleted (0 = keep all)."""
    async_mode: str = "async"
    """disabled (the loop waits for the write), async (waits only while the state is copied to host
    memory; the write runs in a background thread) or async_pinned (copy into pinned memory, GPU)."""
    load_step: int | None = None
    """Resume from this step's checkpoint instead of the latest."""
    initial_load_path: str | None = None
    """A checkpoint directory (step-N of another run, or `pretrain.export --from-hf` output) whose
    model weights start a run that has no checkpoint of its own; optimizer and step start fresh."""


@dataclass
class MetricsConfig:
    log_interval: int = 10
    """Log a metrics line (stdout, metrics.jsonl, TensorBoard) every this many steps."""
    tensorboard: bool = True
    """Write TensorBoard events under run.dir/tb."""
    peak_tflops: float | None = None
    """Per-device peak TFLOP/s for MFU; None = looked up from the GPU name (unknown/CPU: no MFU)."""


@dataclass
class SlurmConfig:
    """How `launch/submit.py` submits this run (the trainer itself ignores it)."""

    nodes: int = 1
    """Nodes; nodes x nproc_per_node must equal the product of the parallel degrees."""
    gpus_per_node: int = 8
    """GPUs requested per node (--gpus-per-node); 0 = a CPU job."""
    nproc_per_node: int | None = None
    """Trainer processes per node (torchrun --nproc-per-node); None = gpus_per_node (1 on CPU)."""
    cpus_per_task: int | None = None
    """CPUs per node for the job's one task per node (None = Slurm's default)."""
    mem: str | None = None
    """Memory per node (--mem, e.g. 0 for all, 480G); None = Slurm's default."""
    time: str = "24:00:00"
    """Wall-clock limit of one allocation (the job requeues itself after preemption)."""
    partition: str | None = None
    """Partition (-p); None = the cluster's default partition."""
    account: str | None = None
    """Account (-A), where the cluster requires one."""
    qos: str | None = None
    """Quality of service (--qos)."""
    job_name: str = "andes"
    """Job name; also the default run directory's prefix."""
    signal_before_s: int = 120
    """Seconds before the time limit at which Slurm sends SIGUSR1 (checkpoint and requeue)."""
    requeue: bool = True
    """Requeue the job when the trainer stopped on a signal (exit 3), so it resumes by itself."""
    rdzv_port: int = 29500
    """c10d rendezvous port on the first node."""
    extra_sbatch: list[str] = field(default_factory=list)
    """More #SBATCH options, e.g. ["--exclusive", "--constraint=h100"]."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment for the trainer, e.g. {NCCL_SOCKET_IFNAME: ib0}."""


@dataclass
class DebugConfig:
    """Fault injection for the tests of failure handling; never set in real runs."""

    nan_at_step: int | None = None
    """Make one gradient NaN on rank `nan_rank` at this step."""
    nan_rank: int = 0
    """Rank that injects the NaN."""
    hang_at_step: int | None = None
    """Rank `hang_rank` sleeps forever at the start of this step."""
    hang_rank: int = 0
    """Rank that hangs."""


@dataclass
class TrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lr: LRConfig = field(default_factory=LRConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


def register_configs() -> None:
    """Make the schema available to train.yaml's defaults list as `train_schema`."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def compose_config(overrides: list[str], *, data_path: str | None = "unused") -> TrainConfig:
    """The trainer's config from configs/train.yaml plus `overrides`, as `pretrain.train` composes it.

    For tools that plan a run without reading its data (estimate, dry run, submit), `data_path`
    fills the mandatory `data.path` when the overrides do not set it. Bad overrides raise
    ValueError with Hydra's message.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if data_path is not None and not any(o.lstrip("+~").startswith("data.path=") for o in overrides):
        overrides = [*overrides, f"data.path={data_path}"]
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return OmegaConf.to_object(compose("train", overrides=overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"bad config override: {e}") from e
