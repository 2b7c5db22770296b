"""An image a request names, as the plan's ImagePart: one rule for every protocol.

A model without image input refuses it (400 `model_not_multimodal`, naming the part). A
`data:` URL carries its media type; an http(s) URL is fetched by the provider, and its media
type is the one its extension names, or `image/png` when that names no image type.
"""

from __future__ import annotations

import mimetypes

from opencode_openai.core.errors import InvalidRequest
from opencode_openai.core.models import CatalogModel
from opencode_openai.core.plan import ImagePart

__all__ = ["image_part", "require_image_input"]


def require_image_input(model: CatalogModel, param: str) -> None:
    if not model.image_input:
        raise InvalidRequest(
            f"the model `{model.ref.id}` does not accept image input",
            param=param,
            code="model_not_multimodal",
        )


def image_part(url: str, model: CatalogModel, param: str) -> ImagePart:
    """The image at `url` (a `data:` URL, or an http(s) one), for `model`."""
    require_image_input(model, param)
    if url.startswith("data:"):
        return ImagePart(url, url[5:].split(";", 1)[0].split(",", 1)[0])
    guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
    return ImagePart(url, guessed if guessed and guessed.startswith("image/") else "image/png")
