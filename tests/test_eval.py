"""Offline evaluation: task files, metrics by hand, and log-likelihoods equal to transformers' on every
layout (one process, dp2, tp2, pp2 and trainer-style FSDP / loss-parallel / V-shaped pipelines)."""

from __future__ import annotations

import base64
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from distributed import run_distributed
from test_export_generate import make_run

from pretrain import export
from pretrain.configs import get_model_config
from pretrain.eval.__main__ import main
from pretrain.eval.batching import build_rows
from pretrain.eval.evaluate import evaluate
from pretrain.eval.layout import EvalLayout
from pretrain.eval.metrics import task_metrics
from pretrain.eval.scorer import ScoreOptions, score
from pretrain.eval.tasks import Request, list_tasks, read_requests
from pretrain.generate import build_model

SHAPE = dict(dim=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=512, multiple_of=16, max_seq_len=48)
ARGS = get_model_config("llama3_debug", **SHAPE)
BOS = 256


# ------------------------------------------------------------------------------------------- tasks


def test_tasks_variants_limit_and_unknown_names():
    tasks = list_tasks()
    for name in ("hellaswag", "arc_easy", "arc_challenge", "piqa", "boolq", "csqa", "socialiqa"):
        assert {"rc_0shot", "rc_5shot", "mc_5shot"} <= set(tasks[name]), name
    for name in ("winogrande", "openbookqa", "sciq"):
        assert "rc_0shot" in tasks[name]
    full = read_requests("arc_easy")
    assert all(r.doc_id < 1_000_000 for r in full)  # oe-eval's unconditional requests are dropped
    first = sorted({r.doc_id for r in full})[:3]
    three = read_requests("arc_easy", limit=3)
    assert sorted({r.doc_id for r in three}) == first
    assert three == [r for r in full if r.doc_id in first]
    assert [(r.doc_id, r.choice) for r in three] == sorted((r.doc_id, r.choice) for r in three)
    mc = read_requests("arc_easy:mc_5shot", limit=1)
    assert [r.continuation for r in mc] == [" A", " B", " C", " D"] and mc[0].context.endswith("Answer:")
    assert read_requests("hellaswag", limit=2) == read_requests("hellaswag:rc_0shot", limit=2)
    with pytest.raises(ValueError, match="unknown task 'hellaswg'; did you mean hellaswag"):
        read_requests("hellaswg")
    with pytest.raises(ValueError, match="has no variant 'rc_9shot'; it has mc_5shot, rc_0shot"):
        read_requests("piqa:rc_9shot")
    with pytest.raises(ValueError, match="limit=0"):
        read_requests("piqa", limit=0)


def test_metrics_by_hand():
    """acc ranks raw sums, acc_per_char divides by characters, acc_per_token by tokens."""

    def req(doc, choice, cont, gold):
        return Request(doc, choice, "Q:", cont, gold)

    requests = [
        req(0, 0, " a", 1),  # short and likely: wins on the raw sum
        req(0, 1, " bbbbbbbbbb", 1),  # gold: better per character and per token
        req(1, 0, " yes", 0),
        req(1, 1, " no", 0),
        req(2, 0, " a", 0),  # gold only if the leading space counts: -1/2 > -6/11, but -1/1 < -6/10
        req(2, 1, " bbbbbbbbbb", 0),
    ]
    logprobs = [-1.0, -3.0, -2.0, -2.5, -1.0, -6.0]
    n_tokens = [1, 6, 1, 1, 1, 6]  # doc 2 ties per token (-1 each): the lower index wins
    m = task_metrics(requests, logprobs, n_tokens)
    assert m["n"] == 3 and m["acc"] == 2 / 3 and m["acc_per_char"] == 1.0 and m["acc_per_token"] == 1.0
    bits = [3.0 / 11, 2.0 / 4, 1.0 / 2]  # -logprob / UTF-8 bytes of each gold continuation
    assert m["bpb"] == pytest.approx(sum(bits) / math.log(2) / 3, rel=1e-12)
    with pytest.raises(ValueError, match="gold choice 2"):
        task_metrics([req(0, 0, " a", 2), req(0, 1, " b", 2)], [0.0, 0.0], [1, 1])


def test_rows_share_contexts_and_truncate_from_the_left():
    ctx = [BOS, 1, 2, 3]
    rows = build_rows([(ctx, [7]), (ctx, [8, 9, 10]), (ctx, [11]), ([BOS, 5], [6, 6])], max_len=16)
    assert len(rows) == 2
    shared = rows[0]
    assert shared.tokens == [BOS, 1, 2, 3, 8, 9] and shared.positions == [0, 1, 2, 3, 4, 5]
    assert shared.doc_ids == [0, 0, 0, 0, 2, 2]
    assert shared.targets == [(0, 3, 7), (1, 3, 8), (1, 4, 9), (1, 5, 10), (2, 3, 11)]
    # A context longer than the row keeps its last tokens, as OLMo's query[-max_len:].
    (cut,) = build_rows([(list(range(20)), [30, 31, 32])], max_len=8)
    assert cut.tokens == [14, 15, 16, 17, 18, 19, 30, 31]
    with pytest.raises(ValueError, match="continuation of 9 tokens exceeds max_len=8"):
        build_rows([([BOS], list(range(9)))], max_len=8)


# ------------------------------------------------------------------------- reference: transformers


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    from pretrain.model import Transformer

    torch.manual_seed(seed)
    model = Transformer(ARGS)
    model.init_weights()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    return export.export_hf(_state(), ARGS, tmp_path_factory.mktemp("hf") / "tiny", bos_token_id=BOS)


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    import transformers

    return transformers.LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()


def hf_score(hf, ctx: list[int], cont: list[int], max_len: int) -> tuple[float, bool]:
    """One request, one forward: the input is (ctx + cont)[:-1], cut from the left to max_len."""
    query = (ctx + cont)[:-1][-max_len:]
    with torch.no_grad():
        logp = torch.log_softmax(hf(torch.tensor([query])).logits[0].float(), dim=-1)[-len(cont) :]
    target = torch.tensor(cont)
    return logp.gather(1, target[:, None]).sum().item(), bool((logp.argmax(-1) == target).all())


def make_requests(hf) -> list[tuple[list[int], list[int]]]:
    """Shared contexts, single-token answers, greedy answers, a context cut to fit, a lone long one."""
    rng = random.Random(0)
    out = []
    for _ in range(8):
        ctx = [BOS] + [rng.randrange(BOS) for _ in range(rng.randrange(1, 24))]
        for _ in range(rng.randrange(1, 5)):
            out.append((ctx, [rng.randrange(BOS) for _ in range(rng.randrange(1, 9))]))
    ctx = [BOS, 3, 4, 5]
    with torch.no_grad():  # a greedy continuation, so `greedy` is true somewhere
        greedy = hf.generate(torch.tensor([ctx]), max_new_tokens=4, do_sample=False)[0, len(ctx) :]
    out += [(ctx, greedy.tolist()), (ctx, [7]), (ctx, [8])]
    out.append(([BOS] + list(range(60)), [10, 11, 12]))  # longer than max_seq_len=48
    out.append(([BOS] + list(range(30)), list(range(100, 125))))  # fits only alone, context cut
    return out


@pytest.fixture(scope="module")
def reference(hf_model):
    requests = make_requests(hf_model)
    expected = [hf_score(hf_model, c, x, ARGS.max_seq_len) for c, x in requests]
    assert any(g for _, g in expected) and not all(g for _, g in expected)
    return requests, expected


def check_scores(scores, expected) -> None:
    assert len(scores) == len(expected)
    for i, (s, (lp, greedy)) in enumerate(zip(scores, expected, strict=True)):
        assert s.logprob == pytest.approx(lp, abs=1e-4, rel=1e-5), i
        assert s.greedy == greedy, i


def test_single_process_scores_equal_transformers(hf_dir, reference):
    requests, expected = reference
    state, args = export.load_hf(hf_dir)
    model = build_model(state, args)
    for batch_tokens in (16, 4096):  # one row per batch, and everything in one batch
        check_scores(score(EvalLayout([model]), requests, ScoreOptions(batch_tokens=batch_tokens)), expected)


def _layout_worker(
    rank: int, world: int, hf_dir: str, requests: list, layout: str
) -> list[tuple[float, bool]]:
    from parallel.dims import ParallelDims
    from parallel.fsdp import apply_fsdp
    from parallel.pipeline import split_layers, stage_ids, stage_module
    from parallel.tensor_parallel import apply_tp
    from pretrain.eval.layout import layout_from_dims, shard_for_eval

    degrees = {"dp2": {}, "dp2-fsdp": {}, "tp2": {"tp": 2}, "tp2-loss-parallel": {"tp": 2}}
    degrees |= {"pp2": {"pp": 2}, "pp2-zbv": {"pp": 2}}
    dims = ParallelDims(world_size=world, **degrees[layout])
    dims.build_mesh("cpu")
    state, args = export.load_hf(hf_dir)
    model = build_model(state, args)
    cpu = torch.device("cpu")
    if layout == "dp2-fsdp":  # as the trainer's parts: forwards all-gather across replicas
        apply_fsdp(model, dims.fsdp_mesh(), param_dtype=torch.float32, reduce_dtype=torch.float32)
        lay = layout_from_dims([model], dims, cpu)
    elif layout == "tp2-loss-parallel":  # as the trainer's parts: vocab-sharded DTensor logits
        lay = layout_from_dims([apply_tp(model, dims.mesh["tp"], loss_parallel=True)], dims, cpu)
    elif layout == "pp2-zbv":  # V-shaped placement: rank 0 holds stages 0 and 3
        split = split_layers(args.n_layers, 4)
        ids = stage_ids("ZBVZeroBubble", dims.local_rank("pp"), 2, 2)
        parts = [stage_module(model, split[s], first=s == 0, last=s == 3) for s in ids]
        lay = layout_from_dims(parts, dims, cpu, schedule="ZBVZeroBubble", per_rank=2)
        assert lay.stage_ranks == [0, 1, 1, 0]
    else:
        lay = shard_for_eval(model, dims, cpu)
    # 7 batches: one replica runs out first and must still join the other's FSDP all-gathers.
    scores = score(lay, requests, ScoreOptions(batch_tokens=64))
    return [(s.logprob, s.greedy) for s in scores]


LAYOUTS = ("dp2", "tp2", "pp2", "dp2-fsdp", "tp2-loss-parallel", "pp2-zbv")
SLOW = ("tp2-loss-parallel", "pp2-zbv")


@pytest.mark.distributed
@pytest.mark.parametrize(
    "layout", [pytest.param(k, marks=(pytest.mark.slow,) * (k in SLOW)) for k in LAYOUTS]
)
def test_layout_scores_equal_transformers(layout, hf_dir, reference):
    requests, expected = reference
    results = run_distributed(_layout_worker, 2, str(hf_dir), requests, layout)
    for ranked in results:  # every rank returns every score
        check_scores([type("S", (), {"logprob": lp, "greedy": g}) for lp, g in ranked], expected)


# --------------------------------------------------------------------------------- task by hand


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255, BOS 256 (the same ids as the byte tiktoken file below)."""

    bos_id = BOS
    n_vocab = 257

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def test_task_result_by_hand(hf_dir, hf_model):
    """evaluate() on real task files equals metrics computed here from transformers' scores."""
    wide = {**SHAPE, "max_seq_len": 512}  # 0-shot prompts in bytes fit without cutting
    state, _ = export.load_hf(hf_dir)
    model = build_model(state, get_model_config("llama3_debug", **wide))
    tasks = ["arc_easy", "hellaswag"]
    got = evaluate(EvalLayout([model]), ByteTokenizer(), tasks, limit=3)
    for task in tasks:
        requests = read_requests(task, limit=3)
        lps = [
            hf_score(hf_model, [BOS, *r.context.encode()], list(r.continuation.encode()), 512)[0]
            for r in requests
        ]
        docs = sorted({r.doc_id for r in requests})
        acc = char = tok = bpb = 0.0
        for d in docs:
            idx = [i for i, r in enumerate(requests) if r.doc_id == d]
            gold = idx[requests[idx[0]].gold]
            conts = {i: requests[i].continuation for i in idx}
            acc += max(idx, key=lambda i: lps[i]) == gold
            char += max(idx, key=lambda i: lps[i] / len(conts[i])) == gold
            tok += max(idx, key=lambda i: lps[i] / len(conts[i].encode())) == gold
            bpb += -lps[gold] / math.log(2) / len(conts[gold].encode())
        r = got[task]
        assert r["n"] == 3
        assert (r["acc"], r["acc_per_char"], r["acc_per_token"]) == (acc / 3, char / 3, tok / 3)
        assert r["bpb"] == pytest.approx(bpb / 3, rel=1e-5)
    assert got["arc_easy"]["primary_metric"] == "acc" and got["hellaswag"]["primary_metric"] == "acc_per_char"


# ------------------------------------------------------------------------------------------- CLI


def _byte_ranks(path: Path) -> Path:
    path.write_text("".join(f"{base64.b64encode(bytes([i])).decode()} {i}\n" for i in range(256)))
    return path


def _hf_byte_tokenizer(path: Path) -> None:
    """tokenizer.json whose ids are the UTF-8 bytes (GPT-2's byte-to-character table), BOS 256, EOS 257."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = {b: chr(b) for b in printable}
    chars |= {b: chr(256 + n) for n, b in enumerate(b for b in range(256) if b not in chars)}
    tok = Tokenizer(models.BPE(vocab={chars[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<|begin_of_text|>", "<|end_of_text|>")])
    tok.save(str(path))


def numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "primary_metric"}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tok = _byte_ranks(root / "bytes.tiktoken")
    make_run(root / "run", {**SHAPE, "max_seq_len": 256}, tokenizer=tok)
    return root


def test_cli_run_dir_and_hf_dir_agree(cli_run, capsys):
    out = cli_run / "results.json"
    flags = ["--tasks", "arc_easy,hellaswag:rc_0shot", "--limit", "2", "--no-progress"]
    assert main(["--checkpoint", str(cli_run / "run"), *flags, "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "acc_per_char" in table and "hellaswag:rc_0shot" in table
    results = json.loads(out.read_text())["tasks"]
    assert set(results) == {"arc_easy", "hellaswag:rc_0shot"}
    assert set(results["arc_easy"]) >= {"acc", "acc_per_char", "acc_per_token", "bpb", "n"}
    assert results["arc_easy"]["n"] == 2
    hf = cli_run / "hf"
    assert export.main([f"run.dir={cli_run / 'run'}", "--out", str(hf)]) == 0
    (hf / "tokenizer.model").unlink()
    _hf_byte_tokenizer(hf / "tokenizer.json")
    assert main(["--hf", str(hf), *flags, "--out", str(cli_run / "hf.json")]) == 0
    from_hf = json.loads((cli_run / "hf.json").read_text())["tasks"]
    for task, metrics in results.items():
        assert numbers(from_hf[task]) == pytest.approx(numbers(metrics), rel=1e-5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "hellaswg"], "unknown task 'hellaswg'; did you mean hellaswag"),
        (["--tasks", "piqa", "--limit", "0"], "--limit 0 must be >= 1"),
        (["--tasks", "piqa", "--tp", "2"], "need that many ranks: run under torchrun"),
        (["--tasks", "piqa", "--step", "9"], "step-9"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(cli_run, capsys, argv, message):
    assert main(["--checkpoint", str(cli_run / "run"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_missing_paths_and_usage(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope"), "--tasks", "piqa"]) == 1
    assert "no such run" in capsys.readouterr().err
    assert main(["--hf", str(tmp_path), "--tasks", "piqa"]) == 1
    assert "not an HF model directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--tasks", "piqa"])
    assert e.value.code == 2
    assert main(["--list"]) == 0
    assert "hellaswag: mc_5shot, rc_0shot, rc_5shot" in capsys.readouterr().out


@pytest.mark.distributed
def test_torchrun_tp2_equals_one_process(cli_run):
    """The CLI under torchrun (2 ranks, --tp 2) writes the single-process results."""
    flags = ["--tasks", "arc_easy,boolq", "--limit", "3", "--no-progress"]
    single = cli_run / "single.json"
    assert main(["--checkpoint", str(cli_run / "run"), *flags, "--out", str(single)]) == 0
    out = cli_run / "tp2.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cmd += [
        "-m",
        "pretrain.eval",
        "--checkpoint",
        str(cli_run / "run"),
        *flags,
        "--tp",
        "2",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    expected = json.loads(single.read_text())["tasks"]
    for task, metrics in json.loads(out.read_text())["tasks"].items():
        assert numbers(metrics) == pytest.approx(numbers(expected[task]), rel=1e-5)
    assert proc.stdout.count("arc_easy") == 1  # rank 0 prints the table once


def test_bench_smoke_runs():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "bench/bench_eval.py", "--smoke"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| hellaswag | 8 | 1 |" in proc.stdout and "| all | 16 |" in proc.stdout
