"""Members the platform keeps in a resource's spec for itself: never read from the wire (the
edge drops members the model does not name) and never shown (`public`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# The AWS Marketplace product a model, package or job runs (services/marketplace/listings.py
# `marketplace_origin`): its seller, product and dimensions, for metering and the buyer rules.
MARKETPLACE: Final = "_Marketplace"
# What a training job made from an algorithm resource runs: its pinned image and its metrics.
RUN: Final = "_Run"
# The hyperparameter tuning job that launched a training job (its ARN).
TUNING: Final = "_Tuning"
# A deployment's variant and a transform job's model snapshot carry the product they run here.
ORIGIN: Final = "Marketplace"


def public(spec: Mapping[str, object]) -> dict[str, Any]:
    """A spec as Describe shows it: without what the platform keeps for itself."""
    return {k: v for k, v in spec.items() if not k.startswith("_")}
