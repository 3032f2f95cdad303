"""Azure OpenAI (kind ``azure``): the OpenAI wire format under Azure's URLs
and ``api-key`` header. The upstream model name is the deployment name.

Two URL schemes are supported:

* deployments (default):
  ``{base_url}/openai/deployments/{deployment}/chat/completions?api-version=V``
  (also ``/completions`` and ``/embeddings``);
* the v1 API, chosen by ``api_version="v1"`` or a base URL ending in ``/openai/v1``:
  ``{base_url}/openai/v1/chat/completions`` with the deployment in the body's
  ``model`` (also ``/responses``).

The API version comes from the ``api_version`` argument, else from an
``api-version`` query parameter on the base URL, else :data:`DEFAULT_API_VERSION`."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from tokgateway.common.errors import BadRequest
from tokgateway.common.settings import ProviderConfig
from tokgateway.router.providers.base import UpstreamCall
from tokgateway.router.providers.client import HTTPClient
from tokgateway.router.providers.http import OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"

_DEPLOYMENT_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


def split_base_url(base_url: str) -> tuple[str, str | None]:
    """``(resource URL without /openai and query, api-version or None)``;
    a base URL ending in ``/openai/v1`` gives api-version ``"v1"``."""
    parts = urlsplit(base_url.strip())
    version = parse_qs(parts.query).get("api-version", [None])[0]
    path = parts.path.rstrip("/")
    if path.endswith("/openai/v1"):
        path, version = path[: -len("/openai/v1")], version or "v1"
    elif path.endswith("/openai"):
        path = path[: -len("/openai")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), version


class AzureOpenAIProvider(OpenAIProvider):
    probe_path = ""  # its model list needs an api-version; reachability is enough

    def __init__(
        self,
        config: ProviderConfig,
        client: HTTPClient,
        read_timeout: float,
        *,
        api_version: str | None = None,
    ) -> None:
        super().__init__(config, client, read_timeout)
        self.resource_url, from_url = split_base_url(config.base_url)
        self.api_version = api_version or from_url or DEFAULT_API_VERSION
        if self.api_version == "v1":
            self.endpoints = frozenset({"chat", "completions", "embeddings", "responses"})
        else:
            self.endpoints = frozenset(_DEPLOYMENT_PATHS)

    def auth_headers(self) -> dict[str, str]:
        if self.config.api_key:
            return {"api-key": self.config.api_key}
        return {}

    def url(self, call: UpstreamCall) -> str:
        if self.api_version == "v1":
            return f"{self.resource_url}/openai/v1{self.paths[call.endpoint]}"
        deployment = call.body.get("model")
        if not isinstance(deployment, str) or not deployment:
            raise BadRequest("'model' (the Azure deployment name) is required.", param="model")
        path = _DEPLOYMENT_PATHS[call.endpoint]
        return (
            f"{self.resource_url}/openai/deployments/{quote(deployment, safe='')}{path}"
            f"?api-version={quote(self.api_version, safe='')}"
        )
