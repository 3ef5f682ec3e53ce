"""normalize (ftfy + whitespace) and pii (e-mail/IP masking) steps."""

from __future__ import annotations

import random

import ftfy
import pytest
from ftfy.badness import is_bad

from data_pipeline.document import Doc
from data_pipeline.filters import text as text_module
from data_pipeline.filters.base import build_step, run_steps
from data_pipeline.filters.text import Normalize, PIIMask, looks_like_mojibake


def normalize(text: str, **params) -> Doc:
    return run_steps([build_step("normalize", params)], [text])[0]


# --- normalize: Unicode ----------------------------------------------------------------------------


def test_fixes_mojibake_and_annotates_change():
    doc = normalize("âœ” No problems")
    assert doc.text == "✔ No problems"
    assert doc.annotations == {"normalize_changed": True} and doc.text_changed
    assert normalize("The cafÃ© is open").text == "The café is open"


def test_fix_encoding_false_keeps_mojibake():
    assert normalize("âœ” No problems", fix_encoding=False).text == "âœ” No problems"


def test_nfc_composes_and_none_keeps_decomposed():
    decomposed = "cafe\u0301"
    assert normalize(decomposed).text == "caf\u00e9"
    assert normalize(decomposed, unicode_form=None).text == decomposed
    assert normalize("\ufb01ne", unicode_form="NFKC").text == "fine"  # NFKC also folds the ligature
    assert normalize("\ufb01ne").text == "\ufb01ne"  # ligatures are content under NFC


def test_control_characters_and_terminal_escapes_removed_unless_disabled():
    text = "a\x00b \x1b[31mred\x1b[0m \ufeffend"
    assert normalize(text).text == "ab red end"
    assert normalize(text, remove_control_chars=False).text == text


def test_clean_text_is_unchanged_and_never_reaches_ftfy(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("ftfy called on clean text")

    monkeypatch.setattr(text_module, "fix_text", fail)
    for clean in ["Plain ASCII prose.\nSecond line.", "Café “quoted” — naïve, 東京, Москва"]:
        doc = normalize(clean)
        assert doc.text == clean and doc.annotations["normalize_changed"] is False
        assert not doc.text_changed


def test_fast_mojibake_search_is_active():
    # The windowed search relies on a property of ftfy's regex checked at import; a newer ftfy that
    # breaks it silently falls back to the full search, which this test would notice.
    assert text_module._MOJIBAKE_REACH is not None


def test_shortcut_output_equals_ftfy_on_random_mixtures():
    """Gated, per-line ftfy must equal ftfy.fix_text on the whole text."""
    rng = random.Random(0)
    pieces = ["a", "b", " ", " ", "\n", "Ã", "Â", "©", "€", "œ", "â", "™", "é", "\xa0", "Г", "в", "Ђ",
              "\x85", "\x00", "\ufeff", "e\u0301", "Ø", "×", "²", ".", "“", "—", "ツ", "Ã©"]  # fmt: skip
    step = Normalize(whitespace=False)
    skipped = 0
    for _ in range(600):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40)))
        assert step.normalize(text) == ftfy.fix_text(text, step._config), repr(text)
        skipped += not step.ftfy_may_change(text)
    assert skipped > 50  # the gate does skip real cases


@pytest.mark.parametrize(
    "text",
    [
        "ok line\nÂ here",  # "^" alternative: a line starting with Â + space
        "x" * 50 + "\n" + "y" * 30 + "Ã©" + "z" * 40,  # one bad line far from the start
        "clean\n" * 5 + "âœ” mid\n" + "clean\n" * 5,
        "fine\nmanœ\nmore",  # "œ" then the newline that ends its line
    ],
)
def test_mojibake_search_covers_every_line_ftfy_would_fix(text):
    segments = text_module._SEGMENT_RE.findall(text)  # ftfy's unit: each line with its newline
    assert any(is_bad(s) for s in segments)  # each case holds mojibake
    assert looks_like_mojibake(text)
    assert Normalize(whitespace=False).normalize(text) == ftfy.fix_text(text, Normalize()._config)


# --- normalize: whitespace -------------------------------------------------------------------------


def test_whitespace_collapse_trailing_and_crlf():
    text = "  Title  with   gaps\t\there \r\nnext line\t \r\n    indented   code  \rlast"
    assert normalize(text).text == "Title with gaps here\nnext line\n    indented code\nlast"


@pytest.mark.parametrize(
    ("max_newlines", "text", "expected"),
    [
        (2, "a\n\nb", "a\n\nb"),  # exactly at the limit: kept
        (2, "a\n\n\nb", "a\n\nb"),  # one over: collapsed
        (2, "a\n  \n\t\n \nb", "a\n\nb"),  # whitespace-only lines count as empty
        (1, "a\nb", "a\nb"),
        (1, "a\n\nb", "a\nb"),
        (3, "a\n\n\n\n\nb", "a\n\n\nb"),
    ],
)
def test_newline_runs_bounded(max_newlines, text, expected):
    assert normalize(text, max_newlines=max_newlines).text == expected


def test_whitespace_false_only_fixes_unicode():
    text = "  a   b  \n\n\n\nc  "
    doc = normalize(text, whitespace=False)
    assert doc.text == text and doc.annotations["normalize_changed"] is False
    assert normalize("  a\u00a0 b  ").text == "a\u00a0 b"  # a no-break space is content, not a run


@pytest.mark.parametrize("params", [{"unicode_form": "NFX"}, {"max_newlines": 0}, {"strip": True}])
def test_normalize_bad_params(params):
    with pytest.raises(ValueError, match="normalize"):
        build_step("normalize", params)


# --- pii -------------------------------------------------------------------------------------------


def mask(text: str, **params) -> tuple[str, int, int]:
    doc = run_steps([build_step("pii", params)], [text])[0]
    assert doc.drop_reason is None  # pii never drops
    return doc.text, doc.annotations["pii_emails"], doc.annotations["pii_ips"]


def test_emails_masked_and_counted():
    text = "Write to John.Doe@Example.COM or ops+alerts@mail.example.co.uk."
    assert mask(text) == ("Write to <EMAIL_ADDRESS> or <EMAIL_ADDRESS>.", 2, 0)
    assert mask("über@bücher.de")[1] == 1  # internationalised domains


@pytest.mark.parametrize(
    "text", ["user@localhost", "logo@2x.png", "follow @handle", "a@b.c", "x@y.c0m", "email me at home"]
)
def test_not_emails(text):
    assert mask(text) == (text, 0, 0)


def test_public_ipv4_masked_private_and_reserved_kept():
    text = "dns 8.8.8.8, lan 192.168.1.1, loopback 127.0.0.1, docs 192.0.2.7, cgnat 100.64.0.1, 10.0.0.1"
    masked, emails, ips = mask(text)
    assert ips == 1 and masked.startswith("dns <IP_ADDRESS>, lan 192.168.1.1")
    assert mask(text, only_public_ips=False)[2] == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Server 8.8.4.4.", "Server <IP_ADDRESS>."),  # sentence end
        ("at 1.1.1.1:53 now", "at <IP_ADDRESS>:53 now"),  # port
        ("(255.255.255.254)", "(255.255.255.254)"),  # reserved: kept
        ("ip=1.2.3.4", "ip=<IP_ADDRESS>"),
    ],
)
def test_ipv4_boundaries(text, expected):
    assert mask(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    ["version 1.2.3.4.5", "999.1.1.1", "256.1.1.1", "v1.2.3.4", "01.2.3.4", "1.2.3", "8.8.8.8x", "a.8.8.8.8"],
)
def test_not_ipv4(text):
    assert mask(text, only_public_ips=False) == (text, 0, 0)


def test_ipv6_public_masked_special_and_lookalikes_kept():
    text = (
        "google 2001:4860:4860::8888. link fe80::1, loopback ::1, docs 2001:db8::1, "
        "time 12:30:45, mac 00:1a:2b:3c:4d:5e, code a::b and std::vector, mapped ::ffff:8.8.8.8"
    )
    masked, _, ips = mask(text)
    assert ips == 2
    assert masked.startswith("google <IP_ADDRESS>. link fe80::1, loopback ::1, docs 2001:db8::1, ")
    assert masked.endswith("code a::b and std::vector, mapped <IP_ADDRESS>")
    assert mask("[2a00:1450:4001:80b::200e]:443")[0] == "[<IP_ADDRESS>]:443"


def test_masking_is_idempotent_and_placeholders_configurable():
    text = "mail a.b@example.org from 8.8.8.8 and 2001:4860::1"
    once = mask(text)
    assert once[1:] == (1, 2)
    assert mask(once[0]) == (once[0], 0, 0)
    custom = mask(text, email_placeholder="[EMAIL]", ip_placeholder="[IP]")[0]
    assert custom == "mail [EMAIL] from [IP] and [IP]"


def test_each_kind_can_be_switched_off():
    text = "a.b@example.org 8.8.8.8"
    assert mask(text, emails=False) == ("a.b@example.org <IP_ADDRESS>", 0, 1)
    assert mask(text, ips=False) == ("<EMAIL_ADDRESS> 8.8.8.8", 1, 0)


def test_no_pii_leaves_text_untouched():
    doc = run_steps([PIIMask()], ["nothing to see at example dot com"])[0]
    assert not doc.text_changed and doc.annotations == {"pii_emails": 0, "pii_ips": 0}


def test_pii_bad_params():
    with pytest.raises(ValueError, match="pii"):
        build_step("pii", {"phone_numbers": True})
