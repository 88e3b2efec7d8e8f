"""A seeded episode: ``random`` and numpy's global generator start from the reset's seed.

The generators' states are part of the episode's state once seeded (``state()`` goes into the
snapshot, ``restore()`` puts it back in a fresh worker), so a step draws the same numbers warm
or after a cold restore. numpy imported after seeding is seeded on import (a finder wraps its
loader), so ``import numpy`` in a later cell still gives reproducible numbers. An episode reset
without a seed keeps the worker's fresh entropy and saves no generator state.
"""

from __future__ import annotations

import importlib.machinery
import random
import sys
from typing import Any

_seed: int | None = None


def _numpy_seed(numpy: Any, seed: int) -> None:
    numpy.random.seed(seed % 2**32)


class _SeedNumpyOnImport:
    """Seeds numpy's global generator right after numpy's own import, then steps aside.

    A meta path finder needs only ``find_spec``; not an ``importlib.abc.MetaPathFinder``, whose
    import (importlib.resources, pathlib, tempfile...) was a fifth of every zygote's start."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "numpy":
            return None
        _remove_hook()
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original = loader.exec_module
        seed = self.seed

        def exec_module(module: Any) -> None:
            original(module)
            _numpy_seed(module, seed)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _SeedNumpyOnImport)]


def _seed_numpy_now_or_on_import(seed: int) -> None:
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        _numpy_seed(numpy, seed)
    else:
        _remove_hook()
        sys.meta_path.insert(0, _SeedNumpyOnImport(seed))


def seed_episode(seed: int) -> None:
    """A fresh episode's first step: seed both generators."""
    global _seed
    _seed = int(seed)
    random.seed(_seed)
    _seed_numpy_now_or_on_import(_seed)


def state() -> dict[str, Any] | None:
    """The generators' states to keep in the snapshot (None: the episode is not seeded)."""
    if _seed is None:
        return None
    numpy = sys.modules.get("numpy")
    numpy_state = None
    if numpy is not None and not any(isinstance(f, _SeedNumpyOnImport) for f in sys.meta_path):
        numpy_state = numpy.random.get_state()
    return {"seed": _seed, "random": random.getstate(), "numpy": numpy_state}


def restore(saved: dict[str, Any] | None) -> None:
    """A cold worker: the generators exactly as the snapshot left them."""
    global _seed
    if not saved:
        return
    _seed = int(saved["seed"])
    random.setstate(saved["random"])
    if saved.get("numpy") is not None:
        import numpy

        numpy.random.set_state(saved["numpy"])
    else:
        _seed_numpy_now_or_on_import(_seed)
