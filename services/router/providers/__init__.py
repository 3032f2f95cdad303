"""Provider adapters, chosen by the ``kind`` of a provider section."""

from __future__ import annotations

from tokgateway.common.settings import ProviderConfig
from tokgateway.router.providers.azure import AzureOpenAIProvider
from tokgateway.router.providers.base import Provider, UpstreamCall, UpstreamResponse
from tokgateway.router.providers.client import HTTPClient
from tokgateway.router.providers.echo import EchoProvider
from tokgateway.router.providers.gemini import GeminiProvider
from tokgateway.router.providers.http import (
    AnthropicProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
)

__all__ = ["Provider", "UpstreamCall", "UpstreamResponse", "build_provider"]


def build_provider(config: ProviderConfig, client: HTTPClient, read_timeout: float) -> Provider:
    if config.kind == "echo":
        return EchoProvider(config)
    if config.kind == "anthropic":
        return AnthropicProvider(config, client, read_timeout)
    if config.kind == "gemini":
        return GeminiProvider(config, client, read_timeout)
    if config.kind == "azure":
        return AzureOpenAIProvider(
            config, client, read_timeout, api_version=config.api_version or None
        )
    if config.kind == "openai-compatible":
        return OpenAICompatibleProvider(config, client, read_timeout)
    return OpenAIProvider(config, client, read_timeout)
