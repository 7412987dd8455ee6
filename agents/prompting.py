"""Loading and filling the Markdown prompt templates in `prompts/`.

A prompt file has a `## System` heading and a `## User` heading, in that order; anything
above `## System` is a note for people and is not sent. Fields are written `{name}` and only
the user part has them. Any other brace (a JSON example, say) is left alone, so templates need
no escaping.
"""

from __future__ import annotations

import re

from fte import package_path
from fte.errors import PromptError

PROMPTS_DIR = package_path("prompts")

_SECTION = re.compile(r"^## (System|User)[ \t]*$", re.MULTILINE)
FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_prompt(name: str) -> tuple[str, str]:
    """Return `(system, user_template)` from `prompts/<name>.md`."""
    path = PROMPTS_DIR / f"{name}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"prompt '{name}' not found: expected the file {path}") from None
    parts = _SECTION.split(text)
    # split() with one capture group gives [preamble, heading, body, heading, body].
    if parts[1::2] != ["System", "User"]:
        raise PromptError(
            f"{path}: expected one '## System' heading followed by one '## User' heading"
        )
    system, user = parts[2].strip(), parts[4].strip()
    if not system or not user:
        raise PromptError(f"{path}: the '## System' and '## User' sections must not be empty")
    # The system part is sent as written, so a placeholder there would reach the model unfilled.
    if stray := sorted(set(FIELD.findall(system))):
        raise PromptError(
            f"{path}: field(s) {', '.join(stray)} in '## System'; fields belong under '## User'"
        )
    return system, user


def render(template: str, /, **fields: object) -> str:
    """Fill `{name}` fields; a missing or unused field is an error, never a silent gap."""
    wanted = set(FIELD.findall(template))
    missing = sorted(wanted - fields.keys())
    if missing:
        raise PromptError(
            f"prompt template needs field(s) {', '.join(missing)} but got only "
            f"{', '.join(sorted(fields)) or 'none'}; pass them or fix the prompt file"
        )
    unused = sorted(fields.keys() - wanted)
    if unused:
        # An unused field usually means the prompt file lost a placeholder, so the model would
        # silently never see that input.
        raise PromptError(
            f"prompt template has no field(s) {', '.join(unused)}; "
            "add the placeholder to the prompt file or stop passing it"
        )
    # One pass, so braces inside the values (passage text, user queries) are never expanded.
    return FIELD.sub(lambda match: str(fields[match.group(1)]), template)
