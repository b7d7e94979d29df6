"""Keeping Numba's on-disk kernel cache honest while the package's sources are being edited.

Numba keys each cached kernel on its *own* source file only: a kernel in ``lstm.py`` that inlines
the activations of ``gates.py`` or the BLAS calls of ``linalg.py`` keeps loading its old machine
code after those files change.  :func:`drop_stale` removes every cache file of this package that
is older than the newest of its sources, so the next call recompiles.  In an installed package
the sources never change, nothing is stale and nothing is removed; while developing, an edit
costs one recompilation (what a clean checkout pays anyway) instead of silently running old code.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["drop_stale"]

_PACKAGE = Path(__file__).resolve().parent


def drop_stale(package: Path = _PACKAGE) -> list:
    """Remove ``package/__pycache__/*.nbi|*.nbc`` files older than the newest ``package/*.py``.

    Returns the removed paths.  Caches kept elsewhere (``NUMBA_CACHE_DIR``, or Numba's per-user
    folder when the package folder is read-only) are left alone, as are files that cannot be
    removed: this never raises for a cache it cannot touch.
    """
    cache = package / "__pycache__"
    if os.environ.get("NUMBA_CACHE_DIR") or not cache.is_dir():
        return []
    try:
        newest = max(p.stat().st_mtime for p in package.glob("*.py"))
    except (OSError, ValueError):
        return []
    removed = []
    for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
        try:
            if f.stat().st_mtime < newest:
                f.unlink()
                removed.append(f)
        except OSError:
            pass
    return removed
