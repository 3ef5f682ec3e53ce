"""Text rewriting steps that never drop: Unicode/whitespace normalisation and PII masking.

`normalize` repairs what text extraction breaks (mojibake, stray control characters, ragged
whitespace) so that later filters and the tokenizer see one spelling of the same text. `pii` masks
e-mail and IP addresses, the two kinds of personal data that regexes find reliably.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import unicodedata

import pyarrow as pa
from ftfy import TextFixerConfig, fix_text
from ftfy.badness import BADNESS_RE
from ftfy.chardata import CONTROL_CHARS

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, param, register

_UNICODE_FORMS = ("NFC", "NFKC", "NFD", "NFKD")

# Characters ftfy's remove_control_chars deletes, plus ESC (start of the terminal escapes it strips).
_CONTROL_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(CONTROL_CHARS)) + "\x1b]")
# C1 controls and lone surrogates: ftfy's fix_c1_controls / fix_surrogates act only on these.
_C1_OR_SURROGATE_RE = re.compile("[\x80-\x9f\ud800-\udfff]")
# Two or more spaces/tabs, or one tab. Both branches start with a literal, so the engine jumps from
# one space/tab to the next instead of trying every position.
_SPACE_RUN_RE = re.compile(r" [ \t]+|\t[ \t]*")

# ftfy runs `is_bad` on each line; MULTILINE gives "^" that per-line meaning on a whole document.
_MOJIBAKE_RE = re.compile(BADNESS_RE.pattern, BADNESS_RE.flags | re.MULTILINE)
_NON_ASCII_RUN_RE = re.compile(r"[^\x00-\x7f]+")
# ftfy cuts lines longer than this (TextFixerConfig.max_decode_length) into pieces; "^" then also
# matches at a cut, so such documents skip the windowed search below.
_FTFY_SEGMENT = TextFixerConfig().max_decode_length
_SEGMENT_RE = re.compile(r"[^\n]*\n|[^\n]+")  # ftfy's segments: each line with its newline


def _mojibake_reach() -> int | None:
    """Longest match of ftfy's mojibake regex, if each of its alternatives needs a non-ASCII character.

    Then every match lies within that many characters of a non-ASCII character, and only those
    neighbourhoods need searching: the full regex tries ~40 alternatives at every position (about
    0.5 us per character, slower than ftfy itself on clean text). The property is checked on the
    parsed pattern, so an ftfy release whose regex breaks it falls back to searching everything.
    """
    try:
        try:
            from re import _parser as sre
        except ImportError:  # Python 3.10
            import sre_parse as sre

        def needs_non_ascii(op: object, av: object) -> bool:
            if op is sre.LITERAL:
                return av > 127
            if op is sre.IN:
                return all((o is sre.LITERAL and a > 127) or (o is sre.RANGE and a[0] > 127) for o, a in av)
            return False

        tree = sre.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
        [(op, (_, branches))] = tree.data
        if op is not sre.BRANCH or not all(any(needs_non_ascii(o, a) for o, a in b.data) for b in branches):
            return None
        longest = tree.getwidth()[1]
        return longest if longest <= 64 else None
    except Exception:  # private module layout changed: search everything
        return None


_MOJIBAKE_REACH = _mojibake_reach()


def looks_like_mojibake(text: str) -> bool:
    """True iff ftfy's `is_bad` holds for some line of `text` (or, rarely, across a line break)."""
    if _MOJIBAKE_REACH is None or len(text) > _FTFY_SEGMENT:
        return bool(_MOJIBAKE_RE.search(text))
    reach = _MOJIBAKE_REACH - 1
    span_start = span_end = -1
    for run in _NON_ASCII_RUN_RE.finditer(text):
        start, end = max(run.start() - reach, 0), run.end() + reach
        if start > span_end:
            if span_end >= 0 and _MOJIBAKE_RE.search(text, span_start, span_end):
                return True
            span_start = start
        span_end = end
    return span_end >= 0 and bool(_MOJIBAKE_RE.search(text, span_start, span_end))


@register
@dataclasses.dataclass
class Normalize(Step):
    """Fix mojibake and control characters (ftfy), apply a Unicode normal form, tidy whitespace.

    The ftfy options follow datatrove's FTFYFormatter philosophy (repair encoding damage, do not
    impose a style): ligatures, full-width characters, curly quotes and line-break characters are left
    as written, and HTML entities are not unescaped (extracted text is already unescaped; a literal
    "&amp;" in it is content). Unlike datatrove (no normal form) we apply NFC, ftfy's own default: it
    only composes characters, never changes how text looks, and makes equal strings compare equal.
    """

    name = "normalize"
    fix_encoding: bool = param(True, "repair mojibake, C1 controls and surrogates with ftfy")
    remove_control_chars: bool = param(True, "delete control characters and terminal escapes (ftfy)")
    unicode_form: str | None = param("NFC", "Unicode normal form (NFC, NFKC, NFD, NFKD) or None")
    whitespace: bool = param(
        True, "CR/CRLF to LF, collapse inner runs of spaces/tabs, strip line ends and the document"
    )
    max_newlines: int = param(2, "with whitespace: at most this many consecutive newlines")

    def __post_init__(self) -> None:
        if self.unicode_form is not None and self.unicode_form not in _UNICODE_FORMS:
            raise ValueError(f"unicode_form must be one of {_UNICODE_FORMS} or None: {self.unicode_form!r}")
        if self.max_newlines < 1:
            raise ValueError(f"max_newlines must be >= 1, got {self.max_newlines}")
        self._config = TextFixerConfig(
            unescape_html=False,
            remove_terminal_escapes=self.remove_control_chars,
            fix_encoding=self.fix_encoding,
            restore_byte_a0=True,
            replace_lossy_sequences=True,
            decode_inconsistent_utf8=True,
            fix_c1_controls=self.fix_encoding,
            fix_latin_ligatures=False,
            fix_character_width=False,
            uncurl_quotes=False,
            fix_line_breaks=False,
            fix_surrogates=self.fix_encoding,
            remove_control_chars=self.remove_control_chars,
            normalization=self.unicode_form,
            explain=False,
        )
        self._newlines_re = re.compile(f"\n{{{self.max_newlines + 1},}}")
        self._newlines = "\n" * (self.max_newlines + 1)  # the shortest run to collapse

    def columns(self) -> dict[str, pa.DataType]:
        return {"normalize_changed": pa.bool_()}

    def ftfy_may_change(self, text: str) -> bool:
        """Whether ftfy with our config could change `text`; False is exact, so ftfy can be skipped.

        ftfy fixes text line by line and each of its fixes is gated: the encoding repair runs only on a
        line that `is_bad` (see `looks_like_mojibake`), the C1/surrogate/control fixes only act on those
        characters, and a normal form only changes text that is not already in it (NFC of lines is NFC
        of the document: a newline never composes). If none of these hold, ftfy returns the text as is.
        """
        if self.remove_control_chars and _CONTROL_RE.search(text):
            return True
        if text.isascii():  # every remaining fix needs a non-ASCII character
            return False
        if self.fix_encoding and (_C1_OR_SURROGATE_RE.search(text) or looks_like_mojibake(text)):
            return True
        return self.unicode_form is not None and not unicodedata.is_normalized(self.unicode_form, text)

    def normalize_whitespace(self, text: str) -> str:
        """Unix newlines, no trailing spaces/tabs, inner runs of them as one space, bounded blank lines."""
        # Substring tests gate each pass: `in` scans at memchr speed, a regex tries every space.
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "  " in text or "\t" in text or " \n" in text:
            lines = text.split("\n")
            for i, line in enumerate(lines):
                if "  " in line or "\t" in line or line.endswith(" "):
                    body = line.rstrip(" \t")
                    rest = body.lstrip(" \t")
                    # Indentation is kept (code, verse); only runs after it collapse.
                    lines[i] = body[: len(body) - len(rest)] + _SPACE_RUN_RE.sub(" ", rest)
            text = "\n".join(lines)
        if self._newlines in text:
            text = self._newlines_re.sub(self._newlines[:-1], text)
        return text.strip()

    def fix_unicode(self, text: str) -> str:
        """`ftfy.fix_text` with our config, run only on the lines it could change.

        ftfy fixes each line (with its newline) on its own and joins the results, so running it on
        just the lines that pass the gates gives the same text. A page is often clean but for one line
        (a byte-order mark, a pasted mojibake quote); ftfy costs ~1 ms per clean 3 kB document.
        """
        if not self.ftfy_may_change(text):
            return text
        if len(text) > _FTFY_SEGMENT:
            return fix_text(text, self._config)
        out = [
            fix_text(segment, self._config) if self.ftfy_may_change(segment) else segment
            for segment in _SEGMENT_RE.findall(text)
        ]
        return "".join(out)

    def normalize(self, text: str) -> str:
        """The normalised text (the step's whole effect, usable outside a pipeline)."""
        text = self.fix_unicode(text)
        if self.whitespace:
            text = self.normalize_whitespace(text)
        return text

    def apply(self, doc: Doc) -> str | None:
        fixed = self.normalize(doc.text)
        changed = fixed != doc.text
        if changed:
            doc.text = fixed
        doc.annotations["normalize_changed"] = changed
        return None


# One octet 0-255 without leading zeros (Python's ipaddress rejects those as ambiguous octal).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Not glued to a word or a dotted run: "1.2.3.4.5" (a version) and "999.1.1.1" hold no address.
_IPV4_RE = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.[0-9])")
_IPV4_HINT_RE = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.")  # the middle of every dotted quad
_IPV6_HINT_RE = re.compile(r":[0-9A-Fa-f]{0,4}:")  # two colons of every IPv6 address
# A candidate: a run of hex digits, colons and dots with at least two colons, validated by ipaddress.
_IPV6_RE = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:.]{2,45}(?![\w:])")
# Local part, "@", dot-separated domain labels, a letter-only TLD that is not an image extension
# ("logo@2x.png" is a retina image name). The lookbehind starts matching only at the start of a local
# part, which keeps the search linear on long tokens.
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[\w%+-][\w.%+-]*@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
    r"(?!(?i:png|jpe?g|gif|svg|webp|bmp|ico)(?![\w-]))[^\W\d_]{2,63}(?![\w-])"
)
# IANA global unicast space (RFC 4291 §2.4): Python calls e.g. "a::b" global, but only 2000::/3 is
# handed out, and short hex words joined by "::" are far more often code than addresses.
_IPV6_UNICAST = ipaddress.IPv6Network("2000::/3")


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_global
    return address.is_global and address in _IPV6_UNICAST


@register
@dataclasses.dataclass
class PIIMask(Step):
    """Replace e-mail and IP addresses with placeholders; annotate how many; never drops.

    datatrove's PIIFormatter substitutes realistic fake values in rotation (email@example.com,
    firstname.lastname@example.org, six unused public IPv4s), so the model still sees address-shaped
    text. We write explicit placeholders instead (Presidio's entity names; Dolma/OLMo use
    "|||EMAIL_ADDRESS|||"): they are visible when auditing data, cannot be mistaken for a real
    address, and contain no "@" or digits, so masking twice changes nothing. Like datatrove, only
    public IPs are masked by default: private, loopback, link-local, documentation and other reserved
    addresses identify nobody and carry meaning in technical text ("connect to 127.0.0.1"). Unlike
    datatrove we also mask IPv6, match upper-case e-mails, and do not mask the middle of longer dotted
    numbers (datatrove turns "999.1.1.1" into "9" + an address).
    """

    name = "pii"
    emails: bool = param(True, "mask e-mail addresses")
    ips: bool = param(True, "mask IPv4 and IPv6 addresses")
    only_public_ips: bool = param(True, "leave private, loopback and other reserved IPs alone")
    email_placeholder: str = param("<EMAIL_ADDRESS>", "replacement text for an e-mail address")
    ip_placeholder: str = param("<IP_ADDRESS>", "replacement text for an IP address")

    def columns(self) -> dict[str, pa.DataType]:
        return {"pii_emails": pa.int32(), "pii_ips": pa.int32()}

    def _mask_ips(self, text: str) -> tuple[str, int]:
        count = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal count
            found = match.group()
            core = found.rstrip(".")  # a sentence may end right after an IPv6 address
            try:
                address = ipaddress.ip_address(core)
            except ValueError:
                return found
            if self.only_public_ips and not _is_public(address):
                return found
            count += 1
            return self.ip_placeholder + found[len(core) :]

        # The hints start with a literal, which the regex engine scans for at memchr speed; the full
        # patterns start with a lookbehind and are tried at every position.
        if _IPV6_HINT_RE.search(text):  # IPv6 first: an IPv4-mapped address ends in an IPv4 one
            text = _IPV6_RE.sub(replace, text)
        if _IPV4_HINT_RE.search(text):
            text = _IPV4_RE.sub(replace, text)
        return text, count

    def mask(self, text: str) -> tuple[str, int, int]:
        """(masked text, e-mails masked, IPs masked)."""
        emails = ips = 0
        if self.emails and "@" in text:
            text, emails = _EMAIL_RE.subn(self.email_placeholder, text)
        if self.ips:
            text, ips = self._mask_ips(text)
        return text, emails, ips

    def apply(self, doc: Doc) -> str | None:
        text, emails, ips = self.mask(doc.text)
        if emails or ips:
            doc.text = text
        doc.annotations["pii_emails"] = emails
        doc.annotations["pii_ips"] = ips
        return None
