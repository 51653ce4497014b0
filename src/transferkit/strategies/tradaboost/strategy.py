"""``tradaboost``: the training data are a few labelled target-domain examples, ``--source`` many
labelled examples of another domain; TrAdaBoost on frozen embeddings keeps the source examples
that help on the target and lets the others fade.

The weak learner is the run's head (logistic by default, or svm), weighted: the first round
chooses its C by cross-validation on all rows, later rounds keep that C (the data stay the same,
only their weights move, and a grid search per round would cost N times more). The model is the
vote of the later half of the rounds (``heads/vote.py``), which predicts, exports and serves
like any head.
"""

from __future__ import annotations

import numpy as np

from transferkit.errors import BadInputError
from transferkit.heads.vote import MEMBERS, VoteHead
from transferkit.strategies.base import (
    Capabilities,
    FitContext,
    FitData,
    Option,
    ReportSection,
    Strategy,
    StrategyResult,
)
from transferkit.strategies.features import embed_training_set
from transferkit.strategies.registry import register_strategy
from transferkit.strategies.source import source_like_training
from transferkit.strategies.tradaboost.boosting import tradaboost
from transferkit.strategies.tradaboost.config import TrAdaBoostConfig


@register_strategy
class TrAdaBoostStrategy(Strategy):
    """A few labelled target examples (DATA) and a large labelled source domain (--source),
    boosted (TrAdaBoost, Dai et al. 2007): source examples the heads get wrong lose weight."""

    name = "tradaboost"
    Config = TrAdaBoostConfig
    capabilities = Capabilities(accepts_source=True)
    options = (
        Option(
            "--tradaboost-rounds",
            "rounds",
            int,
            "tradaboost: boosting rounds, one weighted head each (default 10); the model is the "
            "vote of the later half",
            valid=lambda v: v >= 2,
            must_be="at least 2",
        ),
    )

    def fit(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        if data.source is None:
            raise BadInputError(
                "--strategy tradaboost learns from a large labelled source domain as well as "
                "DATA (a few labelled target examples): pass it with --source PATH, or source= "
                "to fit()."
            )
        member = MEMBERS.get(ctx.head.name)
        if member is None:
            raise BadInputError(
                f"--strategy tradaboost boosts {' or '.join(MEMBERS)} heads (weighted, with "
                f"probabilities); got --head {ctx.head.name}. Pick one of them."
            )
        source = source_like_training(data.train, data.source)
        target = embed_training_set(backbone, data.train, ctx.embed, self.config.augment)
        found = embed_training_set(backbone, source, ctx.embed, "none")
        if len(np.unique(found.y)) < len(data.train.labels):
            raise BadInputError(
                f"--source {source.source}: too few of its inputs could be read to hold every "
                "class; fix or replace the unreadable files."
            )
        params = ctx.head.get_params()
        groups = None
        if target.groups is not None:  # the target's views share a group; each source row its own
            groups = np.concatenate([len(target.groups) + np.arange(len(found.y)), target.groups])
        chosen = {}

        def fit_learner(round_, X, y, weight):
            if round_ == 0:
                head = member(**params).fit(X, y, weight, seed=ctx.seed, groups=groups)
                chosen["C"] = head.info_["C"]
                return head
            return member(**{**params, "Cs": (chosen["C"],)}).fit(X, y, weight, seed=ctx.seed)

        boosted = tradaboost(
            fit_learner, found.X, found.y, target.X, target.y, rounds=self.config.rounds
        )
        facts = _facts(boosted, found, source.labels, chosen["C"])
        vote = VoteHead.from_members(
            boosted.voters, boosted.votes, info={"C": chosen["C"], "rounds": self.config.rounds}
        )
        info = dict(target.info)
        info["seconds_extract"] += found.info["seconds_extract"]
        info["problems"] = [*target.info["problems"], *found.info["problems"]]
        info["tradaboost"] = facts
        return StrategyResult(n_train=target.n_train, info=info, head=vote)

    def metrics_block(self, result: StrategyResult) -> dict:
        return {"tradaboost": result.info["tradaboost"]}

    def report_section(self, metrics) -> ReportSection | None:
        boost = metrics.get("tradaboost")
        if not isinstance(boost, dict):
            return None
        facts = {
            "source examples": boost.get("n_source"),
            "target examples (rows, with views)": boost.get("n_target_rows"),
            "rounds (voting)": f"{boost.get('rounds')} ({boost.get('voters')})",
            "target error per round": boost.get("target_error"),
            "weight on the source, per round": boost.get("source_share"),
            "source weight kept, per class (1 = as at the start)": boost.get(
                "source_weight_by_class"
            ),
        }
        return ReportSection(
            "tradaboost",
            "TrAdaBoost",
            facts=facts,
            shows=("tradaboost",),
            note="Source examples the heads get wrong lose weight every round; a class whose "
            "source examples keep little weight looks unlike the target in that class.",
        )


def _facts(boosted, source, labels, C: float) -> dict:
    """What the boosting did, for metrics.json and the report."""
    n_source, n_rows = len(source.y), len(boosted.target_weight) + len(source.y)
    # a source row's final weight relative to its starting weight (1 / all rows)
    kept = boosted.source_weight * n_rows
    by_class = {labels[c]: round(float(kept[source.y == c].mean()), 4) for c in np.unique(source.y)}
    return {
        "rounds": len(boosted.learners),
        "voters": len(boosted.voters),
        "C": C,
        "n_source": n_source,
        "n_target_rows": len(boosted.target_weight),
        "beta_source": round(boosted.beta_source, 6),
        "target_error": [round(float(e), 4) for e in boosted.errors],
        "beta": [round(float(b), 6) for b in boosted.betas],
        "votes": [round(float(v), 4) for v in boosted.votes],
        "source_share": [round(float(s), 4) for s in boosted.source_share],
        "source_weight_by_class": by_class,
        # source rows whose weight fell below a tenth of where it started
        "source_faded": int((kept < 0.1).sum()),
    }
