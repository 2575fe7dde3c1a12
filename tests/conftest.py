"""Shared fixtures. Tests never reach the network: telemetry is switched off here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for name, value in {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
}.items():
    os.environ[name] = value

from bulwark.settings import Settings, load_settings  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's BULWARK_* variables or .env file."""
    for name in list(os.environ):
        if name.startswith("BULWARK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Offline settings with a fresh data directory."""
    return load_settings(data_dir=tmp_path / "data")
