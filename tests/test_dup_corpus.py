"""The planted-duplicate corpus (`dup_corpus`): determinism, planted similarities, exact ground truth."""

from __future__ import annotations

import collections
import itertools

import dup_corpus as dc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.dedup.minhash import MinHashConfig, normalize, shingles

CFG = MinHashConfig()


@pytest.fixture(scope="module")
def corpus() -> list[dc.PlantedDoc]:
    return dc.make_corpus(300, seed=7)


def base_of(docs: list[dc.PlantedDoc]) -> dict[int, dc.PlantedDoc]:
    return {d.group: d for d in docs if d.kind == "base"}


def brute_force(texts: list[str], threshold: float, cfg: MinHashConfig = CFG) -> dict[tuple[int, int], float]:
    """All pairs, O(n^2), straight from the reference `shingles`."""
    sets = [set(shingles(t, cfg)) for t in texts]
    out = {}
    for i, j in itertools.combinations(range(len(texts)), 2):
        inter = len(sets[i] & sets[j])
        if inter and inter / (len(sets[i]) + len(sets[j]) - inter) >= threshold:
            out[i, j] = inter / (len(sets[i]) + len(sets[j]) - inter)
    return out


@pytest.fixture(scope="module")
def corpus_pairs(corpus) -> dict[tuple[int, int], float]:
    """Brute-force pairs of the corpus sharing any shingle."""
    return brute_force([d.text for d in corpus], 1e-9)


# ---------------------------------------------------------------------------------------------
# make_corpus
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_corpus_other_seed_other_corpus(corpus):
    assert dc.make_corpus(300, seed=7) == corpus
    other = dc.make_corpus(300, seed=8)
    assert [d.kind for d in other] != [d.kind for d in corpus]
    assert not {d.text for d in other} & {d.text for d in corpus}


def test_vocabulary_is_large_zipf_and_its_own_normal_form():
    vocab = dc.vocabulary()
    assert len(vocab.words) == len(set(vocab.words)) == dc.VOCAB_SIZE >= 20_000
    assert vocab.words[:3] == ["the", "a", "is"]  # the language reference's most frequent words
    assert all(w.isascii() and w.isalpha() and w.islower() for w in vocab.words)
    assert normalize(" ".join(vocab.words), CFG) == " ".join(vocab.words)
    # The guide-table sampler is exactly inverse-CDF sampling (searchsorted).
    u = np.random.default_rng(3).random(200_000)
    expected = np.searchsorted(vocab.cdf, u, side="right")
    assert np.array_equal(vocab.draw(np.random.default_rng(3), 200_000), expected)
    # Zipf: rank 1 is drawn ~1/H(V) of the time, rank 10 ten times less often.
    counts = np.bincount(expected, minlength=10)
    harmonic = np.sum(1 / np.arange(1, dc.VOCAB_SIZE + 1))
    assert counts[0] / len(u) == pytest.approx(1 / harmonic, rel=0.05)
    assert counts[0] / counts[9] == pytest.approx(10, rel=0.2)


def test_composition_follows_the_fractions(corpus):
    kinds = collections.Counter(d.kind for d in corpus)
    # 300 docs: 30 bases; 4% + 4% exact (byte + variant) and 3% per near target.
    assert kinds == {"unrelated": 210, "base": 30, "exact": 24, "near": 36}
    assert collections.Counter(d.target for d in corpus if d.kind == "near") == {
        0.95: 9,
        0.85: 9,
        0.7: 9,
        0.5: 9,
    }
    assert [d.id for d in corpus] == [f"doc-{i:07d}" for i in range(300)]
    groups = collections.Counter(d.group for d in corpus if d.group >= 0)
    assert sorted(groups) == list(range(30)) and min(groups.values()) >= 2  # every base has a copy
    for i, d in enumerate(corpus):  # copies follow their base
        if d.kind in ("exact", "near"):
            assert corpus[i - 1].group == d.group and corpus[i - 1].kind != "unrelated"
    for d in corpus:
        assert (d.target is None) == (d.kind in ("unrelated", "base")) == (d.jaccard is None)
        assert (d.group == -1) == (d.kind == "unrelated")
        assert 150 <= len(normalize(d.text, CFG).split()) <= 400 or d.kind == "near"


def test_documents_look_like_prose(corpus):
    text = corpus[0].text
    assert text[0].isupper() and text[-1] in ".?"
    assert "\n\n" in "".join(d.text for d in corpus[:5])  # paragraphs
    sentences = [s for s in text.replace("?", ".").split(".") if s.strip()]
    assert all(s.strip()[0].isupper() for s in sentences)


def test_near_copies_hit_their_targets_and_the_measure_is_the_shingle_jaccard(corpus):
    bases = base_of(corpus)
    near = [d for d in corpus if d.kind == "near"]
    for d in near:
        assert abs(d.jaccard - d.target) <= dc.NEAR_TOLERANCE, (d.id, d.jaccard, d.target)
        assert d.jaccard == dc.jaccard(bases[d.group].text, d.text)  # exactly, from `shingles`
        assert d.text != bases[d.group].text


def test_near_copies_of_short_documents_and_other_shingle_settings():
    # Shortest documents: one scattered edit moves the Jaccard by > 2 * tolerance, so the final
    # step must come from cutting words off the end.
    cfg = MinHashConfig(ngram_size=3, lowercase=False, remove_punctuation=False)
    for docs, c in (
        (dc.make_corpus(200, seed=1, words_per_doc=(50, 50)), CFG),
        (dc.make_corpus(200, seed=2, cfg=cfg), cfg),
    ):
        bases = base_of(docs)
        near = [d for d in docs if d.kind == "near"]
        assert len(near) == 24
        for d in near:
            assert abs(d.jaccard - d.target) <= dc.NEAR_TOLERANCE
            assert d.jaccard == dc.jaccard(bases[d.group].text, d.text, c)
        for d in docs:
            if d.kind == "exact":
                assert shingles(d.text, c) == shingles(bases[d.group].text, c)


def test_exact_copies_are_byte_copies_or_normalise_to_the_same_shingles(corpus):
    bases = base_of(corpus)
    exact = [d for d in corpus if d.kind == "exact"]
    byte_copies = [d for d in exact if d.text == bases[d.group].text]
    variants = [d for d in exact if d.text != bases[d.group].text]
    assert len(byte_copies) == len(variants) == 12
    for d in exact:
        assert d.target == d.jaccard == 1.0
        assert shingles(d.text, CFG) == shingles(bases[d.group].text, CFG)
    # The variants exercise every normalisation: case, punctuation, accents, other whitespace.
    changed = "".join(d.text for d in variants)
    assert any(w.isupper() and len(w) > 2 for w in changed.split())
    assert all(c in changed for c in "«…é\t\u00a0")
    assert dc.jaccard(variants[0].text, bases[variants[0].group].text) == 1.0


def test_urls_and_timestamps(corpus):
    bases = base_of(corpus)
    copies = [d for d in corpus if d.kind in ("exact", "near")]
    shared = [d for d in copies if d.group % dc.SHARED_URL_EVERY == 0]
    assert shared and all(d.url == bases[d.group].url for d in shared)
    own = [d for d in corpus if d not in shared]
    assert len({d.url for d in own}) == len(own)  # everyone else has a URL of its own
    assert all(d.url.startswith("https://www.") for d in corpus)
    for group in bases:
        stamps = [d.timestamp for d in corpus if d.group == group]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # base oldest, copies later
    for d in corpus:
        if d.kind in ("unrelated", "base"):
            assert dc._TS_START <= d.timestamp < dc._TS_BASE_END
        else:
            assert 0 < d.timestamp - bases[d.group].timestamp < 2 * 365 * 86_400


@pytest.mark.parametrize(
    "kwargs",
    [
        {"words_per_doc": (10, 20)},
        {"words_per_doc": (300, 200)},
        {"copy_fractions": {"bogus": 0.1}},
        {"copy_fractions": {1.5: 0.1}},
        {"copy_fractions": {0.01: 0.1}},
        {"copy_fractions": {True: 0.1}},
        {"copy_fractions": {0.5: -0.1}},
        {"copy_fractions": {"exact": 0.95}},
        {"base_fraction": 1.5},
        {"n_docs": -1},
    ],
)
def test_make_corpus_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        dc.make_corpus(**{"n_docs": 100, **kwargs})


def test_corner_sizes():
    assert dc.make_corpus(0) == []
    assert [d.kind for d in dc.make_corpus(5)] == ["unrelated"] * 5  # rounding leaves no copies
    alone = dc.make_corpus(50, copy_fractions={})
    assert {d.kind for d in alone} == {"unrelated"}


# ---------------------------------------------------------------------------------------------
# write_shards
# ---------------------------------------------------------------------------------------------


def test_write_shards(corpus, tmp_path):
    paths = dc.write_shards(corpus, tmp_path / "plain", 4)
    assert [p.name for p in paths] == [f"shard-{i:05d}.parquet" for i in range(4)]
    tables = [pq.read_table(p) for p in paths]
    assert [t.num_rows for t in tables] == [75] * 4
    table = pa.concat_tables(tables)
    assert table.schema.types == [pa.string(), pa.string(), pa.string(), pa.int64()]
    assert table.column_names == ["id", "text", "url", "timestamp"]
    assert table.to_pylist() == [
        {"id": d.id, "text": d.text, "url": d.url, "timestamp": d.timestamp} for d in corpus
    ]

    shuffled = [pq.read_table(p) for p in dc.write_shards(corpus, tmp_path / "shuffled", 4, shuffle_seed=1)]
    ids = [i for t in shuffled for i in t["id"].to_pylist()]
    assert ids != [d.id for d in corpus] and sorted(ids) == [d.id for d in corpus]
    again = [pq.read_table(p) for p in dc.write_shards(corpus, tmp_path / "again", 4, shuffle_seed=1)]
    assert [i for t in again for i in t["id"].to_pylist()] == ids
    # Shuffled, most groups are spread over several shards.
    shard_of = {i: k for k, t in enumerate(shuffled) for i in t["id"].to_pylist()}
    spread = {g: {shard_of[d.id] for d in corpus if d.group == g} for g in base_of(corpus)}
    assert sum(len(s) > 1 for s in spread.values()) > len(spread) / 2
    with pytest.raises(ValueError):
        dc.write_shards(corpus, tmp_path / "none", 0)


# ---------------------------------------------------------------------------------------------
# similar_pairs, jaccard, pair_scores
# ---------------------------------------------------------------------------------------------


def test_jaccard_by_hand():
    assert dc.jaccard("a b c d e f", "a b c d e g") == pytest.approx(
        1 / 3
    )  # {abcde} of {abcde, bcdef, bcdeg}
    assert dc.jaccard("The cat, sat!", "the CAT sat") == 1.0
    assert dc.jaccard("", "...") == 0.0
    assert dc.jaccard("a b", "a b c") == 0.0  # short documents are one shingle each


@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_similar_pairs_equals_brute_force_on_the_corpus(corpus, corpus_pairs, threshold):
    expected = {pair: sim for pair, sim in corpus_pairs.items() if sim >= threshold}
    assert dc.similar_pairs([d.text for d in corpus], threshold) == expected
    # Every planted copy at or above the threshold pairs with its base.
    index = {d.id: i for i, d in enumerate(corpus)}
    bases = base_of(corpus)
    planted = {(index[bases[d.group].id], index[d.id]) for d in corpus if (d.jaccard or 0) >= threshold}
    assert planted <= set(expected) and len(planted) > 20


def edge_texts() -> list[str]:
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    return [
        "",
        "... !!! ---",
        "short text",
        "Short, TEXT!",
        "one two three four five",  # exactly n words: one shingle, equal to a 5-gram below
        " ".join(words),
        " ".join(words[:9] + ["eleven"]),
        " ".join(words + words),  # repeated shingles count once
        " ".join(words[::-1]),
        "café crème brûlée au lait chaud",
        "CAFE creme brulee au lait chaud",
        "x",
        "x",
    ]


@pytest.mark.parametrize("threshold", [1e-9, 0.3, 0.5, 1.0])
def test_similar_pairs_edge_cases(threshold):
    texts = edge_texts()
    got = dc.similar_pairs(texts, threshold)
    assert got == brute_force(texts, threshold)
    assert (0, 1) not in got  # documents without shingles never pair
    if threshold == 1.0:
        assert set(got) == {(2, 3), (9, 10), (11, 12)}


@pytest.mark.parametrize(
    "weak_hash",
    [
        lambda data, s, e: (e - s).astype(np.uint64) << np.uint64(40),  # one run per length
        lambda data, s, e: np.zeros(len(s), dtype=np.uint64),  # one run for everything
    ],
)
def test_similar_pairs_stays_exact_when_hashes_collide(corpus, monkeypatch, weak_hash):
    # Runs of equal keys mix different shingles: the byte comparison must find them, and the
    # runs must be re-sorted by bytes.
    monkeypatch.setattr(dc, "_range_keys", weak_hash)
    texts = [d.text for d in corpus[:60]] + edge_texts()
    for threshold in (1e-9, 0.5):
        assert dc.similar_pairs(texts, threshold) == brute_force(texts, threshold)


def test_equal_rows_compares_exactly_the_bytes_of_each_shingle(monkeypatch):
    monkeypatch.setattr(dc, "_range_keys", lambda data, s, e: np.zeros(len(s), dtype=np.uint64))
    sh = dc._shingle_rows(["a b c d e x", "a b c d e y", "abcdefgh b c d e", "abcdefgh b c d f"], CFG)
    assert [sh.bytes_of(r) for r in (0, 1, 2, 3, 4, 5)] == [
        b"a b c d e",  # 9 bytes: a whole 8-byte word and 1 byte, followed by " x"
        b"b c d e x",
        b"a b c d e",  # the same bytes elsewhere, followed by " y"
        b"b c d e y",
        b"abcdefgh b c d e",  # 16 bytes: two whole words
        b"abcdefgh b c d f",
    ]
    a, b = np.array([0, 1, 4, 0, 2]), np.array([2, 3, 5, 4, 0])
    assert dc._equal_rows(sh, a, b).tolist() == [True, False, False, False, True]


def test_similar_pairs_counts_across_chunks(corpus, monkeypatch):
    monkeypatch.setattr(dc, "_CHUNK", 64)
    monkeypatch.setattr(dc, "_TEXT_CHUNK", 5000)
    texts = [d.text for d in corpus[:80]] * 2  # every document twice: big runs, many chunks
    assert dc.similar_pairs(texts, 0.5) == brute_force(texts, 0.5)


def test_unrelated_documents_share_no_five_grams():
    docs = dc.make_corpus(400, seed=3, copy_fractions={})
    texts = [d.text for d in docs]
    assert dc.similar_pairs(texts, 0.3) == {}
    anything = dc.similar_pairs(texts, 1e-9)
    assert len(anything) < 0.01 * len(texts) ** 2 / 2 and max(anything.values(), default=0) < 0.01


def test_similar_pairs_rejects_bad_thresholds():
    for threshold in (0, -0.1, 1.5):
        with pytest.raises(ValueError):
            dc.similar_pairs(["a b c"], threshold)


def test_pair_scores_by_hand():
    clusters = {0: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3}  # predicted pairs: 01 02 12 34
    scores = dc.pair_scores(clusters, {(0, 1), (4, 3), (1, 5), (6, 7)})
    assert scores == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "n_true": 4, "n_pred": 4, "tp": 2}
    perfect = dc.pair_scores({0: 9, 1: 9, 5: 4, 6: 4}, {(0, 1), (5, 6)})
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (1.0, 1.0, 1.0)
    nothing = dc.pair_scores({}, set())
    assert (nothing["precision"], nothing["recall"], nothing["n_pred"]) == (1.0, 1.0, 0)
    missed = dc.pair_scores({}, {(0, 1)})
    assert (missed["precision"], missed["recall"], missed["f1"]) == (1.0, 0.0, 0.0)
    assert dc.pair_scores({0: 1, 1: 1, 2: 1}, {(0, 1)})["precision"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        dc.pair_scores({}, {(2, 2)})
