"""The upstream client's settings as the router receives them, and the step
that gives each provider its network options.

Providers come to the router from the registry, whose records carry their
network options (from the INI file's ``[provider.NAME]`` section, or given
through the admin API). A router's own INI section for the same provider name
wins (:meth:`ClientOptions.with_network`): file paths such as ``ca_file`` are
paths on the router's host."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from tokgateway.common.settings import ProviderConfig, ProviderNetwork
from tokgateway.router.providers.client import HeaderHook, HTTPClient
from tokgateway.router.providers.dial import DEFAULT_DELAY
from tokgateway.router.providers.proxy import EnvProxies

__all__ = ["ClientOptions", "HeaderHook"]


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    keepalive: float = 60.0
    pool_timeout: float = 30.0
    max_body: int = 64 << 20
    max_event: int = 8 << 20
    max_stream: int = 64 << 20
    happy_eyeballs_delay: float = DEFAULT_DELAY
    proxies: EnvProxies = field(default_factory=EnvProxies)
    networks: Mapping[str, ProviderNetwork] = field(default_factory=dict)

    def build(
        self, connect_timeout: float, max_connections: int, hooks: list[HeaderHook]
    ) -> HTTPClient:
        return HTTPClient(
            connect_timeout=connect_timeout,
            keepalive=self.keepalive,
            max_connections=max_connections,
            pool_timeout=self.pool_timeout,
            max_body=self.max_body,
            max_event=self.max_event,
            max_stream=self.max_stream,
            happy_eyeballs_delay=self.happy_eyeballs_delay,
            proxies=self.proxies,
            header_hooks=hooks,
        )

    def with_network(self, config: ProviderConfig) -> ProviderConfig:
        """``config`` with the network options this router's INI section for it
        gives, if it has one; else those of the registry's record."""
        network = self.networks.get(config.name)
        if network is None or network == config.network:
            return config
        return dataclasses.replace(config, network=network)
