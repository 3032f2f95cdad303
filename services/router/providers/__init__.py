"""Provider adapters, chosen by the ``kind`` of a provider section."""

from __future__ import annotations

import aiohttp

from tokgateway.common.settings import ProviderConfig
from tokgateway.router.providers.azure import AzureOpenAIProvider
from tokgateway.router.providers.base import Provider, UpstreamCall, UpstreamResponse
from tokgateway.router.providers.echo import EchoProvider
from tokgateway.router.providers.gemini import GeminiProvider
from tokgateway.router.providers.http import (
    AnthropicProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
)

__all__ = ["Provider", "UpstreamCall", "UpstreamResponse", "build_provider"]


def build_provider(
    config: ProviderConfig, session: aiohttp.ClientSession, read_timeout: float
) -> Provider:
    if config.kind == "echo":
        return EchoProvider(config)
    if config.kind == "anthropic":
        return AnthropicProvider(config, session, read_timeout)
    if config.kind == "gemini":
        return GeminiProvider(config, session, read_timeout)
    if config.kind == "azure":
        return AzureOpenAIProvider(
            config, session, read_timeout, api_version=config.api_version or None
        )
    if config.kind == "openai-compatible":
        return OpenAICompatibleProvider(config, session, read_timeout)
    return OpenAIProvider(config, session, read_timeout)
