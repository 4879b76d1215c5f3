"""`Store.open_run`: the one way a command opens its run — it creates or resumes it and returns it
(name included), on SQLite and PostgreSQL, so no caller lists the runs to find its own again."""

from __future__ import annotations

import re

import pytest

from nnscale.errors import UserError
from nnscale.store import open_store


def test_a_new_run_comes_back_named_and_created(db_url):
    with open_store(db_url) as store:
        first = store.open_run(None, "nnscale sweep resnet18", {"host": "h"}, '{"sweep": {}}')
        second = store.open_run(None, "nnscale tune resnet18", {"host": "h"})
        assert re.fullmatch(r"run-\d{8}-\d{6}", first.name)
        assert re.fullmatch(r"run-\d{8}-\d{6}(-2)?", second.name)
        assert second.name != first.name
        assert first.created and second.created
        assert (first.command_line, first.environment, first.notes, first.n_measurements) == (
            "nnscale sweep resnet18", {"host": "h"}, '{"sweep": {}}', 0)
        assert [r.name for r in store.runs()] == [first.name, second.name]
        assert [r.id for r in store.runs()] == [first.id, second.id]
        assert not any(r.created for r in store.runs())  # only the creating call says so


def test_resume_returns_the_stored_run_without_building_an_environment(db_url):
    calls = []

    def environment() -> dict:
        calls.append(1)
        return {"host": "first"}

    with open_store(db_url) as store:
        made = store.open_run("fx", "nnscale run --run fx", environment, "n1", resume=True)
        again = store.open_run("fx", "nnscale run --run fx --budget 9", environment, "n2", resume=True)
    assert made.created and not again.created
    assert calls == [1]  # the resumed run keeps its own environment: no second probe
    assert (again.id, again.name, again.command_line, again.environment, again.notes) == (
        made.id, "fx", "nnscale run --run fx", {"host": "first"}, "n1")


def test_an_existing_name_without_resume_is_refused_and_kept(db_url):
    with open_store(db_url) as store:
        made = store.open_run("fx", "first", {"a": 1})
        with pytest.raises(UserError, match=r"run 'fx' already exists .* choose another name"):
            store.open_run("fx", "second", {"a": 2})
        assert [(r.name, r.command_line, r.environment) for r in store.runs()] == [
            ("fx", "first", {"a": 1})]
        assert store.create_run("fx", exist_ok=True) == made.id
