"""`make bench` writes its figures into the blocks of docs/performance.md and nothing else: the
prose around them is the page's own and survives every run."""

from __future__ import annotations

import pytest

from bench.report import PERFORMANCE, SCALING, splice

PAGE = """# Performance

Prose a person wrote.

<!-- bench:summary -->
| old | table |
<!-- /bench:summary -->

More prose, with a hand edit.
"""


def test_a_run_replaces_its_blocks_and_keeps_the_prose_around_them():
    page = splice(PAGE, "summary", ["| new | table |", "|---|---|"])
    assert page == PAGE.replace("| old | table |", "| new | table |\n|---|---|")
    assert splice(page, "summary", ["| new | table |", "|---|---|"]) == page


def test_a_page_without_the_block_is_refused_not_rewritten():
    with pytest.raises(ValueError, match="bench:results"):
        splice(PAGE, "results", ["x"])


def test_the_pages_have_every_block_a_run_writes():
    text = PERFORMANCE.read_text()
    for name in ("run", "summary", "method", "machine", "results", "profile", "before-after"):
        assert f"<!-- bench:{name} -->" in text and f"<!-- /bench:{name} -->" in text
    assert "<!-- bench:layers -->" in SCALING.read_text()
