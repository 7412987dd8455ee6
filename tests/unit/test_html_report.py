"""The HTML view of a report: self-contained, safe with hostile text, numbered like the Markdown.

The page is parsed with the stdlib `html.parser` into a small element tree, so the checks are
about elements and attributes a browser would see, not about substrings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest

from fte.citations import CheckedParagraph, CheckedSection
from fte.contracts import (
    OFFLINE_MODEL,
    AgentModels,
    CheckedClaim,
    CitationIntegrity,
    Claim,
    Source,
    SubQuestion,
    TokenUsage,
)
from fte.errors import FteError
from fte.html_report import render_html
from fte.pricing import PRICES_ENV
from fte.report import Report, md, number_sources, render_markdown

XSS = "<script>alert(1)</script>"
ATTRIBUTE_BREAKOUT = '"><img src=x onerror="alert(2)">'
OFFLINE_ENDPOINT = "the built-in offline extractive model (no LLM configured)"
ONLINE_ENDPOINT = "OpenAI-compatible server for tests"
RETRIEVED_AT = "2026-11-25T10:00:00Z"
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Elements that load something or run something; none belongs in a self-contained report.
RESOURCE_ELEMENTS = frozenset(
    {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source", "base"}
)


@pytest.fixture(autouse=True)
def no_price_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRICES_ENV, raising=False)


# -- a tiny DOM ---------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> list[Element]:
        found = [self]
        for child in self.children:
            if isinstance(child, Element):
                found += child.iter()
        return found

    def find_all(self, tag: str, cls: str | None = None) -> list[Element]:
        return [e for e in self.iter() if e.tag == tag and (cls is None or cls in e.classes)]


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.doctype: str | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID_ELEMENTS:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


@dataclass
class Page:
    source: str
    root: Element
    doctype: str | None

    def by_id(self) -> dict[str, Element]:
        return {e.attrs["id"]: e for e in self.root.iter() if "id" in e.attrs}


def parse(page: str) -> Page:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements: " + ", ".join(
        e.tag for e in builder.stack[1:]
    )
    return Page(page, builder.root, builder.doctype)


# -- a report -------------------------------------------------------------------------------


def source(number: int, title: str, location: str | None = None) -> Source:
    return Source(
        id=f"S{number}",
        passage_id=f"p{number}",
        title=title,
        location=location or f"/corpus/doc{number}.md",
        text=f"passage {number}",
        retrieved_at=RETRIEVED_AT,
        sub_question_id="q1",
    )


def checked(claim_id: str, verdict: str, evidence: str, source_id: str | None) -> CheckedClaim:
    return CheckedClaim.model_validate(
        {
            "claim": Claim(id=claim_id, text=f"Claim {claim_id} text", source_ids=["S1"]),
            "verdict": verdict,
            "evidence": evidence,
            "evidence_source_id": source_id,
        }
    )


def build_report(
    *, title: str = "Durable workflows", llm_endpoint: str = ONLINE_ENDPOINT
) -> Report:
    sources = [
        source(1, "Workflow engines"),
        source(2, f"Timers {XSS}", location=f"/corpus/{ATTRIBUTE_BREAKOUT}.md"),
        source(3, "Sagas", location="https://example.org/sagas"),
        source(4, "Never cited", location="javascript:alert(3)"),
    ]
    sections = [
        CheckedSection(
            heading="Recovery",
            paragraphs=[
                # S2 is cited first, so it becomes [1] although its ID is S2.
                CheckedParagraph(
                    text="Replay rebuilds state.", claim_ids=["C1"], source_ids=["S2"]
                ),
                CheckedParagraph(
                    text=f"Timers survive restarts {XSS}.",
                    claim_ids=["C2"],
                    source_ids=["S1", "S2"],
                ),
            ],
        ),
        CheckedSection(
            heading=f"Compensation {XSS}",
            paragraphs=[
                CheckedParagraph(
                    text="Sagas undo completed steps.",
                    claim_ids=["C3"],
                    source_ids=["S3"],
                    unknown_source_ids=["S9"],
                    unsupported_claim_ids=["C3"],
                ),
                CheckedParagraph(text="Nothing cited here.", claim_ids=[], source_ids=[]),
            ],
        ),
    ]
    claims = [
        checked("C1", "supported", "Replay rebuilds state from history.", "S2"),
        checked("C2", "supported", f"A passage quoting {XSS} verbatim.", "S1"),
        checked("C3", "contradicted", "", "S3"),
        checked("C4", "unsupported", "", None),
        checked("C5", "supported", "Uncited evidence.", "S4"),
        checked("C6", "unsupported", "", "S77"),
    ]
    usage_by_agent = {
        "planner": TokenUsage(prompt_tokens=1200, completion_tokens=300, calls=1),
        "writer": TokenUsage(prompt_tokens=9000, completion_tokens=2500, calls=2),
    }
    return Report(
        task_id="task-html-1",
        query=f"How do durable workflows recover? {XSS}",
        title=title,
        summary=f"Workflows replay their history.\n\nSecond summary paragraph {XSS}.",
        sections=sections,
        sources=number_sources(sections, sources),
        sub_questions=[
            SubQuestion(id="q1", text="How does replay work?"),
            SubQuestion(id="q2", text=f"How do timers work? {XSS}"),
        ],
        plan_rationale=f"Cover replay and timers {XSS}.",
        claims=claims,
        integrity=CitationIntegrity(
            policy="mark", citations_checked=5, unknown_sources=1, unsupported_claims=1, marked=1
        ),
        usage_by_agent=usage_by_agent,
        usage_total=TokenUsage(prompt_tokens=10200, completion_tokens=2800, calls=3),
        stage_seconds={"planning": 1.5, "finding_sources": 75.25, "writing": 3.0},
        models=AgentModels(),
        started_at="2026-11-25T10:00:00+00:00",
        finished_at="2026-11-25T10:01:30+00:00",
        llm_endpoint=llm_endpoint,
    )


def stored(report: Report) -> dict[str, Any]:
    """The document exactly as the finalize activity stores it, through a JSON round trip."""
    document = report.model_dump(mode="json")
    document["markdown"] = render_markdown(report)
    loaded: dict[str, Any] = json.loads(json.dumps(document))
    return loaded


def render(report: Report) -> Page:
    return parse(render_html(stored(report)))


# -- tests ------------------------------------------------------------------------------------


def test_is_one_complete_document_with_inline_style() -> None:
    page = render(build_report())

    assert page.doctype is not None and page.doctype.lower() == "doctype html"
    assert page.source.lstrip().lower().startswith("<!doctype html>")
    (html_element,) = page.root.find_all("html")
    assert [c.tag for c in html_element.children if isinstance(c, Element)] == ["head", "body"]
    (style,) = page.root.find_all("style")
    assert "font" in style.text()
    assert page.root.find_all("title")[0].text() == "Durable workflows"
    (summary,) = page.root.find_all("section", "summary")
    assert [p.text() for p in summary.find_all("p")] == [
        "Workflows replay their history.",
        f"Second summary paragraph {XSS}.",
    ]


def test_loads_nothing_from_anywhere() -> None:
    page = render(build_report())

    elements = page.root.iter()
    assert not [e.tag for e in elements if e.tag in RESOURCE_ELEMENTS]
    assert not [e.tag for e in elements if "src" in e.attrs or "srcset" in e.attrs]
    for element in elements:
        for name, value in element.attrs.items():
            if re.search(r"(?i)\b(https?:)?//", value):
                # Only a source's own web address may appear, as a link a reader can follow.
                assert (element.tag, name) == ("a", "href"), (element.tag, name, value)
    style = page.root.find_all("style")[0].text()
    assert "url(" not in style and "@import" not in style and "//" not in style
    # Even a missed escape could not run script or load anything: the page forbids both.
    (csp,) = [m for m in page.root.find_all("meta") if m.attrs.get("http-equiv")]
    assert "default-src 'none'" in csp.attrs["content"]
    assert "script-src" not in csp.attrs["content"]


def test_every_citation_links_to_its_numbered_source() -> None:
    report = build_report()
    page = render(report)
    ids = page.by_id()

    cites = [a for sup in page.root.find_all("sup", "cite") for a in sup.find_all("a")]
    assert cites
    for link in cites:
        number = re.fullmatch(r"\[(\d+)\]", link.text())
        assert number is not None, link.text()
        target = ids[link.attrs["href"].removeprefix("#")]
        assert target.tag == "li"
        assert target.attrs["value"] == number[1]
        expected = next(s for s in report.sources if s.number == int(number[1]))
        assert expected.title in target.text()


def test_numbers_match_the_markdown() -> None:
    report = build_report()
    page = render(report)
    markdown = render_markdown(report)

    # Per paragraph, the citation marks in the same order.
    html_marks = [
        [a.text() for a in p.find_all("a") if a.attrs.get("href", "").startswith("#source-")]
        for section in page.root.find_all("section")
        if section.attrs.get("id", "").startswith("section-")
        for p in section.find_all("p")
    ]
    body = markdown.split("\n## ", 1)[1].split("\n## Sources", 1)[0]
    md_marks = [
        re.findall(r"\[\d+\]", line)
        for line in body.splitlines()[1:]
        if line.strip() and not line.startswith("## ")
    ]
    assert html_marks == md_marks
    assert html_marks[0] == ["[1]"]  # S2 was cited first
    assert html_marks[1] == ["[2]", "[1]"]

    # The numbered source list, number by number.
    md_sources = dict(re.findall(r"^(\d+)\. (.+?) — ", markdown, flags=re.MULTILINE))
    (listed,) = page.root.find_all("ol", "sources")
    html_sources = {
        li.attrs["value"]: li.find_all("strong")[0].text() for li in listed.find_all("li")
    }
    # Both show the title's text; Markdown escapes its markup, as it does all source text.
    assert md_sources == {"1": md(f"Timers {XSS}"), "2": "Workflow engines", "3": "Sagas"}
    assert html_sources == {"1": f"Timers {XSS}", "2": "Workflow engines", "3": "Sagas"}


def test_uncited_sources_are_listed_apart_without_a_number() -> None:
    page = render(build_report())

    (uncited,) = page.root.find_all("ul", "uncited")
    (entry,) = uncited.find_all("li")
    assert "Never cited" in entry.text()
    assert "value" not in entry.attrs
    assert "Never cited" not in page.root.find_all("ol", "sources")[0].text()


def test_hostile_text_is_escaped_everywhere() -> None:
    page = render(build_report(title=XSS))

    assert XSS not in page.source
    assert "<img" not in page.source
    assert not page.root.find_all("script") and not page.root.find_all("img")
    assert not [e for e in page.root.iter() for name in e.attrs if name.startswith("on")]
    # The text is still there, as text: in the title, heading, passage quote and source list.
    assert page.root.find_all("title")[0].text() == XSS
    assert page.root.find_all("h1")[0].text() == XSS
    assert any(XSS in td.text() for td in page.root.find_all("blockquote", "evidence"))
    assert any(XSS in p.text() for p in page.root.find_all("p"))
    assert any(ATTRIBUTE_BREAKOUT in li.text() for li in page.root.find_all("li"))


def test_only_web_addresses_become_links() -> None:
    page = render(build_report())

    hrefs = [a.attrs["href"] for a in page.root.find_all("a")]
    assert "https://example.org/sagas" in hrefs
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    assert all(h.startswith("#") or h.startswith("https://example.org/") for h in hrefs)


def test_flagged_paragraphs_are_marked() -> None:
    page = render(build_report())

    (flagged,) = page.root.find_all("p", "flagged")
    assert "Sagas undo completed steps." in flagged.text()
    (flag,) = flagged.find_all("span", "flag")
    assert "unverified source S9" in flag.text()
    assert "claim C3 not supported by its sources" in flag.text()
    # The unsupported claim links to its row in the claims table.
    (claim_link,) = flag.find_all("a")
    row = page.by_id()[claim_link.attrs["href"].removeprefix("#")]
    assert row.tag == "tr" and "Claim C3 text" in row.text()
    unflagged = [p for p in page.root.find_all("p") if "Replay rebuilds state." in p.text()]
    assert unflagged and "flagged" not in unflagged[0].classes


def test_claims_table_shows_verdicts_and_evidence_sources() -> None:
    report = build_report()
    page = render(report)
    numbers = {s.id: s.number for s in report.sources}

    rows = {
        tr.find_all("code")[0].text(): tr
        for tr in page.root.find_all("tr")
        if tr.attrs.get("id", "").startswith("claim-")
    }
    assert list(rows) == ["C1", "C2", "C3", "C4", "C5", "C6"]
    for claim in report.claims:
        row = rows[claim.claim.id]
        (verdict,) = [td for td in row.find_all("td") if "verdict" in td.classes]
        assert f"verdict-{claim.verdict}" in verdict.classes
        assert claim.verdict in verdict.text()
    assert rows["C1"].find_all("a")[0].text() == f"[{numbers['S2']}]"
    assert rows["C5"].find_all("a")[0].attrs["href"] == "#source-uncited-1"
    assert not rows["C6"].find_all("a") and "S77 (not retrieved)" in rows["C6"].text()
    assert "Replay rebuilds state from history." in rows["C1"].text()


def test_run_details() -> None:
    page = render(build_report())
    (details,) = [s for s in page.root.find_all("section") if s.attrs.get("id") == "run-details"]
    text = details.text()

    assert "How does replay work?" in text and "Cover replay and timers" in text
    (integrity,) = details.find_all("table", "integrity")
    assert "Citations checked5" in integrity.text().replace("\n", "")
    (tokens,) = details.find_all("table", "tokens")
    planner = next(tr for tr in tokens.find_all("tr") if tr.text().startswith("planner"))
    assert [td.text() for td in planner.find_all("td")][:6] == [
        "planner",
        "gpt-4o-mini",
        "1",
        "1,200",
        "300",
        "1,500",
    ]
    assert planner.find_all("td")[6].text().startswith("$")
    (timings,) = details.find_all("table", "timings")
    assert "finding_sources" in timings.text() and "1 min 15 s" in timings.text()
    assert "2026-11-25T10:00:00+00:00" in text and "1 min 30 s" in text


def test_offline_runs_carry_a_banner_and_cost_nothing() -> None:
    page = render(build_report(llm_endpoint=OFFLINE_ENDPOINT))

    (banner,) = [e for e in page.root.iter() if {"banner", "offline"} <= e.classes]
    assert OFFLINE_ENDPOINT in banner.text()
    (header,) = page.root.find_all("header")
    assert banner in header.iter()
    (tokens,) = page.root.find_all("table", "tokens")
    costs = [tr.find_all("td")[6].text() for tr in tokens.find_all("tr") if tr.find_all("td")]
    assert costs and set(costs) == {"$0.0000"}


def test_online_runs_name_the_server_without_a_banner() -> None:
    page = render(build_report(llm_endpoint=ONLINE_ENDPOINT))

    assert not [e for e in page.root.iter() if "banner" in e.classes]
    (line,) = page.root.find_all("p", "generated-by")
    assert ONLINE_ENDPOINT in line.text()


def test_unknown_model_price_is_shown_as_unknown() -> None:
    report = build_report().model_copy(update={"models": AgentModels(writer="local-llama")})
    page = render(report)

    (tokens,) = page.root.find_all("table", "tokens")
    writer = next(tr for tr in tokens.find_all("tr") if tr.text().startswith("writer"))
    assert writer.find_all("td")[6].text() == "unknown"
    (total,) = tokens.find_all("tfoot")
    assert total.find_all("td")[6].text() == "unknown"


def test_offline_model_name_prices_at_zero() -> None:
    models = AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL))
    report = build_report().model_copy(update={"models": models})
    page = render(report)

    (total,) = page.root.find_all("table", "tokens")[0].find_all("tfoot")
    assert total.find_all("td")[6].text() == "$0.0000"


def test_a_document_that_is_not_a_report_is_refused_in_one_line() -> None:
    document = stored(build_report())
    del document["sources"]

    with pytest.raises(FteError, match="task-html-1 is not in the report format") as caught:
        render_html(document)
    assert "\n" not in str(caught.value)
