"""Everything that talks to OpenCode: process supervision, HTTP client, event stream, turns."""

from .catalog import DEFAULT_ALIAS, CatalogModel, ModelCatalog, ModelRef
from .service import OpenCodeBackend
from .turn import (
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    TurnPlan,
    Usage,
    run_turn,
)
from .workspace import ClientTool

__all__ = [
    "DEFAULT_ALIAS",
    "CatalogModel",
    "ClientTool",
    "ModelCatalog",
    "ModelRef",
    "OpenCodeBackend",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallDelta",
    "TurnEvent",
    "TurnFinished",
    "TurnPlan",
    "Usage",
    "run_turn",
]
