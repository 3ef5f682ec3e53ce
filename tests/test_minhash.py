"""MinHash signatures and LSH banding: exact equality with datasketch, estimates, stability, S-curve."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import datasketch  # a dev extra, the reference: missing, the suite fails instead of skipping
import numpy as np
import pytest

from data_pipeline.dedup.minhash import (
    MinHashConfig,
    band_hashes,
    choose_bands_rows,
    empty_rows,
    format_s_curve,
    jaccard_estimate,
    lsh_probability,
    normalize,
    s_curve_table,
    shingle_hash32,
    shingles,
    signatures,
)

ROOT = Path(__file__).resolve().parents[1]
VOCAB = [
    "the",
    "of",
    "and",
    "river",
    "stone",
    "light",
    "green",
    "quiet",
    "north",
    "window",
    "table",
    "coffee",
    "market",
    "yellow",
    "seven",
]
EXTRA = ["Café", "naïve", "“quoted”", "2024", "1,000", "é", "ünïcödé", "東京", "—", "x_y", "\u00ad", "١٢"]


def random_doc(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(VOCAB) if rng.random() < 0.9 else rng.choice(EXTRA) for _ in range(n_words)]
    seps = [rng.choice([" ", " ", " ", ", ", ". ", "\n", "  ", "\t"]) for _ in range(n_words)]
    return "".join(w + s for w, s in zip(words, seps, strict=True))


def datasketch_values(text: str, cfg: MinHashConfig) -> np.ndarray:
    m = datasketch.MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=shingle_hash32)
    m.update_batch([s.encode("utf-8") for s in shingles(text, cfg)])
    return m.hashvalues


def test_normalize_matches_documented_rules() -> None:
    cfg = MinHashConfig()
    assert normalize("  Hello,\tWORLD!\n\nend.Start  ", cfg) == "hello world end start"
    assert normalize("Café naïve ÉCOLE", cfg) == "cafe naive ecole"
    assert normalize("In 2024 we sold 1,000 units, 3.5 each", cfg) == "in 0 we sold 0 0 units 0 0 each"
    assert normalize("“quoted” — co\u00adoperate x_y", cfg) == "quoted cooperate x y"
    assert normalize("年 ١٢ 東京", cfg) == "年 0 東京"
    raw = MinHashConfig(
        lowercase=False, normalize_numbers=False, strip_diacritics=False, remove_punctuation=False
    )
    assert normalize("Café, 2024!  x", raw) == "Café, 2024! x"


def test_shingles_short_and_empty_documents() -> None:
    cfg = MinHashConfig(ngram_size=3)
    assert shingles("a b c d", cfg) == ["a b c", "b c d"]
    assert shingles("a b c", cfg) == ["a b c"]
    assert shingles("A, b!", cfg) == ["a b"]  # fewer than n words: one shingle of all words
    assert shingles(" ... ", cfg) == []


@pytest.mark.parametrize("cfg", [MinHashConfig(), MinHashConfig(ngram_size=3, bands=9, rows=13, seed=7)])
def test_signatures_equal_datasketch(cfg: MinHashConfig) -> None:
    rng = random.Random(0)
    # Lengths around n (short documents), typical and long ones; empty and punctuation-only ones.
    texts = [random_doc(rng, rng.choice([1, 3, 4, 5, 6, 40, 300, 2000])) for _ in range(198)] + ["", " ?! "]
    sig = signatures(texts, cfg)
    assert sig.shape == (200, cfg.num_perm) and sig.dtype == np.uint32
    for text, row in zip(texts, sig, strict=True):
        np.testing.assert_array_equal(row, datasketch_values(text, cfg))
    np.testing.assert_array_equal(empty_rows(sig), [False] * 198 + [True, True])


def test_signatures_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    from data_pipeline.dedup import minhash

    rng = random.Random(1)
    texts = [random_doc(rng, rng.choice([0, 2, 50, 400])) for _ in range(60)]
    cfg = MinHashConfig()
    whole = signatures(texts, cfg)
    monkeypatch.setattr(minhash, "_PERM_CHUNK", 7)
    monkeypatch.setattr(minhash, "_TEXT_CHUNK", 500)
    np.testing.assert_array_equal(signatures(texts, cfg), whole)
    np.testing.assert_array_equal(signatures([], cfg), np.zeros((0, 112), dtype=np.uint32))


def planted_pair(rng: random.Random, target: float, n_words: int = 3000) -> tuple[str, str]:
    """A document of distinct words and a copy with a suffix replaced, at about `target` Jaccard."""

    def word(i: int) -> str:  # letters only: digits would all normalise to "0"
        return "".join(chr(97 + int(d)) for d in str(i))

    words = ["w" + word(i) for i in range(n_words)]
    rng.shuffle(words)
    # Replacing k trailing words changes k shingles of each side: J = (N-k)/(N+k), N shingles.
    n_sh = n_words - 4
    k = round(n_sh * (1 - target) / (1 + target))
    other = words[: n_words - k] + ["x" + word(i) for i in range(k)]
    return " ".join(words), " ".join(other)


@pytest.mark.parametrize("target", [0.95, 0.85, 0.7, 0.5])
def test_estimate_close_to_true_jaccard(target: float) -> None:
    cfg = MinHashConfig(bands=32, rows=8)  # 256 permutations: standard error <= 0.032
    a, b = planted_pair(random.Random(int(target * 100)), target)
    sa, sb = set(shingles(a, cfg)), set(shingles(b, cfg))
    true = len(sa & sb) / len(sa | sb)
    assert abs(true - target) < 0.01
    est = float(jaccard_estimate(*signatures([a, b], cfg)))
    # 4 standard errors of the binomial estimator: fails by chance with probability ~6e-5.
    assert abs(est - true) <= 4 * np.sqrt(true * (1 - true) / cfg.num_perm) + 1e-9


def test_band_hashes_equal_for_equal_bands() -> None:
    cfg = MinHashConfig()
    base = "the quick brown fox jumps over the lazy dog " * 20
    sig = signatures([base, base.upper(), base + " and then it ran far far away", "unrelated text here"], cfg)
    bh = band_hashes(sig, cfg.bands, cfg.rows)
    assert bh.shape == (4, 14) and bh.dtype == np.uint64
    np.testing.assert_array_equal(bh[0], bh[1])  # identical after normalisation
    # A band hash is equal exactly where the band's rows are equal.
    same_rows = (sig[0].reshape(14, 8) == sig[2].reshape(14, 8)).all(axis=1)
    np.testing.assert_array_equal(bh[0] == bh[2], same_rows)
    assert not (bh[0] == bh[3]).any()
    # Same rows in different bands hash apart.
    flat = np.tile(sig[:1, :8], (1, 14))
    assert len(set(band_hashes(flat, 14, 8)[0].tolist())) == 14
    with pytest.raises(ValueError, match="bands"):
        band_hashes(sig[:, :100], 14, 8)


def test_hashes_deterministic_across_processes() -> None:
    cfg = MinHashConfig()
    texts = ["one document about rivers and stones " * 5, "another one, with Café and 2024 " * 7]
    here = band_hashes(signatures(texts, cfg), cfg.bands, cfg.rows)
    code = (
        "from data_pipeline.dedup.minhash import *\n"
        f"t = {texts!r}\n"
        "print(band_hashes(signatures(t, MinHashConfig()), 14, 8).tolist())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )  # fmt: skip
    assert eval(out.stdout) == here.tolist()
    assert shingle_hash32(b"hello world") == shingle_hash32(b"hello world") < 1 << 32


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_choose_bands_rows_matches_datasketch(threshold: float) -> None:
    from datasketch.lsh import _optimal_param

    assert choose_bands_rows(threshold, 112) == _optimal_param(threshold, 112, 0.5, 0.5)
    assert choose_bands_rows(threshold, 64, 0.2, 0.8) == _optimal_param(threshold, 64, 0.2, 0.8)
    with pytest.raises(ValueError, match="threshold"):
        choose_bands_rows(1.0, 112)


def test_s_curve_values() -> None:
    # FineWeb's 14 x 8: 1-(1-0.8^8)^14 = 0.92355 (datatrove's comment rounds it to 0.924).
    assert lsh_probability(0.8, 14, 8) == pytest.approx(0.923548, abs=1e-6)
    assert lsh_probability(0.0, 14, 8) == 0.0 and lsh_probability(1.0, 14, 8) == 1.0
    table = s_curve_table(14, 8, step=0.1)
    assert len(table) == 11 and table[5] == (0.5, pytest.approx(1 - (1 - 0.5**8) ** 14))
    probs = [p for _, p in table]
    assert probs == sorted(probs)
    text = format_s_curve(14, 8)
    assert "threshold~(1/b)^(1/r)=0.719" in text and text.count("\n") == 21


@pytest.mark.parametrize(
    ("field", "value"),
    [("ngram_size", 0), ("bands", -1), ("rows", 2.5), ("seed", -1), ("seed", 1 << 32), ("lowercase", 1)],
)
def test_bad_config_names_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"MinHashConfig.{field}"):
        MinHashConfig(**{field: value})


def test_sketch_estimate_tracks_full_signature_agreement() -> None:
    from data_pipeline.dedup.minhash import sketch, sketch_jaccard

    rng = np.random.default_rng(0)
    for num_perm in (112, 7):
        a = rng.integers(0, 2**32, (4000, num_perm), dtype=np.uint64).astype(np.uint32)
        b = a.copy()
        truth = rng.uniform(0, 1, len(a))
        change = rng.uniform(0, 1, a.shape) >= truth[:, None]
        b[change] = rng.integers(0, 2**32, int(change.sum()), dtype=np.uint64).astype(np.uint32)
        full = (a == b).mean(axis=1)
        est = sketch_jaccard(sketch(a), sketch(b), num_perm)
        assert sketch(a).shape == (len(a), (num_perm + 1) // 2)
        assert abs(float((est - full).mean())) < 0.01  # unbiased
        if num_perm == 112:
            assert float(np.abs(est - full).max()) < 0.2 and float(np.std(est - full)) < 0.04
    same = sketch(a[:3])
    assert np.allclose(sketch_jaccard(same, same, 7), 1.0)


def test_band_collisions_follow_the_s_curve() -> None:
    """Candidate rate of pairs at measured Jaccard s matches 1 - (1 - s^r)^b (sum over pairs)."""
    from data_pipeline.dedup.minhash import lsh_probability, shingles

    cfg = MinHashConfig()
    rng = random.Random(3)
    base, copies, sims = [], [], []
    for _ in range(1200):
        words = [f"{rng.choice(VOCAB)}{rng.choice('abcdefghij')}{rng.randint(0, 9)}" for _ in range(150)]
        text = " ".join(words)
        words = list(words)
        for _ in range(rng.randint(1, 14)):
            words[rng.randrange(len(words))] = rng.choice(["alpha", "beta", "gamma", "delta"])
        copy = " ".join(words)
        a, b = set(shingles(text, cfg)), set(shingles(copy, cfg))
        base.append(text)
        copies.append(copy)
        sims.append(len(a & b) / len(a | b))
    hb = band_hashes(signatures(base, cfg), cfg.bands, cfg.rows)
    hc = band_hashes(signatures(copies, cfg), cfg.bands, cfg.rows)
    hit = (hb == hc).any(axis=1)
    p = lsh_probability(np.array(sims), cfg.bands, cfg.rows)
    assert 0.3 < p.mean() < 0.95  # the test covers the steep part of the curve
    sigma = float(np.sqrt((p * (1 - p)).sum()))
    assert abs(int(hit.sum()) - float(p.sum())) < 4 * sigma + 1
