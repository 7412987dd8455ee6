"""Suite 1, retrieval: does the corpus search find the pages that answer a question?

Each question is labelled with the pages (documents) that answer it. Two rankings are
judged per question, both over the pipeline's own search (`LocalCorpus`, BM25):

- single query: the question itself, as one search;
- multi-query: what a source finder does with the offline model: the queries agent's
  queries for the question (the question itself among them) are each searched, and the
  passages are merged by their best score, exactly as the `fte.search_sources` activity does.

Passages are ranked `SEARCH_DEPTH` deep and folded into pages in order of first
appearance; hit@k and recall@k look at the first k pages, MRR at the first relevant one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from fte.agents import offline_model
from fte.agents.source_finder import QUERIES, QueriesInput
from fte.contracts import OFFLINE_MODEL, Contract, Passage
from fte.errors import UsageError
from fte.evals import metrics
from fte.evals.context import EvalContext
from fte.evals.data import corpus_dir, load_toml
from fte.evals.scorecard import Case, Metric, SuiteResult
from fte.sources import LocalCorpus, SourceProvider

NAME = "retrieval"
DESCRIPTION = (
    "Page-level retrieval over labelled questions: the question as a single query, and the "
    "source finder's multi-query search with the offline queries agent."
)
FILES = ("retrieval/dapr-docs.toml", "retrieval/examples.toml")
KS = (3, 8)
SEARCH_DEPTH = 50


class Question(Contract):
    id: str
    question: str
    relevant: list[str] = Field(min_length=1, description="Pages relative to the corpus root.")


class QuestionSet(Contract):
    corpus: str
    questions: list[Question] = Field(min_length=1)


def multi_query_search(corpus: SourceProvider, queries: Sequence[str], limit: int) -> list[Passage]:
    """Each query searched, passages merged by best score: the `fte.search_sources` ranking."""
    best: dict[str, Passage] = {}
    for query in queries:
        for passage in corpus.search(query, limit=limit):
            seen = best.get(passage.passage_id)
            if seen is None or passage.score > seen.score:
                best[passage.passage_id] = passage
    return sorted(best.values(), key=lambda p: (-p.score, p.passage_id))[:limit]


def offline_queries(question: str) -> list[str]:
    """The queries a source finder searches for `question` with the offline model."""
    run = QUERIES.run(offline_model(), OFFLINE_MODEL, QueriesInput(sub_question=question))
    return list(run.result.queries)


def _pages(passages: Sequence[Passage], root: Path) -> list[str]:
    return metrics.ranked_pages(Path(p.location).relative_to(root).as_posix() for p in passages)


def _metric_names(corpus: str, mode: str) -> dict[str, str]:
    prefix = f"retrieval_{corpus.replace('-', '_')}_" + ("multi_query_" if mode == "multi" else "")
    names = {f"hit_at_{k}": f"{prefix}hit_at_{k}" for k in KS}
    names |= {f"recall_at_{k}": f"{prefix}recall_at_{k}" for k in KS}
    names["mrr"] = f"{prefix}mrr"
    return names


def _scores(ranked: Sequence[str], relevant: Sequence[str]) -> dict[str, float]:
    scores = {f"hit_at_{k}": metrics.hit_at(ranked, relevant, k) for k in KS}
    scores |= {f"recall_at_{k}": metrics.recall_at(ranked, relevant, k) for k in KS}
    scores["mrr"] = metrics.reciprocal_rank(ranked, relevant)
    return scores


_MEANING = {
    "hit_at_3": "share of questions with a relevant page among the first 3 pages",
    "hit_at_8": "share of questions with a relevant page among the first 8 pages",
    "recall_at_3": "share of the relevant pages found among the first 3 pages",
    "recall_at_8": "share of the relevant pages found among the first 8 pages",
    "mrr": "mean of 1/rank of the first relevant page",
}


def run(ctx: EvalContext) -> SuiteResult:
    suite = SuiteResult(name=NAME, description=DESCRIPTION)
    for file in FILES:
        questions = load_toml(file, QuestionSet)
        root = corpus_dir(questions.corpus)
        corpus = LocalCorpus.load(root)
        pages = {Path(p.location).relative_to(root).as_posix() for p in corpus.passages}
        per_mode: dict[str, list[dict[str, float]]] = {"single": [], "multi": []}
        for number, q in enumerate(questions.questions, 1):
            missing = [page for page in q.relevant if page not in pages]
            if missing:
                raise UsageError(f"{file}: {q.id} labels pages not in the corpus: {missing}")
            single = _pages(corpus.search(q.question, limit=SEARCH_DEPTH), root)
            multi = _pages(
                multi_query_search(corpus, offline_queries(q.question), SEARCH_DEPTH), root
            )
            values: dict[str, float] = {}
            for mode, ranked in (("single", single), ("multi", multi)):
                scores = _scores(ranked, q.relevant)
                per_mode[mode].append(scores)
                names = _metric_names(questions.corpus, mode)
                values |= {names[key]: value for key, value in scores.items()}
            note = ""
            if not metrics.hit_at(multi, q.relevant, 8):
                note = f"no relevant page in the multi-query top 8; it ranked first: {multi[:3]}"
            suite.cases.append(Case(id=f"{questions.corpus}/{q.id}", values=values, note=note))
            ctx.progress(
                NAME,
                number,
                len(questions.questions),
                f"{questions.corpus}/{q.id}",
                f"hit@8 single {scores_hit(single, q.relevant)} multi "
                f"{scores_hit(multi, q.relevant)}",
            )
        for mode in ("single", "multi"):
            names = _metric_names(questions.corpus, mode)
            how = "single query" if mode == "single" else "multi-query"
            for key, name in names.items():
                suite.metrics.append(
                    Metric(
                        name=name,
                        value=round(metrics.mean(s[key] for s in per_mode[mode]), 4),
                        description=f"{questions.corpus}, {how}: {_MEANING[key]}",
                    )
                )
    return suite


def scores_hit(ranked: Sequence[str], relevant: Sequence[str]) -> str:
    return "yes" if metrics.hit_at(ranked, relevant, 8) else "no"
