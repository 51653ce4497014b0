"""What the Train panel offers: the backbones and strategies a project of a modality can use."""

from __future__ import annotations

from typing import Any

AUTO = "auto"


def training_choices(modality: str) -> dict[str, Any]:
    """Backbones (offline ones of ``modality``) and strategies (those that need no second
    domain), "auto" first in both; a backbone's ``default`` marks what "auto" trains with."""
    from transferkit.backbones import get_spec, list_backbones
    from transferkit.modalities import get_modality
    from transferkit.strategies import STRATEGIES

    mod = get_modality(modality)
    default = mod.default_backbone_name
    backbones = [
        {
            "name": row["name"],
            "default": row["name"] == default,
            "licence": row["licence"],
            "non_commercial": row["non_commercial"],
        }
        for row in list_backbones()
        if row["offline_available"] and mod.accepts(get_spec(row["name"]))
    ]
    strategies = [
        {"name": name, "doc": _first_line(cls.__doc__)}
        for name, cls in sorted(STRATEGIES.items())
        if not cls.capabilities.needs_target
        and not cls.capabilities.accepts_source
        and modality in cls.capabilities.modalities
    ]
    return {
        "backbones": [
            {
                "name": AUTO,
                "default": True,
                "licence": None,
                "non_commercial": False,
                "doc": f"the {mod.noun} default: {default}",
            },
            *backbones,
        ],
        "strategies": [
            {"name": AUTO, "doc": "decided from the data and the machine"},
            *strategies,
        ],
    }


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""
