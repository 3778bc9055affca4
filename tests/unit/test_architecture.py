"""The layers of the package: vision/ is the torch-free ground floor, data/ builds on it, and neither
reaches up into inference/, web/ or an app; inside inference/ the frame pipeline imports downwards only; no
module imports itself round a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "facemask"
UPPER = ("facemask.inference", "facemask.web", "facemask.train", "facemask.evaluate", "facemask.crossval",
         "facemask.bench", "facemask.cli")  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", ["vision", "data"])
def test_lower_layers_never_import_upper_ones(layer: str) -> None:
    files = sorted((PACKAGE / layer).glob("*.py"))
    assert files
    offending = {
        f"{path.name}: {name}" for path in files for name in imported_modules(path) if name.startswith(UPPER)
    }
    assert not offending


#: The frame pipeline's layers, lowest first: each imports from inference/ only modules listed before it.
FRAME_PIPELINE = ["records", "classifier", "frames", "tracking", "logfiles", "events", "streams", "sources",
                  "session", "realtime"]  # fmt: skip


def test_the_frame_pipeline_imports_downwards_only() -> None:
    offending = []
    for index, name in enumerate(FRAME_PIPELINE):
        inference = {
            module.removeprefix("facemask.inference.")
            for module in imported_modules(PACKAGE / "inference" / f"{name}.py")
            if module.startswith("facemask.inference.")
        }
        offending += [
            f"{name} imports {module}" for module in sorted(inference - set(FRAME_PIPELINE[:index]))
        ]
    assert not offending


def module_graph() -> dict[str, set[str]]:
    """Each facemask module and the facemask modules it imports (at the top, inside a function, or for types)."""
    names = {
        ".".join(("facemask", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        ): path
        for path in PACKAGE.rglob("*.py")
    }
    return {name: imported_modules(path) & names.keys() for name, path in names.items()}


def circles(graph: dict[str, set[str]]) -> list[str]:
    """Every import circle a depth-first walk meets, as ``a -> b -> a``."""
    state, found = {}, []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                found.append(" -> ".join([*path[path.index(other) :], other]))
            elif other not in state:
                visit(other, [*path, other])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_no_import_circle() -> None:
    graph = module_graph()
    assert graph["facemask.inference.session"] >= {"facemask.inference.tracking"}, "the graph is read"
    assert not circles(graph)


def test_a_circle_is_found() -> None:
    """The check can fail: realtime -> tracking -> realtime, as it was."""
    graph = {"realtime": {"tracking", "frames"}, "tracking": {"realtime"}, "frames": set()}
    assert circles(graph) == ["realtime -> tracking -> realtime"]


BLOCK_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "lightning", "torchmetrics"):
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, NoTorch())
"""


def test_vision_and_the_onnx_path_work_without_torch(tmp_path: Path) -> None:
    """The floor and an exported model's path (decision rule, ONNX classifier) with torch unimportable."""
    script = (
        BLOCK_TORCH
        + """
import numpy as np
from PIL import Image
from facemask.vision.crops import FaceCropper
from facemask.vision.faces import Face
from facemask.vision.images import load_frame
import facemask.decision, facemask.inference.classifier, facemask.inference.predict, facemask.inference.realtime
import facemask.cli, facemask.web.server, facemask.web.entrance, facemask.inference.session
import facemask.inference.sources
facemask.cli.parser()
Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(sys.argv[1])
frame = load_frame(sys.argv[1])
crops = FaceCropper(lambda f: [Face((10, 10, 50, 50), 0.9)], 0.2)(frame)[1]
assert crops.shape == (1, 28, 28)
try:
    import torch
except ImportError:
    print("ok")
"""
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "frame.png")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_one_decision_rule() -> None:
    """No module compares a probability with a threshold but facemask.decision."""
    rule_like = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                "threshold" in ast.unparse(side) and "score_threshold" not in ast.unparse(side)
                for side in node.comparators
            ):
                rule_like.append(f"{path.relative_to(PACKAGE)}: {ast.unparse(node)}")
    assert rule_like == ["decision.py: p > threshold"]


def test_every_package_the_code_imports_is_declared() -> None:
    """A fresh `pip install .` (or `.[train]`) has every package the code imports, not only what happens to
    arrive with another one."""
    import importlib.metadata
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["train"]
    declared = {re.split(r"[<>=~!\[; ]", r)[0].lower().replace("_", "-") for r in requirements}
    distributions = importlib.metadata.packages_distributions()
    imported = (
        {name.split(".")[0] for path in PACKAGE.rglob("*.py") for name in imported_modules(path)}
        - set(sys.stdlib_module_names)
        - {"facemask"}
    )
    undeclared = {
        name
        for name in imported
        if not {d.lower().replace("_", "-") for d in distributions.get(name, [name])} & declared
    }
    assert not undeclared, f"imported but not in pyproject's dependencies: {sorted(undeclared)}"
