"""Training stages (`stages:` in the config): which stage a step is in, its settings, entering it.

Llama 3 trained in stages (docs/training_stages.md): the batch ramped up, the context grew, and an
annealing stage on upsampled high-quality data took the LR to 0. Each `StageConfig` is resolved
once into a `Stage` (None = the run's data.* / training.* value) with its steps numbered in the
whole run, so a step's stage, its data position and its LR are pure functions of the config: the
same stages run in one invocation or as several resumed ones (training.steps = where one stops)
train identically. At a stage's first step, and at a resumed invocation's first, `enter_stage`
gives the loop that stage's loader, pipeline schedule and RoPE table and prints one line.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from parallel.pipeline import stage_ids
from pretrain.build import build_pipeline
from pretrain.configs import RopeScaling, get_model_config
from pretrain.data import PackedDataset, StepLoader
from pretrain.job_config import ConfigError, TrainConfig
from pretrain.lr import Segment
from pretrain.model import precompute_freqs_cis
from pretrain.stage_data import StageLoader, apportion

if TYPE_CHECKING:
    from torch import nn

    from pretrain.run import Run

STAGED_KEYS = ("stages", "training.steps", "training.global_batch_size", "data.path", "data.seq_len")
"""Keys whose effect on a staged run the resolved stages describe (compared per stage on resume)."""


@dataclass(frozen=True)
class Stage:
    """One stage with every setting resolved: steps `first`..`last` (1-based, inclusive) of the run."""

    index: int
    name: str
    first: int
    last: int
    sources: tuple[tuple[str, float], ...]
    """(packed directory, weight): the stage's data directory (weight 1), or its mix by directory."""
    mixed: bool
    """Whether `sources` came from `mix` (else from data_path or data.path)."""
    seq_len: int
    global_batch_size: int
    lr: str | None
    lr_end: float | None
    rope_scaling_factor: float | None

    @property
    def steps(self) -> int:
        return self.last - self.first + 1

    @property
    def shape(self) -> tuple[int, int]:
        """(global_batch_size, seq_len): what a pipeline schedule is built for."""
        return self.global_batch_size, self.seq_len

    @property
    def key(self) -> str:
        """Config key prefix, for messages."""
        return f"stages[{self.index}]"

    @property
    def data_key(self) -> str:
        return f"{self.key}.{'mix' if self.mixed else 'data_path'}"

    def data(self) -> str | dict[str, float]:
        """The data setting as written: a directory, or the mix."""
        return dict(self.sources) if self.mixed else self.sources[0][0]


def _or(value, default):
    return default if value is None else value


def plan_stages(cfg: TrainConfig) -> list[Stage]:
    """Every stage resolved, in order (empty without stages)."""
    plan, first = [], 1
    for i, s in enumerate(cfg.stages):
        if s.mix is not None:
            sources = tuple(sorted((str(Path(p)), float(w)) for p, w in s.mix.items()))
        else:
            sources = ((str(Path(_or(s.data_path, cfg.data.path))), 1.0),)
        stage = Stage(
            index=i,
            name=s.name,
            first=first,
            last=first + s.steps - 1,
            sources=sources,
            mixed=s.mix is not None,
            seq_len=_or(s.seq_len, cfg.data.seq_len),
            global_batch_size=_or(s.global_batch_size, cfg.training.global_batch_size),
            lr=s.lr,
            lr_end=s.lr_end,
            rope_scaling_factor=s.rope_scaling_factor,
        )
        plan.append(stage)
        first = stage.last + 1
    return plan


def stage_at(plan: list[Stage], step: int) -> Stage:
    """The stage step `step` (1-based) is in; the first for step 0, the last past the end."""
    return next((s for s in plan if step <= s.last), plan[-1])


def total_steps(cfg: TrainConfig) -> int:
    """Steps of the whole run, which the LR schedule spans: the stages' sum, else training.steps."""
    return sum(s.steps for s in cfg.stages) if cfg.stages else cfg.training.steps


def lr_schedule(cfg: TrainConfig) -> tuple[int, tuple[Segment, ...]]:
    """(steps the schedule spans, the stages' own LR segments) for `build_lr_scheduler`."""
    segments = tuple(Segment(s.first - 1, s.last - 1, s.lr, s.lr_end) for s in plan_stages(cfg) if s.lr)
    return total_steps(cfg), segments


def check_stage_config(cfg: TrainConfig) -> None:
    """What stages must satisfy in any layout (check_config has checked each field's range)."""
    names: set[str] = set()
    for i, s in enumerate(cfg.stages):
        key = f"stages[{i}]"
        if not s.name or s.name in names:
            raise ConfigError(f"{key}.name={s.name!r}: every stage needs a name of its own")
        names.add(s.name)
        if s.mix is not None:
            if s.data_path is not None:
                raise ConfigError(f"{key}: data_path={s.data_path} and mix are both set; a stage reads one")
            if not s.mix or min(s.mix.values()) < 0 or max(s.mix.values()) <= 0:
                raise ConfigError(f"{key}.mix={dict(s.mix)}: weights must be >= 0 with at least one > 0")
            if len({Path(p) for p in s.mix}) < len(s.mix):
                raise ConfigError(f"{key}.mix={dict(s.mix)} names a directory twice")
        if (s.lr is None) != (s.lr_end is None):
            raise ConfigError(f"{key}: lr={s.lr!r} and lr_end={s.lr_end} must be set together")
    if cfg.stages and cfg.training.steps > total_steps(cfg):
        raise ConfigError(
            f"training.steps={cfg.training.steps} exceeds the {total_steps(cfg)} steps of all stages; "
            "with stages it says where this invocation stops"
        )


def stage_config(cfg: TrainConfig, stage: Stage) -> TrainConfig:
    """`cfg` as `stage` sees it: its seq_len and batch as data.seq_len and training.global_batch_size."""
    return replace(
        cfg,
        data=replace(cfg.data, seq_len=stage.seq_len),
        training=replace(cfg.training, global_batch_size=stage.global_batch_size),
        stages=[],
    )


def _in_stage_keys(stage: Stage, message: str) -> str:
    """A message about a stage's view of the config (`stage_config`), in the stage's own keys."""
    message = message.replace("data.seq_len", f"{stage.key}.seq_len")
    return message.replace("training.global_batch_size", f"{stage.key}.global_batch_size")


def stage_error(stage: Stage, error: Exception) -> ConfigError:
    """A check's error about a stage's view of the config, naming the stage and its own keys."""
    return ConfigError(f"{stage.key} {stage.name!r}: {_in_stage_keys(stage, str(error))}")


def stage_configs(cfg: TrainConfig, pipelined: bool) -> list[tuple[Stage, TrainConfig]]:
    """The stages this invocation may run (those beginning by training.steps), each with its view of
    the config, for preflight.check_layout to check in the layout. Later stages are checked by the
    invocation that runs them, in its own layout (a long-context stage may need parallel.cp)."""
    check_stage_config(cfg)
    base = (cfg.training.global_batch_size, cfg.data.seq_len)
    out = []
    for stage in plan_stages(cfg):
        if stage.first > cfg.training.steps:
            break
        if pipelined and cfg.validation.path and stage.shape != base:
            raise ConfigError(
                f"{stage.key} {stage.name!r}: validation through a pipeline runs the schedule of "
                f"global_batch_size={base[0]} and seq_len={base[1]} (training.*, data.*); this stage "
                "changes them: set validation.path=null or keep them"
            )
        out.append((stage, stage_config(cfg, stage)))
    return out


def open_stage_data(
    cfg: TrainConfig, train: PackedDataset, check: Callable[[PackedDataset, str], None]
) -> dict[str, PackedDataset]:
    """Every stage's packed directories, opened once and checked before training (`check(data, key)`:
    the caller's tokenizer check); keyed by the directories as `Stage.sources` names them."""
    opened = {str(Path(cfg.data.path)): train}
    for stage in plan_stages(cfg):
        for path, _ in stage.sources:
            if path not in opened:
                try:
                    opened[path] = PackedDataset(path, stage.seq_len)
                except (ValueError, OSError) as e:
                    raise ConfigError(f"{stage.data_key}: {_in_stage_keys(stage, str(e))}") from None
                check(opened[path], stage.data_key)
            if opened[path].seq_len != stage.seq_len:
                raise ConfigError(
                    f"{stage.key}.seq_len={stage.seq_len} but {path} was packed with "
                    f"seq_len={opened[path].seq_len}"
                )
        rows = sum(len(opened[p]) for p, _ in stage.sources)
        if stage.global_batch_size > rows:
            raise ConfigError(
                f"{stage.key}.global_batch_size={stage.global_batch_size} exceeds the {rows} sequences "
                f"of {stage.data_key}"
            )
    return opened


def rows_before(plan: list[Stage], stage: Stage) -> list[int]:
    """Rows of each of `stage`'s sources that the stages before it read (where it continues)."""
    read: dict[str, int] = {}
    for s in plan[: stage.index]:
        counts = apportion([w for _, w in s.sources], s.global_batch_size)
        for (path, _), count in zip(s.sources, counts, strict=True):
            read[path] = read.get(path, 0) + count * s.steps
    return [read.get(path, 0) for path, _ in stage.sources]


def stage_loader(
    plan: list[Stage], stage: Stage, data: dict[str, PackedDataset], like: StepLoader
) -> StageLoader:
    """The loader of `stage` at its first step, split over data-parallel ranks as `like` is."""
    return StageLoader(
        stage.name,
        stage.first,
        [data[path] for path, _ in stage.sources],
        [w for _, w in stage.sources],
        rows_before(plan, stage),
        global_batch_size=stage.global_batch_size,
        micro_batch_size=like.micro_batch_size,
        dp_rank=like.dp_rank,
        dp_size=like.dp_size,
        seed=like.seed,
        shuffle=like.shuffle,
    )


def resumed_loader(
    plan: list[Stage], data: dict[str, PackedDataset], like: StepLoader, done: int
) -> StageLoader:
    """The loader of the stage holding step `done` (the first stage for 0), after its `done` steps.

    A checkpoint of step `done` holds this loader's state, which names the stage: resuming checks it.
    `like` (the run's data-parallel split) is closed.
    """
    stage = stage_at(plan, max(done, 1))
    loader = stage_loader(plan, stage, data, like)
    loader.step = done - stage.first + 1
    like.close()
    return loader


def stage_rope(stage: Stage, own: RopeScaling | None) -> RopeScaling | None:
    """The RoPE scaling of `stage`: its factor on the model's own scaling (or Llama 3.1's defaults)."""
    if stage.rope_scaling_factor is None:
        return own
    return replace(own or RopeScaling(), factor=stage.rope_scaling_factor)


def apply_rope(parts: list[nn.Module], scaling: RopeScaling | None) -> None:
    """Rebuild every model part's RoPE table for `scaling` on the table's device (weights untouched)."""
    for part in parts:
        if part.args.rope_scaling == scaling:
            continue
        part.args = replace(part.args, rope_scaling=scaling)
        a = part.args
        table = precompute_freqs_cis(a.head_dim, a.max_seq_len, a.rope_theta, scaling)
        part.freqs_cis = table.to(part.freqs_cis.device)


def stage_line(plan: list[Stage], stage: Stage, start: int) -> str:
    """The line printed when a stage begins (or a resumed run enters it)."""
    if stage.mixed:
        counts = apportion([w for _, w in stage.sources], stage.global_batch_size)
        data = "mix " + ", ".join(
            f"{p} {w:g} ({c} rows)" for (p, w), c in zip(stage.sources, counts, strict=True)
        )
    else:
        data = f"data {stage.sources[0][0]}"
    lr = f"lr {stage.lr} to {stage.lr_end:g} x optim.lr" if stage.lr else "lr as scheduled"
    rope = f", rope scaling factor {stage.rope_scaling_factor:g}" if stage.rope_scaling_factor else ""
    resumed = f" (resuming after step {start})" if start >= stage.first else ""
    return (
        f"stage {stage.index + 1}/{len(plan)} {stage.name!r} from step {stage.first} to {stage.last}"
        f"{resumed}: seq_len {stage.seq_len}, global batch {stage.global_batch_size}, {data}, {lr}{rope}"
    )


def enter_stage(run: Run, step: int) -> bool:
    """At a stage's first step, or this invocation's first: the stage's loader, pipeline schedule
    and RoPE, and one line. Returns whether a stage began (the caller allows for recompilation)."""
    if not run.plan or (run.stage is not None and step <= run.stage.last):
        return False
    cfg, stage = run.cfg, stage_at(run.plan, step)
    if run.loader.stage != stage.name:  # the previous stage ended: its loader goes
        run.loader.close()
        run.loader = run.ckpt.loader = stage_loader(run.plan, stage, run.stage_data, run.loader)
    before = run.stage.shape if run.stage else (cfg.training.global_batch_size, cfg.data.seq_len)
    if run.pipe is not None and stage.shape != before:  # new micro-batch count or activation shapes
        ids = stage_ids(cfg.parallel.pp_schedule, run.dims.local_rank("pp"), run.dims.pp, len(run.parts))
        run.pipe = build_pipeline(run.parts, ids, run.dims, stage_config(cfg, stage), run.device)
    own = get_model_config(cfg.model.name, **cfg.model.overrides()).rope_scaling
    scaling = stage_rope(stage, own)
    apply_rope(run.parts, scaling)
    run.args = replace(run.args, rope_scaling=scaling)
    run.stage = stage
    if run.rank == 0:
        print(stage_line(run.plan, stage, run.start), flush=True)
    return True


def _differences(old: Stage, new: Stage) -> dict[str, tuple[object, object]]:
    """{stages[i].key: (old, new)} for every setting of a stage that differs."""
    pairs = {
        "name": (old.name, new.name),
        "steps": (old.steps, new.steps),
        "mix" if old.mixed or new.mixed else "data_path": (old.data(), new.data()),
        "seq_len": (old.seq_len, new.seq_len),
        "global_batch_size": (old.global_batch_size, new.global_batch_size),
        "lr": (old.lr, new.lr),
        "lr_end": (old.lr_end, new.lr_end),
        "rope_scaling_factor": (old.rope_scaling_factor, new.rope_scaling_factor),
    }
    return {f"{new.key}.{k}": (a, b) for k, (a, b) in pairs.items() if a != b}


def check_stage_resume(old: TrainConfig, new: TrainConfig, step: int) -> list[str]:
    """Notes on stage changes since checkpoint `step`; a ConfigError if a stage that had begun by
    then changed (its data position and schedule would no longer be the ones trained on)."""
    if bool(old.stages) != bool(new.stages):
        had = "with" if old.stages else "without"
        raise ConfigError(
            f"resuming step {step}: the checkpoint was trained {had} stages; a run cannot add or drop "
            "them (start a new run with checkpoint.initial_load_path to keep the weights)"
        )
    notes = []
    for a, b in itertools.zip_longest(plan_stages(old), plan_stages(new)):
        begun = a is not None and a.first <= step
        if begun and b is None:
            raise ConfigError(f"resuming step {step}: stage {a.key} {a.name!r} had begun but was removed")
        if a is None or b is None:
            notes.append(
                f"resume: stage {'added' if a is None else 'removed'}: {(b or a).key} {(b or a).name!r}"
            )
            continue
        listed = ", ".join(f"{k} {x} -> {y}" for k, (x, y) in _differences(a, b).items())
        if listed and begun:
            raise ConfigError(
                f"resuming step {step}: stage {a.key} {a.name!r} (steps {a.first}-{a.last}) had begun, so "
                f"it cannot change: {listed}"
            )
        if listed:
            notes.append(f"resume: stage {b.key} {b.name!r} had not begun at step {step}; changed: {listed}")
    before, after = total_steps(old), total_steps(new)
    if before != after and not new.checkpoint.override_opt_schedule:
        raise ConfigError(
            f"resuming step {step}: the stages now total {after} steps, not {before}, which is the "
            "LR schedule's length: set checkpoint.override_opt_schedule=true to apply it from this step "
            "on, or restore it"
        )
    return notes
