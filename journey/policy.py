"""Loading the contact policy file (TOML) into :class:`domain.contact_policy.Policy`.

The default file is ``journey/contact-policy.toml``; ``JOURNEY_POLICY`` (environment) or
``--policy`` (flag) name another. Every problem in the file is reported with the file, the key
and what was expected, so a typo never silently becomes a default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from domain.contact_policy import CHANNELS, DAY_NAMES, PURPOSES, FrequencyCap, Policy, PolicyBook

DEFAULT_PATH = Path(__file__).with_name("contact-policy.toml")

_SECTIONS: dict[str, frozenset[str]] = {
    "legal_basis": frozenset({"legitimate_interest_months"}),
    # `holidays` is the older name of `closed_days` (same meaning: dates nobody is called).
    "quiet_hours": frozenset({"channels", "windows", "working_days", "service", "default_timezone",
                              "closed_days", "holidays"}),
    "cooldown": frozenset({"days", "outcomes"}),
}
_TOP = frozenset({"version", "effective_from", "max_lag", "frequency_cap", *_SECTIONS})
_CAP_KEYS = frozenset({"channel", "purpose", "limit", "days"})


class PolicyError(ValueError):
    """The policy file cannot be read or says something that is not a policy."""


def policy_path(chosen: str | Path | None = None) -> Path:
    """Which file: the one chosen (``--policy``, else ``Settings.policy``), else the default."""
    return Path(chosen or DEFAULT_PATH)


def load_policy(path: str | Path | None = None) -> Policy:
    where = policy_path(str(path) if path is not None else None)
    try:
        with open(where, "rb") as handle:
            doc = tomllib.load(handle)
    except FileNotFoundError:
        raise PolicyError(f"contact policy {where}: no such file") from None
    except OSError as error:
        raise PolicyError(f"contact policy {where}: cannot read it ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"contact policy {where}: not valid TOML: {error}") from None
    try:
        return parse_policy(doc)
    except PolicyError as error:
        raise PolicyError(f"contact policy {where}: {error}") from None


def parse_policy(doc: Mapping[str, Any]) -> Policy:
    _no_unknown(doc, _TOP, "")
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise PolicyError("version: missing (a string like \"2026-11-1\")")
    for name, keys in _SECTIONS.items():
        section = doc.get(name, {})
        if not isinstance(section, dict):
            raise PolicyError(f"{name}: expected a table ([{name}])")
        _no_unknown(section, keys, f"{name}.")
    legal = doc.get("legal_basis", {})
    quiet = doc.get("quiet_hours", {})
    cooldown = doc.get("cooldown", {})
    defaults = Policy(version=version)
    tz = _str(quiet, "default_timezone", "quiet_hours.", defaults.default_timezone)
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError):
        raise PolicyError(f"quiet_hours.default_timezone: {tz!r} is not a timezone "
                          "(like Europe/Madrid)") from None
    return Policy(
        version=version,
        effective_from=_effective_from(doc.get("effective_from"), tz),
        legitimate_interest_months=_int(legal, "legitimate_interest_months", "legal_basis.",
                                        defaults.legitimate_interest_months),
        quiet_hours_channels=tuple(_choices(quiet, "channels", "quiet_hours.", CHANNELS,
                                            list(defaults.quiet_hours_channels))),
        call_windows=tuple(_window(w, f"quiet_hours.windows[{i}]") for i, w in
                           enumerate(_list(quiet, "windows", "quiet_hours.", ["09:00-21:00"]))),
        working_days=frozenset(DAY_NAMES.index(d) for d in _choices(
            quiet, "working_days", "quiet_hours.", DAY_NAMES, ["mon", "tue", "wed", "thu", "fri"])),
        closed_days=_days(quiet, "closed_days") | _days(quiet, "holidays"),
        quiet_hours_for_service=_bool(quiet, "service", "quiet_hours.", False),
        default_timezone=tz,
        frequency_caps=_caps(doc),
        cooldown_days=_number(cooldown, "days", "cooldown.", defaults.cooldown_days),
        cooldown_outcomes=frozenset(_list(cooldown, "outcomes", "cooldown.",
                                          sorted(defaults.cooldown_outcomes))),
        max_lag=_int(doc, "max_lag", "", defaults.max_lag),
    )


def _effective_from(value: Any, tz: str) -> datetime | None:
    """``effective_from``: a date (midnight in the default timezone) or an instant with offset."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PolicyError("effective_from: an instant needs its UTC offset")
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), ZoneInfo(tz))
    raise PolicyError(f"effective_from: expected a date like 2026-03-01, got {value!r}")


def load_policies(path: str | Path | None = None) -> PolicyBook:
    """Every policy version: one file, or every ``*.toml`` in a directory (one version each)."""
    where = policy_path(str(path) if path is not None else None)
    files = sorted(where.glob("*.toml")) if where.is_dir() else [where]
    if not files:
        raise PolicyError(f"contact policy {where}: no *.toml files in that directory")
    policies = tuple(load_policy(f) for f in files)
    try:
        return PolicyBook(policies)
    except ValueError as error:
        raise PolicyError(f"contact policy {where}: {error}") from None


def _no_unknown(table: Mapping[str, Any], known: frozenset[str], prefix: str) -> None:
    for key in table:
        if key not in known:
            raise PolicyError(f"{prefix}{key}: unknown setting (known: {', '.join(sorted(known))})")


def _caps(doc: Mapping[str, Any]) -> tuple[FrequencyCap, ...]:
    raw = doc.get("frequency_cap", [])
    if not isinstance(raw, list):
        raise PolicyError("frequency_cap: expected a list of tables ([[frequency_cap]])")
    caps = []
    for i, cap in enumerate(raw):
        where = f"frequency_cap[{i}]."
        if not isinstance(cap, dict):
            raise PolicyError(f"frequency_cap[{i}]: expected a table")
        _no_unknown(cap, _CAP_KEYS, where)
        for key in ("channel", "purpose", "limit", "days"):
            if key not in cap:
                raise PolicyError(f"{where}{key}: missing")
        channel = _str(cap, "channel", where, "")
        purpose = _str(cap, "purpose", where, "")
        if channel not in (*CHANNELS, "any"):
            raise PolicyError(f"{where}channel: {channel!r} is not one of {', '.join(CHANNELS)}, any")
        if purpose not in PURPOSES:
            raise PolicyError(f"{where}purpose: {purpose!r} is not one of {', '.join(PURPOSES)}")
        limit = _int(cap, "limit", where, 0)
        if limit < 1:
            raise PolicyError(f"{where}limit: must be at least 1")
        caps.append(FrequencyCap(channel, purpose, limit, _number(cap, "days", where, 0)))
    return tuple(caps)


def _str(table: Mapping[str, Any], key: str, prefix: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise PolicyError(f"{prefix}{key}: expected a string, got {value!r}")
    return value


def _int(table: Mapping[str, Any], key: str, prefix: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(f"{prefix}{key}: expected a whole number >= 0, got {value!r}")
    return value


def _number(table: Mapping[str, Any], key: str, prefix: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise PolicyError(f"{prefix}{key}: expected a number > 0, got {value!r}")
    return float(value)


def _bool(table: Mapping[str, Any], key: str, prefix: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(f"{prefix}{key}: expected true or false, got {value!r}")
    return value


def _list(table: Mapping[str, Any], key: str, prefix: str, default: list[str]) -> list[str]:
    value = table.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{prefix}{key}: expected a list of strings, got {value!r}")
    return value


def _choices(table: Mapping[str, Any], key: str, prefix: str, allowed: tuple[str, ...],
             default: list[str]) -> list[str]:
    values = _list(table, key, prefix, default)
    for value in values:
        if value not in allowed:
            raise PolicyError(f"{prefix}{key}: {value!r} is not one of {', '.join(allowed)}")
    return values


def _window(text: str, where: str) -> tuple[time, time]:
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError
        a, b = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise PolicyError(f"{where}: {text!r} is not a window like \"09:00-21:00\"") from None
    if a >= b:
        raise PolicyError(f"{where}: {text!r} ends before it starts")
    return a, b


def _days(quiet: Mapping[str, Any], key: str) -> frozenset[date]:
    """A list of local dates, each a TOML date (2026-12-24) or a string ("2026-12-24")."""
    value = quiet.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"quiet_hours.{key}: expected a list of dates like 2026-12-24, got {value!r}")
    return frozenset(_date(d, f"quiet_hours.{key}[{i}]") for i, d in enumerate(value))


def _date(value: Any, where: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        if not isinstance(value, str):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise PolicyError(f"{where}: {value!r} is not a date like 2026-12-24") from None
