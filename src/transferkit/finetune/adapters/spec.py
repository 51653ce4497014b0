"""What adapter a model carries: the method and its settings, as JSON (the bundle's manifest).

``lora``: low-rank updates of chosen linear layers, through peft (its ``LoraConfig`` meaning
for ``r``, ``alpha``, ``dropout``, ``target_modules``). ``houlsby`` and ``pfeiffer``: bottleneck
adapters (down projection, non-linearity, up projection, residual), configured with
AdapterHub's keys and defaults (``DoubleSeqBnConfig`` and ``SeqBnConfig``), so their files map
onto ours key for key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from transferkit.errors import BadInputError

METHODS = ("lora", "houlsby", "pfeiffer")
# "attention" and "all" name target sets that targets.py resolves per architecture
TARGET_SETS = ("attention", "all")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "attention"},
    # AdapterHub's SeqBnConfig (Pfeiffer et al., 2020): one adapter after the feed-forward block
    "pfeiffer": {
        "reduction_factor": 16,
        "non_linearity": "relu",
        "mh_adapter": False,
        "output_adapter": True,
        "original_ln_before": True,
        "original_ln_after": True,
        "residual_before_ln": True,
        "init_weights": "zero-up",
    },
    # AdapterHub's DoubleSeqBnConfig (Houlsby et al., 2019): after attention and after the FFN
    "houlsby": {
        "reduction_factor": 16,
        "non_linearity": "swish",
        "mh_adapter": True,
        "output_adapter": True,
        "original_ln_before": False,
        "original_ln_after": True,
        "residual_before_ln": True,
        "init_weights": "zero-up",
    },
}
NON_LINEARITIES = ("relu", "swish", "silu", "gelu", "tanh")


@dataclass(frozen=True)
class AdapterSpec:
    """An adapter method and its settings (every key present: ``make`` fills the defaults)."""

    method: str
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, method: str, **overrides: Any) -> AdapterSpec:
        """The ``method``'s defaults with ``overrides`` (None values keep the default)."""
        if method not in METHODS:
            raise BadInputError(
                f"adapter method must be one of {', '.join(METHODS)}; got {method!r}"
            )
        config = dict(_DEFAULTS[method])
        for key, value in overrides.items():
            if key not in config:
                raise BadInputError(
                    f"the {method} adapter has no setting {key!r}; it has {', '.join(config)}"
                )
            if value is not None:
                config[key] = value
        spec = cls(method, config)
        spec.check()
        return spec

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "config": dict(self.config)}

    @classmethod
    def from_json(cls, obj: Any) -> AdapterSpec:
        """An AdapterSpec from ``to_json``'s form, every setting checked."""
        if not isinstance(obj, dict) or not isinstance(obj.get("config"), dict):
            raise BadInputError(
                f"an adapter description is an object with 'method' and 'config'; got {obj!r}"
            )
        spec = cls.make(str(obj.get("method")), **obj["config"])
        missing = [k for k in _DEFAULTS[spec.method] if k not in obj["config"]]
        if missing:
            raise BadInputError(f"the {spec.method} adapter's config lacks {', '.join(missing)}")
        return spec

    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    def check(self) -> None:
        """Refuse a setting out of range, naming it."""
        c = self.config
        if self.is_lora:
            _whole("r", c["r"])
            _positive("alpha", c["alpha"])
            if not (isinstance(c["dropout"], int | float) and 0 <= c["dropout"] < 1):
                raise BadInputError(f"adapter dropout must be in [0, 1); got {c['dropout']!r}")
            targets = c["target_modules"]
            named = (
                isinstance(targets, list)
                and targets
                and all(isinstance(t, str) and t for t in targets)
            )
            if targets not in TARGET_SETS and not named:
                raise BadInputError(
                    f"adapter target_modules must be {' or '.join(TARGET_SETS)} or a list of "
                    f"module names; got {targets!r}"
                )
            return
        _positive("reduction_factor", c["reduction_factor"])
        if c["non_linearity"] not in NON_LINEARITIES:
            raise BadInputError(
                f"adapter non_linearity must be one of {', '.join(NON_LINEARITIES)}; "
                f"got {c['non_linearity']!r}"
            )
        for key in ("mh_adapter", "output_adapter", "original_ln_before"):
            if not isinstance(c[key], bool):
                raise BadInputError(f"adapter {key} must be true or false; got {c[key]!r}")
        if not (c["mh_adapter"] or c["output_adapter"]):
            raise BadInputError("a bottleneck adapter needs mh_adapter or output_adapter true")
        # the placements bottleneck.py implements: AdapterHub's defaults for these two
        for key in ("original_ln_after", "residual_before_ln"):
            if c[key] is not True:
                raise BadInputError(
                    f"adapter {key} = {c[key]!r} is not supported (only true, AdapterHub's "
                    "Houlsby and Pfeiffer setting)"
                )


def _whole(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInputError(f"adapter {name} must be a whole number >= 1; got {value!r}")


def _positive(name: str, value: Any) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and value > 0 and math.isfinite(value)):
        raise BadInputError(f"adapter {name} must be a number > 0; got {value!r}")
