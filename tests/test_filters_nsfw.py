"""NSFW steps: LDNOOBW bad-word counting (badwords) and the URL/domain blocklist (url_filter)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from data_pipeline.document import Doc
from data_pipeline.filters.base import build_step, run_steps
from data_pipeline.filters.nsfw import (
    WordListMatcher,
    ldnoobw_languages,
    ldnoobw_words,
    list_language,
    read_list_file,
)


def counts(text: str, **params) -> tuple[int, float]:
    (doc,) = run_steps([build_step("badwords", {"drop": False, **params})], [text])
    return doc.annotations["badwords_count"], doc.annotations["badwords_ratio"]


def outcome(text: str, **params) -> str | None:
    (doc,) = run_steps([build_step("badwords", params)], [text])
    return doc.drop_reason


@pytest.fixture(scope="module")
def en() -> WordListMatcher:
    return WordListMatcher(ldnoobw_words("en"))


# --- the vendored lists -------------------------------------------------------------------------


def test_vendored_lists_cover_ldnoobw_languages():
    assert {"en", "de", "fr", "es", "ru", "zh", "ja", "th", "fr-CA-u-sd-caqc"} <= ldnoobw_languages()
    assert len(ldnoobw_languages()) == 28
    assert "fuck" in ldnoobw_words("en") and "blow job" in ldnoobw_words("en")
    assert "性" not in ldnoobw_words("zh") and "sm" not in ldnoobw_words("ja")  # C4's allowlist
    readme = Path(__file__).resolve().parents[1] / "data_pipeline/resources/nsfw/README.md"
    assert "CC BY 4.0" in readme.read_text()


def test_list_language_maps_identifier_labels():
    assert list_language("en") == "en"
    assert list_language("__label__de") == "de"
    assert list_language("pt-BR") == "pt"
    assert list_language("eng_Latn") == "en"
    assert list_language("nob") == "no"
    assert list_language("tl") == "fil"
    assert list_language("vi") is None and list_language(None) is None and list_language("") is None


# --- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United beat Penistone at home.",
        "The assistant took a class on classic Dickensian novels.",
        "The cockpit of Hancock's plane; a bass passes as the cocktail shakes.",
        "Analysis of the therapist's analytic skills.",
        "Sussex and Essex, 455 people, 5000 sheep, 1337 cats.",
    ],
)
def test_words_inside_longer_words_or_numbers_do_not_count(en, text):
    assert en.count(text) == 0


def test_whole_words_are_counted_case_insensitively(en):
    assert en.find("What the FUCK, fuck! (fuck)") == {"fuck": 3}
    assert en.count("You ass.") == 1


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("sh1t", "shit"),
        ("$hit", "shit"),
        ("@ss", "ass"),
        ("a$$", "ass"),
        ("b00bs", "boobs"),
        ("p0rn", "porn"),
        ("s3x", "sex"),
        ("s1ut", "slut"),  # 1 read as l
        ("d1ck", "dick"),  # 1 read as i
        ("7wat", "twat"),
        ("4nal", "anal"),
        ("fuuuuuck", "fuck"),  # stretched letters fold to one
        ("asssss", "ass"),  # ... or to two where the word has two
        ("boooobs", "boobs"),
        ("PORNNNN", "porn"),
    ],
)
def test_leetspeak_and_stretched_letters_are_folded(en, text, entry):
    assert en.find(f"look at this {text} here") == {entry: 1}


def test_folding_leaves_doubled_letters_and_plain_numbers_alone(en):
    assert en.count("as bass boss 455 55 00 1") == 0  # "ass" is neither "as" nor "455"


def test_phrases_are_counted_even_across_punctuation_and_leetspeak(en):
    assert en.find("a blow job, a Blow-Job, a bl0w\njob") == {"blow job": 3}
    assert en.find("2 girls 1 cup") == {"2 girls 1 cup": 1}
    assert en.count("blow the job away") == 0


def test_phrase_and_word_inside_it_count_separately(en):
    assert en.find("big tits") == {"big tits": 1, "tits": 1}


def test_literal_entries_with_punctuation_need_word_boundaries(en):
    assert en.find("the G-spot and S&M") == {"g-spot": 1, "s&m": 1}
    assert en.count("big-spot-check and bs&mx") == 0


def test_no_space_scripts_match_inside_words_and_respect_c4_allowlist():
    zh = WordListMatcher(ldnoobw_words("zh"))
    assert zh.find("他们在讨论性交的问题") == {"性交": 1}
    assert zh.count("性别平等") == 0  # "性" alone is allowlisted by C4


def test_matcher_allow_and_user_entries():
    matcher = WordListMatcher(["spam", "ham sandwich", "eggs"], allow=["eggs"])
    assert matcher.find("Spam, SPAM and a ham   sandwich with eggs") == {"spam": 2, "ham sandwich": 1}


# --- the badwords step -----------------------------------------------------------------------------


def test_annotations_are_hand_computed():
    assert counts("you ass, you bastard, you fool") == (2, pytest.approx(2 / 6))
    assert counts("") == (0, 0.0)


def test_c4_default_drops_any_bad_word():
    assert outcome("A quiet scene in Scunthorpe.") is None
    assert outcome("A quiet scene in Scunthorpe, you ass.") == "badwords:count_too_high"


def test_max_count_bound_is_strict():
    two = "ass and ass again and more text"
    assert outcome(two, max_count=2) is None
    assert outcome(two + " ass", max_count=2) == "badwords:count_too_high"


def test_max_ratio_bound_is_strict():
    text = "ass " + "word " * 9  # 1 of 10 words
    assert outcome(text, max_count=None, max_ratio=0.1) is None
    assert outcome(text, max_count=None, max_ratio=0.099) == "badwords:ratio_too_high"


def test_ratio_min_count_spares_documents_with_few_hits():
    text = "ass ass word word"  # ratio 0.5 from 2 hits
    params = {"max_count": None, "max_ratio": 0.1, "ratio_min_count": 3}
    assert outcome(text, **params) is None
    assert outcome(text + " ass", **params) == "badwords:ratio_too_high"


def test_count_reason_comes_before_ratio_reason():
    assert outcome("ass ass", max_count=1, max_ratio=0.1) == "badwords:count_too_high"


def test_document_language_picks_the_list():
    step = build_step("badwords", {"drop": False})
    step.setup()
    de = Doc("Du bist ein Arschloch.")
    de.annotations["lang"] = "de"
    unknown = Doc("Du bist ein Arschloch, ass.")
    unknown.annotations["lang"] = "vi"  # no list: the default languages (en) apply
    step.process([de, unknown])
    assert de.annotations["badwords_count"] == 1
    assert unknown.annotations["badwords_count"] == 1


def test_user_word_files(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# my list\nflapdoodle\n\nbalder dash\n", encoding="utf-8")
    assert read_list_file(words) == ["flapdoodle", "balder dash"]
    assert counts("Flapdoodle and balder dash, ass.", word_files=[str(words)])[0] == 3
    assert counts("Flapdoodle and balder dash, ass.", word_files=[str(words)], use_builtin=False)[0] == 2
    assert counts("ass and bastard", allow_words=["ass"])[0] == 1


def test_step_pickles_for_workers():
    step = build_step("badwords", {})
    step.setup()
    clone = pickle.loads(pickle.dumps(step))
    (doc,) = run_steps([clone], ["you ass"])
    assert doc.drop_reason == "badwords:count_too_high"


@pytest.mark.parametrize(
    "params",
    [
        {"languages": ["xx"]},
        {"languages": "en"},
        {"max_count": -1},
        {"max_ratio": 1.5},
        {"ratio_min_count": 0},
        {"word_files": ["/nonexistent/list.txt"]},
        {"use_builtin": False},
        {"bogus": 1},
    ],
)
def test_badwords_rejects_bad_params(params):
    with pytest.raises(ValueError):
        build_step("badwords", params)


# --- url_filter ------------------------------------------------------------------------------------


@pytest.fixture
def lists(tmp_path) -> dict[str, str]:
    domains = tmp_path / "domains.txt"
    domains.write_text("# blocked\nexample.com\nhttps://www.shady.org/path\n*.wild.net\nbadtld\n")
    hard = tmp_path / "hard.txt"
    hard.write_text("smut\n")
    soft = tmp_path / "soft.txt"
    soft.write_text("hot\nnaked\nvideos\n")
    return {"domains": str(domains), "hard": str(hard), "soft": str(soft)}


def url_outcome(url: str | None, lists: dict[str, str], **params) -> Doc:
    step = build_step(
        "url_filter",
        {
            "domain_files": [lists["domains"]],
            "hard_word_files": [lists["hard"]],
            "soft_word_files": [lists["soft"]],
            "use_default_domains": False,
            "use_default_words": False,
            **params,
        },
    )
    (doc,) = run_steps([step], ["some text"], [url])
    return doc


@pytest.mark.parametrize(
    ("url", "blocked"),
    [
        ("https://example.com/page", "example.com"),
        ("http://www.example.com", "example.com"),
        ("HTTP://A.B.Example.COM:8080/x?y=1", "example.com"),
        ("example.com/no-scheme", "example.com"),
        ("https://user@example.com./", "example.com"),
        ("https://shady.org/", "shady.org"),  # scheme, "www." and path stripped from the list line
        ("https://deep.wild.net/", "wild.net"),  # "*." prefix stripped
        ("https://anything.badtld/", "badtld"),  # a bare label blocks a whole TLD
        ("https://notexample.com/", None),
        ("https://example.com.attacker.org/", None),
        ("https://example.co/", None),
    ],
)
def test_domain_and_every_subdomain_are_blocked(lists, url, blocked):
    doc = url_outcome(url, lists)
    assert doc.annotations["url_blocked_domain"] == blocked
    assert doc.drop_reason == (None if blocked is None else "url_filter:blocked_domain")


def test_hard_word_drops_alone(lists):
    doc = url_outcome("https://site.org/free-SMUT/page", lists)
    assert doc.drop_reason == "url_filter:hard_banned_word"
    assert doc.annotations["url_banned_words"] == "smut"
    assert url_outcome("https://site.org/smuttyjokes", lists).drop_reason is None  # words, not substrings


def test_soft_words_drop_from_threshold_distinct_words(lists):
    one = url_outcome("https://site.org/hot/hot-hot", lists)  # one distinct soft word
    assert one.drop_reason is None and one.annotations["url_soft_word_count"] == 1
    two = url_outcome("https://site.org/hot-naked", lists)
    assert two.drop_reason == "url_filter:soft_banned_words"
    assert two.annotations["url_banned_words"] == "hot,naked"
    assert url_outcome("https://site.org/hot-naked-videos", lists, soft_word_threshold=3).drop_reason
    assert url_outcome("https://site.org/hot-naked", lists, soft_word_threshold=3).drop_reason is None


def test_domain_reason_comes_first(lists):
    doc = url_outcome("https://example.com/smut-hot-naked", lists)
    assert doc.drop_reason == "url_filter:blocked_domain"
    assert doc.annotations["url_banned_words"] == "hot,naked,smut"


def test_documents_without_url_pass_with_null_annotations(lists):
    doc = url_outcome(None, lists)
    assert doc.drop_reason is None
    assert set(doc.annotations) == {"url_blocked_domain", "url_banned_words", "url_soft_word_count"}
    assert set(doc.annotations.values()) == {None}


def test_default_lists():
    step = build_step("url_filter", {})
    urls = [
        "https://www.pornhub.com/view_video",
        "https://cams.example.xxx/",
        "https://blog.example.org/free-porn",
        "https://shop.example.org/sexy-lingerie",
        "https://en.wikipedia.org/wiki/Scunthorpe",
        "https://www.gutenberg.org/files/1524/1524-h.htm",
        "https://health.example.org/sex-education",
    ]
    docs = run_steps([step], ["x"] * len(urls), urls)
    assert [d.drop_reason for d in docs] == [
        "url_filter:blocked_domain",
        "url_filter:blocked_domain",
        "url_filter:hard_banned_word",
        "url_filter:soft_banned_words",
        None,
        None,
        None,
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"soft_word_threshold": 0},
        {"domain_files": "domains.txt"},
        {"domain_files": ["/nonexistent/domains.txt"]},
        {"hard_word_files": ["/nonexistent/hard.txt"]},
    ],
)
def test_url_filter_rejects_bad_params(params):
    with pytest.raises(ValueError):
        build_step("url_filter", params)
