"""The README's promises: its topic table is the catalog's, its commands exist in CI."""

from __future__ import annotations

from netpilot.kafka.cli import markdown_table
from tests.conftest import REPO


def test_readme_topic_table_matches_catalog() -> None:
    assert markdown_table() in (REPO / "README.md").read_text(), (
        "README topic table is stale: paste `netpilot topics list --markdown`"
    )


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
