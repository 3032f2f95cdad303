"""Help for every `gateway` command and option, each with an example.

The command modules build their parsers as they like; ``document(parser)``
then walks the whole tree and fills in, from the tables below, the example of
each command (shown under its ``--help``) and the help of each option that
has none or lacks an example. A module adding commands adds its lines here
(or passes ``epilog=``/``help=`` with an example itself); the test suite
checks that nothing is left without one."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from types import MappingProxyType

from tokgateway.common.settings import KEYS

README = "README.md in the source tree (also the package's page on PyPI)"

# command path -> example lines
EXAMPLES: Mapping[str, str] = MappingProxyType(
    {
        "run": "gateway run --port 8081 --workers 2",
        "start": "gateway start --port 8081",
        "stop": "gateway stop",
        "status": "gateway status --json     # a mesh (GATEWAY_AUTH_URL ...): every service",
        "url": 'export OPENAI_BASE_URL="$(gateway url)/v1"',
        "reload": "gateway reload            # after editing config/setting.ini",
        "config": "gateway config show",
        "config show": "gateway config show --json | jq '.[] | select(.layer != \"default\")'",
        "keys": "gateway keys create --name ci-bot",
        "keys create": "gateway keys create --name ci-bot --models 'gpt-4o*,echo' --rpm 120",
        "keys list": "gateway keys list --json",
        "keys revoke": "gateway keys revoke key_1234abcd",
        "usage": "gateway usage --since 2026-11-01 --group-by model",
        "providers": "gateway providers list",
        "providers list": "gateway providers list --json",
        "providers set": (
            "gateway providers set local --kind openai-compatible "
            "--base-url http://127.0.0.1:11434/v1\n"
            '  echo "$OPENAI_API_KEY" | gateway providers set openai --kind openai '
            "--api-key-stdin\n"
            "  gateway providers set corp --kind openai-compatible "
            "--base-url https://llm.corp.example/v1 --proxy http://proxy.corp:3128 "
            "--header 'X-Team: search'"
        ),
        "providers delete": "gateway providers delete local",
        "models": "gateway models list",
        "models list": "gateway models list --json",
        "models set": "gateway models set my-model --input 0.10 --output 0.40",
        "models delete": "gateway models delete my-model",
        "routes": "gateway routes list",
        "routes list": "gateway routes list --json",
        "routes set": "gateway routes set 'llama3*' --to local,openai:gpt-4o-mini",
        "routes delete": "gateway routes delete 'llama3*'",
        "keys update": "gateway keys update key_1234abcd --tpm 50000 --budget-usd 20",
        "keys show": "gateway keys show key_1234abcd --json",
        "keys rotate": "gateway keys rotate key_1234abcd",
        "users": "gateway users create --email dev@example.com --budget-usd 50",
        "users create": "gateway users create --email dev@example.com --role member --rpm 60",
        "users list": "gateway users list --json",
        "users show": "gateway users show usr_1234abcd",
        "users update": "gateway users update usr_1234abcd --budget-usd 100 --budget-period month",
        "users disable": "gateway users disable usr_1234abcd",
        "users delete": "gateway users delete usr_1234abcd",
        "teams": "gateway teams create --name research --budget-usd 500",
        "teams create": "gateway teams create --name research --tpm 200000 --budget-usd 500",
        "teams list": "gateway teams list --json",
        "teams show": "gateway teams show team_1234abcd",
        "teams update": "gateway teams update team_1234abcd --budget-usd 800",
        "teams delete": "gateway teams delete team_1234abcd",
        "teams add-member": "gateway teams add-member team_1234abcd usr_1234abcd",
        "teams remove-member": "gateway teams remove-member team_1234abcd usr_1234abcd",
        "hooks": "gateway hooks add rag --events 'key.*,user.*' --url http://127.0.0.1:9000/hook",
        "hooks list": "gateway hooks list --json",
        "hooks add": (
            "gateway hooks add rag --events 'key.*,user.*' --url http://127.0.0.1:9000/hook\n"
            "  gateway hooks add audit --events '*' --command './scripts/audit.sh'"
        ),
        "hooks remove": "gateway hooks remove rag",
        "hooks test": "gateway hooks test rag",
        "hooks log": "gateway hooks log --failed --limit 20",
        "hooks replay": "gateway hooks replay evt_1234abcd",
        "market": "gateway market list --model llama3.1-8b --sort price",
        "market publish": (
            "GATEWAY_ENABLE_PROVIDER=true gateway start\n"
            "  gateway market publish --model llama3.1-8b --price-in 0.05 --price-out 0.10"
        ),
        "market unpublish": "gateway market unpublish lst_1234abcd5678ef90",
        "market list": "gateway market list --sort latency --json",
        "market compare": "gateway market compare llama3.1-8b",
        "market use": "gateway market use lst_1234abcd5678ef90 --as llama3",
        "market subscriptions": "gateway market subscriptions --json",
        "market approve": "gateway market approve sub_1234abcd5678ef90",
        "market peers": "gateway market peers add https://registry.example.org",
        "market peers add": "gateway market peers add https://registry.example.org --token s3cret",
        "market peers list": "gateway market peers list --json",
        "market peers remove": "gateway market peers remove https://registry.example.org",
        "market peers poll": "gateway market peers poll",
        "prices": "gateway prices list --model gpt-4o",
        "prices list": "gateway prices list --json | jq .as_of",
        "prices set": "gateway prices set my-model --input 0.10 --output 0.40",
        "prices refresh": "gateway prices refresh --from ./prices-2026-12.json",
    }
)

# (command path, option or positional name) -> help with an example
OPTIONS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("run", "--host"): "address to listen on (default gateway.host), e.g. --host 0.0.0.0",
        ("run", "--port"): "TCP port, 1-65535 (default gateway.port), e.g. --port 9000",
        ("run", "--workers"): "server processes on one port (default 1, GATEWAY_WORKERS), "
        "e.g. --workers 2",
        ("start", "--host"): "address to listen on, e.g. --host 0.0.0.0",
        ("start", "--port"): "TCP port, 1-65535, e.g. --port 9000",
        ("keys create", "--name"): "a label for the key, e.g. --name ci-bot",
        ("keys create", "--models"): "comma-separated allow-list, globs allowed, "
        "e.g. --models 'gpt-4o*,echo'",
        ("keys create", "--expires-days"): "expire after this many days, e.g. --expires-days 30",
        ("keys create", "--rpm"): "requests per minute limit, e.g. --rpm 120",
        ("keys create", "--user"): "owner's email (default: the admin user), "
        "e.g. --user dev@example.com",
        ("keys revoke", "id"): "the key's id from `gateway keys list`, e.g. key_1234abcd",
        ("keys revoke", "--yes"): "revoke without asking, even the admin key, e.g. --yes",
        ("usage", "--key"): "only this key id, e.g. --key key_1234abcd",
        ("usage", "--since"): "from this ISO 8601 time, e.g. --since 2026-11-01 "
        "or --since 2026-11-01T12:00Z",
        ("usage", "--group-by"): "one row per model, provider, key or day, e.g. --group-by day",
        ("providers set", "name"): "the provider's name, used in routes, e.g. local",
        ("providers set", "--kind"): "the API it speaks, e.g. --kind openai-compatible",
        ("providers set", "--base-url"): "its base URL, e.g. --base-url http://127.0.0.1:11434/v1",
        ("providers set", "--timeout"): "upstream timeout in seconds, e.g. --timeout 120",
        ("providers set", "--api-key-stdin"): "read the provider's API key from the first line "
        'of standard input, e.g. echo "$KEY" | gateway providers set ... --api-key-stdin',
        ("providers set", "--proxy"): "its own proxy (none: direct; unset: the environment's), "
        "e.g. --proxy http://proxy.corp:3128",
        ("providers set", "--ca-file"): "trust this CA file on the router host, "
        "e.g. --ca-file /etc/corp/ca.pem",
        (
            "providers set",
            "--tls-verify",
        ): "check the upstream's certificate, e.g. --tls-verify false",
        ("providers set", "--cert-file"): "client certificate (PEM), "
        "e.g. --cert-file /etc/corp/client.pem",
        (
            "providers set",
            "--key-file",
        ): "its private key, e.g. --key-file /etc/corp/client-key.pem",
        ("providers set", "--header"): "an extra header on every call (repeatable), "
        "e.g. --header 'X-Team: search'",
        ("providers set", "--max-connections"): "this provider's own pool limit, "
        "e.g. --max-connections 32",
        ("providers set", "--forward-org-headers"): "pass clients' OpenAI-Organization and "
        "-Project headers on, e.g. --forward-org-headers true",
        ("providers delete", "name"): "the provider to delete, e.g. local",
        ("models set", "name"): "the model name clients send, e.g. my-model",
        ("models set", "--input"): "USD per million input tokens, e.g. --input 0.10",
        ("models set", "--output"): "USD per million output tokens, e.g. --output 0.40",
        ("models set", "--cached"): "USD per million cached input tokens, e.g. --cached 0.05",
        ("models set", "--cache-write"): "USD per million tokens written to the prompt cache "
        "(Anthropic), e.g. --cache-write 3.75",
        ("models set", "--alias-of"): "make the name an alias, e.g. --alias-of gpt-4o-mini",
        ("models delete", "name"): "the model entry to delete, e.g. my-model",
        ("routes set", "pattern"): "a model name or * glob, e.g. 'llama3*'",
        ("routes set", "--to"): "providers in fallback order, provider[:upstream_model], "
        "e.g. --to local:qwen2.5,openai",
        ("routes set", "--position"): "lower matches first (default: before the configured "
        "routes), e.g. --position 10",
        ("routes delete", "name"): "the route's pattern, e.g. 'llama3*'",
        ("hooks add", "name"): "a name for the hook, e.g. rag",
        ("hooks add", "--events"): "event type globs, e.g. --events 'key.*,user.created'",
        ("hooks add", "--url"): "webhook URL, sent a Standard Webhooks signed POST, "
        "e.g. --url https://hooks.example.com/gateway",
        ("hooks add", "--command"): "a script that gets the event JSON on stdin, "
        "e.g. --command ./scripts/audit.sh",
        ("hooks add", "--secret-env"): "variable of the gateway holding the whsec_ secret, "
        "e.g. --secret-env RAG_HOOK_SECRET",
        ("hooks add", "--secret"): "a whsec_ secret (default: one is generated and shown once), "
        "e.g. --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ("hooks add", "--timeout-s"): "seconds to wait for each delivery, e.g. --timeout-s 5",
        ("hooks remove", "name"): "the hook to remove, e.g. rag",
        ("hooks test", "name"): "the hook to send a hook.test event to, e.g. rag",
        ("hooks log", "--failed"): "dead deliveries and failing retries only, e.g. --failed",
        ("hooks log", "--event"): "only this event id, e.g. --event evt_1234abcd",
        ("hooks log", "--limit"): "at most this many rows (default 50), e.g. --limit 20",
        ("hooks replay", "event_id"): "the event id from `gateway hooks log`, e.g. evt_1234abcd",
        ("usage", "--summary"): "marketplace tokens and cost consumed, supplied and net, "
        "e.g. --summary",
        ("market publish", "--model"): "a model this gateway serves, repeatable (default "
        "GATEWAY_MODEL_FAMILY), e.g. --model llama3.1-8b",
        ("market publish", "--price-in"): "USD per million input tokens (default: the price "
        "table), e.g. --price-in 0.05",
        ("market publish", "--price-out"): "USD per million output tokens, e.g. --price-out 0.10",
        ("market publish", "--price-cached"): "USD per million cached input tokens, "
        "e.g. --price-cached 0.01",
        ("market publish", "--name"): "display name (default GATEWAY_PUBLISH_NAME), "
        "e.g. --name 'Acme GPU farm'",
        ("market publish", "--region"): "where it runs, e.g. --region eu-west",
        ("market publish", "--api-format"): "the API the endpoint speaks, e.g. --api-format openai",
        ("market unpublish", "id"): "the listing's id, e.g. lst_1234abcd5678ef90",
        ("market use", "id"): "the listing's id from `gateway market list`, "
        "e.g. lst_1234abcd5678ef90",
        ("market approve", "id"): "the subscription's id from `gateway market subscriptions`, "
        "e.g. sub_1234abcd5678ef90",
        ("prices list", "--model"): "only models whose name contains this, e.g. --model gpt-4o",
        ("prices set", "model"): "the model name, e.g. my-model",
        ("prices set", "--input"): "USD per million input tokens, e.g. --input 0.10",
        ("prices set", "--output"): "USD per million output tokens, e.g. --output 0.40",
        ("prices set", "--cached"): "USD per million cached input tokens, e.g. --cached 0.05",
        ("prices set", "--cache-write"): "USD per million tokens written to the prompt cache "
        "(Anthropic), e.g. --cache-write 3.75",
        ("prices refresh", "--from"): "a JSON table like the shipped one (as_of, models), file "
        "or URL, e.g. --from https://example.org/prices.json",
        ("market list", "--model"): "only listings offering this model, e.g. --model llama3.1-8b",
        ("market list", "--sort"): "cheapest, fastest or most available first, e.g. --sort price",
        ("market compare", "model"): "the model to compare listings of, e.g. llama3.1-8b",
        ("market use", "--as"): "the model name agents call (default: the listed name), "
        "e.g. --as llama3",
        ("market peers add", "url"): "the peer registry's base URL, "
        "e.g. https://registry.example.org",
        ("market peers add", "--token"): "bearer token the peer's operator gave you, "
        "e.g. --token s3cret",
        ("market peers remove", "url"): "the peer's URL as listed, "
        "e.g. https://registry.example.org",
    }
)

# Variables the CLI itself reads beyond the settings keys.
CLI_ENVIRONMENT = (
    (
        "GATEWAY_URL",
        "the gateway (or mesh router) the CLI talks to; default: the one "
        "serving this data dir, else gateway.host:gateway.port",
    ),
    ("GATEWAY_CONFIG_DIR", "where setting.ini and the <env>/gateway.ini overlays live (./config)"),
    ("NO_COLOR", "set to anything: no colour even on a terminal"),
)


def environment_epilog() -> str:
    lines = ["environment variables (later layers win: setting.ini < <env>/gateway.ini < env):"]
    rows = list(CLI_ENVIRONMENT)
    for spec in KEYS:
        for var in spec.env:
            rows.append((var, f"{spec.dotted}" + (f": {spec.doc}" if spec.doc else "")))
    width = max(len(v) for v, _ in rows)
    lines += [f"  {var.ljust(width)}  {text}" for var, text in rows]
    lines += [
        "",
        "example:",
        "  gateway start && gateway keys create --name my-agent && gateway usage --group-by model",
        "",
        f"Every command has --help with an example. Documentation: {README}",
    ]
    return "\n".join(lines)


# Options that mean the same on every command that has them (limits, ids).
COMMON_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "--rpm": "requests per minute ('none' clears), e.g. --rpm 120",
        "--tpm": "tokens per minute, prompt + completion ('none' clears), e.g. --tpm 50000",
        "--budget-usd": "spend budget in USD per period ('none' clears), e.g. --budget-usd 25",
        "--budget-period": "UTC day, ISO week, month (default) or total, e.g. --budget-period week",
        "--team": "team id (the key's user must be a member), e.g. --team team_1234abcd",
        "--email": "the user's email, e.g. --email dev@example.com",
        "--role": "admin, member or viewer, e.g. --role viewer",
        "--status": "active or disabled, e.g. --status disabled",
        "--name": "a name or label, e.g. --name research",
        "--models": "comma-separated allow-list, globs allowed ('' allows every model), "
        "e.g. --models 'gpt-4o*,echo'",
        "id": "the object's id from the matching list command, e.g. key_1234abcd",
        "team_id": "the team's id from `gateway teams list`, e.g. team_1234abcd",
        "user_id": "the user's id from `gateway users list`, e.g. usr_1234abcd",
    }
)


def _generic(option: str) -> str | None:
    if option in COMMON_OPTIONS:
        return COMMON_OPTIONS[option]
    if option == "--json":
        return "print JSON instead of a table (never coloured), e.g. --json | jq ."
    if option == "--yes":
        return "do it without asking for confirmation, e.g. --yes"
    return None


def document(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Fill in examples and option help across the parser tree, in place."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    example = EXAMPLES.get(path)
    if path and example and not parser.epilog:
        parser.epilog = "example:\n  " + example
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                document(child, f"{path} {name}".strip())
            continue
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        key = action.option_strings[-1] if action.option_strings else action.dest
        if action.option_strings:
            key = next((o for o in action.option_strings if o.startswith("--")), key)
        text = OPTIONS.get((path, key)) or _generic(key)
        if text and (not action.help or "e.g." not in action.help):
            action.help = text
