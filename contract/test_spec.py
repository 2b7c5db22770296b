"""openapi/openapi.yaml is a valid OpenAPI 3.0 document (openapi-spec-validator as the linter)."""

from __future__ import annotations

import yaml
from openapi_spec_validator import OpenAPIV30SpecValidator

from contract.openapi_check import SPEC_PATH


def test_spec_passes_openapi_spec_validator() -> None:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in OpenAPIV30SpecValidator(spec).iter_errors()
    ]
    assert errors == []


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (PyYAML keeps the last one silently)."""


def _mapping(loader: _UniqueKeys, node: yaml.MappingNode) -> dict[object, object]:
    keys = [loader.construct_object(key) for key, _ in node.value]
    doubled = sorted({str(k) for k in keys if keys.count(k) > 1})
    assert not doubled, f"line {node.start_mark.line + 1}: keys given twice: {doubled}"
    return loader.construct_mapping(node)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def test_spec_names_no_key_twice() -> None:
    """Two schemas of one name would be one schema: the second silently replacing the first."""
    yaml.load(SPEC_PATH.read_text(), Loader=_UniqueKeys)
