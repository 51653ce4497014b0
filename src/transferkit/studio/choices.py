"""What the Train panel offers: the backbones and strategies a project of a modality can use."""

from __future__ import annotations

from typing import Any

from transferkit.errors import BadInputError

AUTO = "auto"
# no backbone named: the modality's default for the examples, as `transferkit train` without
# --backbone; "auto" ranks every candidate, which takes a first training past 30 s
DEFAULT = "default"


def training_choices(modality: str) -> dict[str, Any]:
    """Backbones (the offline ones of ``modality``) and strategies (those that need no second
    domain); ``default`` marks what the Train panel selects: the CLI's defaults."""
    from transferkit.backbones import get_spec, list_backbones
    from transferkit.modalities import get_modality
    from transferkit.strategies import STRATEGIES

    try:
        mod = get_modality(modality)
    except ValueError as exc:  # an unknown name: a request's mistake
        raise BadInputError(str(exc)) from None
    default = mod.default_backbone_name
    backbones = [
        {
            "name": row["name"],
            "default": False,
            "licence": row["licence"],
            "non_commercial": row["non_commercial"],
        }
        for row in list_backbones()
        # a non-commercial licence needs an acceptance the studio does not ask for (the CLI's
        # --accept-licence), so such backbones are offered there only
        if row["offline_available"]
        and not row["non_commercial"]
        and mod.accepts(get_spec(row["name"]))
    ]
    strategies = [
        {"name": name, "default": False, "doc": _doc(cls)}
        for name, cls in sorted(STRATEGIES.items())
        if not cls.capabilities.needs_target
        and not cls.capabilities.accepts_source
        and modality in cls.capabilities.modalities
    ]
    return {
        "backbones": [
            {
                "name": AUTO,
                "default": False,
                "licence": None,
                "non_commercial": False,
                "doc": f"rank the {len(backbones)} offline {mod.noun} backbones on your examples "
                "and train with the best (encodes them with each one: slower)",
            },
            {
                "name": DEFAULT,
                "default": True,
                "licence": None,
                "non_commercial": False,
                "doc": f"{default}, the {mod.noun} default (what `transferkit train` uses "
                "without --backbone, which may prefer another for your examples)",
            },
            *backbones,
        ],
        "strategies": [
            {
                "name": AUTO,
                "default": True,
                "doc": "chosen from your examples and this machine, as `transferkit train` "
                "chooses it (the report says why)",
            },
            *strategies,
        ],
    }


def _doc(cls) -> str:
    """The first line of the strategy class's docstring, or of its module's."""
    import sys

    for doc in (cls.__doc__, sys.modules[cls.__module__].__doc__):
        if doc and doc.strip():
            return doc.strip().splitlines()[0]
    return ""
