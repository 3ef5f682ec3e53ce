"""Everything checked before a run starts: layout, data and resume, with no process group or model.

One function per question, shared by the trainer, `pretrain.estimate`, `pretrain.dryrun` and
`launch/submit.py`, so they accept and reject the same configs with the same messages. Every
failure is a `ConfigError` naming the key or file; the trainer prints it as one line (rank 0)
and exits with code 2.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from data_pipeline.tokenizer import AnyTokenizer, load_tokenizer
from parallel.context_parallel import check_cp
from parallel.dims import ParallelDims
from parallel.pipeline import check_microbatches
from parallel.tensor_parallel import check_tp
from pretrain import safe_dcp
from pretrain.build import pipeline_split
from pretrain.checkpoint import latest_step, require_complete, step_dir
from pretrain.checkpoint_files import checkpoint_model_args
from pretrain.configs import ModelArgs, get_model_config
from pretrain.data import PackedDataset, check_batch_split
from pretrain.eval.tasks import resolve_task
from pretrain.job_config import ConfigError, TrainConfig
from pretrain.stages import STAGED_KEYS, check_stage_resume, open_stage_data, stage_configs, stage_error

SCHEDULE_KEYS = ("optim.", "lr.", "training.steps")
"""Keys that shape the optimizer state or the LR schedule a checkpoint carries on."""
DATA_ORDER_KEYS = ("training.seed", "training.global_batch_size")
"""Keys the saved loader position depends on (pretrain.data.StepLoader): they cannot change."""
IGNORED_ON_RESUME = ("checkpoint.load_step", "checkpoint.override_opt_schedule")


def model_args(cfg: TrainConfig) -> ModelArgs:
    """The named model shape with its `model.*` overrides."""
    try:
        return get_model_config(cfg.model.name, **cfg.model.overrides())
    except (KeyError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None


def check_layout(cfg: TrainConfig, world_size: int) -> ParallelDims:
    """Degrees, batch split and pipeline split against the world size and the model shape."""
    p, t = cfg.parallel, cfg.training
    try:
        dims = ParallelDims(p.dp_replicate, p.dp_shard, p.tp, p.pp, world_size, cp=p.cp)
        args = model_args(cfg)
        if cfg.data.seq_len > args.max_seq_len:
            raise ConfigError(
                f"data.seq_len={cfg.data.seq_len} exceeds max_seq_len={args.max_seq_len} "
                f"of model {cfg.model.name!r}"
            )
        check_tp(args, p.tp, cfg.data.seq_len)
        check_cp(p.cp, cfg.data.seq_len, p.tp)
        if p.cp > 1 and cfg.eval.tasks:
            raise ConfigError(
                f"eval.tasks with parallel.cp={p.cp}: in-loop evaluation does not split sequences; "
                "evaluate the checkpoints with python -m pretrain.eval (any layout without cp)"
            )
        if dims.pp_enabled:
            pipeline_split(args, cfg)
        n_micro = check_batch_split(t.global_batch_size, t.micro_batch_size, dims.dp_size)
        if dims.pp_enabled:
            check_microbatches(p.pp_schedule, p.pp, n_micro)
            if t.dtype != "float32" and not dims.fsdp_enabled:
                raise ConfigError(
                    f"training.dtype={t.dtype} with a pipeline needs FSDP's mixed precision: use a "
                    "data-parallel degree > 1 (parallel.dp_shard) or training.dtype=float32"
                )
    except ConfigError:
        raise
    except ValueError as e:  # the parallel/ checks name their key
        raise ConfigError(str(e)) from None
    for stage, staged in stage_configs(cfg, dims.pp_enabled):  # each stage's seq_len and batch alike
        try:
            check_layout(staged, world_size)
        except ConfigError as e:
            raise stage_error(stage, e) from None
    return dims


@dataclass
class RunData:
    """The datasets a run reads, opened and checked against the model before training."""

    train: PackedDataset
    val: PackedDataset | None
    tokenizer: AnyTokenizer | None
    """For sampling after training (training.sample_prompt) and in-loop evaluation (eval.tasks)."""
    stages: dict[str, PackedDataset] = field(default_factory=dict)
    """Every stage's packed directories (pretrain/stages.py), data.path's among them."""


def _open(path: str, cfg: TrainConfig) -> PackedDataset:
    try:
        return PackedDataset(path, cfg.data.seq_len)
    except (ValueError, OSError) as e:
        raise ConfigError(str(e)) from None


def open_data(cfg: TrainConfig, args: ModelArgs) -> RunData:
    """Training and validation shards, their tokenizer checked against the model and each other."""
    train = _open(cfg.data.path, cfg)
    tok = train.tokenizer_info
    if tok["n_vocab"] > args.vocab_size:
        raise ConfigError(
            f"model {cfg.model.name!r} has vocab_size={args.vocab_size} but {train.path} was tokenized "
            f"with {tok['name']!r} (n_vocab={tok['n_vocab']}); set model.vocab_size={tok['n_vocab']} or "
            "pack the data with a matching tokenizer"
        )
    if cfg.training.global_batch_size > len(train):
        raise ConfigError(
            f"training.global_batch_size={cfg.training.global_batch_size} exceeds the {len(train)} "
            f"sequences in {train.path}"
        )
    val = _open(cfg.validation.path, cfg) if cfg.validation.path else None
    if val is not None:
        _same_tokenizer(val, "validation.path", train)
    stages = open_stage_data(cfg, train, lambda data, key: _same_tokenizer(data, key, train))
    needs_text = cfg.training.sample_prompt or cfg.eval.tasks
    return RunData(train, val, run_tokenizer(cfg, tok) if needs_text else None, stages)


def _same_tokenizer(data: PackedDataset, key: str, train: PackedDataset) -> None:
    """`data` (the directory of config key `key`) must be packed with the training data's tokenizer."""
    mine, tok = data.tokenizer_info, train.tokenizer_info
    if _identity(mine) != _identity(tok):
        raise ConfigError(
            f"{key}={data.path} was packed with tokenizer {mine['name']!r} "
            f"(sha256 {mine['sha256'][:12]}), the training data {train.path} with "
            f"{tok['name']!r} (sha256 {tok['sha256'][:12]}): pack both with the same tokenizer"
        )


def _identity(tokenizer_info: dict) -> tuple[str, str]:
    """What makes two tokenizers the same: kind and file hash (`read_manifest` fills in old kinds)."""
    return tokenizer_info["kind"], tokenizer_info["sha256"]


def run_tokenizer(cfg: TrainConfig, tokenizer_info: dict) -> AnyTokenizer:
    """The tokenizer for sampling and evaluation, which must be the one the data was packed with."""
    needs = {"training.sample_prompt": cfg.training.sample_prompt, "eval.tasks": cfg.eval.tasks}
    why = f" ({' and '.join(k for k, v in needs.items() if v)} needs the run's tokenizer)"
    try:
        tok = load_tokenizer(cfg.data.tokenizer)
    except (ValueError, OSError) as e:
        raise ConfigError(f"data.tokenizer={cfg.data.tokenizer!r}: {e}{why}") from None
    if (tok.kind, tok.sha256) != _identity(tokenizer_info):
        raise ConfigError(
            f"data.tokenizer={cfg.data.tokenizer!r} ({tok.kind}, sha256 {tok.sha256[:12]}) is not the "
            f"tokenizer the data was packed with ({tokenizer_info['name']!r}, "
            f"{_identity(tokenizer_info)[0]}, sha256 {tokenizer_info['sha256'][:12]}){why}"
        )
    return tok


def check_eval_tasks(cfg: TrainConfig) -> None:
    """Every eval.tasks entry names an installed task and variant (before step 1, not at step 500)."""
    for spec in cfg.eval.tasks:
        try:
            resolve_task(spec)
        except (ValueError, OSError) as e:
            raise ConfigError(f"eval.tasks: {e}") from None


def check_initial_load(cfg: TrainConfig, args: ModelArgs) -> None:
    """An untied checkpoint cannot start a tied model: its embedding and output would both load into
    the one shared matrix, the last one read winning. (Tied into untied is fine: two equal copies.)"""
    path = cfg.checkpoint.initial_load_path
    if not path or not args.tie_embeddings:
        return
    try:
        saved = checkpoint_model_args(path)
    except (OSError, ValueError):
        return  # shape unknown here; the load itself reports a missing or unreadable checkpoint
    if not saved.tie_embeddings:
        raise ConfigError(
            f"checkpoint.initial_load_path={path} holds an untied model (its own output.weight) but "
            "model.tie_embeddings=true; set model.tie_embeddings=false to continue it untied"
        )


def resume_step(cfg: TrainConfig) -> int | None:
    """The checkpoint step this config resumes from (None: a fresh start), its metadata checked.

    Every rank reads the same shared checkpoint directory before anything is written, so all
    ranks agree without a collective. The metadata is read here through the allowlisting reader
    (pretrain/safe_dcp.py), so a crafted or damaged checkpoint stops the run before it starts.
    """
    root = Path(cfg.run.dir) / "checkpoints"
    step = cfg.checkpoint.load_step
    if step is None and cfg.checkpoint.enabled:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if int(os.environ.get("RANK", "0")) else "default")
            step = latest_step(root)
    if step is None:
        return None
    try:
        require_complete(root, step, explicit=cfg.checkpoint.load_step is not None)
        safe_dcp.read_metadata(step_dir(root, step))
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    except safe_dcp.CheckpointReadError as e:
        raise ConfigError(f"{e}; remove it or set checkpoint.load_step to an earlier step") from None
    return step


def _flat(node: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def saved_config(cfg: TrainConfig, step: int) -> TrainConfig:
    """The config checkpoint `step` of this run was trained with (its config.yaml, which exists)."""
    saved = step_dir(Path(cfg.run.dir) / "checkpoints", step) / "config.yaml"
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(saved)))
    except Exception as e:  # a hand-edited or damaged file: say which
        raise ConfigError(f"{saved}: not a readable config ({type(e).__name__}: {e})") from None


def config_changes(cfg: TrainConfig, step: int) -> dict[str, tuple[object, object]] | None:
    """{key: (checkpoint's value, this config's)} for every key that differs; None if unrecorded."""
    saved = step_dir(Path(cfg.run.dir) / "checkpoints", step) / "config.yaml"
    if not saved.is_file():
        return None
    try:
        old = _flat(OmegaConf.to_container(OmegaConf.load(saved)))
    except Exception as e:  # a hand-edited or damaged file: say which
        raise ConfigError(f"{saved}: not a readable config ({type(e).__name__}: {e})") from None
    new = _flat(OmegaConf.to_container(OmegaConf.structured(cfg)))
    keys = sorted((set(old) | set(new)) - set(IGNORED_ON_RESUME))
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def check_resume(cfg: TrainConfig, step: int) -> list[str]:
    """Changed keys since checkpoint `step`, as lines to print; raises on unapplied schedule changes."""
    changes = config_changes(cfg, step)
    if changes is None:
        return [f"resume: checkpoint step-{step} has no config.yaml (older andes): changes are not checked"]
    notes = []
    if cfg.stages or changes.get("stages", [None])[0]:  # staged now or then: compared per stage
        notes = check_stage_resume(saved_config(cfg, step), cfg, step)
        changes = {k: v for k, v in changes.items() if k not in STAGED_KEYS}
    order = {k: v for k, v in changes.items() if k in DATA_ORDER_KEYS}
    if order:
        listed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in order.items())
        raise ConfigError(
            f"resuming step {step} with {listed}: the saved data position follows the old data order; "
            "restore the old value or start a new run (checkpoint.initial_load_path keeps the weights)"
        )
    schedule = {k: v for k, v in changes.items() if k.startswith(SCHEDULE_KEYS)}
    if schedule and not cfg.checkpoint.override_opt_schedule:
        listed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in schedule.items())
        raise ConfigError(
            f"resuming step {step} with changed optimizer/schedule settings ({listed}): set "
            "checkpoint.override_opt_schedule=true to apply them from this step on, or restore them"
        )
    if not changes:
        return notes
    listed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items())
    return [*notes, f"resume: changed since step {step}: {listed}"]
