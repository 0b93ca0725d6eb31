"""The private-cluster helper fails loudly, never skips, when the server is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import postgres_cluster
from tests.postgres_cluster import PostgresMissing, server_binaries


def test_missing_server_binaries_are_an_error_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_cluster, "BINARIES", tmp_path)
    with pytest.raises(PostgresMissing, match="install Debian's 'postgresql' package"):
        server_binaries()


def test_the_newest_installed_server_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("9", "15", "13"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    monkeypatch.setattr(postgres_cluster, "BINARIES", tmp_path)
    assert server_binaries() == tmp_path / "15" / "bin"
