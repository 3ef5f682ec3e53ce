"""The prompt a document is scored through: a template with one `{document}` placeholder.

The default asks for an additive 0-5 educational-value score, the kind of rubric FineWeb-Edu
(Penedo et al. 2024, §4; Yuan et al. 2024's additive scoring) had Llama-3-70B-Instruct apply; the
wording is ours. A template ends where the score's digit is to come, so the model's next-token
distribution over "0".."5" is the answer (scorer.py) and nothing is generated. The default ends in
"Score: ": in Llama 2's and Llama 3's tokenizers a space and a following digit are separate tokens,
so the digit is the next token; scorer.py checks this for the tokenizer at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER = "{document}"
SCORE_DIGITS = ("0", "1", "2", "3", "4", "5")

DEFAULT_PROMPT = """\
Below is an excerpt of a web page. Judge how useful it would be for teaching, anywhere from primary \
school to the first years of university. Start at 0 points and add one point for each statement \
that is true; a statement only counts if every statement before it is also true.

1. The excerpt gives some real information on a subject taught in schools, even if adverts, menus \
or other clutter surround it.
2. It deals with such a subject in a recognisable way (explaining, describing or arguing), though \
it may be shallow, disorganised or wander off topic.
3. A teacher could use it as it is: it is mostly coherent, accurate and on topic, and it presents \
ideas a student could learn from, even if it leaves things out.
4. It suits school teaching well: clearly written and well organised with little beside the \
point, like a section of a textbook or a careful tutorial.
5. It is excellent teaching material: thorough, precise and engaging, with explanations or worked \
examples that could go straight into a lesson.

Excerpt:
\"\"\"
{document}
\"\"\"

Reply with the total number of points, one digit from 0 to 5.
Score: """


@dataclass(frozen=True)
class Template:
    """A prompt split at its placeholder: what comes before the document and what comes after."""

    prefix: str
    suffix: str

    def render(self, document: str) -> str:
        """The prompt for one document (no formatting: braces in a document stay as they are)."""
        return self.prefix + document + self.suffix


def parse_template(text: str, where: str = "prompt") -> Template:
    """A template from its text; refused unless `{document}` occurs exactly once."""
    parts = text.split(PLACEHOLDER)
    if len(parts) != 2:
        found = "none" if len(parts) == 1 else len(parts) - 1
        raise ValueError(f"{where}: the template needs exactly one {PLACEHOLDER} placeholder (found {found})")
    return Template(parts[0], parts[1])


def load_template(path: Path | str | None) -> Template:
    """The template in file `path` (UTF-8) or, for None, DEFAULT_PROMPT.

    One final newline of the file is dropped (editors add it; the score must follow the text's last
    character); write two to keep one.
    """
    if path is None:
        return parse_template(DEFAULT_PROMPT, "default prompt")
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such prompt file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable prompt file ({e})") from None
    return parse_template(text.removesuffix("\n"), str(path))
