from collections.abc import Callable
from pathlib import Path

import pytest

from postbackd.integrations import Integration, load_integration_file


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "acme.toml") -> Path:
        path = tmp_path / "integrations" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def load_text(write_file: Callable[[str, str], Path]) -> Callable[[str], Integration]:
    def load(text: str) -> Integration:
        return load_integration_file(write_file(text))

    return load
