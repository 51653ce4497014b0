"""``transferkit gap SOURCE TARGET``: how far apart two domains are, and where (issue 18)."""

from transferkit.domain_gap.run import run_gap

__all__ = ["run_gap"]
