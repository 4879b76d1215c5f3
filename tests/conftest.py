"""Suite-wide collection rules: the pytest-xdist groups (`make test` runs `-n 2 --dist loadgroup`).

Tests carrying the same `xdist_group` mark run on one worker, one after another; the rest spread
over the workers. Tests mark their own group where one resource is theirs alone (the SLURM node,
the network namespaces' fixed addresses and port, a module's expensive shared fixture, a timing
bound). The PostgreSQL group is given here, because which tests reach the server is decided by a
fixture (`pg_url`, tests/store/conftest.py) or by the `db_url` parameter, not by the module.
"""

from __future__ import annotations

import pytest

POSTGRES_FIXTURES = {"pg_url", "pg_server_url"}


def _reaches_postgres(item: pytest.Item) -> bool:
    if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("db_url") == "postgresql"


def _group(item: pytest.Item) -> str | None:
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})
    return "_".join(names) or None


# tryfirst: the marks must be on the items before xdist's hook (on each worker) reads them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None and _reaches_postgres(item):
            item.add_marker(pytest.mark.xdist_group("postgresql"))


class _GroupSuffix:
    """The "@group" suffix of node ids that `--dist loadgroup` schedules by, set where xdist's is lost.

    xdist's worker appends the suffix by assigning `item._nodeid` (xdist 3.8.0, remote.py,
    WorkerInteractor.pytest_collection_modifyitems); pytest 9.2 reads a node id from `Node._id` (a
    `_pytest.nodeid.NodeId`), so that assignment has no effect and every group would be scattered
    over the workers. Where the suffix is missing after xdist's hook, it is set the way pytest 9.2
    stores it (NodeId.parse keeps the string as given). With an xdist that sets it, nothing is done.
    """

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not getattr(config.option, "loadgroup", False):  # set on xdist's workers only
            return
        from _pytest.nodeid import NodeId

        for item in items:
            group = _group(item)
            if group and not item.nodeid.endswith(f"@{group}"):
                item._id = NodeId.parse(f"{item.nodeid}@{group}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_GroupSuffix(), "nnscale-xdist-group-suffix")
