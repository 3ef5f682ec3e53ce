"""The end-of-training sample: gather the whole model's weights from any layout, then generate.

Kept out of the training loop's module: it runs once, on rank 0, with a plain unsharded model.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from data_pipeline.tokenizer import AnyTokenizer
from parallel.dims import ParallelDims
from pretrain.configs import ModelArgs
from pretrain.generate import generate
from pretrain.job_config import TrainConfig
from pretrain.model import Transformer


def full_state_dict(parts: list[torch.nn.Module], dims: ParallelDims, rank: int) -> dict | None:
    """The whole model's unsharded state on rank 0 (None elsewhere), from every layout."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # Without a pipeline only rank 0 needs the tensors; with one, the first rank of every pipeline
    # stage's data/tensor group keeps them to send them on to rank 0.
    options = StateDictOptions(full_state_dict=True, cpu_offload=not dims.pp_enabled)
    state: dict = {}
    for part in parts:
        state.update(get_model_state_dict(part, options=options))
    if not dims.pp_enabled:
        return state if rank == 0 else None
    if any(dims.local_rank(d) for d in ("dp_replicate", "dp_shard", "tp")):
        return None
    gathered = [None] * dims.pp if dims.local_rank("pp") == 0 else None
    dist.gather_object({k: v.cpu() for k, v in state.items()}, gathered, group_dst=0, group=dims.pp_group())
    if gathered is None:
        return None
    return {k: v for stage_state in gathered for k, v in stage_state.items()}


def sample(state: dict | None, args: ModelArgs, cfg: TrainConfig, tok: AnyTokenizer) -> str | None:
    """Continuation of training.sample_prompt from the gathered weights (on rank 0)."""
    if state is None:
        return None
    plain = Transformer(args)
    plain.load_state_dict(state)
    t = cfg.training
    ids = generate(
        plain.eval(),
        tok.encode(t.sample_prompt, bos=True),
        t.sample_tokens,
        temperature=t.sample_temperature,
        top_k=t.sample_top_k,
        stop_ids=(tok.eos_id,),
        seed=t.seed,
    )
    return t.sample_prompt + tok.decode([i for i in ids if i != tok.eos_id])
