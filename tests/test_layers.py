"""The package's layers import only downward, and the pure layers never import torch."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "nnscale"

# Lower numbers are lower layers. A module may import its own package and anything below its layer.
LAYERS = {
    "errors": 0, "records": 0, "records_stats": 0, "records_stats_legacy": 0, "linkcap": 0,
    "format": 0, "environment": 0, "lifeline": 0, "__init__": 0,
    "host": 0,  # this host's cores and CPU flags: a leaf
    "__main__": 7,
    "zoo": 1, "stats": 1, "store": 1,
    "kerasnets": 1,  # the zoo's models in Keras 3; imports only errors, never torch
    "netstats": 2,
    "measure": 3, "predict": 3,
    "distributed": 4,  # builds on measure's methodology
    "study": 5, "report": 5,
    "glue": 5,  # the torch-side inputs of `nnscale predict` / `nnscale report` (netstats, stored runs)
    "cli": 6,
}
TORCH_FREE = {"errors", "records", "records_stats", "records_stats_legacy", "linkcap", "format", "host",
              "stats", "store", "predict", "report", "kerasnets"}


def _top(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_every_module_has_a_layer():
    for path in PKG.rglob("*.py"):
        assert _top(path) in LAYERS, f"{path} is in no layer; add it to LAYERS"


def test_imports_go_only_downward_and_pure_layers_skip_torch():
    problems = []
    for path in PKG.rglob("*.py"):
        top = _top(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "torch" and top in TORCH_FREE:
                problems.append(f"{path.relative_to(PKG)} imports torch")
            if parts[0] == "nnscale" and len(parts) > 1 and parts[1] in LAYERS:
                other = parts[1]
                if other != top and LAYERS[other] > LAYERS[top]:
                    problems.append(f"{path.relative_to(PKG)} ({top}) imports {other} from above")
    assert not problems, problems
