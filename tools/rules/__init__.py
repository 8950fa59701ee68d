"""Waste rules: one rule per module, registered in ``tools.rules.base.registry``.

``load_rules()`` imports every rule module so the registry is complete.
"""

from __future__ import annotations

import importlib
import pkgutil

from tools.rules.base import registry


def load_rules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base",):
            importlib.import_module(f"{__name__}.{module.name}")


__all__ = ["load_rules", "registry"]
