"""Everything that talks to OpenCode: process supervision, HTTP client, event stream, turns."""

from .catalog import DEFAULT_ALIAS, CatalogModel, ModelCatalog, ModelRef
from .service import OpenCodeBackend
from .turn import ReasoningDelta, TextDelta, TurnEvent, TurnFinished, TurnPlan, Usage, run_turn

__all__ = [
    "DEFAULT_ALIAS",
    "CatalogModel",
    "ModelCatalog",
    "ModelRef",
    "OpenCodeBackend",
    "ReasoningDelta",
    "TextDelta",
    "TurnEvent",
    "TurnFinished",
    "TurnPlan",
    "Usage",
    "run_turn",
]
