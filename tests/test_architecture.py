"""The package's shape: no import cycles (lazy imports inside functions count too), every module says what it is,
and a new backend is one file plus one registry line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lowvram_r1"


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``module`` imports anywhere in its body: ``from a.b import c`` counts ``a.b.c`` when
    it is a module, else ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                target = f"{source}.{alias.name}"
                found.add(target if target in known else source)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or []) + " (move the shared piece down a floor)"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_lazy_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "lowvram_r1"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from lowvram_r1.b import g\n")
    (pkg / "b.py").write_text("from lowvram_r1 import a\n")
    (pkg / "__init__.py").write_text("")
    known = {"lowvram_r1": pkg / "__init__.py", "lowvram_r1.a": pkg / "a.py", "lowvram_r1.b": pkg / "b.py"}
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert find_cycle(graph) in (
        ["lowvram_r1.a", "lowvram_r1.b", "lowvram_r1.a"],
        ["lowvram_r1.b", "lowvram_r1.a", "lowvram_r1.b"],
    )


def test_every_module_opens_with_a_docstring() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    missing = [str(p.relative_to(PACKAGE)) for p in files if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, f"modules without a docstring: {missing}"


def test_backends_come_from_the_registry_and_share_one_protocol() -> None:
    from lowvram_r1.backends.base import Backend
    from lowvram_r1.backends.registry import BACKENDS, backend_class
    from lowvram_r1.config_schema import BACKENDS as CHOICES

    assert set(CHOICES) == {"auto", *BACKENDS}  # --backend's choices are the registry's names
    for name in BACKENDS:
        cls = backend_class(name)
        assert issubclass(cls, Backend) and cls.name == name
        overridden = {m for m in ("available", "load") if getattr(cls, m) is not getattr(Backend, m)}
        assert overridden == {"available", "load"}, f"{name} must provide available() and load()"


def test_the_engine_has_no_backend_branch() -> None:
    source = (PACKAGE / "train" / "engine.py").read_text() + (PACKAGE / "pipeline" / "sft.py").read_text()
    assert '== "unsloth"' not in source and '== "hf"' not in source and "backend ==" not in source


FAKE_BACKEND = """
from lowvram_r1.backends.base import Backend

class FakeBackend(Backend):
    name = "fake"

    @classmethod
    def available(cls, cfg, cuda):
        return False, "only when asked for"

    def check(self, cfg, hardware, tokenizer_source):
        print("fake check", flush=True)

    def load(self, cfg, model_path, hardware, rollouts=True):
        raise RuntimeError(f"fake load of {model_path}")
"""


def test_a_new_backend_is_one_file_and_one_registry_line(tmp_path: Path, small_model: Path) -> None:
    """A backend module plus one registry entry: --backend accepts it, and engine.train checks and loads through it
    (the fake refuses to load, so nothing trains)."""
    import subprocess
    import sys

    (tmp_path / "fake_backend.py").write_text(FAKE_BACKEND)
    recipe = PACKAGE / "configs" / "cpu-demo.yaml"
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from lowvram_r1.backends import registry
registry.BACKENDS["fake"] = "fake_backend:FakeBackend"   # the one line
from lowvram_r1 import config
from lowvram_r1.train import engine
overrides = {{"backend": "fake", "model": {str(small_model)!r}, "output_dir": {str(tmp_path / "run")!r}}}
cfg = config.load({str(recipe)!r}, overrides)
try:
    engine.train(cfg, progress=False)
except RuntimeError as error:
    print(error)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fake check" in done.stdout and f"fake load of {small_model}" in done.stdout, done.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # refused before it started: the new folder is removed again
