"""Typed schema of the trainer's Hydra config: every key, its default, its valid range and its use.

`configs/train.yaml` and its groups fill these in. An unknown key, a value out of its declared range
or a non-finite number is a `ConfigError` at start-up (`check_config`), before anything is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from parallel.activation_checkpoint import MODES as AC_MODES
from pretrain.eval.scorer import ScoreOptions

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A config (or data) problem found before training starts: one line, exit code 2."""


def ranged(default: Any, *, ge=None, gt=None, le=None, lt=None, not_=None, length: int | None = None):
    """A field whose value (or each element of a list value) must lie in the given bounds."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "not": not_, "length": length}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def one_of(default: Any, *choices: str):
    """A string field that must be one of `choices` (None stays allowed where the default is None)."""
    return field(default=default, metadata={"choices": choices})


@dataclass
class RunConfig:
    dir: str = "runs/default"
    """Run directory: resolved config.yaml, metrics.jsonl, tb/, checkpoints/ (docs/contract.md)."""


@dataclass
class ModelConfig:
    """A named shape from pretrain.configs; any field set here (not None) replaces the shape's."""

    name: str = "llama3_debug"
    """llama3_debug, llama3_8b, llama3_70b, llama3_405b, llama3_1_8b (see pretrain.configs)."""
    vocab_size: int | None = ranged(None, ge=1)
    """Embedding rows; must cover the tokenizer the data was packed with."""
    dim: int | None = ranged(None, ge=1)
    """Hidden size."""
    n_layers: int | None = ranged(None, ge=1)
    """Transformer blocks."""
    n_heads: int | None = ranged(None, ge=1)
    """Query heads."""
    n_kv_heads: int | None = ranged(None, ge=1)
    """Key/value heads (GQA)."""
    multiple_of: int | None = ranged(None, ge=1)
    """SwiGLU hidden size rounding."""
    ffn_dim_multiplier: float | None = ranged(None, gt=0)
    """SwiGLU hidden size multiplier."""
    rope_theta: float | None = ranged(None, gt=0)
    """RoPE base frequency."""
    max_seq_len: int | None = ranged(None, ge=1)
    """Longest sequence the model is built for."""
    attention: str | None = one_of(None, "auto", "sdpa", "flex")
    """Document-masked attention kernel: auto (flex on CUDA, sdpa on CPU), sdpa or flex."""
    norm_eps: float | None = ranged(None, gt=0)
    """RMSNorm epsilon."""
    init_std: float | None = ranged(None, gt=0)
    """Std of the truncated-normal weight init."""
    tie_embeddings: bool | None = None
    """The output projection shares the embedding matrix (HF tie_word_embeddings); not with pp > 1."""

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "name" and v is not None}


@dataclass
class DataConfig:
    path: str = "???"
    """Directory of packed training shards (output of `andes-data pack`, with manifest.json)."""
    seq_len: int = ranged(2048, ge=1)
    """Tokens per training sequence; must equal the shards' seq_len."""
    tokenizer: str | None = None
    """Tokenizer the shards were packed with (tiktoken ranks file, HF tokenizer.json or a directory
    holding one; None = Llama 3's), for sampling and eval.tasks; export and generate take it from here too."""
    shuffle: bool = True
    """Visit sequences in a seeded random order (a new permutation every epoch)."""


@dataclass
class ValidationConfig:
    path: str | None = None
    """Packed shards to compute validation loss on; None disables validation."""
    interval: int = ranged(100, ge=1)
    """Run validation every this many steps (and after the last step)."""
    steps: int = ranged(4, ge=1)
    """Global batches per validation run (fewer if the set is smaller)."""


@dataclass
class EvalConfig:
    """OLMES multiple-choice tasks scored during training (docs/evaluation.md, "In the training loop")."""

    tasks: list[str] = field(default_factory=list)
    """`task` or `task:variant` names (`python -m pretrain.eval --list`); empty = no evaluation.
    Needs the run's tokenizer: data.tokenizer must be the one the data was packed with."""
    interval: int = ranged(500, ge=1)
    """Evaluate every this many steps (and after the last step)."""
    limit: int | None = ranged(100, ge=1)
    """Documents per task (the first by doc_id, the same ones every time); None = the whole task file."""
    batch_tokens: int = ranged(ScoreOptions.batch_tokens, ge=1)
    """Padded tokens per evaluation forward (rows x longest row)."""


@dataclass
class TrainingConfig:
    steps: int = ranged(100, ge=1)
    """Optimizer steps to train for."""
    seed: int = ranged(0, ge=0)
    """Seed of model init and data order; the same seed gives the same run in any layout."""
    global_batch_size: int = ranged(8, ge=1)
    """Sequences per optimizer step, summed over data-parallel ranks and accumulation."""
    micro_batch_size: int = ranged(8, ge=1)
    """Sequences per forward/backward on one rank; accumulation = global / (micro * dp)."""
    max_norm: float = 1.0
    """Gradient-norm clipping threshold; <= 0 disables clipping (the norm is still logged)."""
    dtype: str = one_of("float32", "float32", "bfloat16")
    """Compute dtype: float32 or bfloat16 (params and optimizer state stay fp32)."""
    deterministic: bool = True
    """Use deterministic kernels where PyTorch has them."""
    sample_prompt: str | None = None
    """If set, rank 0 prints a continuation of this prompt after training."""
    sample_tokens: int = ranged(48, ge=1)
    """How many tokens to sample after `sample_prompt`."""
    sample_temperature: float = ranged(0.0, ge=0)
    """Sampling temperature (0 = greedy); sampling is seeded by training.seed."""
    sample_top_k: int | None = ranged(None, ge=1)
    """Sample only among the k most likely tokens (None = all)."""
    max_nonfinite_skips: int = ranged(0, ge=0)
    """Steps with a NaN/Inf loss or gradient norm that are skipped (no optimizer update) before the
    run stops with exit code 4; 0 = stop at the first one."""
    spike_zscore: float = ranged(0.0, ge=0)
    """Flag a loss more than this many standard deviations above the recent window (0 = off)."""
    spike_window: int = ranged(128, ge=1)
    """Steps of loss history the spike z-score is computed over."""
    skip_spikes: bool = False
    """Skip the optimizer update of a flagged spike (else it is only logged as loss_spike)."""
    step_timeout_s: float = ranged(600.0, ge=0)
    """Watchdog: a step (after the first) taking longer dumps all stacks and exits with code 5;
    collectives time out at 1.5x this. 0 disables the watchdog."""
    first_step_timeout_s: float = ranged(1800.0, ge=0)
    """Watchdog limit for the first step, which includes compilation and pipeline shape inference."""


@dataclass
class OptimConfig:
    lr: float = ranged(3e-4, gt=0)
    """Peak learning rate."""
    betas: list[float] = ranged([0.9, 0.95], ge=0, lt=1, length=2)
    """AdamW betas (Llama 3 paper: 0.9, 0.95)."""
    eps: float = ranged(1e-8, gt=0)
    """AdamW epsilon."""
    weight_decay: float = ranged(0.1, ge=0)
    """Decoupled weight decay on matrices; norms (1-D params) are never decayed."""
    decay_embeddings: bool = True
    """Also decay the input embedding (Megatron and Llama do; some recipes don't)."""


@dataclass
class LRConfig:
    schedule: str = one_of("cosine", "cosine", "wsd", "constant")
    """cosine (warmup then cosine to min) | wsd (warmup, stable, decay) | constant (after warmup)."""
    warmup_steps: int = ranged(10, ge=0)
    """Linear warmup from ~0 to the peak."""
    min_lr_ratio: float = ranged(0.1, ge=0, le=1)
    """Final learning rate as a fraction of the peak."""
    decay_fraction: float = ranged(0.2, ge=0, le=1)
    """wsd: fraction of all steps spent in the final decay."""
    decay_shape: str = one_of("linear", "linear", "sqrt", "cosine")
    """wsd: shape of the final decay: linear | sqrt | cosine."""


@dataclass
class ParallelConfig:
    dp_replicate: int = ranged(1, ge=1)
    """HSDP replicas (outer data-parallel dim)."""
    dp_shard: int = ranged(-1, ge=-1, not_=0)
    """FSDP shard degree; -1 = the rest of the world size."""
    tp: int = ranged(1, ge=1)
    """Tensor + sequence parallel degree."""
    pp: int = ranged(1, ge=1)
    """Pipeline stages."""
    cp: int = ranged(1, ge=1)
    """Context-parallel degree: every sequence is split over this many ranks (head-tail chunks), K/V
    all-gathered in attention; data.seq_len must divide by 2*cp (docs/parallelism.md)."""
    pp_schedule: str = "1F1B"
    """Pipeline schedule: GPipe, 1F1B (one stage per rank), Interleaved1F1B, InterleavedZeroBubble
    (pp_stages_per_rank stages per rank, looped) or ZBVZeroBubble (two stages per rank, V-shaped)."""
    pp_stages_per_rank: int = ranged(2, ge=1)
    """Virtual stages per rank for the interleaved schedules (ZBVZeroBubble needs 2)."""
    pp_layers_per_stage: list[int] | None = ranged(None, ge=1)
    """Explicit blocks per pipeline stage (length pp * stages per rank); None = balanced split."""
    pp_first_stage_extra: float = ranged(0.0, ge=0)
    """Cost of the embedding, in blocks, counted on the first stage when balancing the split."""
    pp_last_stage_extra: float = ranged(1.0, ge=0)
    """Cost of the final norm + output projection + loss, in blocks, counted on the last stage."""
    fsdp_cpu_offload: bool = False
    """FSDP: keep sharded parameters, gradients and optimizer state in host memory."""
    reshard_after_forward: bool = True
    """FSDP: free gathered parameters after forward (ZeRO-3) instead of keeping them (ZeRO-2)."""
    loss_parallel: bool = True
    """TP: keep logits vocab-sharded and compute the cross-entropy on the shards."""
    activation_checkpoint: str = one_of("none", *AC_MODES)
    """none, full (recompute whole blocks), selective_layer (every ac_every-th block) or
    selective_op (keep matmul/attention outputs, recompute element-wise ops)."""
    ac_every: int = ranged(2, ge=1)
    """selective_layer: checkpoint one block in this many."""
    compile: bool = False
    """torch.compile each transformer block (inductor); first steps pay the compile time."""


@dataclass
class CheckpointConfig:
    enabled: bool = False
    """Save DCP checkpoints under run.dir/checkpoints and resume from the latest complete one."""
    interval: int = ranged(500, ge=1)
    """Steps between checkpoints (and one after the last step)."""
    interval_s: float = ranged(0.0, ge=0)
    """Also save when this many seconds have passed since the last save (0 = off)."""
    keep_last: int = ranged(3, ge=0)
    """Complete checkpoints to keep; older ones are deleted (0 = keep all)."""
    async_mode: str = one_of("async", "disabled", "async", "async_pinned")
    """disabled (the loop waits for the write), async (waits only while the state is copied to host
    memory; the write runs in a background thread) or async_pinned (copy into pinned memory, GPU)."""
    load_step: int | None = ranged(None, ge=0)
    """Resume from this step's checkpoint instead of the latest."""
    override_opt_schedule: bool = False
    """On resume, apply this config's optim.*, lr.* and training.steps from the resumed step on
    (like Megatron's --override-opt_param-scheduler). Without it a resume whose optimizer or
    schedule keys differ from the checkpoint's stops before training and names them."""
    initial_load_path: str | None = None
    """A checkpoint directory (step-N of another run, or `pretrain.export --from-hf` output) whose
    model weights start a run that has no checkpoint of its own; optimizer and step start fresh."""


@dataclass
class EmaConfig:
    """An exponential moving average of the weights kept during training (pretrain/ema.py)."""

    enabled: bool = False
    """Keep the EMA (an fp32 copy of this rank's parameter shards) and save it in every checkpoint
    under `ema`; `python -m pretrain.average --ema` writes it out as a model-only checkpoint."""
    decay: float = ranged(0.999, gt=0, lt=1)
    """ema = decay * ema + (1 - decay) * weights at each update: it spans ~every / (1 - decay) steps."""
    every: int = ranged(1, ge=1)
    """Update after the steps that are multiples of this (and whose optimizer update was applied)."""
    warmup: bool = False
    """Use min(decay, (1 + step) / (10 + step)) at each step (TensorFlow's ExponentialMovingAverage
    rule), so the random initial weights fade within the first steps instead of ~1 / (1 - decay)."""


@dataclass
class MetricsConfig:
    log_interval: int = ranged(10, ge=1)
    """Log a metrics line (stdout, metrics.jsonl, TensorBoard) every this many steps."""
    tensorboard: bool = True
    """Write TensorBoard events under run.dir/tb."""
    peak_tflops: float | None = ranged(None, gt=0)
    """Per-device peak TFLOP/s for MFU; None = looked up from the GPU name (unknown/CPU: no MFU)."""


@dataclass
class SlurmConfig:
    """How `launch/submit.py` submits this run (the trainer itself ignores it)."""

    nodes: int = ranged(1, ge=1)
    """Nodes; nodes x nproc_per_node must equal the product of the parallel degrees."""
    gpus_per_node: int = ranged(8, ge=0)
    """GPUs requested per node (--gpus-per-node); 0 = a CPU job."""
    nproc_per_node: int | None = ranged(None, ge=1)
    """Trainer processes per node (torchrun --nproc-per-node); None = gpus_per_node (1 on CPU)."""
    cpus_per_task: int | None = ranged(None, ge=1)
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
    signal_before_s: int = ranged(120, ge=0)
    """Seconds before the time limit at which Slurm sends SIGUSR1 (checkpoint and requeue)."""
    requeue: bool = True
    """Requeue the job when the trainer stopped on a signal (exit 3), so it resumes by itself."""
    rdzv_port: int = ranged(29500, ge=1, le=65535)
    """c10d rendezvous port on the first node."""
    extra_sbatch: list[str] = field(default_factory=list)
    """More #SBATCH options, e.g. ["--exclusive", "--constraint=h100"]."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment for the trainer, e.g. {NCCL_SOCKET_IFNAME: ib0}."""


@dataclass
class DebugConfig:
    """Fault injection for the tests of failure handling; never set in real runs."""

    nan_at_step: int | None = ranged(None, ge=1)
    """Make one gradient NaN on rank `nan_rank` at this step."""
    nan_rank: int = ranged(0, ge=0)
    """Rank that injects the NaN."""
    hang_at_step: int | None = ranged(None, ge=1)
    """Rank `hang_rank` sleeps forever at the start of this step."""
    hang_rank: int = ranged(0, ge=0)
    """Rank that hangs."""


@dataclass
class StageConfig:
    """One training stage (docs/training_stages.md); a setting left None is the run's own.

    Stages run in order; every setting applies from the stage's first step. Rows of different
    stages that read the same packed directory continue where the earlier stage stopped.
    """

    name: str = MISSING
    """Unique name: the `stage` key of metrics.jsonl and the stage a checkpoint's data position is in."""
    steps: int = ranged(MISSING, ge=1)
    """Optimizer steps in this stage."""
    data_path: str | None = None
    """Packed training shards of this stage; None = data.path (unless `mix` is set)."""
    seq_len: int | None = ranged(None, ge=1)
    """Tokens per sequence; must equal the stage data's packed seq_len; None = data.seq_len."""
    mix: dict[str, float] | None = None
    """Packed directories -> weights: each global batch draws its rows from them in proportion (the
    same counts every step, by largest remainder), chosen at load time; excludes `data_path`."""
    global_batch_size: int | None = ranged(None, ge=1)
    """Sequences per optimizer step (a batch-size ramp); None = training.global_batch_size."""
    lr: str | None = one_of(None, "linear", "sqrt", "cosine")
    """Shape of this stage's own LR segment, from the run's schedule at the stage's first step to
    `lr_end` at its last (linear to 0 anneals); None = follow the run's schedule (lr.*)."""
    lr_end: float | None = ranged(None, ge=0)
    """Multiplier of optim.lr at the stage's last step; set together with `lr`."""
    rope_scaling_factor: float | None = ranged(None, gt=0)
    """Llama 3.1 RoPE scaling factor for this stage (the other RopeScaling fields are the model's or
    Llama 3.1's defaults, pretrain/configs.py); None = the model's own RoPE."""


@dataclass
class TrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lr: LRConfig = field(default_factory=LRConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    stages: list[StageConfig] = field(default_factory=list)
    """Training stages in order (seq_len, data or mix, batch ramp, LR segment, RoPE scaling per
    stage); empty = one stage of training.steps. With stages the run is the sum of their steps and
    the LR schedule (lr.*) spans that sum; training.steps then only says where this invocation
    stops (<= the sum), so stages can run as separate resumed invocations (docs/training_stages.md)."""


def register_configs() -> None:
    """Make the schema available to train.yaml's defaults list as `train_schema`."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def _check_group_choice(override: str) -> None:
    """`lr=nan` picks a config group option, not a value: say so before Hydra's generic message."""
    key, sep, value = override.lstrip("+~").partition("=")
    group = CONFIG_DIR / key
    if not sep or "." in key or not group.is_dir() or (group / f"{value}.yaml").is_file():
        return
    options = ", ".join(sorted(f.stem for f in group.glob("*.yaml")))
    hint = " (the learning rate itself is optim.lr)" if key == "lr" else ""
    raise ConfigError(
        f"{key}={value}: `{key}` selects a config group (one of: {options}); set a field inside it "
        f"as {key}.<field>=...{hint}"
    )


def _check_override_key(override: str) -> None:
    """An override of a key the schema lacks, named with the closest real key (as `unknown_keys`)."""
    parts = override.lstrip("+~").partition("=")[0].split(".")
    if parts[0] == "hydra" or (len(parts) == 1 and (CONFIG_DIR / parts[0]).is_dir()):
        return
    node: dict = {}
    inner = node
    for part in parts[:-1]:
        inner = inner.setdefault(part, {})
    inner[parts[-1]] = None
    unknown = unknown_keys(node, TrainConfig())
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]}")


def typed_config(raw: Any) -> TrainConfig:
    """A composed DictConfig as a checked TrainConfig: no unknown keys, every value in range."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    unknown = unknown_keys(OmegaConf.to_container(raw, resolve=False), TrainConfig())
    if unknown:
        raise ConfigError(
            f"unknown config key {unknown[0]}" + (f" (and {len(unknown) - 1} more)" * (len(unknown) > 1))
        )
    try:
        cfg = OmegaConf.to_object(raw)
    except MissingMandatoryValue as e:
        example = f" (e.g. {e.full_key}=DIR)" if e.full_key.endswith("path") else ""
        raise ConfigError(f"{e.full_key} is required{example}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad config value: {str(e).splitlines()[0]}") from None
    check_config(cfg)
    return cfg


def compose_config(overrides: list[str], *, data_path: str | None = "unused") -> TrainConfig:
    """The trainer's config from configs/train.yaml plus `overrides`, as `pretrain.train` composes it.

    For tools that plan a run without reading its data (estimate, dry run, submit), `data_path`
    fills the mandatory `data.path` when the overrides do not set it. Bad overrides, unknown keys
    and out-of-range values raise ConfigError naming the key.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for override in overrides:
        _check_group_choice(override)
        _check_override_key(override)
    if data_path is not None and not any(o.lstrip("+~").startswith("data.path=") for o in overrides):
        overrides = [*overrides, f"data.path={data_path}"]
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            raw = compose("train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        detail = " ".join(f"{e} {e.__cause__ or ''}".split())
        raise ConfigError(f"bad config override: {detail}") from None
    return typed_config(raw)


def _check_value(key: str, value: Any, meta: dict) -> None:
    if "choices" in meta:
        if value not in meta["choices"]:
            raise ConfigError(f"{key}={value!r}: expected one of {', '.join(meta['choices'])}")
        return
    items = value if isinstance(value, list) else [value]
    if meta.get("length") is not None and len(items) != meta["length"]:
        raise ConfigError(f"{key}={value}: expected {meta['length']} values")
    bounds = (("ge", ">=", float.__ge__), ("gt", ">", float.__gt__), ("le", "<=", float.__le__))
    bounds += (("lt", "<", float.__lt__),)
    for item in items:
        for name, sign, ok in bounds:
            if meta.get(name) is not None and not ok(float(item), float(meta[name])):
                raise ConfigError(f"{key}={value} must be {sign} {meta[name]}")
        if meta.get("not") is not None and item == meta["not"]:
            raise ConfigError(f"{key}={value} is not allowed")


def check_config(cfg: Any, prefix: str = "") -> None:
    """Every field of `cfg` (a TrainConfig or one of its groups) within its declared range.

    Numbers must also be finite everywhere: `optim.lr=nan` or `inf` is never a valid setting.
    """
    for f in dataclasses.fields(cfg):
        key, value = f"{prefix}{f.name}", getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_config(value, f"{key}.")
            continue
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):  # stages[i]
                check_config(item, f"{key}[{i}].")
            continue
        if value is None:
            continue
        numbers = value if isinstance(value, list) else [value]
        if isinstance(value, dict):  # stages[i].mix weights
            numbers = list(value.values())
        for x in numbers:
            if isinstance(x, float) and not math.isfinite(x):
                raise ConfigError(f"{key}={value} must be a finite number")
        if f.metadata:
            _check_value(key, value, dict(f.metadata))


def unknown_keys(node: dict, schema: Any, prefix: str = "") -> list[str]:
    """Keys of a composed config (a plain dict tree) that the schema (a default instance) lacks."""
    names = [f.name for f in dataclasses.fields(schema)]
    found = []
    for key, value in node.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            found.append(f"{prefix}{key}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
        elif dataclasses.is_dataclass(getattr(schema, key)) and isinstance(value, dict):
            found += unknown_keys(value, getattr(schema, key), f"{prefix}{key}.")
    return found
