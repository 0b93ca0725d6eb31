"""Fixtures every test directory may use."""

from tests.postgres_cluster import postgres_cluster, postgres_url

__all__ = ["postgres_cluster", "postgres_url"]
