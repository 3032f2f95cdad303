"""Admin request bodies -> checked values. Every mistake is a 400 naming the
field (``param``), in the OpenAI error shape the admin API answers with."""

from __future__ import annotations

from typing import Any

from tokgateway.common.contracts import BUDGET_PERIODS, ROLES, Limits
from tokgateway.common.errors import BadRequest

STATUSES = ("active", "disabled")
LIMIT_FIELDS = ("rpm", "tpm", "budget_usd", "budget_period")


def _positive_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"'{name}' must be a positive integer or null.", param=name)
    return value


def limit_changes(data: dict[str, Any]) -> dict[str, Any]:
    """The limit fields present in ``data`` (null clears one), checked."""
    out: dict[str, Any] = {}
    for name in ("rpm", "tpm"):
        if name in data:
            out[name] = _positive_int(data, name)
    if "budget_usd" in data:
        budget = data["budget_usd"]
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0
        ):
            raise BadRequest("'budget_usd' must be a number >= 0 or null.", param="budget_usd")
        out["budget_usd"] = float(budget) if budget is not None else None
    if "budget_period" in data:
        period = data["budget_period"]
        if period is not None and period not in BUDGET_PERIODS:
            raise BadRequest(
                f"'budget_period' must be one of {', '.join(BUDGET_PERIODS)}.",
                param="budget_period",
            )
        out["budget_period"] = period or "month"
    return out


def limits_from(data: dict[str, Any]) -> Limits:
    return Limits.from_dict(limit_changes(data))


def _only(data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise BadRequest(
            f"Unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}.", param=unknown[0]
        )


def _nonempty_str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{name}' must be a non-empty string.", param=name)
    return value.strip()


def _optional_id(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{name}' must be an id string.", param=name)
    return value.strip()


def _role(data: dict[str, Any]) -> str:
    role = data.get("role", "member")
    if role not in ROLES:
        raise BadRequest(f"'role' must be one of {', '.join(ROLES)}.", param="role")
    return str(role)


def parse_user_create(data: dict[str, Any]) -> dict[str, Any]:
    _only(data, ("email", "role", *LIMIT_FIELDS))
    email = _nonempty_str(data, "email")
    if "@" not in email or " " in email:
        raise BadRequest("'email' must be an email address.", param="email")
    return {"email": email.lower(), "role": _role(data), "limits": limits_from(data)}


def parse_user_patch(data: dict[str, Any]) -> dict[str, Any]:
    _only(data, ("role", "status", *LIMIT_FIELDS))
    changes = limit_changes(data)
    if "role" in data:
        changes["role"] = _role(data)
    if "status" in data:
        if data["status"] not in STATUSES:
            raise BadRequest(f"'status' must be one of {', '.join(STATUSES)}.", param="status")
        changes["status"] = data["status"]
    return changes


def parse_team_create(data: dict[str, Any]) -> dict[str, Any]:
    _only(data, ("name", *LIMIT_FIELDS))
    return {"name": _nonempty_str(data, "name"), "limits": limits_from(data)}


def parse_team_patch(data: dict[str, Any]) -> dict[str, Any]:
    _only(data, ("name", *LIMIT_FIELDS))
    changes = limit_changes(data)
    if "name" in data:
        changes["name"] = _nonempty_str(data, "name")
    return changes


def _models(data: dict[str, Any]) -> tuple[str, ...]:
    models = data.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise BadRequest("'models' must be a list of model names.", param="models")
    return tuple(m.strip() for m in models if m.strip())


def parse_key_request(data: dict[str, Any]) -> dict[str, Any]:
    """POST /admin/keys: name, models, expires_days, user_id or user_email,
    team_id, and the limits."""
    _only(
        data, ("name", "models", "expires_days", "user_id", "user_email", "team_id", *LIMIT_FIELDS)
    )
    name = _nonempty_str(data, "name")
    expires = data.get("expires_days")
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= 0
    ):
        raise BadRequest("'expires_days' must be a positive number.", param="expires_days")
    email = data.get("user_email")
    if email is not None and not isinstance(email, str):
        raise BadRequest("'user_email' must be a string.", param="user_email")
    user_id = _optional_id(data, "user_id")
    if user_id and email:
        raise BadRequest("Give 'user_id' or 'user_email', not both.", param="user_id")
    return {
        "name": name,
        "models": _models(data),
        "expires_days": expires,
        "user_email": email.strip().lower() if email else None,
        "user_id": user_id,
        "team_id": _optional_id(data, "team_id"),
        "limits": limits_from(data),
    }


def parse_key_patch(data: dict[str, Any]) -> dict[str, Any]:
    _only(data, ("name", "models", *LIMIT_FIELDS))
    changes = limit_changes(data)
    if "name" in data:
        changes["name"] = _nonempty_str(data, "name")
    if "models" in data:
        changes["models"] = _models(data)
    return changes
