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
