"""pytest glue of the parity suite: each parity test is one line calling :func:`check`.

``check(results)`` fails with every failing comparison's message (case, quantity,
framework, max absolute and relative error, index), not just the first.
:func:`require` skips a test whose framework is not installed, naming it.
"""
from __future__ import annotations

from typing import Iterable

from . import engines
from .compare import Result


def require(framework: str) -> str:
    """Skip the calling test when ``framework`` cannot run here; return its name."""
    reason = engines.skip_reason(framework)
    if reason:
        import pytest

        pytest.skip(f"{framework}: skipped, {reason}")
    return framework


def check(results: Iterable[Result]) -> list:
    """Assert that there are results and that every one passed; return them."""
    results = list(results)
    assert results, "nothing was compared"
    bad = [r for r in results if not r.passed]
    if bad:
        lines = [r.message() for r in bad[:20]]
        more = f"\n... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise AssertionError(f"{len(bad)} of {len(results)} comparisons failed:\n" + "\n".join(lines) + more)
    return results
