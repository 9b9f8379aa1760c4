"""What the parity parts return: a :class:`Report` of results, the frameworks that can run,
and the cache of framework-side computations.

Framework-side computations are cached per case (they never depend on the scratch
engine); the scratch side is recomputed on every call, so a planted bug
(:mod:`.breakages`) always shows.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from . import engines as E
from .compare import Result

#: Frameworks compared with the scratch engine.
FRAMEWORKS = ("torch", "keras")
PARAM_QUANTITY = {"kernel": "kernel gradient", "bias": "bias gradient"}


@dataclass
class Report:
    """Results plus the frameworks that could not run (``name -> reason``)."""

    results: List[Result] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> List[Result]:
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        """True when something was compared and every comparison passed (skipped
        frameworks are listed in :attr:`skipped`, never counted as passed)."""
        return bool(self.results) and not self.failures

    def extend(self, other: "Report") -> "Report":
        self.results.extend(other.results)
        self.skipped.update(other.skipped)
        return self


def available(frameworks=FRAMEWORKS):
    """(frameworks that can run, {skipped framework: reason})."""
    ok, skipped = [], {}
    for fw in frameworks:
        reason = E.skip_reason(fw)
        if reason:
            skipped[fw] = reason
        else:
            ok.append(fw)
    return ok, skipped


_FW_CACHE: dict = {}


def cached(key, fn):
    """``fn()``, computed once per ``key`` (framework results only)."""
    if key not in _FW_CACHE:
        _FW_CACHE[key] = fn()
    return _FW_CACHE[key]


def clear_cache() -> None:
    """Forget cached framework results (they never depend on the scratch engine)."""
    _FW_CACHE.clear()


def tag(result: Result, layer: Optional[int]) -> Result:
    """``result`` with the spec entry it belongs to."""
    return dataclasses.replace(result, layer=layer)
