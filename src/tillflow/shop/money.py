"""Money as people read it, from integer minor units (cents): one rule for every printout."""

from __future__ import annotations


def money(cents: int) -> str:
    """Minor units as money: ``123456`` → ``1,234.56`` (integer arithmetic, no float)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}"


def percent(basis_points: int) -> str:
    """A rate in basis points as a percentage: ``2000`` → ``20 %``, ``550`` → ``5.5 %``."""
    whole, part = divmod(basis_points, 100)
    decimals = f"{part:02d}".rstrip("0")
    return f"{whole}.{decimals} %" if decimals else f"{whole} %"
