"""Bounds the command line states in its help, kept where importing them costs nothing.

`fte --help` builds every subcommand's parser; these numbers used to come from the pydantic
contracts, whose import alone took longer than the whole help should. The contracts import
them from here, so each bound is still written once.
"""

from __future__ import annotations

from typing import Literal, get_args

# How many sub-questions a plan has, whoever writes it (planner, reviewer edit, settings):
# at most `--max-sub-questions` (default 8, up to 16: each is a source finder in parallel).
MIN_SUB_QUESTIONS = 3
DEFAULT_SUB_QUESTIONS = 8
MAX_SUB_QUESTIONS = 16

# What a schedule does when a fire comes while its previous run still runs.
Overlap = Literal["skip", "buffer-one", "cancel-previous"]
OVERLAP_POLICIES: tuple[Overlap, ...] = get_args(Overlap)

# `<name>-<YYYYMMDDTHHMMSSZ>` must still be a valid task ID (64 characters at most).
MAX_SCHEDULE_NAME = 64 - len("-20260101T000000Z")
