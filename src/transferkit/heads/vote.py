"""``vote``: a weighted vote of linear heads of one type, e.g. TrAdaBoost's final classifier.

Its probabilities are the vote-weighted mean of its members' probabilities. A strategy builds
it from heads it fitted (``from_members``); it is not fitted on its own, so it is not a
``--head`` choice, but a bundle stores and loads it like any head: the members' arrays are
stacked along a first axis (one row per member) in safetensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transferkit.errors import BadInputError
from transferkit.heads.base import Head
from transferkit.heads.linear import LinearSVMHead, LogisticHead, _LinearHead

# the member types a vote stacks: heads with the same arrays (mean, coef, intercept[, center,
# scale]) and the same scoring
MEMBERS: dict[str, type[_LinearHead]] = {h.name: h for h in (LogisticHead, LinearSVMHead)}


@dataclass
class VoteConfig:
    member: str = "logistic"

    def __post_init__(self):
        if self.member not in MEMBERS:
            raise BadInputError(
                f"a vote head stacks {' or '.join(MEMBERS)} heads; got member {self.member!r}"
            )


class VoteHead(Head):
    """``sum_m vote_m · p_m(x) / sum_m vote_m`` over linear member heads ``p_m``."""

    name = "vote"
    Config = VoteConfig
    state_arrays = ("mean", "coef", "intercept", "vote")
    optional_state_arrays = ("center", "scale")
    accepts_sample_weight = False

    @classmethod
    def from_members(
        cls, members: Sequence[_LinearHead], votes: Sequence[float], info: dict | None = None
    ) -> VoteHead:
        """A fitted vote of ``members`` (fitted linear heads of one type, same classes)."""
        kinds = {m.name for m in members}
        if len(kinds) != 1 or len(members) != len(votes) or not members:
            raise BadInputError(
                f"a vote needs one or more fitted heads of one type and one vote each; got "
                f"{len(members)} heads of types {sorted(kinds)} and {len(votes)} votes"
            )
        votes = np.asarray(votes, dtype=np.float64)
        if not np.isfinite(votes).all() or (votes < 0).any() or votes.sum() <= 0:
            raise BadInputError(f"votes must be finite, >= 0 and not all 0; got {votes.tolist()}")
        head = cls(member=members[0].name)
        for name in _LinearHead.state_arrays:
            setattr(head, name + "_", np.stack([getattr(m, name + "_") for m in members]))
        standardised = [getattr(m, "center_", None) is not None for m in members]
        if any(standardised) != all(standardised):
            raise BadInputError("a vote's members must all be standardised, or none of them")
        head.center_ = head.scale_ = None
        if all(standardised):
            head.center_ = np.stack([m.center_ for m in members])
            head.scale_ = np.stack([m.scale_ for m in members])
        head.vote_ = votes.astype(np.float32)
        head.n_classes_ = members[0].n_classes_
        head.info_ = dict(info or {})
        return head

    def members(self) -> list[_LinearHead]:
        """The member heads, rebuilt from the stacked arrays."""
        self._check_is_fitted()
        out = []
        for i in range(len(self.vote_)):
            member = MEMBERS[self.config.member]()
            for name in _LinearHead.state_arrays:
                setattr(member, name + "_", getattr(self, name + "_")[i])
            center = getattr(self, "center_", None)
            member.center_ = None if center is None else center[i]
            member.scale_ = None if center is None else self.scale_[i]
            member.n_classes_ = self.n_classes_
            out.append(member)
        return out

    def _fit(self, X, y, *, seed, groups=None, sample_weight=None):
        raise BadInputError(
            "the vote head is built by --strategy tradaboost from the heads it boosts, not "
            "fitted on its own; pick a head that is (--head, e.g. logistic)"
        )

    def _input_dim(self) -> int | None:
        return int(self.coef_.shape[2])

    @classmethod
    def _stored_classes(cls, arrays):
        rows = arrays["coef"].shape[1] if arrays["coef"].ndim == 3 else 0
        return 2 if rows == 1 else rows  # binary members store one row (heads/linear.py)

    def _scores(self, X):
        # log-probabilities, so that predict_proba (softmax of these) is the vote's mean
        share = self.vote_.astype(np.float64) / float(self.vote_.sum())
        proba = sum(w * m.predict_proba(X) for w, m in zip(share, self.members(), strict=True))
        return np.log(np.maximum(proba, 1e-30))
