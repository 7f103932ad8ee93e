"""What each part needs, as pyproject.toml declares it: `optimizer` is a library that imports
nothing of the service, worker or benchmark extras (checked in its source and by importing
every module with those packages made unimportable), constraints.txt pins every dependency
within its declared range, and the README's commands install the extras they run."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# the extras a library user does not install: none of them may be needed by `optimizer`
NOT_THE_LIBRARY = ("service", "worker", "bench")
# our own top-level packages that `optimizer` must not import either
OUR_OTHER_PACKAGES = {"service", "bench", "tests"}


def _requirements(extra: str | None) -> list[Requirement]:
    """The requirements of the core (extra None) or of one extra, without `greenopt[...]`."""
    project = PYPROJECT["project"]
    lines = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    reqs = [Requirement(line) for line in lines]
    return [r for r in reqs if canonicalize_name(r.name) != project["name"]]


@cache
def _modules_of_distributions() -> dict[str, frozenset[str]]:
    """Top-level module names each installed distribution provides, by normalised name."""
    out: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(canonicalize_name(dist), set()).add(module)
    return {k: frozenset(v) for k, v in out.items()}


def _forbidden_in_the_library() -> set[str]:
    """The top-level modules of the service, worker and bench extras, and our other packages."""
    provided = _modules_of_distributions()
    modules = set(OUR_OTHER_PACKAGES)
    for extra in NOT_THE_LIBRARY:
        for req in _requirements(extra):
            name = canonicalize_name(req.name)
            assert name in provided, f"{req.name} (extra {extra}) is not installed"
            modules |= provided[name]
    # the derivation must see the service stack, or this file tests nothing
    assert {"fastapi", "sqlalchemy", "celery", "psycopg", "uvicorn", "matplotlib"} <= modules
    return modules


def test_optimizer_never_imports_service_nor_the_extras_in_its_source() -> None:
    forbidden = _forbidden_in_the_library()
    for path in (ROOT / "optimizer").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in forbidden, f"{path}: imports {n}"


# Run in a fresh interpreter: a meta-path finder answers every import of a blocked package
# as if it were not installed, then `optimizer` and every submodule are imported.
_IMPORT_ALL_BLOCKED = """
import importlib, importlib.abc, pkgutil, sys

BLOCKED = frozenset(sys.argv[1].split(","))


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
import optimizer



def reraise(name):
    raise  # walk_packages calls this inside its `except ImportError`: fail, do not skip


names = ["optimizer"]
for info in pkgutil.walk_packages(optimizer.__path__, "optimizer.", onerror=reraise):
    importlib.import_module(info.name)
    names.append(info.name)
leaked = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
assert not leaked, leaked
print("\\n".join(names))
"""


def test_optimizer_and_every_submodule_import_without_the_service_stack() -> None:
    blocked = _forbidden_in_the_library()
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL_BLOCKED, ",".join(sorted(blocked))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    imported = set(out.stdout.split())
    on_disk = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "optimizer").rglob("*.py")
    }
    assert imported == on_disk, on_disk ^ imported


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_constraints_pin_every_dependency_within_its_range() -> None:
    pins = _pins()
    extras = [None, *PYPROJECT["project"]["optional-dependencies"]]
    for extra in extras:
        for req in _requirements(extra):
            name = canonicalize_name(req.name)
            assert name in pins, f"{req.name} ({extra or 'core'}) has no pin: run .ci/lock"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"{req} ({extra or 'core'}) but constraints.txt pins {pins[name]}: run .ci/lock"
            )


def test_the_lint_and_type_checkers_are_pinned_exactly() -> None:
    test_extra = {canonicalize_name(r.name): r for r in _requirements("test")}
    for tool in ("ruff", "mypy"):
        (spec,) = test_extra[tool].specifier
        assert spec.operator == "==", f"{tool}: {spec} (a new release must not fail CI on its own)"


def test_the_readme_commands_install_the_extras_they_run_under_the_constraints() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = dict(re.findall(r"```bash\n# (run|test)\b.*?\n(.+?)\n```", readme, flags=re.S))
    assert set(commands) == {"run", "test"}, commands
    for kind, extra in (("run", "service"), ("test", "test")):
        assert f"pip install -q -c constraints.txt -e '.[{extra}]'" in commands[kind], kind
