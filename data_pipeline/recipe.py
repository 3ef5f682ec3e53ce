"""Multi-stage recipes (`andes-data run RECIPE.yaml key=value ...`), loaded with OmegaConf.

A recipe names an input, an output root and a list of stages; stage i writes `<output>/<i>_<kind>`
and the next stage reads it. Command-line overrides use OmegaConf's dotlist syntax
(`workers=4`, `stages.0.filter.steps.1.langid.min_score=0.5`). Finished stages are skipped on a
re-run with the same configuration, and the filter stage resumes shard by shard.

`--stage I` (or `I:SUB` for a dedup stage's sub-stage, e.g. `1:hash`) runs one stage only, and
with `--rank R --world-size W` only its units[R::W]: what one task of a Slurm job array runs
(`andes-data run RECIPE --executor slurm`, `executors/slurm.py`). Every stage's input and output
follow from the recipe alone, so any stage can run once the one before it has finished.

    input: data_pipeline/sample       # Parquet documents (dir, file or glob)
    output: data/demo                 # stage outputs go under here
    workers: 2
    stages:
      - filter: {steps: [normalize, {langid: {languages: [en]}}], write_dropped: false}
      - train_tokenizer: {vocab_size: 4096}
      - pack: {seq_len: 256, val_fraction: 0.05}    # tokenizer: the stage above's, else Llama 3
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data_pipeline.config import STAGES, PackSource, Recipe, check_fields, defaults
from data_pipeline.executors.local import LOCAL, Executor
from data_pipeline.io import atomic_write_text, list_parquet
from data_pipeline.stages import build_steps, parse_step_specs, print_summary, run_filter, with_size_step

TOP_KEYS = set(defaults(Recipe))
# Each stage kind's options and defaults: the dataclasses of data_pipeline/config.py.
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {kind: defaults(cls) for kind, cls in STAGES.items()}
RECORDS = ".stages"
TOKENIZER_FILE = "tokenizer.model"


@dataclass
class Stage:
    index: int
    kind: str
    params: dict[str, Any]

    @property
    def dirname(self) -> str:
        return f"{self.index}_{self.kind}"


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Read a recipe and apply dotlist overrides; errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recipe file")
    try:
        cfg = OmegaConf.load(path)
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"override {item!r}: expected KEY=VALUE (e.g. workers=4)")
            # update() walks list indices (stages.0.filter...), which a dotlist merge cannot.
            OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False, force_add=True)
    except OmegaConfBaseException as e:
        raise ValueError(f"{path}: {e}") from e
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not a valid YAML recipe ({e})") from e
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path}: a recipe is a mapping with keys {sorted(TOP_KEYS)}")
    return cfg


def parse_stages(cfg: DictConfig, source: str) -> list[Stage]:
    """Validate a loaded recipe into stages with defaults filled in.

    Every option of every stage (names, types, ranges), every filter step and its parameters are
    checked here, so a typo in the last stage is reported before the first one runs.
    """
    unknown = set(cfg.keys()) - TOP_KEYS
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {sorted(unknown)} (valid: {sorted(TOP_KEYS)})")
    for key in ("input", "output"):
        if OmegaConf.is_missing(cfg, key) or cfg.get(key) is None:
            raise ValueError(f"{source}: '{key}' is not set (give it in the recipe or as {key}=PATH)")
    stages_cfg = cfg.get("stages")
    if not isinstance(stages_cfg, ListConfig) or not stages_cfg:
        raise ValueError(f"{source}: 'stages' must be a non-empty list")
    entries = OmegaConf.to_container(stages_cfg, resolve=True)
    try:
        check_fields(Recipe, {"workers": cfg.get("workers", Recipe.workers)}, "")
        return [_parse_stage(i, entry) for i, entry in enumerate(entries)]
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _parse_stage(i: int, entry: Any) -> Stage:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(f"stages.{i} must be one {{kind: {{params}}}} mapping, got {entry!r}")
    kind, params = next(iter(entry.items()))
    if kind not in STAGES:
        raise ValueError(f"stages.{i}: unknown stage '{kind}' (known: {sorted(STAGES)})")
    where = f"stages.{i}.{kind}"
    params = dict(params or {})
    check_fields(STAGES[kind], params, where)
    merged = {**STAGE_DEFAULTS[kind], **params}
    missing = [k for k in ("steps", "vocab_size", "seq_len") if k in merged and merged[k] is None]
    if missing:
        raise ValueError(f"{where}: '{missing[0]}' is required")
    try:
        _check_stage(kind, merged)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return Stage(i, kind, merged)


def _check_stage(kind: str, p: dict) -> None:
    """What the option declarations cannot say: the steps build, the dedup settings agree, and so on."""
    if kind == "filter":
        build_steps(with_size_step(parse_step_specs(p["steps"])))
    elif kind == "dedup":
        from data_pipeline.dedup.tasks import DedupConfig

        DedupConfig.from_options(p)
    elif kind == "train_tokenizer":
        from data_pipeline.train_tokenizer import base_vocab_size

        base_vocab_size(p["vocab_size"])
    elif kind == "pack":
        for j, source in enumerate(p["sources"] or []):
            if not isinstance(source, dict) or set(source) != {"path", "weight"}:
                raise ValueError(f"sources.{j}: expected {{path, weight}}, got {source!r}")
            check_fields(PackSource, source, f"sources.{j}")


@dataclass
class PlannedStage:
    """Where one stage reads and writes: fixed by the recipe, whether or not earlier stages ran."""

    stage: Stage
    input: Path  # the previous data stage's output, or the recipe's input
    output: Path
    tokenizer: Path | None  # the latest train_tokenizer stage's model (pack's default)


@dataclass
class StagePart:
    """Which part of a stage to run: a dedup sub-stage (`sub`), units[rank::world_size]."""

    sub: str | None = None
    rank: int = 0
    world_size: int = 1


def plan_recipe(cfg: DictConfig, stages: Sequence[Stage]) -> list[PlannedStage]:
    """Each stage's input, output and tokenizer, in order."""
    root = Path(cfg.output)
    current = Path(str(cfg.input))
    tokenizer: Path | None = None
    planned = []
    for stage in stages:
        out = root / stage.dirname
        planned.append(PlannedStage(stage, current, out, tokenizer))
        if stage.kind == "train_tokenizer":
            tokenizer = out / TOKENIZER_FILE
        else:
            current = out
    return planned


def check_recipe_paths(cfg: DictConfig, planned: Sequence[PlannedStage]) -> None:
    """Before any stage runs: the output root and every stage's output stay clear of what they read."""
    from data_pipeline.guard import check_io, check_no_overlap

    check_io([str(cfg.input)], [str(cfg.output)])
    for p in planned:
        reads: list[str | Path | None] = [p.input]
        if p.stage.kind == "pack":
            sources = p.stage.params["sources"] or []
            reads += [str(s["path"]) for s in sources if isinstance(s, dict) and "path" in s]
            reads.append(p.stage.params["tokenizer"] or p.tokenizer)
        check_no_overlap(reads, [p.output])


def parse_stage_spec(spec: str, stages: Sequence[Stage]) -> tuple[int, str | None]:
    """`I` or `I:SUB` (a dedup sub-stage such as `1:hash`) as (stage index, sub-stage)."""
    index_text, sep, sub = str(spec).partition(":")
    try:
        index = int(index_text)
    except ValueError:
        index = -1
    if not 0 <= index < len(stages):
        raise ValueError(f"--stage {spec!r}: expected I or I:SUB with I in 0..{len(stages) - 1}")
    if sep and stages[index].kind != "dedup":
        raise ValueError(
            f"--stage {spec!r}: only dedup stages have sub-stages (stage {index} is {stages[index].kind})"
        )
    if sep and not sub:
        raise ValueError(f"--stage {spec!r}: empty sub-stage (e.g. {index}:hash)")
    return index, (sub or None)


def run_recipe(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    overwrite: bool = False,
    progress: bool = True,
    stage: str | None = None,
    rank: int = 0,
    world_size: int = 1,
    executor: Executor = LOCAL,
) -> Path:
    """Run every stage of a recipe in order (or only `stage`, units[rank::world_size] of it).

    `executor` runs each stage's units (the next stage starts when they are all done) and the
    whole-directory stages. Returns the last data stage's output (the selected stage's with `stage`).
    """
    cfg = load_recipe(path, overrides)
    stages = parse_stages(cfg, str(path))
    workers = int(cfg.get("workers", Recipe.workers))
    list_parquet(Path(str(cfg.input)))  # a missing input fails before anything is written
    planned = plan_recipe(cfg, stages)
    check_recipe_paths(cfg, planned)
    part = StagePart(None, rank, world_size)
    if stage is None:
        if world_size != 1 or rank != 0:
            raise ValueError("--rank/--world-size split one stage over tasks: give --stage I (or I:SUB)")
        selected = planned
    else:
        if not 0 <= rank < world_size:
            raise ValueError(f"--rank {rank} must be in [0, --world-size {world_size})")
        index, part.sub = parse_stage_spec(stage, stages)
        selected = [planned[index]]
    for p in selected:
        sub = f" ({part.sub})" if part.sub else ""
        split = f" [task {rank} of {world_size}]" if world_size > 1 else ""
        print(f"== stage {p.stage.index}: {p.stage.kind}{sub}{split} -> {p.output}")
        runner = _RUNNERS[p.stage.kind]
        runner(p.stage, p.input, p.output, workers, p.tokenizer, overwrite, progress, part, executor)
    if stage is not None:
        return selected[0].output
    data = [p.output for p in planned if p.stage.kind != "train_tokenizer"]
    return data[-1] if data else Path(str(cfg.input))


def _record(root: Path, stage: Stage, config: dict) -> tuple[Path, bool]:
    """Record file of a whole-directory stage and whether it shows this exact config finished."""
    record = root / RECORDS / f"{stage.dirname}.json"
    return record, record.is_file() and json.loads(record.read_text()) == config


def _shard_io(
    p: dict, workers: int, overwrite: bool, progress: bool, part: StagePart, executor: Executor
) -> dict:
    """The I/O options every shard-rewriting stage (filter, dedup) takes from its recipe entry."""
    return {
        "executor": executor,
        "workers": workers,
        "batch_rows": p["batch_rows"],
        "rows_per_file": p["rows_per_file"],
        "write_dropped": p["write_dropped"],
        "on_bad_input": p["on_bad_input"],
        "overwrite": overwrite,
        "progress": progress,
        "rank": part.rank,
        "world_size": part.world_size,
    }


def _one_task(stage: Stage, part: StagePart) -> None:
    if part.world_size != 1:
        raise ValueError(f"stage {stage.index} ({stage.kind}) runs as one task, not {part.world_size}")


def _run_filter(stage: Stage, current, out, workers, tokenizer, overwrite, progress, part, executor) -> Path:
    p = stage.params
    summary = run_filter(
        current,
        out,
        parse_step_specs(p["steps"]),
        **_shard_io(p, workers, overwrite, progress, part, executor),
    )
    print_summary(summary, out)
    return out


def _run_dedup(stage: Stage, current, out, workers, tokenizer, overwrite, progress, part, executor) -> Path:
    from data_pipeline.dedup.run import print_dedup_summary, run_dedup, sized_plan, stage_names
    from data_pipeline.dedup.tasks import DedupConfig
    from data_pipeline.guard import DEDUP_WORK_DIR

    p = stage.params
    cfg = DedupConfig.from_options(p)
    if part.sub is not None and part.sub.startswith("cc-"):
        # A launcher that submits before this stage's input exists sizes the components rounds for
        # the largest possible input; rounds this input does not have are no-ops.
        sizes = (p["partitions"], p["rows_per_partition"], p["cc_partitions"])
        names = stage_names(cfg, sized_plan(list_parquet(current), cfg, *sizes, out / DEDUP_WORK_DIR))
        if part.sub not in names:
            print(f"dedup stage {part.sub}: not in this run ({' '.join(names)}); nothing to do")
            return out
    summary = run_dedup(
        current,
        out,
        cfg,
        **_shard_io(p, workers, overwrite, progress, part, executor),
        stage=part.sub,
        partitions=p["partitions"],
        rows_per_partition=p["rows_per_partition"],
        cc_partitions=p["cc_partitions"],
    )
    print_dedup_summary(summary, out)
    return out


def _run_train_tokenizer(
    stage: Stage, current, out, workers, tokenizer, overwrite, progress, part, executor
) -> Path:
    from data_pipeline.train_tokenizer import train_tokenizer_from_parquet

    _one_task(stage, part)
    model = out / TOKENIZER_FILE
    config = {"input": str(current), **stage.params}
    record, done = _record(out.parent, stage, config)
    if done and model.is_file() and not overwrite:
        print(f"done already ({model})")
        return model
    executor.call(
        train_tokenizer_from_parquet,
        list_parquet(current),
        stage.params["vocab_size"],
        model,
        max_chars=stage.params["max_chars"],
    )
    atomic_write_text(record, json.dumps(config, sort_keys=True) + "\n")
    print(f"wrote {model}")
    return model


def _run_pack(stage: Stage, current, out, workers, tokenizer, overwrite, progress, part, executor) -> Path:
    from data_pipeline.pack import pack
    from data_pipeline.tokenizer import load_tokenizer

    _one_task(stage, part)
    p = stage.params
    extra = [dict(src) for src in p["sources"] or []]  # checked by parse_stages
    inputs = [current, *(Path(str(src["path"])) for src in extra)]
    weights = None
    if extra or p["weight"] is not None:
        weights = [1.0 if p["weight"] is None else float(p["weight"]), *(float(s["weight"]) for s in extra)]
    tok_path = Path(p["tokenizer"]) if p["tokenizer"] else tokenizer
    config = {"input": str(current), **p, "tokenizer": str(tok_path) if tok_path else None}
    config["sources"] = [dict(src) for src in p["sources"] or []]
    record, done = _record(out.parent, stage, config)
    if done and (out / "manifest.json").is_file() and not overwrite:
        print(f"done already ({out})")
        return out
    manifest = executor.call(
        pack,
        inputs,
        out,
        load_tokenizer(tok_path),
        p["seq_len"],
        strategy=p["strategy"],
        shuffle=p["shuffle"],
        weights=weights,
        progress=progress,
        val_fraction=p["val_fraction"],
        rows_per_shard=p["rows_per_shard"],
        seed=p["seed"],
    )
    atomic_write_text(record, json.dumps(config, sort_keys=True) + "\n")
    print(f"wrote {out}: {manifest['num_sequences']} sequences, {manifest['total_tokens']} tokens")
    return out


_RUNNERS: dict[str, Callable[..., Path]] = {
    "filter": _run_filter,
    "dedup": _run_dedup,
    "train_tokenizer": _run_train_tokenizer,
    "pack": _run_pack,
}
