"""Vendor the few schemas of OpenAI's own OpenAPI document that the contract tests compare with.

    python contract/extract_openai_schemas.py OPENAPI_FILE COMMIT

OPENAPI_FILE is `openapi.yaml` (or `openapi.json`) of github.com/openai/openai-openapi at
COMMIT. Writes contract/openai/schemas.json: the root schemas below and every schema they
reference, as `{"source": ..., "components": {"schemas": ...}}` so that their `$ref`s
resolve unchanged. OpenAI's document is OpenAPI 3.1 but still says `nullable: true` in
places; that is rewritten to `anyOf: [..., {type: null}]` so JSON Schema 2020-12
validators read it as OpenAI means it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOTS = (
    "CreateChatCompletionRequest",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    # The Responses API: the request, the response object, every stream event, input items.
    "CreateResponse",
    "Response",
    "ResponseStreamEvent",
    "ResponseItemList",
)
REF_PREFIX = "#/components/schemas/"
OUTPUT = Path(__file__).resolve().parent / "openai" / "schemas.json"


def refs(node: Any) -> Iterator[str]:
    """The names of the component schemas `node` refers to, directly."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(REF_PREFIX):
                    raise ValueError(f"unexpected $ref {value}")
                yield value.removeprefix(REF_PREFIX)
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def closure(schemas: dict[str, Any], roots: tuple[str, ...]) -> list[str]:
    """`roots` and every schema they reach through `$ref`, sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(refs(schemas[name]))
    return sorted(seen)


def without_nullable(node: Any) -> Any:
    """`node` with each `nullable: true` schema turned into `anyOf: [schema, {type: null}]`.

    Only a boolean `nullable` is the keyword: a property *named* nullable holds a schema.
    """
    if isinstance(node, list):
        return [without_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {
        k: without_nullable(v)
        for k, v in node.items()
        if not (k == "nullable" and isinstance(v, bool))
    }
    if node.get("nullable") is True:
        return {"anyOf": [rewritten, {"type": "null"}]}
    return rewritten


def extract(document: dict[str, Any], commit: str) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    return {
        "source": {
            "repository": "https://github.com/openai/openai-openapi",
            "commit": commit,
            "path": "openapi.yaml",
            "openapi": document["openapi"],
            "license": "MIT, see LICENSE beside this file",
            "changes": (
                "only the schemas below; `nullable: true` rewritten to anyOf [schema, {type: null}]"
            ),
        },
        "components": {
            "schemas": {name: without_nullable(schemas[name]) for name in closure(schemas, ROOTS)}
        },
    }


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    source, commit = Path(argv[0]), argv[1]
    text = source.read_text()
    document = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
    vendored = extract(document, commit)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(vendored, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {OUTPUT}: {len(vendored['components']['schemas'])} schemas")


if __name__ == "__main__":
    main(sys.argv[1:])
