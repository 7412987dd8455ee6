"""A built-in, offline, extractive "model" served as an httpx transport.

When no model server is configured the pipeline must still run end to end and produce an
honest report. Rather than a second code path through the agents, this module answers the
same OpenAI chat-completions HTTP requests the agents already send, so `LLMClient`, its
retries, the prompts and the response validation are all exercised exactly as with a real
model:

    LLMClient(LLMConfig(base_url=OFFLINE_BASE_URL), http_client=offline_http_client())

It does not generate text. Every fact it returns is a sentence copied from the sources in
the prompt, chosen by lexical overlap, so it can miss things but cannot invent them. It is
deterministic (no clock, no randomness: the same request gives the same bytes back) and
fast (pure Python string work, milliseconds per call).

It reads the rendered user prompt, so it depends on the prompt layout: the templates in
`prompts/` are matched literally and the blocks the agents render in Python (sources,
passages, claims) are parsed strictly. A layout it does not recognise is answered with an
HTTP 400 naming what it expected, never with a best guess, which surfaces as an
`LLMRequestError` instead of a quietly wrong report.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from fte.agents.prompting import load_prompt
from fte.errors import PromptError

OFFLINE_BASE_URL = "http://offline-model.fte.invalid/v1"
OFFLINE_MODEL_NAME = "fte-offline-extractive"

# Thresholds, as fractions of the question's (or claim's) content words found in the text.
RELEVANCE_MIN_COVERAGE = 0.5
ANALYST_MIN_SCORE = 0.3
ANALYST_CLAIMS_PER_QUESTION = 3
SUPPORT_MIN_OVERLAP = 0.6
SUMMARY_MAX_CLAIMS = 4
SUMMARY_MIN_SENTENCES = 3
PARAGRAPH_MAX_CLAIMS = 3
HEADING_MAX_WORDS = 12
CLAIM_MIN_WORDS = 5
CLAIM_MAX_WORDS = 80


class OfflineModelError(Exception):
    """The request is not one the offline model can answer; becomes an HTTP 400."""


# --- HTTP ----------------------------------------------------------------------------


class OfflineModelTransport(httpx.BaseTransport):
    """Answers OpenAI chat-completion requests in-process; never touches the network."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = _decode_request(request)
            return httpx.Response(200, json=_answer(body, request.read()))
        except OfflineModelError as error:
            return _error_response(400, "invalid_request_error", str(error))
        except Exception as error:
            # Left uncaught, the openai SDK would report a bug here as "could not reach the
            # model server", which sends people looking at their network. A 4xx, not a 5xx:
            # the same request fails the same way every time, so retrying cannot help.
            return _error_response(
                400,
                "offline_model_error",
                f"internal error in the offline model ({type(error).__name__}: {error}); "
                "this is a bug in fte/offline_model.py",
            )


def offline_http_client() -> httpx.Client:
    """An httpx client whose every request is answered by `OfflineModelTransport`."""
    return httpx.Client(transport=OfflineModelTransport())


def _error_response(status: int, kind: str, message: str) -> httpx.Response:
    # OpenAI's error shape, so the SDK and LLMClient report the message like any server's.
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return httpx.Response(status, json=body)


def _decode_request(request: httpx.Request) -> dict[str, Any]:
    if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
        raise OfflineModelError(
            f"the offline model only serves POST .../chat/completions, "
            f"not {request.method} {request.url.path}"
        )
    try:
        body = json.loads(request.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OfflineModelError(f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise OfflineModelError("request body must be a JSON object")
    if body.get("stream"):
        raise OfflineModelError("the offline model does not support streaming")
    return body


def _answer(body: dict[str, Any], raw_request: bytes) -> dict[str, Any]:
    name, schema = _response_schema(body)
    handler = _HANDLERS.get(name)
    if handler is None:
        raise OfflineModelError(
            f"the offline model cannot produce the output schema '{name}'; "
            f"it knows {', '.join(sorted(_HANDLERS))}"
        )
    messages = _messages(body)
    fields = _prompt_fields(name, handler.prompt, handler.fields, _first_user_message(messages))
    output = handler.run(fields)
    _check_against_schema(name, schema, output)
    content = json.dumps(output, ensure_ascii=False)
    prompt_tokens = sum(_estimate_tokens(str(m.get("content", ""))) for m in messages)
    completion_tokens = _estimate_tokens(content)
    return {
        # Derived from the request, not a clock or counter: same request, same response.
        "id": "chatcmpl-offline-" + hashlib.sha256(raw_request).hexdigest()[:24],
        "object": "chat.completion",
        "created": 0,
        "model": OFFLINE_MODEL_NAME,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _estimate_tokens(text: str) -> int:
    # English averages about four tokens per three words; close enough for cost reports.
    return math.ceil(len(text.split()) * 4 / 3)


def _response_schema(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response_format = body.get("response_format")
    json_schema = response_format.get("json_schema") if isinstance(response_format, dict) else None
    if not isinstance(json_schema, dict) or not isinstance(json_schema.get("name"), str):
        raise OfflineModelError(
            "the offline model needs response_format.json_schema.name to know what to produce"
        )
    schema = json_schema.get("schema")
    return json_schema["name"], schema if isinstance(schema, dict) else {}


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise OfflineModelError("request has no 'messages' list")
    return messages


def _first_user_message(messages: list[dict[str, Any]]) -> str:
    # The first user message is the rendered prompt; later ones would be repair requests,
    # which get the same (deterministic) answer again.
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            if not isinstance(content, str):
                raise OfflineModelError("the user message must be a plain string")
            return content
    raise OfflineModelError("request has no user message")


def _check_against_schema(name: str, schema: dict[str, Any], output: dict[str, Any]) -> None:
    """Fail loudly when an agent's output model changed under us.

    Without this, a renamed or added field would come back as a validation error, go through
    the repair call, and end as a vague "model output does not match" error.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        raise OfflineModelError(f"the {name} JSON schema in the request has no 'properties'")
    required = schema.get("required", [])
    unknown = sorted(output.keys() - properties.keys())
    missing = sorted(set(required) - output.keys())
    if unknown or missing:
        raise OfflineModelError(
            f"the {name} schema changed (fields unknown to it: {unknown}; required fields the "
            f"offline model does not write: {missing}); update fte/offline_model.py"
        )


# --- Reading the prompt ------------------------------------------------------------

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _prompt_fields(
    schema_name: str, prompt_name: str, expected: frozenset[str], user: str
) -> dict[str, str]:
    """Recover the field values by matching the user message against its own template.

    Using the template from `prompts/` means rewording a prompt keeps working, while adding,
    removing or reordering fields fails here with a message that says which file to look at.
    """
    try:
        _, template = load_prompt(prompt_name)
    except PromptError as error:
        raise OfflineModelError(str(error)) from None
    names = _FIELD.findall(template)
    if set(names) != expected or len(names) != len(expected):
        raise OfflineModelError(
            f"prompts/{prompt_name}.md has the fields {names}, but the offline model reads "
            f"{sorted(expected)} (each once) for {schema_name}; update fte/offline_model.py"
        )
    pattern = "".join(
        f"(?P<{part}>.*?)" if index % 2 else re.escape(part)
        for index, part in enumerate(_FIELD.split(template))
    )
    match = re.fullmatch(pattern, user, re.DOTALL)
    if match is None:
        raise OfflineModelError(
            f"the user message for {schema_name} does not follow the layout of "
            f"prompts/{prompt_name}.md; the offline model only understands that layout"
        )
    return match.groupdict()


@dataclass(frozen=True)
class _Block:
    """A source or candidate passage as shown in a prompt."""

    id: str
    title: str
    text: str
    available: bool = True


# Mirrors agents.prompting.source_block and agents.source_finder._format_candidates.
_SOURCE_BLOCK = re.compile(
    r'<source id="(?P<id>[^"\n]+)">\ntitle: (?P<title>[^\n]*)\nlocation: [^\n]*\n'
    r"(?P<text>.*?)\n</source>",
    re.DOTALL,
)
# Mirrors agents.fact_checker._format_claims for a cited source that was not retrieved.
_MISSING_SOURCE_BLOCK = re.compile(
    r'<source id="(?P<id>[^"\n]+)">\n\(not available: judge without it\)\n</source>'
)
_PASSAGE_BLOCK = re.compile(
    r'<passage passage_id="(?P<id>[^"\n]+)">\ntitle: (?P<title>[^\n]*)\n'
    r"(?P<text>.*?)\n</passage>",
    re.DOTALL,
)
_FACT_CHECK_CLAIM = re.compile(
    r'<claim id="(?P<id>[^"\n]+)">\n(?P<text>.*?)\n</claim>\nCited passages for (?P=id):\n',
    re.DOTALL,
)
# Mirrors agents.writer._format_claims.
_WRITER_CLAIM = re.compile(
    r'<claim id="(?P<id>[^"\n]+)" verdict="(?P<verdict>supported|unsupported|contradicted)" '
    r'sources="(?P<sources>[^"\n]*)" sub_question="(?P<sub_question>[^"\n]*)">\n'
    r"(?P<body>.*?)\n</claim>",
    re.DOTALL,
)
_WRITER_CLAIM_BODY = re.compile(
    r'(?P<text>.*?)(?:\nevidence(?: from [^:\n]+)?: "(?P<evidence>.*)")?', re.DOTALL
)
_SUB_QUESTION_LINE = re.compile(r"- (?P<id>[^:\s]+): (?P<text>.*)")
# The title may contain parentheses and so may the location; prefer a location without.
_WRITER_SOURCE_LINES = (
    re.compile(r"- (?P<id>[^:\s]+): (?P<title>.*) \([^()]*\)"),
    re.compile(r"- (?P<id>[^:\s]+): (?P<title>.*?) \(.*\)"),
)


def _layout_error(what: str, text: str, position: int) -> OfflineModelError:
    # Short and front-loaded: LLMClient keeps only the first 200 characters of the message.
    snippet = text[position : position + 40].replace("\n", "\\n")
    return OfflineModelError(
        f"prompt layout not understood: expected {what} at character {position}, found "
        f"'{snippet}'; update fte/offline_model.py to the new layout"
    )


def _expect_separator(text: str, position: int, separator: str, what: str) -> int:
    """Position after `separator`, or len(text) at the end; anything else is a layout error."""
    if position == len(text):
        return position
    if not text.startswith(separator, position):
        raise _layout_error(what, text, position)
    return position + len(separator)


def _parse_source_blocks(section: str, *, separator: str, empty: str) -> list[_Block]:
    """Source blocks that tile `section` exactly, or the agent's placeholder for none."""
    if section == empty:
        return []
    blocks: list[_Block] = []
    position = 0
    while position < len(section):
        match = _SOURCE_BLOCK.match(section, position)
        if match:
            blocks.append(_Block(match["id"], match["title"], match["text"]))
        elif match := _MISSING_SOURCE_BLOCK.match(section, position):
            blocks.append(_Block(match["id"], "", "", available=False))
        else:
            raise _layout_error('a <source id="..."> block', section, position)
        position = _expect_separator(section, match.end(), separator, "the next <source> block")
    return blocks


def _parse_passages(section: str) -> list[_Block]:
    if section == "(no candidates)":
        return []
    blocks: list[_Block] = []
    position = 0
    while position < len(section):
        match = _PASSAGE_BLOCK.match(section, position)
        if match is None:
            raise _layout_error('a <passage passage_id="..."> block', section, position)
        blocks.append(_Block(match["id"], match["title"], match["text"]))
        position = _expect_separator(section, match.end(), "\n\n", "the next <passage> block")
    return blocks


@dataclass(frozen=True)
class _SubQuestion:
    id: str
    text: str


def _parse_sub_questions(section: str) -> list[_SubQuestion]:
    if section == "(none)":
        return []
    questions: list[_SubQuestion] = []
    for line in section.split("\n"):
        match = _SUB_QUESTION_LINE.fullmatch(line)
        if match:
            questions.append(_SubQuestion(match["id"], match["text"]))
        elif questions:
            # A sub-question whose text has a line break continues on the next line.
            last = questions[-1]
            questions[-1] = _SubQuestion(last.id, f"{last.text}\n{line}")
        else:
            raise _layout_error("a '- q1: ...' sub-question line", section, 0)
    return questions


@dataclass(frozen=True)
class _ClaimToCheck:
    id: str
    text: str
    cited: list[_Block]


def _parse_claims_to_check(section: str) -> list[_ClaimToCheck]:
    if section == "(no claims)":
        return []
    claims: list[_ClaimToCheck] = []
    position = 0
    while position < len(section):
        header = _FACT_CHECK_CLAIM.match(section, position)
        if header is None:
            raise _layout_error('a <claim id="..."> block', section, position)
        # The cited blocks run up to the next claim (blocks are separated by blank lines,
        # and passage text can contain blank lines too, so look for the next claim tag).
        next_claim = section.find('\n\n<claim id="', header.end())
        end = len(section) if next_claim == -1 else next_claim
        cited_section = section[header.end() : end]
        cited = _parse_source_blocks(cited_section, separator="\n", empty="(none)")
        claims.append(_ClaimToCheck(header["id"], header["text"], cited))
        position = _expect_separator(section, end, "\n\n", "the next <claim> block")
    return claims


@dataclass(frozen=True)
class _CheckedClaim:
    id: str
    verdict: str
    source_ids: list[str]
    sub_question_id: str  # "" when the analyst did not say
    text: str
    evidence: str


def _parse_checked_claims(section: str) -> list[_CheckedClaim]:
    if section == "(no claims)":
        return []
    claims: list[_CheckedClaim] = []
    position = 0
    while position < len(section):
        match = _WRITER_CLAIM.match(section, position)
        if match is None:
            raise _layout_error(
                'a <claim id=".." verdict=".." sources=".." sub_question=".."> block',
                section,
                position,
            )
        body = _WRITER_CLAIM_BODY.fullmatch(match["body"])
        if body is None:  # cannot happen: the text group alone matches any body
            raise _layout_error("a claim text", match["body"], 0)
        sources = [s.strip() for s in match["sources"].split(",") if s.strip()]
        claims.append(
            _CheckedClaim(
                id=match["id"],
                verdict=match["verdict"],
                source_ids=sources,
                sub_question_id=match["sub_question"],
                text=body["text"],
                evidence=body["evidence"] or "",
            )
        )
        position = _expect_separator(section, match.end(), "\n\n", "the next <claim> block")
    return claims


def _parse_source_list(section: str) -> dict[str, str]:
    """Source ID -> title, from the writer's '- S1: title (location)' lines."""
    if section == "(no sources)":
        return {}
    titles: dict[str, str] = {}
    for line in section.split("\n"):
        match = next((m for p in _WRITER_SOURCE_LINES if (m := p.fullmatch(line))), None)
        if match is None:
            raise _layout_error("a '- S1: title (location)' line", line, 0)
        titles[match["id"]] = match["title"]
    return titles


# --- Words, terms and sentences ------------------------------------------------------

_STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by ca can cannot could did do does doing down during
    each either else even every few for from further had has have having he her here hers
    him his how however i if in into is it its itself just let lets may me might more most
    must my neither no nor not of off on once only or other our ours out over own per
    please same shall she should so some such than that the their theirs them then there
    these they this those through thus to too under until up upon us very via vs versus was
    we were what when where whether which while who whom whose why will with within without
    wo would yet you your yours""".split()
)
# Words that say what kind of question it is rather than what it is about: left out when
# finding a query's subject and when judging whether a passage is on topic.
_GENERIC_WORDS = frozenset(
    """advantage advantages aspects benefit benefits best better choice common compare
    compared compares comparing comparison con cons cost costs describe difference
    differences disadvantage disadvantages example examples exist explain explained good
    false impossible important instead key kind kinds limit limitation limitations limits
    main mechanism mechanisms mode modes necessary overview possible practical practice
    practices pro pros purpose recommend recommended risk risks role show source sources
    tell trade trade-off trade-offs tradeoff tradeoffs true type types use used using way
    ways work works worth""".split()
)
_WH_WORDS = frozenset("how what why when where which who".split())
# Auxiliaries after which the query's main verb comes in its base form ("How do X recover").
_VERB_AUXILIARIES = frozenset("do does did can could should would will might must may".split())
# Common base-form verbs in research questions. Words that are as often nouns ("store",
# "retry", "process") are left out: a missed verb costs less than a mangled subject.
_VERBS = frozenset(
    """achieve affect allow apply avoid become behave cause communicate coordinate cope
    deal deliver detect differ enable ensure execute fail guarantee handle happen help
    implement improve increase interact keep manage matter perform persist prevent protect
    make need provide recover reduce relate remain require resume scale stay support
    survive""".split()
)
# Verbs too generic to be part of a subject, but still the verb of "How do X work?".
_FOCUS_VERBS = _VERBS | {"work", "use", "happen"}
_THIRD_PERSON = frozenset(
    verb + "es" if verb.endswith(("s", "x", "z", "ch", "sh", "o")) else verb + "s"
    for verb in _FOCUS_VERBS
)
_ARTICLES = frozenset({"a", "an", "the"})
_NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|none|nor|neither|nothing|nobody|nowhere)\b|n['’]t\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_TERM = re.compile(r"[^\W_]+")
_SURFACE_WORD = re.compile(r"[^\W_][\w'’.+#/-]*")


def _stem(word: str) -> str:
    """Light suffix folding so "crashes", "crashed" and "crashing" meet at "crash".

    Only consistency matters (both sides of a comparison go through it), so the stems need
    not be real words.
    """
    for suffix, replacement in (("ies", "y"), ("ied", "y"), ("sses", "ss")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            return word[: -len(suffix)] + replacement
    if word.endswith(("ches", "shes", "xes", "zes")) and len(word) > 5:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and re.search(r"[aeiouy]", stem):
            word = stem
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]  # "stopped" -> "stopp" -> "stop"
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]  # "store"/"stored"/"storing" -> "stor"
    return word


def _terms(text: str, *, drop: frozenset[str] = frozenset()) -> list[str]:
    """Stemmed content words in order; negations are not content (they are checked apart)."""
    lowered = text.lower().replace("’", "'")
    lowered = re.sub(r"n't\b", " not", lowered)
    lowered = re.sub(r"'s\b", "", lowered)
    stems = (
        _stem(word)
        for word in _TERM.findall(lowered)
        if word not in _STOP_WORDS and word not in drop and (len(word) > 1 or word.isdigit())
    )
    # Checked again after stemming: "trade-offs" splits into "trade" and "offs" -> "off".
    return [stem for stem in stems if stem not in _STOP_WORDS and stem not in drop]


def _term_set(text: str, *, drop: frozenset[str] = frozenset()) -> frozenset[str]:
    return frozenset(_terms(text, drop=drop))


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _ordered_unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class _Sentence:
    raw: str  # exactly as in the passage, so it can be quoted as evidence
    text: str  # whitespace collapsed, for claims
    terms: frozenset[str]
    claimable: bool


_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_FENCE = re.compile(r"[ \t]*(?:```|~~~)")
# Closers after the full stop include Markdown emphasis: "**Idempotency.** The engine ...".
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]*_]*(?=\s)")
_ABBREVIATIONS = frozenset(
    "e.g. i.e. etc. vs. cf. approx. no. fig. al. mr. mrs. ms. dr. st. p.".split()
)
_EMPHASISED = re.compile(r"(\*\*|__)[^*_]*\1", re.DOTALL)
_SENTENCE_START = "\"'“‘`([*_"


def _items(text: str) -> list[tuple[int, int]]:
    """Spans of prose paragraphs and list items, with headings, code and tables left out.

    Spans index into `text`, so every sentence cut from them is a verbatim substring.
    """
    spans: list[tuple[int, int]] = []
    current: list[int] | None = None
    in_fence = False
    offset = 0
    for line in text.split("\n"):
        start, end = offset, offset + len(line)
        offset = end + 1
        stripped = line.strip()
        if _FENCE.match(line):
            in_fence = not in_fence
        is_break = in_fence or not stripped or stripped.startswith(("#", "|", "```", "~~~"))
        marker = None if is_break else _LIST_MARKER.match(line)
        if is_break or marker:
            if current:
                spans.append((current[0], current[1]))
            current = None
        if marker:
            current = [start + marker.end(), end]
        elif not is_break:
            if current:
                current[1] = end
            else:
                current = [start + len(line) - len(line.lstrip()), end]
    if current:
        spans.append((current[0], current[1]))
    return spans


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = start
    for match in _SENTENCE_END.finditer(text, start, end):
        following = match.end()
        while following < end and text[following].isspace():
            following += 1
        if following >= end:
            break
        char = text[following]
        if not (char.isupper() or char.isdigit() or char in _SENTENCE_START):
            continue
        last_word = text[begin : match.start() + 1].split()[-1].lstrip("(\"'“‘")
        if last_word.lower() in _ABBREVIATIONS or re.fullmatch(r"[A-Z]\.", last_word):
            continue  # "e.g. Dapr" or an initial, not the end of a sentence
        spans.append((begin, match.end()))
        begin = following
    if begin < end:
        spans.append((begin, end))
    return spans


def _is_claimable(sentence: str) -> bool:
    """Whether a sentence can stand alone as a claim: a whole, ordinary prose sentence."""
    words = sentence.split()
    letters = [char for char in sentence if char.isalpha()]
    shouting = len(letters) > 10 and sum(char.isupper() for char in letters) > 0.6 * len(letters)
    return (
        CLAIM_MIN_WORDS <= len(words) <= CLAIM_MAX_WORDS
        and (sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in _SENTENCE_START)
        # A chunk that starts mid-sentence (the overlap tail) starts lower-case; a lead-in
        # to a list ends with ':'. Neither is a claim on its own.
        and sentence.rstrip("\"'”’)]*_")[-1:] in (".", "!", "?")
        and not shouting
        # A wholly bold sentence is a list item's label ("**Make activities idempotent.**").
        and not _EMPHASISED.fullmatch(sentence)
    )


def _sentences(text: str) -> list[_Sentence]:
    found: list[_Sentence] = []
    for item_start, item_end in _items(text):
        for start, end in _sentence_spans(text, item_start, item_end):
            raw = text[start:end].strip()
            if raw:
                found.append(_Sentence(raw, _collapse(raw), _term_set(raw), _is_claimable(raw)))
    return found


def _coverage(wanted: frozenset[str], found: frozenset[str]) -> float:
    return len(wanted & found) / len(wanted) if wanted else 0.0


# --- Reading a research query --------------------------------------------------------


@dataclass(frozen=True)
class _Word:
    text: str
    lower: str
    start: int
    end: int


@dataclass(frozen=True)
class _QueryAnalysis:
    """The parts of a query that the planner and writer phrase their questions around."""

    subject: str
    focus: str | None = None  # verb phrase in base form: "recover from crashes"
    auxiliary: str | None = None  # the "do"/"does"/"can" that introduced the focus
    wh_word: str | None = None
    others: tuple[str, ...] = ()
    compared: tuple[str, str] | None = None
    is_question: bool = False


def _words(text: str) -> list[_Word]:
    words = []
    for match in _SURFACE_WORD.finditer(text):
        surface = match.group().rstrip(".'’/-")
        if surface:
            start = match.start()
            words.append(_Word(surface, surface.lower(), start, start + len(surface)))
    return words


def _is_key(word: _Word) -> bool:
    return word.lower not in _STOP_WORDS and word.lower not in _GENERIC_WORDS


def _runs(text: str, words: Sequence[_Word]) -> list[list[_Word]]:
    """Maximal runs of adjacent key words: "durable workflows recover", "crashes"."""
    runs: list[list[_Word]] = []
    current: list[_Word] = []
    for word in words:
        adjacent = bool(current) and not text[current[-1].end : word.start].strip()
        if _is_key(word) and (adjacent or not current):
            current.append(word)
            continue
        if current:
            runs.append(current)
        current = [word] if _is_key(word) else []
    if current:
        runs.append(current)
    return runs


def _span(text: str, words: Sequence[_Word]) -> str:
    return text[words[0].start : words[-1].end]


def _strip_leading_verbs(run: list[_Word]) -> list[_Word]:
    while len(run) > 1 and run[0].lower in _VERBS:
        run = run[1:]
    return run


def _comparison(text: str, words: list[_Word]) -> tuple[str, str] | None:
    """The two sides of "X vs Y", "X compared to Y", "X instead of Y", "between X and Y"."""
    lowers = [word.lower for word in words]
    for index, lower in enumerate(lowers):
        following = lowers[index + 1] if index + 1 < len(lowers) else ""
        if lower in ("vs", "versus"):
            left, right = words[:index], words[index + 1 :]
        elif lower.startswith("compar") and following in ("to", "with", "against"):
            left, right = words[:index], words[index + 2 :]
        elif lower == "instead" and following == "of":
            left, right = words[:index], words[index + 2 :]
        elif lower == "between" and "and" in lowers[index + 1 :]:
            conjunction = lowers.index("and", index + 1)
            left, right = words[index + 1 : conjunction], words[conjunction + 1 :]
        else:
            continue
        left_runs, right_runs = _runs(text, left), _runs(text, right)
        if left_runs and right_runs:
            first = _span(text, _strip_leading_verbs(left_runs[-1]))
            return first, _span(text, _strip_leading_verbs(right_runs[0]))
    return None


def _analyse_query(query: str) -> _QueryAnalysis:
    text = _collapse(query)
    words = _words(text)
    lowers = [word.lower for word in words]
    wh_word = lowers[0] if lowers and lowers[0] in _WH_WORDS else None
    auxiliary = next(
        (lower for lower in lowers[(1 if wh_word else 0) :][:1] if lower in _VERB_AUXILIARIES),
        None,
    )
    is_question = text.endswith("?") or wh_word is not None
    runs = _runs(text, words)
    if wh_word == "what" and runs and runs[0][0] is words[1] and lowers[1] in _THIRD_PERSON:
        # "What causes X?", "What happens when X?": the verb is not part of the subject.
        runs = [runs[0][1:], *runs[1:]] if len(runs[0]) > 1 else runs[1:]
    if not runs:
        # Nothing but function words ("how does it work?"): the query itself is the topic.
        return _QueryAnalysis(subject="", is_question=is_question)
    first, later = runs[0], runs[1:]
    # "the size of a workflow history": an of-phrase stays with the noun it qualifies.
    of_object = later[0] if later and _joined_by(text, first, later[0], "of") else None
    if of_object is not None:
        later = later[1:]
    subject, focus = _subject(text, words, _strip_leading_verbs(first), of_object), None
    verb = _main_verb(words, first, is_last_run=len(runs) == 1) if auxiliary else None
    if verb is not None:
        subject = _subject(text, words, [word for word in first if word.start < verb.start])
    elif auxiliary and of_object is not None:
        # "How does the size of a history affect replay?": the verb follows the of-phrase.
        verb = _main_verb(words, of_object, is_last_run=not later)
        if verb is not None:
            before = [word for word in of_object if word.start < verb.start]
            subject = _subject(text, words, _strip_leading_verbs(first), before)
    elif auxiliary and later and _joined_by(text, first, later[0], "and", "or"):
        # "How do retries and timers make workflows reliable?": a joint subject.
        verb = _main_verb(words, later[0], is_last_run=len(later) == 1)
        if verb is not None:
            subject = _with_article(text, words, first, text[first[0].start : verb.start].rstrip())
    if verb is not None:
        focus = text[verb.start :].rstrip("?!. ")
    # The focus runs to the end of the query, so later runs are part of it, not extra topics.
    others = () if focus else tuple(_span(text, run) for run in later)
    return _QueryAnalysis(
        subject=subject,
        focus=focus,
        auxiliary=auxiliary,
        wh_word=wh_word,
        others=others,
        compared=_comparison(text, words),
        is_question=is_question,
    )


def _joined_by(text: str, left: list[_Word], right: list[_Word], *joiners: str) -> bool:
    """Whether only a joiner ("of", "and"), perhaps with an article, lies between two runs."""
    between = text[left[-1].end : right[0].start].lower().split()
    if len(between) == 2 and between[1] in _ARTICLES:
        between = between[:1]
    return len(between) == 1 and between[0] in joiners


def _subject(
    text: str, words: list[_Word], head: list[_Word], of_object: list[_Word] | None = None
) -> str:
    """The subject phrase, keeping a leading "the" and an of-phrase with their noun.

    "the size of a workflow history" reads as "workflow history size"; an of-phrase that is
    long or plural keeps its "of" ("the maximum size of a message").
    """
    if not head:
        return ""
    if not of_object:
        return _with_article(text, words, head, _span(text, head))
    qualifier = _span(text, of_object)
    if len(head) == 1 and len(of_object) <= 3 and not _is_plural(qualifier):
        return f"{qualifier} {head[0].text}"
    return _with_article(text, words, head, text[head[0].start : of_object[-1].end])


def _with_article(text: str, words: list[_Word], head: list[_Word], phrase: str) -> str:
    index = words.index(head[0])
    return f"the {phrase}" if index and words[index - 1].lower == "the" else phrase


def _main_verb(words: list[_Word], run: list[_Word], *, is_last_run: bool) -> _Word | None:
    """The verb after the subject in "How do <subject> <verb> ...", if it can be told apart.

    Without a part-of-speech tagger this is a guess, so it only fires on strong signals; when
    it does not, the whole run is the subject, which is safe.
    """
    known = next((i for i, word in enumerate(run) if word.lower in _VERBS), None)
    if known:  # a verb at index 0 has no subject before it ("How can I use sagas")
        return run[known]
    after = words.index(run[-1]) + 1
    if after < len(words) and words[after].lower in _FOCUS_VERBS:
        return words[after]  # "How do state stores work in Dapr?"
    last = run[-1].lower
    if is_last_run and after == len(words) and len(run) >= 2 and not _is_plural(last):
        # "How do workflows replay?": the query ends on its verb. A plural noun ends in "s",
        # a base-form verb does not ("How do workflows replay events?" has no verb found).
        return run[-1]
    return None


def _is_plural(phrase: str) -> bool:
    last = phrase.split()[-1].lower() if phrase.split() else ""
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "ics"))


def _be(phrase: str) -> str:
    return "are" if _is_plural(phrase) else "is"


def _do(phrase: str) -> str:
    return "do" if _is_plural(phrase) else "does"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


# --- Handlers ----------------------------------------------------------------------


def _plan(fields: dict[str, str]) -> dict[str, Any]:
    try:
        cap = int(fields["max_sub_questions"])
    except ValueError:
        raise OfflineModelError(
            f"max_sub_questions in the planner prompt is not a number: "
            f"{fields['max_sub_questions']!r}"
        ) from None
    query = fields["query"]
    analysis = _analyse_query(query)
    questions = _ordered_unique_questions(_facet_questions(query, analysis))
    cap = max(3, min(cap, 8))
    terms = [analysis.subject, *(analysis.compared or ()), *analysis.others]
    if analysis.focus:
        terms.append(analysis.focus)
    rationale = (
        "Offline extractive planner (no language model is configured): it took the key terms "
        f"of the question ({', '.join(repr(t) for t in _ordered_unique(terms))}) and combined "
        "them with standard research facets: definition, mechanism, trade-offs and limits, "
        "failure modes, and practice. The sub-questions come from templates, so they cover "
        "the usual angles of a technical topic rather than this question's own nuances."
    )
    return {"sub_questions": questions[:cap], "rationale": rationale}


def _facet_questions(query: str, analysis: _QueryAnalysis) -> list[str]:
    subject = analysis.subject
    be, do = _be(subject), _do(subject)
    questions: list[str] = []
    as_asked = _capitalise(_collapse(query).rstrip("?!. "))
    if analysis.is_question and as_asked:
        # The researcher's own question, most important first; it already names its subject.
        questions.append(as_asked + "?")
    if not subject:
        topic = f'"{as_asked}"' if as_asked else "the research question"
        return [
            *questions,
            f"What background do the sources give on {topic}?",
            f"What limits and risks do the sources mention for {topic}?",
            f"What examples do the sources give for {topic}?",
        ]
    if analysis.compared:
        first, second = analysis.compared
        questions += [
            f"How {_do(first)} {first} compare with {second}?",
            f"What {_be(first)} {first}?",
            f"What {_be(second)} {second}?",
            f"When {_be(first)} {first} a better choice than {second}?",
            f"What are the trade-offs and limits of {first}?",
            f"What are the trade-offs and limits of {second}?",
        ]
        return questions
    questions.append(f"What {be} {subject}?")
    if analysis.focus and analysis.wh_word == "why":
        # "Why do activities need idempotency keys?" is answered by what goes wrong without.
        questions.append(f"What would happen if {subject} did not {analysis.focus}?")
    elif analysis.focus:
        questions.append(f"What mechanism lets {subject} {analysis.focus}?")
    else:
        questions.append(f"How {do} {subject} work?")
    questions += [f"How {do} {subject} relate to {other}?" for other in analysis.others[:2]]
    questions += [
        f"What are the trade-offs and limits of {subject}?",
        f"What failure modes and risks affect {subject}?",
        f"What are practical examples of {subject} in use?",
    ]
    return questions


def _ordered_unique_questions(questions: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for question in questions:
        seen.setdefault(question.lower(), question)
    return list(seen.values())


def _queries(fields: dict[str, str]) -> dict[str, Any]:
    question = _collapse(fields["sub_question"])
    words = [word for word in _words(question) if word.lower not in _STOP_WORDS]
    key_words = [word for word in words if word.lower not in _GENERIC_WORDS]
    queries = [
        " ".join(_ordered_unique(word.text for word in words[:8])),
        " ".join(_ordered_unique(word.text for word in key_words[:8])),
    ]
    # Bigrams of adjacent key words ("durable workflows") match phrases in passages.
    queries += [
        f"{left.text} {right.text}"
        for left, right in zip(key_words, key_words[1:], strict=False)
        if not question[left.end : right.start].strip()
        and left.lower not in _VERBS
        and right.lower not in _VERBS
    ]
    queries = [q for q in _ordered_unique(queries) if q]
    return {"queries": queries[:4] or [question.rstrip("?") or question]}


def _judge(fields: dict[str, str]) -> dict[str, Any]:
    question = fields["sub_question"]
    candidates = _parse_passages(fields["candidates"])
    wanted = _term_set(question, drop=_GENERIC_WORDS) or _term_set(question)
    scored = []
    for index, passage in enumerate(candidates):
        terms = _terms(f"{passage.title}\n{passage.text}")
        found = frozenset(terms)
        coverage = _coverage(wanted, found)
        # Enough of the question's topic words, and more than one when it has several.
        if coverage >= RELEVANCE_MIN_COVERAGE and len(wanted & found) >= min(2, len(wanted)):
            frequency = sum(1 for term in terms if term in wanted) / (len(terms) or 1)
            scored.append((-coverage, -frequency, index, passage.id))
    kept = [passage_id for *_, passage_id in sorted(scored)]
    how = (
        f"share at least {RELEVANCE_MIN_COVERAGE:.0%} of the question's topic words "
        f"({', '.join(sorted(wanted)) or 'none'})"
    )
    if kept:
        notes = (
            f"Judged offline by word overlap: kept {len(kept)} of {len(candidates)} candidates "
            f"that {how}, most overlap first."
        )
    else:
        notes = f"Judged offline by word overlap: none of the {len(candidates)} candidates {how}."
    return {"relevant_passage_ids": kept, "notes": notes}


@dataclass
class _Candidate:
    """A claimable sentence and every source whose text contains it."""

    sentence: _Sentence
    source_ids: list[str]
    order: int


def _analyse(fields: dict[str, str]) -> dict[str, Any]:
    sub_questions = _parse_sub_questions(fields["sub_questions"])
    sources = _parse_source_blocks(fields["sources"], separator="\n\n", empty="(no sources)")
    candidates = _claimable_sentences(sources)
    idf = _inverse_document_frequency([c.sentence.terms for c in candidates])
    used: set[str] = set()
    claims: list[dict[str, Any]] = []
    best_by_question: dict[str, str] = {}
    for question in sub_questions:
        for candidate in _best_sentences(question.text, candidates, idf, used):
            used.add(candidate.sentence.text)
            best_by_question.setdefault(question.id, candidate.sentence.text)
            claims.append(
                {
                    "text": candidate.sentence.text,
                    "source_ids": candidate.source_ids,
                    "sub_question_id": question.id,
                }
            )
    return {"claims": claims, "summary": _analysis_summary(sub_questions, best_by_question)}


def _claimable_sentences(sources: Sequence[_Block]) -> list[_Candidate]:
    # Overlapping chunks repeat sentences; one candidate per sentence citing every source
    # that states it is what "no duplicate claims" asks for.
    by_text: dict[str, _Candidate] = {}
    for source in sources:
        for sentence in _sentences(source.text):
            if not sentence.claimable:
                continue
            candidate = by_text.get(sentence.text)
            if candidate is None:
                by_text[sentence.text] = _Candidate(sentence, [source.id], len(by_text))
            elif source.id not in candidate.source_ids:
                candidate.source_ids.append(source.id)
    return list(by_text.values())


def _inverse_document_frequency(documents: Sequence[frozenset[str]]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for terms in documents:
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
    return {term: math.log(1 + len(documents) / count) for term, count in counts.items()}


def _best_sentences(
    question: str, candidates: Sequence[_Candidate], idf: dict[str, float], used: set[str]
) -> list[_Candidate]:
    """Up to three sentences that cover most of the question's words, rare words weighing more.

    Weighting by rarity keeps a word every passage shares ("workflow") from outvoting the
    word that makes the question specific ("timer").
    """
    wanted = _term_set(question)
    ceiling = math.log(1 + max(len(candidates), 1))
    total = sum(idf.get(term, ceiling) for term in wanted)
    if not total:
        return []
    scored = []
    for candidate in candidates:
        shared = wanted & candidate.sentence.terms
        score = sum(idf[term] for term in shared) / total
        if score >= ANALYST_MIN_SCORE and len(shared) >= min(2, len(wanted)):
            if candidate.sentence.text not in used:
                scored.append((-score, -len(shared), candidate.order, candidate))
    scored.sort(key=lambda item: item[:3])
    return [candidate for *_, candidate in scored[:ANALYST_CLAIMS_PER_QUESTION]]


def _analysis_summary(sub_questions: Sequence[_SubQuestion], best: dict[str, str]) -> str:
    if not sub_questions:
        return "Offline extractive analysis: there were no sub-questions to answer."
    if not best:
        return (
            "Offline extractive analysis: no sentence in the sources matches any sub-question "
            "closely enough, so no claims were extracted."
        )
    parts = [best[q.id] for q in sub_questions if q.id in best][:SUMMARY_MAX_CLAIMS]
    unanswered = [q.id for q in sub_questions if q.id not in best]
    summary = (
        "Offline extractive analysis: claims are sentences quoted from the sources that best "
        "match each sub-question. " + " ".join(parts)
    )
    if unanswered:
        summary += f" No source sentence matched {', '.join(unanswered)}."
    return summary


def _check(fields: dict[str, str]) -> dict[str, Any]:
    return {"verdicts": [_verdict(claim) for claim in _parse_claims_to_check(fields["claims"])]}


def _verdict(claim: _ClaimToCheck) -> dict[str, Any]:
    wanted = _term_set(claim.text)
    claim_negated = _NEGATION.search(claim.text) is not None
    claim_numbers = set(_NUMBER.findall(claim.text))
    best: tuple[float, bool, int] | None = None
    best_evidence: tuple[str, str] = ("", "")
    order = 0
    for source in claim.cited:
        if not source.available:
            continue
        for sentence in _sentences(source.text):
            order += 1
            overlap = _coverage(wanted, sentence.terms)
            numbers = set(_NUMBER.findall(sentence.raw))
            disagrees = (_NEGATION.search(sentence.raw) is not None) != claim_negated or bool(
                numbers and claim_numbers - numbers
            )
            # Highest overlap first; on a tie prefer the sentence that agrees, then the first.
            key = (overlap, not disagrees, -order)
            if best is None or key > best:
                best, best_evidence = key, (sentence.raw, source.id)
    if best is None or best[0] < SUPPORT_MIN_OVERLAP:
        return {
            "claim_id": claim.id,
            "verdict": "unsupported",
            "evidence": "",
            "evidence_source_id": None,
        }
    evidence, source_id = best_evidence
    verdict = "supported" if best[1] else "contradicted"
    return {
        "claim_id": claim.id,
        "verdict": verdict,
        "evidence": evidence,
        "evidence_source_id": source_id,
    }


_Usable = tuple[_CheckedClaim, list[str]]  # a supported claim and its citable sources


def _write(fields: dict[str, str]) -> dict[str, Any]:
    query = fields["query"]
    sub_questions = _parse_sub_questions(fields["sub_questions"])
    claims = _parse_checked_claims(fields["claims"])
    titles = _parse_source_list(fields["sources"])
    # Only supported claims are stated, each citing only sources the prompt lists.
    usable = [
        (claim, cited)
        for claim in claims
        if claim.verdict == "supported"
        and (cited := [s for s in _ordered_unique(claim.source_ids) if s in titles])
    ]
    title = _report_title(query)
    groups, unanswered = _group_by_sub_question(usable, sub_questions, title)
    summary = _summary_claims(query, [[claim for claim, _ in members] for _, members in groups])
    quoted = {claim.id for claim in summary}
    sections = [_section(heading, members, quoted=quoted) for heading, members in groups]
    sections.append(
        _limits_section(
            claims,
            uncitable=sum(c.verdict == "supported" for c in claims) - len(usable),
            unanswered=unanswered,
            planned=len({q.id for q in sub_questions}),
        )
    )
    return {
        "title": title,
        "summary": _report_summary(summary),
        "sections": sections,
    }


def _group_by_sub_question(
    usable: Sequence[_Usable], sub_questions: Sequence[_SubQuestion], title: str
) -> tuple[list[tuple[str, list[_Usable]]], list[str]]:
    """Headed groups of claims, one per answered sub-question in the plan's order, then the rest.

    Also returns the texts of the sub-questions that no usable claim answers.
    """
    texts: dict[str, str] = {}
    for question in sub_questions:
        texts.setdefault(question.id, question.text)
    by_question: dict[str, list[_Usable]] = {question_id: [] for question_id in texts}
    other: list[_Usable] = []
    for item in usable:
        by_question.get(item[0].sub_question_id, other).append(item)
    groups = [
        (_question_heading(texts[question_id], title=title), members)
        for question_id, members in by_question.items()
        if members
    ]
    if other:
        groups.append(("Other findings" if groups else "Findings", other))
    unanswered = [texts[question_id] for question_id, members in by_question.items() if not members]
    return groups, unanswered


def _section(heading: str, members: Sequence[_Usable], *, quoted: set[str]) -> dict[str, Any]:
    # Opening with the sentence the summary just quoted would read as a repeat, so lead with
    # the first claim it does not quote, when there is one; the rest keep their order.
    lead = next((i for i, (claim, _) in enumerate(members) if claim.id not in quoted), 0)
    members = [members[lead], *members[:lead], *members[lead + 1 :]]
    paragraphs = []
    for start in range(0, len(members), PARAGRAPH_MAX_CLAIMS):
        chunk = members[start : start + PARAGRAPH_MAX_CLAIMS]
        paragraphs.append(
            {
                "text": " ".join(_collapse(claim.text) for claim, _ in chunk),
                "claim_ids": [claim.id for claim, _ in chunk],
                "source_ids": _ordered_unique(s for _, cited in chunk for s in cited),
            }
        )
    return {"heading": heading, "paragraphs": paragraphs}


def _question_heading(question: str, *, title: str) -> str:
    """A section heading made from a sub-question by fixed rules, without the question form.

    "What are the limits of sagas?" -> "Limits of sagas"; "How do durable timers survive
    restarts?" -> "How durable timers survive restarts"; "How do sagas compare with 2PC?" ->
    "Sagas versus 2PC". A question no rule fits keeps its words and loses its question mark.
    """
    text = _collapse(question).rstrip("?!. ")
    words = text.split()
    analysis = _analyse_query(text)
    if len(words) > 2 and words[0].lower() == "what" and words[1].lower() in ("is", "are"):
        rest = words[3:] if words[2].lower() in ("a", "an", "the") and len(words) > 3 else words[2:]
        # "What is Dapr used for": the subject ends before "used", which word lists cannot
        # tell, so a question ending on a function word keeps its form.
        heading = text if rest[-1].lower() in _STOP_WORDS else " ".join(rest)
    elif analysis.compared:
        first, second = analysis.compared
        heading = f"{first} versus {second}"
    else:
        heading = _statement_form(analysis) or text
    words = heading.split()
    if len(words) > HEADING_MAX_WORDS:
        words = words[:HEADING_MAX_WORDS]
        while len(words) > 1 and words[-1].lower().strip(",;:") in _STOP_WORDS:
            words.pop()
        heading = " ".join(words).rstrip(",;:")
    heading = _capitalise(heading) or "Findings"
    # The plan usually leads with the research question itself, which the title already says.
    return "Main findings" if heading.lower() == title.lower() else heading


def _limits_section(
    claims: Sequence[_CheckedClaim], *, uncitable: int, unanswered: Sequence[str], planned: int
) -> dict[str, Any]:
    """Say plainly what the report leaves out and how it was made; states no source facts."""
    contradicted = sum(claim.verdict == "contradicted" for claim in claims)
    unsupported = sum(claim.verdict == "unsupported" for claim in claims)
    paragraphs = []
    if contradicted or unsupported:
        paragraphs.append(
            f"{contradicted + unsupported} of the {len(claims)} extracted statements are left "
            f"out because the fact check did not confirm them against their cited passages "
            f"({contradicted} contradicted, {unsupported} unsupported); the sources do not "
            "settle those points."
        )
    if uncitable:
        paragraphs.append(
            f"{uncitable} confirmed statements are left out because none of their sources is "
            "in the report's source list."
        )
    if unanswered:
        questions = "; ".join(f'"{_collapse(text)}"' for text in unanswered)
        them = "them" if len(unanswered) > 1 else "it"
        paragraphs.append(
            f"No confirmed statement answers {len(unanswered)} of the {planned} sub-questions "
            f"of the research plan, so the sources did not settle {them}: {questions}."
        )
    paragraphs.append(
        "This report was assembled offline without a language model: every statement above is "
        "a sentence quoted from the cited sources, chosen by word overlap with the research "
        "question, so it may miss relevant material that uses different words."
    )
    return {
        "heading": "Limits of this report",
        "paragraphs": [{"text": text, "claim_ids": [], "source_ids": []} for text in paragraphs],
    }


def _report_title(query: str) -> str:
    analysis = _analyse_query(query)
    if analysis.compared:
        first, second = analysis.compared
        return _capitalise(f"{first} versus {second}")
    if statement := _statement_form(analysis):
        return statement
    if not analysis.subject:
        return _capitalise(_collapse(query).rstrip("?!. ")) or "Research report"
    return f"{_capitalise(analysis.subject)}: What the Sources Say"


def _statement_form(analysis: _QueryAnalysis) -> str | None:
    """The question "How do X recover from Y?" as "How X recover from Y", if its verb is found."""
    if not (analysis.focus and analysis.wh_word in ("how", "why") and analysis.auxiliary):
        return None
    verb, _, rest = analysis.focus.partition(" ")
    if analysis.auxiliary == "does":
        verb = _third_person(verb)
    elif analysis.auxiliary != "do":
        verb = f"{analysis.auxiliary} {verb}"
    phrase = " ".join(part for part in (analysis.wh_word, analysis.subject, verb, rest) if part)
    return _capitalise(phrase)


def _summary_claims(query: str, groups: Sequence[Sequence[_CheckedClaim]]) -> list[_CheckedClaim]:
    """The claims closest to the query, spread over the sections, in report order.

    Each section's strongest claim comes before any section's second strongest, so the summary
    covers the plan rather than only the sub-question whose words match the query best.
    """
    wanted = _term_set(query)
    ranked: list[tuple[tuple[int, float, int, int], _CheckedClaim]] = []
    for section, group in enumerate(groups):
        strength = [_coverage(wanted, _term_set(claim.text)) for claim in group]
        by_strength = sorted(range(len(group)), key=lambda i: (-strength[i], i))
        for rank, index in enumerate(by_strength):
            ranked.append(((rank, -strength[index], section, index), group[index]))
    chosen = sorted(ranked, key=lambda item: item[0])[:SUMMARY_MAX_CLAIMS]
    return [claim for _, claim in sorted(chosen, key=lambda item: item[0][2:])]


def _report_summary(claims: Sequence[_CheckedClaim]) -> str:
    """Three to five sentences: the chosen claims, or what the lack of them means."""
    sentences = [_collapse(claim.text) for claim in claims]
    fuller = "A fuller answer needs more documents on the topic or a configured language model."
    if not sentences:
        sentences = [
            "The sources retrieved for this question contain no statement that the fact check "
            "could confirm.",
            "This report therefore states no findings.",
            fuller,
        ]
    elif len(sentences) < SUMMARY_MIN_SENTENCES:
        plural = "s" if len(sentences) > 1 else ""
        sentences += [
            f"The sources retrieved for this question contain only {len(sentences)} "
            f"statement{plural} that the fact check could confirm.",
            fuller,
        ][: SUMMARY_MIN_SENTENCES - len(sentences)]
    return " ".join(sentences)


@dataclass(frozen=True)
class _Handler:
    prompt: str
    fields: frozenset[str]
    run: Callable[[dict[str, str]], dict[str, Any]]


_HANDLERS: dict[str, _Handler] = {
    "PlannerOutput": _Handler("planner", frozenset({"query", "max_sub_questions"}), _plan),
    "SearchQueries": _Handler("source_finder_queries", frozenset({"sub_question"}), _queries),
    "RelevanceJudgement": _Handler(
        "source_finder_relevance", frozenset({"sub_question", "candidates"}), _judge
    ),
    "AnalystOutput": _Handler(
        "analyst", frozenset({"query", "sub_questions", "sources"}), _analyse
    ),
    "FactCheckOutput": _Handler("fact_checker", frozenset({"claims"}), _check),
    "WriterOutput": _Handler(
        "writer", frozenset({"query", "sub_questions", "claims", "sources"}), _write
    ),
}
