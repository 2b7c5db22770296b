"""A Python client generated from openapi/openapi.yaml works against the running gateway.

The client is generated at test time with openapi-python-client (offline, from the installed
package) into a temporary folder, imported, and used for a non-stream chat and the models
endpoints. Its requests go through the validating transport, so what it gets back is also
checked against both contracts.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest

from contract.openapi_check import SPEC_PATH
from contract.transport import ValidatingTransport
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer

pytestmark = pytest.mark.opencode

PACKAGE = "opencode_openai_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported (`<tmp>/opencode_openai_client`)."""
    root = tmp_path_factory.mktemp("generated")
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatting: nothing to run but the generator
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(SPEC_PATH),
         "--output-path", str(root / PACKAGE), "--meta", "none", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Warning" not in output and "Error" not in output, output
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def api(generated: ModuleType, gateway: GatewayServer) -> Iterator[object]:
    transport = ValidatingTransport()
    client = generated.AuthenticatedClient(base_url=gateway.url, token=API_KEY)
    with httpx.Client(
        base_url=gateway.url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        transport=transport,
        timeout=30,
    ) as http_client:
        yield client.set_httpx_client(http_client)
    transport.assert_clean()


def test_non_stream_chat(api: object, fake_upstream: fu.FakeUpstream, marker: str) -> None:
    from opencode_openai_client.api.chat import create_chat_completion
    from opencode_openai_client.models import (
        CreateChatCompletionRequest,
        CreateChatCompletionResponse,
    )

    fake_upstream.script(marker, fu.text("generated hello"))
    body = CreateChatCompletionRequest.from_dict(
        {"model": "fake/fake-model", "messages": [{"role": "user", "content": f"hi {marker}"}]}
    )
    response = create_chat_completion.sync_detailed(client=api, body=body)
    assert response.status_code == 200
    reply = response.parsed
    assert isinstance(reply, CreateChatCompletionResponse)
    assert reply.model == "fake/fake-model"
    assert reply.choices[0].message.content == "generated hello"
    assert reply.choices[0].finish_reason.value == "stop"


def test_models_list_and_retrieve(api: object) -> None:
    from opencode_openai_client.api.models import list_models, retrieve_model
    from opencode_openai_client.models import ErrorResponse, ListModelsResponse, Model

    listed = list_models.sync(client=api)
    assert isinstance(listed, ListModelsResponse)
    ids = {model.id for model in listed.data}
    assert {"opencode/default", "fake/fake-model"} <= ids

    model = retrieve_model.sync("fake/fake-model", client=api)
    assert isinstance(model, Model) and model.id == "fake/fake-model" and model.owned_by == "fake"

    missing = retrieve_model.sync("nope/none", client=api)
    assert isinstance(missing, ErrorResponse) and missing.error.code == "model_not_found"
