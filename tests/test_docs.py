"""The reference docs are generated from the code; they must be regenerated when it changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_data_readme_schema_tables_match_the_code() -> None:
    gen = _generator()
    text = (ROOT / "data" / "README.md").read_text()
    assert gen.updated_data_readme(text) == text, "run: python docs/generate.py"


def test_model_doc_matches_the_model_docstrings() -> None:
    gen = _generator()
    assert (ROOT / "docs" / "model.md").read_text() == gen.model_markdown(), (
        "run: python docs/generate.py"
    )


def test_bundle_doc_matches_the_contract() -> None:
    gen = _generator()
    text = (ROOT / "docs" / "bundle.md").read_text()
    assert gen.updated_bundle_doc(text) == text, "run: python docs/generate.py"


def test_every_model_module_documents_its_math_and_symbols() -> None:
    from optimizer.model.build import MODULES

    for mod in MODULES:
        doc = mod.add_to_model.__doc__ or ""
        assert ".. math::" in doc, f"{mod.__name__}.add_to_model has no math"
        if mod.__name__.endswith("objective"):
            continue
        assert "symbol" in doc and "unit" in doc, f"{mod.__name__}.add_to_model has no symbol table"


def test_ci_runs_the_readme_test_command() -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n# test\n(.+?)\n```", readme, flags=re.S)
    assert len(blocks) == 1, "README must have exactly one '# test' block"
    assert blocks[0].strip() in (ROOT / ".ci" / "run").read_text()
