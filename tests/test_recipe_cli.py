"""Recipes (`andes-data run`), `stats`, `steps` and `--set`: round trips and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf
from web_corpus import prose_documents

from data_pipeline.cli import main
from data_pipeline.packed_format import read_manifest
from data_pipeline.recipe import load_recipe, parse_stages, run_recipe

REPO = Path(__file__).resolve().parents[1]


def _docs(path: Path) -> Path:
    path.mkdir(parents=True)
    texts = (prose_documents() * 2)[:40]
    texts += ["tiny", ""]
    pq.write_table(
        pa.table({"text": texts, "url": [f"https://example.org/{i}" for i in range(42)]}),
        path / "docs.parquet",
    )
    return path


def _recipe(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(body)))
    return path


def test_recipe_round_trip_filter_tokenizer_pack(tmp_path, capsys):
    docs = _docs(tmp_path / "docs")
    recipe = _recipe(
        tmp_path,
        {
            "input": str(docs),
            "output": "???",
            "workers": 1,
            "stages": [
                {"filter": {"steps": [{"length": {"min_chars": 10}}]}},
                {"train_tokenizer": {"vocab_size": 1024}},
                {"pack": {"seq_len": 32, "val_fraction": 0.1}},
            ],
        },
    )
    out = run_recipe(recipe, [f"output={tmp_path / 'out'}"], progress=False)
    assert out == tmp_path / "out" / "2_pack"
    stats = json.loads((tmp_path / "out" / "0_filter" / "stats.json").read_text())
    assert stats["docs_out"] == 40 and stats["dropped"] == {"length:too_short": 2}
    manifest = read_manifest(out)
    assert manifest["seq_len"] == 32 and manifest["tokenizer"]["n_vocab"] == 1024
    assert manifest["num_documents"] + manifest["val"]["num_documents"] == 40
    # A second run skips every finished stage.
    capsys.readouterr()
    run_recipe(recipe, [f"output={tmp_path / 'out'}"], progress=False)
    assert capsys.readouterr().out.count("done already") == 2


def test_recipe_overrides_and_dry_run(tmp_path, capsys):
    recipe = _recipe(tmp_path, {"input": "???", "output": "o", "stages": [{"filter": {"steps": ["length"]}}]})
    assert main(["run", str(recipe), "input=x", "stages.0.filter.steps.0=normalize", "--dry-run"]) == 0
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.input == "x" and printed.stages[0].filter.steps == ["normalize"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"output": "o", "stages": [{"filter": {"steps": ["length"]}}]}, "'input' is not set"),
        ({"input": "i", "output": "o", "stages": []}, "'stages' must be a non-empty list"),
        ({"input": "i", "output": "o", "stagez": []}, r"unknown key\(s\) \['stagez'\]"),
        ({"input": "i", "output": "o", "stages": [{"dedupe": {}}]}, "unknown stage 'dedupe'"),
        ({"input": "i", "output": "o", "stages": [{"pack": {"seq": 3}}]}, r"stages.0.pack: unknown option"),
        ({"input": "i", "output": "o", "stages": [{"pack": {}}]}, "'seq_len' is required"),
        ({"input": "i", "output": "o", "stages": [{"filter": {"steps": [[1]]}}]}, "step 0: expected"),
    ],
)
def test_bad_recipes_are_named(tmp_path, body, message):
    recipe = _recipe(tmp_path, body)
    with pytest.raises(ValueError, match=message):
        parse_stages(load_recipe(recipe), str(recipe))


def test_unreadable_recipe_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [filter: {steps: [length]\n")
    assert main(["run", str(bad)]) == 1
    assert "bad.yaml" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.yaml")]) == 1
    assert "no such recipe file" in capsys.readouterr().err


def test_shipped_recipes_parse():
    paths = sorted((REPO / "configs" / "pipeline").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"demo", "fineweb", "llama3"}
    for path in paths:
        cfg = load_recipe(path, ["input=i", "output=o"])
        kinds = [s.kind for s in parse_stages(cfg, str(path))]
        assert "filter" in kinds, path
        if path.stem in ("fineweb", "llama3"):  # FineWeb dedups after filtering, Llama 3 first
            assert kinds == (
                ["filter", "dedup", "filter"] if path.stem == "fineweb" else ["dedup", "dedup", "filter"]
            )


def test_filter_set_overrides_and_steps_listing(tmp_path, capsys):
    docs = _docs(tmp_path / "docs")
    out = tmp_path / "out"
    argv = ["filter", "--input", str(docs), "--output", str(out), "--steps", "length", "--quiet"]
    assert main([*argv, "--set", "length.min_chars=4000"]) == 0
    assert 0 < json.loads((out / "stats.json").read_text())["docs_out"] < 40
    assert main([*argv, "--set", "lenght.min_chars=3"]) == 1
    assert "not in this run" in capsys.readouterr().err
    assert main([*argv, "--set", "length=3"]) == 1
    assert "expected STEP.PARAM=VALUE" in capsys.readouterr().err
    assert main(["steps", "length"]) == 0
    listing = capsys.readouterr().out
    assert "min_chars = 1" in listing and "columns: length_chars" in listing


def test_stats_command_summarises_annotations(tmp_path, capsys):
    docs = _docs(tmp_path / "docs")
    out = tmp_path / "out"
    assert main(["filter", "--input", str(docs), "--output", str(out), "--steps", "length", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["stats", "--input", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 41 and summary["files"] == 1
    assert summary["numeric"]["length_chars"]["min"] == 4
    assert summary["run"]["docs_in"] == 42
    assert main(["stats", "--input", str(out)]) == 0
    table = capsys.readouterr().out
    assert "length_chars" in table and "length:too_short" in table


def test_filter_takes_steps_from_a_shipped_recipe(tmp_path):
    docs = _docs(tmp_path / "docs")
    out = tmp_path / "out"
    recipe = str(REPO / "configs" / "pipeline" / "demo.yaml")
    argv = ["filter", "--input", str(docs), "--output", str(out), "--recipe", recipe, "--quiet"]
    assert main([*argv, "--set", "langid.min_score=0.7"]) == 0
    stage = json.loads((out / "stage.json").read_text())
    assert [next(iter(s)) for s in stage["steps"]] == [
        "doc_size",  # opens every filter stage (data_pipeline/stages.py)
        "normalize",
        "length",
        "langid",
        "gopher_repetition",
        "gopher_quality",
    ]
    assert stage["steps"][3]["langid"] == {"languages": ["en"], "min_score": 0.7}
    assert set(pq.read_schema(next(out.glob("*.parquet"))).names) >= {"lang", "gopher_word_count"}


def test_stats_reads_distributions_from_the_first_rows_of_a_big_file(tmp_path, capsys):
    pq.write_table(
        pa.table({"text": ["x" * i for i in range(1, 101)], "score": list(range(100))}),
        tmp_path / "big.parquet",
        row_group_size=30,
    )
    assert main(["stats", "--input", str(tmp_path / "big.parquet"), "--json", "--max-rows", "10"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 100
    assert summary["numeric"]["score"]["count"] == 10 and summary["numeric"]["score"]["max"] == 9
    assert summary["text_chars"]["max"] == 10


def test_recipe_with_dedup_stages(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    texts = prose_documents()[:20] * 2 + ["tiny", ""]  # 20 prose documents, each twice
    urls = [f"https://example.org/{i}" for i in range(42)]
    pq.write_table(pa.table({"text": texts, "url": urls}), docs / "docs.parquet")
    recipe = _recipe(
        tmp_path,
        {
            "input": str(docs),
            "output": str(tmp_path / "out"),
            "stages": [
                {"filter": {"steps": [{"length": {"min_chars": 10}}]}},
                {"dedup": {"method": "url", "timestamp_column": ""}},  # every URL differs
                {"dedup": {"method": "minhash", "write_dropped": True}},
            ],
        },
    )
    out = run_recipe(recipe, progress=False)
    assert out == tmp_path / "out" / "2_dedup"
    assert json.loads((tmp_path / "out" / "1_dedup" / "dedup_report.json").read_text())["duplicates"] == 0
    report = json.loads((out / "dedup_report.json").read_text())
    assert report["duplicates"] == 20 and report["cluster_sizes"] == {"2": 20}
    (part,) = out.glob("*.parquet")  # each stage names its parts after its input's
    kept = pq.read_table(part)
    assert kept.num_rows == 20 and len(set(kept["text"].to_pylist())) == 20
    assert pq.read_table(out / "dropped" / part.name)["drop_reason"].to_pylist() == ["minhash:duplicate"] * 20
    with pytest.raises(ValueError, match=r"stages.1.dedup: unknown option\(s\) \['bandz'\]"):
        parse_stages(
            OmegaConf.create(
                {
                    "input": "i",
                    "output": "o",
                    "stages": [{"filter": {"steps": ["length"]}}, {"dedup": {"bandz": 3}}],
                }
            ),
            "r.yaml",
        )
