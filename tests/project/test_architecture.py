"""The package's shape: imports run one way, down the floors below (lazy imports inside functions count too), no
import cycles, no function over 100 lines, every module says what it is, and a new backend is one file plus one
line in the backends' table."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import PACKAGE


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


# The floors, lowest first: a module imports from its own part and from the floors below it, never from its own
# floor's other parts or from a floor above. A part is a sub-package (``models``) or a module at the root (``config``).
FLOORS: list[tuple[str, ...]] = [
    ("lowvram_r1",),  # the package's __init__: its version
    ("specs",),  # "file.py:NAME" / "module:NAME" specs of the user's own tasks and rewards, loaded
    ("rewards",),  # reward pieces
    ("envs",),  # multi-turn environments (retriever, search tools)
    ("tasks",),  # the task presets and their loaders
    ("recipes", "logs", "backend_names"),  # recipe files, logging set-up, the backends' table (names only)
    ("config",),  # the run configuration: its sections and checks, loading, merging and saving it, TRL's view
    ("models",),  # hardware, model source and shapes, the tiny model, prompts: what the parts above all read
    ("run_plan",),  # the run resolved once (task object, options, prompt format, budget, tiny spec): read above
    ("memory", "rollout"),  # the memory planner; generation (vLLM, transformers)
    ("runs", "backends"),  # the run directory and its readers; loading a model for training
    ("train",),  # the engine, held-out evaluation (train/evaluate.py), the stage runner
    ("pipeline",),  # SFT, rejection sampling, export, stage chains
    ("notebook", "ui", "evaluate"),  # front ends over the run directory; evaluate: train/evaluate.py's old path
    ("cli",),
]


def part(module: str) -> str:
    """``lowvram_r1.models.tiny`` -> ``models``; ``lowvram_r1.config`` -> ``config``; the package itself -> its name."""
    names = module.split(".")
    return names[1] if len(names) > 1 else names[0]


def floor_of() -> dict[str, int]:
    return {name: level for level, names in enumerate(FLOORS) for name in names}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a module to a part on its own floor or above, as ``a -> b (floor i -> j)``."""
    floors = floor_of()
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            mine, theirs = part(module), part(target)
            if mine != theirs and floors[theirs] >= floors[mine]:
                found.append(f"{module} -> {target} (floor {floors[mine]} -> {floors[theirs]})")
    return found


def test_every_part_has_a_floor() -> None:
    parts = {part(name) for name in module_names()}
    missing = sorted(parts - set(floor_of()))
    assert not missing, f"parts without a floor (add them to FLOORS): {missing}"
    assert len(floor_of()) == sum(len(names) for names in FLOORS), "a part is on two floors"


def test_imports_run_down_the_floors() -> None:
    upward = upward_imports(import_graph())
    assert not upward, "imports up or across a floor (move the shared piece down a floor): " + "; ".join(upward)


def test_the_floor_check_sees_an_upward_lazy_import(tmp_path: Path) -> None:
    pkg = tmp_path / "lowvram_r1"
    (pkg / "rollout").mkdir(parents=True)
    (pkg / "backends").mkdir()
    for init in (pkg, pkg / "rollout", pkg / "backends"):
        (init / "__init__.py").write_text("")
    (pkg / "rollout" / "engine.py").write_text("def f():\n    from lowvram_r1.backends import hf\n")
    (pkg / "backends" / "hf.py").write_text("from lowvram_r1.rollout import engine\n")
    known = {
        "lowvram_r1.rollout": pkg / "rollout" / "__init__.py",
        "lowvram_r1.rollout.engine": pkg / "rollout" / "engine.py",
        "lowvram_r1.backends": pkg / "backends" / "__init__.py",
        "lowvram_r1.backends.hf": pkg / "backends" / "hf.py",
    }
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert upward_imports(graph) == ["lowvram_r1.rollout.engine -> lowvram_r1.backends.hf (floor 9 -> 10)"]
    assert upward_imports({"lowvram_r1.memory.fit": {"lowvram_r1.rollout"}}) == [
        "lowvram_r1.memory.fit -> lowvram_r1.rollout (floor 9 -> 9)"  # across one floor: forbidden too
    ]


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


MAX_FUNCTION_LINES = 100


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Every function (nested ones too) under ``root`` longer than ``limit`` lines, as ``path:name lines``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root)}:{node.name} {lines}")
    return found


def test_no_function_is_over_100_lines() -> None:
    long = long_functions(PACKAGE)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them along their seams): {long}"


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\nclass C:\n    def long(self):\n{body}")
    assert long_functions(tmp_path) == [f"m.py:long {MAX_FUNCTION_LINES + 1}"]


def test_backends_come_from_the_registry_and_share_one_protocol() -> None:
    from lowvram_r1.backends.base import Backend
    from lowvram_r1.backends.registry import BACKENDS, backend_class
    from lowvram_r1.config.sections import BACKENDS as CHOICES

    assert CHOICES == ("auto", *BACKENDS)  # --backend's choices are the registry's names, in its order
    for name in BACKENDS:
        cls = backend_class(name)
        assert issubclass(cls, Backend) and cls.name == name
        overridden = {m for m in ("available", "load") if getattr(cls, m) is not getattr(Backend, m)}
        assert overridden == {"available", "load"}, f"{name} must provide available() and load()"


def test_the_engine_has_no_backend_branch() -> None:
    files = (PACKAGE / "train" / "engine.py", PACKAGE / "train" / "stage.py", PACKAGE / "pipeline" / "sft.py")
    source = "".join(path.read_text() for path in files)
    assert '== "unsloth"' not in source and '== "hf"' not in source and "backend ==" not in source


FAKE_BACKEND = """
from lowvram_r1.backends.base import Backend

class FakeBackend(Backend):
    name = "fake"

    @classmethod
    def available(cls, cfg, cuda):
        return False, "only when asked for"

    def check(self, plan, tokenizer_source):
        print("fake check", flush=True)

    def load(self, plan, model_path, rollouts=True):
        raise RuntimeError(f"fake load of {model_path}")
"""


def test_a_new_backend_is_one_file_and_one_table_line(tmp_path: Path, small_model: Path) -> None:
    """A backend module plus one entry in the backends' table (``backend_names``): --backend accepts it, and
    engine.train checks and loads through it (the fake refuses to load, so nothing trains)."""
    import subprocess
    import sys

    (tmp_path / "fake_backend.py").write_text(FAKE_BACKEND)
    recipe = PACKAGE / "configs" / "cpu-demo.yaml"
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from lowvram_r1 import backend_names
backend_names.BACKENDS["fake"] = "fake_backend:FakeBackend"   # the one line
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


def test_test_folders_mirror_the_package() -> None:
    """A module's tests are found by its path: every folder of tests/ is a part of the package (tests/runs/ for
    lowvram_r1/runs/), or one of the two that stand apart (e2e/, project/); no test file outside them but those of
    the package's root modules (tests/config/test_loading.py for lowvram_r1/config.py)."""
    tests = PACKAGE.parent / "tests"
    apart = {"e2e", "project"}
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders - parts - apart == set(), f"test folders that name no part of the package: {folders - parts - apart}"
    roots = {p.stem for p in PACKAGE.glob("*.py")}
    loose = sorted(p.name for p in tests.glob("test_*.py") if p.stem.removeprefix("test_") not in roots)
    assert not loose, f"tests at tests/'s top that test no root module (move them to tests/<part>/): {loose}"
