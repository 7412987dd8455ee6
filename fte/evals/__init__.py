"""Evaluation of research quality: suites, metrics, a scorecard and a CI gate.

`python -m fte eval [SUITE ...]` runs them (see `fte.evals.command`). The suites' data
(questions, labels, fault scripts, cassettes, the baseline) lives in the top-level `evals/`
folder; the code lives here:

| module | what |
| --- | --- |
| `retrieval` | suite 1: page-level hit@k, recall@k and MRR of the corpus search |
| `integrity` | suite 2: a lying model through the pipeline; which planted faults reach the report |
| `e2e` | suite 3: questions replayed from cassettes: key facts, citations, coverage, cost |
| `failures` | suite 4: scripted HTTP faults; the run's outcome and the requests it took |
| `judge` | suite 5: an LLM judge's rubric scores, recorded so they replay |
| `metrics` | the metric functions (pure) |
| `scorecard` | the scorecard, the baseline comparison, the table, Markdown and HTML views |
| `engine`, `transports`, `cassettes` | runs on the real engine with in-process model servers |
"""
