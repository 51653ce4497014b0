"""Backbone licences that restrict use: how they are shown, and the acceptance they need.

Most packaged weights are free for any use; some (BirdNET: CC BY-NC-SA 4.0) are for
non-commercial use only (``BackboneSpec.non_commercial``). ``transferkit models`` and the report
say so next to the licence, and training with such a backbone — or ranking it as a candidate —
needs the user's explicit ``--accept-licence``: a model trained on top of it inherits the
restriction, which nobody should discover after deploying it.
"""

from __future__ import annotations

from typing import Any

from transferkit.backbones.catalog import get_spec
from transferkit.backbones.registry import BackboneSpec
from transferkit.errors import BadInputError

NON_COMMERCIAL = "non-commercial"
ACCEPT_FLAG = "--accept-licence"


def licence_label(spec: BackboneSpec) -> str:
    """The licence as people read it: ``CC-BY-NC-SA-4.0 (non-commercial)`` or ``MIT``."""
    return f"{spec.licence} ({NON_COMMERCIAL})" if spec.non_commercial else spec.licence


def licence_record(spec: BackboneSpec) -> dict[str, Any]:
    """The licence as metrics.json records it."""
    return {"name": spec.licence, "non_commercial": bool(spec.non_commercial)}


def unaccepted(spec: BackboneSpec) -> str:
    """Why ``spec`` may not be used without ``--accept-licence``, naming the licence and flag."""
    return (
        f"{spec.name}'s weights are licensed {spec.licence}, for {NON_COMMERCIAL} use only; "
        f"pass {ACCEPT_FLAG} (accept_licence=True) to confirm that your use is "
        f"{NON_COMMERCIAL}, or choose another backbone (`transferkit models` shows each one's "
        "licence)"
    )


def check_licence_accepted(name: str, accepted: bool) -> None:
    """Refuse backbone ``name`` (BadInputError) when its licence needs acceptance not given."""
    spec = get_spec(name)
    if spec.non_commercial and not accepted:
        raise BadInputError(f"--backbone {name}: {unaccepted(spec)}.")
