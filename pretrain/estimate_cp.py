"""What context parallelism adds to `pretrain.estimate`: the K/V all-gathers, in bytes and seconds.

parallel/context_parallel.py gives each of the `cp` ranks micro_batch x seq_len / cp tokens of
every micro-batch (two chunks of 2·cp, head and tail) and all-gathers, in every block, the keys and
values of the whole sequence before attention; the all-gather's backward reduce-scatters their
gradients. Llama 3 §3.3.2 leaves this all-gather exposed on the critical path (no overlap), so the
estimate adds its time to the compute time. Formulas and assumptions: docs/parallelism_estimates.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pretrain.configs import ModelArgs
from pretrain.job_config import TrainConfig

if TYPE_CHECKING:
    from pretrain.estimate import Estimate

NODE_GPUS = 8
"""GPUs per node: TP is the innermost mesh dim and CP the next, so tp x cp <= 8 stays in a node."""
NVLINK_GBS = 450.0
"""H100 SXM NVLink 4: 900 GB/s per GPU both ways together, 450 GB/s each way."""
NETWORK_GBS = 50.0
"""One 400 Gb/s RoCE/InfiniBand NIC per GPU, as in Meta's Llama 3 clusters (Llama 3 paper §3.3.1)."""
RECOMPUTED = {"none": False, "selective_op": True, "full": True}
"""Whether backward rebuilds a block's gathered K/V with a second all-gather: under full
checkpointing the whole block reruns; selective_op keeps only matmul and attention outputs
(parallel/activation_checkpoint.py), not the all-gather's, so attention's inputs are gathered again."""


def kv_bytes(args: ModelArgs, tokens: int, tp: int, dtype_bytes: int) -> float:
    """Bytes of the keys and values of `tokens` tokens on one TP rank (GQA: kv_heads/tp heads)."""
    return 2 * tokens * args.kv_heads * args.head_dim / tp * dtype_bytes


def gather_bytes(args: ModelArgs, tokens: int, tp: int, cp: int, dtype_bytes: int) -> float:
    """Bytes one rank receives in one block's K/V all-gather of a micro-batch of `tokens` tokens
    (whole rows, before the cp split).

    It holds 1/cp of the rows' K and V and receives the other (cp-1)/cp; the backward's
    reduce-scatter of their gradients sends the same amount back.
    """
    return (cp - 1) / cp * kv_bytes(args, tokens, tp, dtype_bytes)


def collectives(counts: list[int], mode: str, every: int) -> int:
    """K/V all-gathers and reduce-scatters per micro-batch, over every block of the model.

    Each block gathers in forward and reduce-scatters in backward, and gathers again when backward
    recomputes it (see RECOMPUTED); selective_layer checkpoints blocks 0, every, ... of each stage.
    """
    if mode == "selective_layer":
        recomputed = sum(math.ceil(n / every) for n in counts)
    else:
        recomputed = sum(counts) if RECOMPUTED[mode] else 0
    return 2 * sum(counts) + recomputed


def default_bandwidth(tp: int, cp: int) -> float:
    """GB/s one rank receives at: NVLink while the tp x cp ranks of a sequence fit in a node."""
    return NVLINK_GBS if tp * cp <= NODE_GPUS else NETWORK_GBS


def cp_comm(
    cfg: TrainConfig, args: ModelArgs, counts: list[int], n_micro: int, nbytes: int, bandwidth: float | None
) -> dict[str, float]:
    """pretrain.estimate.Estimate's cp_* fields: K/V collective bytes, the bandwidth and their time.

    `counts` are the blocks of every pipeline stage; the bytes per step are averaged over the pp
    ranks, as the compute time is.
    """
    p = cfg.parallel
    tokens = cfg.training.micro_batch_size * cfg.data.seq_len
    one = gather_bytes(args, tokens, p.tp, p.cp, nbytes)
    moved = one * collectives(counts, p.activation_checkpoint, p.ac_every) * n_micro / p.pp
    bandwidth = bandwidth or default_bandwidth(p.tp, p.cp)
    return {
        "cp_gather_bytes": one,
        "cp_comm_bytes": moved,
        "cp_bandwidth_gbs": bandwidth,
        "cp_comm_s": moved / (bandwidth * 1e9),
    }


def comm_line(est: Estimate) -> str:
    """The estimate table's line on the K/V collectives (`cp_comm`'s fields)."""
    return (
        f"context parallel {est.degrees['cp']}: K/V all-gather {est.cp_gather_bytes / 2**20:.1f} MiB per "
        f"block and micro-batch; {est.cp_comm_bytes / 2**30:.1f} GiB of all-gathers and reduce-scatters "
        f"per step and rank at {est.cp_bandwidth_gbs:g} GB/s: {est.cp_comm_s:.2f} s, exposed"
    )
