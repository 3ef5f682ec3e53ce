"""Tensor + sequence parallelism (Megatron-LM style) with DTensor plans, applied from outside the model.

Within a block, wq/wk/wv and w1/w3 are split by output features (ColwiseParallel: each rank holds
n_heads/tp heads, n_kv_heads/tp kv heads and hidden/tp FFN channels) and wo/w2 by input features
(RowwiseParallel), so attention and the FFN each need one collective in forward and one in
backward. With sequence parallelism the residual stream between those regions is sharded along
the sequence (Shard(1)): the norms run on 1/tp of the tokens, and the all-reduce after wo/w2
becomes a reduce-scatter, the all-gather before wq/w1 its pair (Korthikanti et al. 2022).

The embedding is split by vocabulary rows and hands a sequence-sharded stream to the first block;
the output projection is split by vocabulary columns. With `loss_parallel` its logits stay
vocab-sharded and the cross-entropy runs on the shards (`torch.distributed.tensor.parallel.
loss_parallel`), so no rank ever materialises (tokens x 128K) logits. Both split the (vocab, dim)
matrix by rows (Shard(0)), so a tied embedding and output stay one DTensor: distributing each
module makes a Parameter of its own, and the output is pointed back at the embedding's.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

from parallel.utils import is_tied


def check_tp(args, tp: int, seq_len: int) -> None:
    """Degrees the model shapes must allow, checked before any process-group work."""
    if tp <= 1:
        return
    problems = []
    if args.n_heads % tp:
        problems.append(f"n_heads={args.n_heads}")
    if args.kv_heads % tp:
        problems.append(f"n_kv_heads={args.kv_heads}")
    if args.ffn_hidden_dim % tp:
        problems.append(f"ffn hidden size={args.ffn_hidden_dim}")
    if args.vocab_size % tp:
        problems.append(f"vocab_size={args.vocab_size}")
    if seq_len % tp:
        problems.append(f"data.seq_len={seq_len} (sequence parallelism splits tokens)")
    if problems:
        raise ValueError(f"parallel.tp={tp} must divide {', '.join(problems)}")


def apply_tp(model: nn.Module, mesh: DeviceMesh, *, loss_parallel: bool = True) -> nn.Module:
    """Shard a `pretrain.model.Transformer` (or a pipeline stage of it) over the 1-D `mesh` in place."""
    top: dict[str, object] = {}
    tied = is_tied(model)
    if getattr(model, "tok_embeddings", None) is not None:
        top["tok_embeddings"] = RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1))
    if getattr(model, "norm", None) is not None:
        top["norm"] = SequenceParallel()
    if getattr(model, "output", None) is not None:
        top["output"] = ColwiseParallel(
            input_layouts=Shard(1),
            output_layouts=Shard(-1) if loss_parallel else Replicate(),
            use_local_output=not loss_parallel,
        )
    if top:
        parallelize_module(model, mesh, top)
    if tied:
        model.output.weight = model.tok_embeddings.weight
    for block in model.layers.values():
        plan = {
            "attention_norm": SequenceParallel(),
            # forward(x, freqs_cis, mask, cache, start_pos): only x is sharded (by sequence).
            "attention": PrepareModuleInput(
                input_layouts=(Shard(1), None, None, None, None),
                desired_input_layouts=(Replicate(), None, None, None, None),
            ),
            "attention.wq": ColwiseParallel(),
            "attention.wk": ColwiseParallel(),
            "attention.wv": ColwiseParallel(),
            "attention.wo": RowwiseParallel(output_layouts=Shard(1)),
            "ffn_norm": SequenceParallel(),
            "feed_forward": PrepareModuleInput(
                input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)
            ),
            "feed_forward.w1": ColwiseParallel(),
            "feed_forward.w2": RowwiseParallel(output_layouts=Shard(1)),
            "feed_forward.w3": ColwiseParallel(),
        }
        parallelize_module(block, mesh, plan)
    return model
