"""Per-GPU memory and step time of a trainer layout, before any GPU is booked.

    python -m pretrain.estimate model=llama3_405b parallel.tp=8 parallel.pp=16 parallel.dp_shard=128 \
        data.seq_len=8192 training.global_batch_size=2048 training.micro_batch_size=1 [--json]
    python -m pretrain.estimate model=llama3_405b model.max_seq_len=131072 parallel.tp=8 parallel.cp=16 \
        parallel.pp=16 parallel.dp_shard=8 data.seq_len=131072 training.global_batch_size=128 ...

`key=value` arguments are overrides of the trainer's own Hydra config (`configs/train.yaml`), so the
estimate describes exactly the run `pretrain.train` would start with the same overrides; `--flags`
describe the hardware. Every rank of one pipeline rank's TP x FSDP group holds the same amounts,
so the estimate is per pipeline rank. Context parallelism (parallel.cp) splits every micro-batch's
tokens over cp ranks and adds its K/V all-gathers (pretrain/estimate_cp.py). Formulas, their
sources and the validation against published layouts: docs/parallelism_estimates.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import asdict, dataclass

from parallel.dims import ParallelDims
from parallel.pipeline import schedule_name, stage_ids
from pretrain.build import pipeline_split
from pretrain.configs import ModelArgs
from pretrain.estimate_cp import comm_line, cp_comm, kv_bytes
from pretrain.job_config import ConfigError, TrainConfig, compose_config
from pretrain.preflight import check_layout, model_args

GIB = 2**30
DTYPE_BYTES = {"bf16": 2, "bfloat16": 2, "fp32": 4, "float32": 4}
LOGIT_BYTES = 12
"""Bytes per logit at the loss: fp32 log-probs saved by log_softmax, plus the two fp32 gradients
(w.r.t. the log-probs and the logits) that coexist at the start of backward."""


@dataclass
class RankMemory:
    """Peak memory of one pipeline rank, in bytes; every TP and data-parallel rank of it is alike."""

    pp_rank: int
    """Position in the pipeline (0 holds the embedding; the last stage's rank the output layer)."""
    stages: list[int]
    """Pipeline stages this rank runs (several under interleaved and V-shaped schedules)."""
    blocks: int
    """Transformer blocks over those stages."""
    params: float
    """fp32 parameters (FSDP-sharded; FSDP's MixedPrecisionPolicy keeps the sharded copy in fp32)."""
    grads: float
    """fp32 sharded gradients (FSDP reduce-scatters them in reduce_dtype=fp32)."""
    optimizer: float
    """AdamW's two fp32 moments."""
    unsharded: float
    """FSDP all-gathered parameters and unsharded gradients, or autocast's bf16 weight copies without FSDP."""
    activations: float
    """Tensors saved for backward, times the micro-batches in flight at this rank's peak."""
    recompute: float
    """One block's activations rebuilt in backward under activation checkpointing (transient)."""
    logits: float
    """Vocab-sized buffers of the loss on the rank of the last stage (transient)."""
    in_flight: int
    """Stage-micro-batch activation sets held at the peak, over the rank's stages (see `in_flight`)."""
    host: float
    """Parameters, gradients and optimizer state moved to host memory by parallel.fsdp_cpu_offload."""

    @property
    def total(self) -> float:
        return (
            self.params + self.grads + self.optimizer + self.unsharded
            + self.activations + self.recompute + self.logits
        )  # fmt: skip


@dataclass
class Estimate:
    """Memory per pipeline rank and step time of one layout; `python -m pretrain.estimate` prints it."""

    model: str
    """Model name (pretrain.configs) with any model.* overrides applied."""
    num_params: int
    """Parameters of the whole model."""
    world_size: int
    """GPUs: pp x dp_replicate x dp_shard x cp x tp."""
    degrees: dict[str, int]
    """pp, dp_replicate, dp_shard, cp, tp (dp_shard=-1 resolved); FSDP shards over dp_shard x cp."""
    schedule: str
    """Pipeline schedule (irrelevant when pp=1)."""
    stages_per_rank: int
    """Pipeline stages per rank."""
    blocks_per_stage: list[int]
    """Transformer blocks of every pipeline stage."""
    microbatches: int
    """Micro-batches per step on each data-parallel rank (= per pipeline)."""
    tokens_per_microbatch: int
    """micro_batch_size x seq_len."""
    tokens_per_rank: int
    """Tokens of a micro-batch each context rank holds: micro_batch_size x seq_len / cp."""
    dtype: str
    """Compute (FSDP param) dtype: activations and gathered parameters are stored in it."""
    activation_checkpoint: str
    """parallel.activation_checkpoint (with ac_every for selective_layer)."""
    ranks: list[RankMemory]
    """Every pipeline rank, rank 0 first."""
    gpu_memory_gib: float
    """Memory per GPU the layout must fit in."""
    flops_per_step: float
    """Model FLOPs per optimizer step (ModelArgs.flops_per_token x tokens)."""
    tokens_per_step: int
    """global_batch_size x seq_len."""
    peak_tflops: float
    """Dense peak TFLOP/s per GPU in the compute dtype."""
    mfu: float
    """Assumed MFU while the GPUs compute, outside pipeline bubbles and exposed K/V collectives."""
    bubble: float
    """Pipeline idle time as a fraction of the compute time (see `bubble_fraction`)."""
    cp_gather_bytes: float
    """Bytes a rank receives in one block's K/V all-gather for one micro-batch (0 without cp)."""
    cp_comm_bytes: float
    """Bytes a rank moves per step in K/V all-gathers and reduce-scatters (mean over pp ranks)."""
    cp_bandwidth_gbs: float
    """GB/s per rank assumed for them (NVLink inside a node, the NIC across nodes)."""
    cp_comm_s: float
    """cp_comm_bytes / cp_bandwidth: exposed, not overlapped with compute (Llama 3 §3.3.2)."""
    step_time_s: float
    """(FLOPs / (world_size x peak x mfu) + cp_comm_s) x (1 + bubble)."""

    @property
    def peak(self) -> RankMemory:
        return max(self.ranks, key=lambda r: r.total)

    @property
    def fits(self) -> bool:
        return self.peak.total <= self.gpu_memory_gib * GIB

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_time_s

    @property
    def compute_s(self) -> float:
        """Step time spent in kernels, bubbles and exposed collectives left out."""
        return self.flops_per_step / (self.world_size * self.peak_tflops * 1e12 * self.mfu)

    @property
    def mfu_end_to_end(self) -> float:
        """The MFU a training log would show: the assumed one diluted by bubble and K/V collectives."""
        return self.mfu / (1 + self.bubble) * self.compute_s / (self.compute_s + self.cp_comm_s)

    def to_json(self) -> dict:
        out = asdict(self)
        for rank, raw in zip(self.ranks, out["ranks"], strict=True):
            raw["total"] = rank.total
        out.update(
            peak_gib=self.peak.total / GIB,
            peak_pp_rank=self.peak.pp_rank,
            fits=self.fits,
            tokens_per_s=self.tokens_per_s,
            tokens_per_s_per_gpu=self.tokens_per_s / self.world_size,
            mfu_end_to_end=self.mfu_end_to_end,
            tflops_per_gpu=self.mfu_end_to_end * self.peak_tflops,
        )
        return out


def stage_params(args: ModelArgs, blocks: int, *, first: bool, last: bool, tp: int) -> tuple[float, float]:
    """(parameters one TP rank holds for a stage, parameters of the stage's largest FSDP unit).

    Attention and FFN matrices, embedding rows and output columns are split by tp; norms are
    replicated on every TP rank.
    """
    d, kv, f = args.dim, args.kv_heads * args.head_dim, args.ffn_hidden_dim
    block = (2 * d * d + 2 * d * kv + 3 * d * f) / tp + 2 * d
    embedding = args.vocab_size * d / tp if first else 0.0
    head = args.vocab_size * d / tp + d if last else 0.0
    return blocks * block + embedding + head, max(block if blocks else 0.0, embedding, head)


def block_activations(
    args: ModelArgs, tokens: int, tp: int, dtype_bytes: int, mode: str, cp: int = 1
) -> float:
    """Bytes one block saves for backward for one micro-batch of `tokens` local tokens, per TP rank.

    Korthikanti et al. 2022 (Sec. 4.1) adapted to Llama: no dropout masks, flash/flex attention
    (no s^2 scores, a fp32 log-sum-exp per head), fused RMSNorm (keeps its input), SwiGLU (w1 and
    w3 outputs, SiLU output and their product), GQA (k, v are kv_heads wide). Sequence parallelism
    divides all by tp except the norm outputs all-gathered for wq/wk/wv and w1/w3, which DTensor's
    ColwiseParallel saves whole (Megatron-LM re-gathers them in backward instead). Under context
    parallelism attention saves the all-gathered K and V of the whole row (cp x the local tokens)
    where it would save the local ones; checkpointed blocks gather them again in backward instead.
    """
    h, kv, f = args.dim, args.kv_heads * args.head_dim, args.ffn_hidden_dim
    lse = 4 * args.n_heads / tp
    if mode == "full":  # the block's input only
        per_token = dtype_bytes * h / tp
    elif mode == "selective_op":  # input, outputs of the 7 matmuls (wo, w2: before reduce-scatter), attention
        per_token = dtype_bytes * ((3 * h + 2 * kv + 2 * f) / tp + 2 * h) + lse
    else:  # 2 norm inputs, q, k, v, attention out, 4 SwiGLU tensors; 2 gathered norm outputs
        per_token = dtype_bytes * ((4 * h + 2 * kv + 4 * f) / tp + 2 * h) + lse
        return per_token * tokens + (cp - 1) * kv_bytes(args, tokens, tp, dtype_bytes)
    return per_token * tokens


def stage_activations(
    args: ModelArgs, blocks: int, tokens: int, degrees: tuple, nbytes: int, mode: str, every: int, last: bool
) -> float:
    """Bytes a stage saves for one micro-batch of `tokens` local tokens, under parallel.activation_checkpoint
    `mode`; `degrees` = (tp, cp)."""
    tp, cp = degrees
    if mode == "selective_layer":  # apply_ac checkpoints blocks 0, every, 2*every, ... of each stage
        ckpt = math.ceil(blocks / every)
        act = ckpt * block_activations(args, tokens, tp, nbytes, "full", cp)
        act += (blocks - ckpt) * block_activations(args, tokens, tp, nbytes, "none", cp)
    else:
        act = blocks * block_activations(args, tokens, tp, nbytes, mode, cp)
    if last:  # final norm's input and its gathered output (the output projection's input)
        act += nbytes * tokens * (args.dim / tp + args.dim)
    return act


def in_flight(schedule: str, pp_rank: int, pp: int, per_rank: int, n_micro: int) -> list[int]:
    """Micro-batches whose activations each of a pipeline rank's stages holds at the rank's peak.

    GPipe and LoopedBFS run every forward before any backward; 1F1B holds pp - r (Narayanan et al.
    2021). Interleaved schedules hold torch's warm-up, (v-1)*pp + 2*(pp-1-r) forwards, plus one,
    dealt to the local stages pp at a time. ZB-V holds 2*pp - r - 1 on its first stage and r + 1
    on its second: 2*pp on every rank, 1F1B's first-rank peak (Qi et al. 2024, Sec. 6).
    """
    if pp == 1:
        return [1]
    if schedule in ("GPipe", "LoopedBFS"):
        return [n_micro] * per_rank
    if schedule == "1F1B":
        return [min(pp - pp_rank, n_micro)]
    if schedule == "ZBVZeroBubble":
        return [min(2 * pp - pp_rank - 1, n_micro), min(pp_rank + 1, n_micro)]
    per_round = n_micro // max(1, n_micro // pp)
    forwards = min((per_rank - 1) * per_round + 2 * (pp - 1 - pp_rank) + 1, n_micro * per_rank)
    held = [0] * per_rank
    for i in range(forwards):
        held[(i // per_round) % per_rank] += 1
    return [min(h, n_micro) for h in held]


def bubble_fraction(schedule: str, pp: int, per_rank: int, n_micro: int) -> float:
    """Idle time over compute time: (pp-1)/m for GPipe and 1F1B (Huang et al. 2019; Narayanan et
    al. 2021), /v when each rank loops over v stages, a third of that for ZB-H1-style
    InterleavedZeroBubble and ~0 for ZB-V (Qi et al. 2024, assuming equal F, B and W times)."""
    if pp == 1 or schedule == "ZBVZeroBubble":
        return 0.0
    base = (pp - 1) / (n_micro * per_rank)
    return base / 3 if schedule == "InterleavedZeroBubble" else base


def _rank_memory(
    cfg: TrainConfig,
    args: ModelArgs,
    dims: ParallelDims,
    pipe: tuple[str, int, list[int], int],
    nbytes: int,
    r: int,
) -> RankMemory:
    """Pipeline rank `r`'s memory; `pipe` = (schedule, stages per rank, blocks per stage, micro-batches)."""
    p = cfg.parallel
    schedule, per_rank, counts, n_micro = pipe
    tokens, last_stage = cfg.training.micro_batch_size * cfg.data.seq_len // p.cp, len(counts) - 1
    ids = stage_ids(schedule, r, p.pp, per_rank)
    local = unit = 0.0
    acts = []
    mode, every, degrees = p.activation_checkpoint, p.ac_every, (p.tp, p.cp)
    for s in ids:
        elems, biggest = stage_params(args, counts[s], first=s == 0, last=s == last_stage, tp=p.tp)
        local, unit = local + elems, max(unit, biggest)
        acts.append(stage_activations(args, counts[s], tokens, degrees, nbytes, mode, every, s == last_stage))
    held = in_flight(schedule, r, p.pp, per_rank, n_micro)
    fsdp = dims.fsdp_enabled  # pretrain.build applies FSDP with data or context parallelism
    state = local / (dims.dp_shard * dims.cp) if fsdp else local  # context ranks shard the state too
    if not fsdp:  # autocast keeps a low-precision copy of every weight for backward
        unsharded = nbytes * local if nbytes < 4 else 0.0
    elif p.pp > 1 and n_micro > 1:  # torch.pipelining defers resharding and reduce-scatter to the last
        unsharded = (nbytes + 4) * local  # micro-batch: gathered params, fp32 unsharded grads
    elif not p.reshard_after_forward:  # ZeRO-2: gathered from forward to backward, one unit's grads
        unsharded = nbytes * local + 4 * unit
    else:  # the current and the prefetched unit, and one unit's fp32 gradient before reduce-scatter
        unsharded = (2 * nbytes + 4) * unit
    # The vocab-sharded embedding's gradient comes back whole (Replicate) on every TP rank: torch's
    # embedding backward has no sharded rule. Without FSDP to re-shard it, it stays that size.
    grad_extra = (
        4 * args.vocab_size * args.dim * (1 - 1 / p.tp) if p.tp > 1 and not fsdp and 0 in ids else 0.0
    )
    offload = fsdp and p.fsdp_cpu_offload
    vocab = args.vocab_size / p.tp if p.tp > 1 and p.loss_parallel else args.vocab_size
    checkpointed = p.activation_checkpoint != "none"
    return RankMemory(
        pp_rank=r,
        stages=ids,
        blocks=sum(counts[s] for s in ids),
        params=0.0 if offload else 4 * state,
        grads=0.0 if offload else 4 * state + grad_extra,
        optimizer=0.0 if offload else 8 * state,
        unsharded=unsharded,
        activations=sum(h * a for h, a in zip(held, acts, strict=True)),
        recompute=block_activations(args, tokens, p.tp, nbytes, "none", p.cp) if checkpointed else 0.0,
        logits=LOGIT_BYTES * tokens * vocab if last_stage in ids else 0.0,
        in_flight=sum(held),
        host=16 * state if offload else 0.0,
    )


def estimate(
    cfg: TrainConfig,
    *,
    world_size: int | None = None,
    gpu_memory_gib: float = 80.0,
    peak_tflops: float | None = None,
    mfu: float = 0.40,
    dtype: str | None = None,
    cp_bandwidth_gbs: float | None = None,
) -> Estimate:
    """Estimate a trainer config; `dtype` (bf16/fp32) overrides training.dtype, peak_tflops metrics',
    cp_bandwidth_gbs the GB/s of the K/V collectives (default: estimate_cp.default_bandwidth).

    Checks the layout as the trainer does (same messages, naming the config key), so an estimate
    exists only for a run `pretrain.train` would start.
    """
    p, t = cfg.parallel, cfg.training
    if world_size is None:
        if p.dp_shard == -1:
            raise ConfigError("parallel.dp_shard=-1 takes the rest of the world size: pass --world-size")
        world_size = p.pp * p.dp_replicate * p.dp_shard * p.cp * p.tp
    dims = check_layout(cfg, world_size)  # the trainer's own checks
    args = model_args(cfg)
    seq = cfg.data.seq_len
    dtype = dtype or t.dtype
    if dtype not in DTYPE_BYTES:
        raise ConfigError(f"dtype {dtype!r} (--dtype or training.dtype): expected bf16 or fp32")
    if not 0 < mfu <= 1:
        raise ConfigError(f"--mfu={mfu} must be in (0, 1]")
    n_micro = t.global_batch_size // (t.micro_batch_size * dims.dp_size)
    schedule = schedule_name(p.pp_schedule)
    per_rank, split = pipeline_split(args, cfg)  # the trainer's own split
    counts = [len(s) for s in split]
    pipe = (schedule, per_rank, counts, n_micro)
    peak_tflops = peak_tflops or cfg.metrics.peak_tflops or 989.0
    tokens_per_step = t.global_batch_size * seq
    flops = float(args.flops_per_token(seq)) * tokens_per_step
    bubble = bubble_fraction(schedule, p.pp, per_rank, n_micro)
    comm = cp_comm(cfg, args, counts, n_micro, DTYPE_BYTES[dtype], cp_bandwidth_gbs)
    ac = p.activation_checkpoint
    return Estimate(
        model=cfg.model.name,
        num_params=args.num_params(),
        world_size=world_size,
        degrees=dict(pp=p.pp, dp_replicate=p.dp_replicate, dp_shard=dims.dp_shard, cp=p.cp, tp=p.tp),
        schedule=schedule,
        stages_per_rank=per_rank,
        blocks_per_stage=counts,
        microbatches=n_micro,
        tokens_per_microbatch=t.micro_batch_size * seq,
        tokens_per_rank=t.micro_batch_size * seq // p.cp,
        dtype="bfloat16" if DTYPE_BYTES[dtype] == 2 else "float32",
        activation_checkpoint=ac + (f"(every {p.ac_every})" if ac == "selective_layer" else ""),
        ranks=[_rank_memory(cfg, args, dims, pipe, DTYPE_BYTES[dtype], r) for r in range(p.pp)],
        gpu_memory_gib=gpu_memory_gib,
        flops_per_step=flops,
        tokens_per_step=tokens_per_step,
        peak_tflops=peak_tflops,
        mfu=mfu,
        bubble=bubble,
        **comm,
        step_time_s=(flops / (world_size * peak_tflops * 1e12 * mfu) + comm["cp_comm_s"]) * (1 + bubble),
    )


def format_table(est: Estimate) -> str:
    """Readable report: layout, memory of the first, middle, last and peak pipeline ranks, speed."""
    d = est.degrees
    pp = d["pp"]
    lines = [
        f"{est.model}: {est.num_params / 1e9:.1f}B params, {est.world_size} GPUs = pp {pp} x dp_replicate "
        f"{d['dp_replicate']} x dp_shard {d['dp_shard']} x cp {d['cp']} x tp {d['tp']}",
        f"{est.microbatches} micro-batches of {est.tokens_per_microbatch} tokens per step"
        + (f" ({est.tokens_per_rank} per context rank)" if d["cp"] > 1 else "")
        + f", dtype {est.dtype}, activation checkpoint {est.activation_checkpoint}",
    ]
    if pp > 1:
        runs = [(k, len(list(g))) for k, g in itertools.groupby(est.blocks_per_stage)]
        lines.append(
            f"schedule {est.schedule}, {est.stages_per_rank} stage(s)/rank, blocks per stage "
            + ", ".join(f"{k} (x{n})" if n > 1 else str(k) for k, n in runs)
        )
    shown = [est.ranks[i] for i in sorted({0, pp // 2, pp - 1, est.peak.pp_rank})]
    width = max(6, *(len(",".join(map(str, r.stages))) for r in shown))
    cols = ("params", "grads", "optim", "unshard", "activ", "recomp", "logits", "total")
    head = f"{'pp rank':>7} {'stages':>{width}} {'blocks':>6} {'held':>5} "
    lines += ["", head + " ".join(f"{c:>7}" for c in cols)]
    for r in shown:
        values = (r.params, r.grads, r.optimizer, r.unsharded, r.activations, r.recompute, r.logits, r.total)
        stages = ",".join(map(str, r.stages))
        lines.append(
            f"{r.pp_rank:>7} {stages:>{width}} {r.blocks:>6} {r.in_flight:>5} "
            + " ".join(f"{v / GIB:7.2f}" for v in values)
        )
    lines.append("(GiB per GPU; held = stage-micro-batch activation sets in flight)")
    if est.peak.host:
        lines.append(f"host memory (fsdp_cpu_offload): {est.peak.host / GIB:.2f} GiB per GPU")
    verdict = "fits in" if est.fits else "EXCEEDS"
    peak = est.peak
    lines += [
        f"peak {peak.total / GIB:.1f} GiB on pp rank {peak.pp_rank}: {verdict} {est.gpu_memory_gib:g} GiB",
        "",
        *_speed_lines(est),
    ]
    return "\n".join(lines)


def _speed_lines(est: Estimate) -> list[str]:
    """FLOPs, the K/V collectives of context parallelism (if any) and the resulting step time."""
    lines, exposed = [], ""
    if est.degrees["cp"] > 1:
        lines.append(comm_line(est))
        exposed = f" plus {est.cp_comm_s:.2f} s of K/V collectives"
    lines.append(
        f"{est.flops_per_step:.3e} FLOPs per step ({est.tokens_per_step} tokens); at MFU {est.mfu:.2f} "
        f"of {est.peak_tflops:g} TFLOP/s{exposed} and a {est.bubble:.1%} pipeline bubble: "
        f"{est.step_time_s:.2f} s per step, {est.tokens_per_s:,.0f} tokens/s "
        f"({est.tokens_per_s / est.world_size:,.0f} per GPU), end-to-end MFU {est.mfu_end_to_end:.1%} "
        f"({est.mfu_end_to_end * est.peak_tflops:.0f} TFLOP/s per GPU)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain.estimate", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="trainer config overrides, key=value")
    parser.add_argument("--world-size", type=int, help="GPUs (default: product of the degrees)")
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0, help="memory per GPU (default 80)")
    peak_help = "dense peak TFLOP/s per GPU (default metrics.peak_tflops, else 989: H100 SXM bf16)"
    parser.add_argument("--peak-tflops", type=float, help=peak_help)
    parser.add_argument("--mfu", type=float, default=0.40, help="MFU outside pipeline bubbles (default 0.40)")
    parser.add_argument("--dtype", choices=sorted(DTYPE_BYTES), help="compute dtype (default training.dtype)")
    cp_help = (
        "GB/s per GPU of the K/V collectives (default 450: NVLink if tp*cp <= 8, else 50: a 400 Gb/s NIC)"
    )
    parser.add_argument("--cp-bandwidth-gbs", type=float, help=cp_help)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ns = parser.parse_intermixed_args(argv)
    try:
        est = estimate(
            compose_config(ns.overrides),
            world_size=ns.world_size,
            gpu_memory_gib=ns.gpu_memory_gib,
            peak_tflops=ns.peak_tflops,
            mfu=ns.mfu,
            dtype=ns.dtype,
            cp_bandwidth_gbs=ns.cp_bandwidth_gbs,
        )
    except ValueError as e:  # ConfigError (bad overrides or layout) or a model shape: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(est.to_json(), indent=2) if ns.json else format_table(est))
    return 0


if __name__ == "__main__":
    sys.exit(main())
