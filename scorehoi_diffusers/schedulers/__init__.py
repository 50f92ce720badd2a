"""Schedulers: DDIM with inversion and score guidance."""

from .scheduling_guided_ddim import GuidedDDIMInversionOutput, GuidedDDIMScheduler

__all__ = ["GuidedDDIMScheduler", "GuidedDDIMInversionOutput"]
