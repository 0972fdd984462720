"""Workflow configuration validation with errors that name the offending key."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

from pagecore.errors import ConfigError


def _key_path(err: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path]
    key = ".".join(parts).replace(".[", "[")
    if err.validator == "additionalProperties":
        # name the unexpected key itself
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        if extra:
            key = ".".join([key, extra[0]]) if key else extra[0]
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        key = ".".join([key, missing]) if key else missing
    return key or "<top level>"


def validate_config(config: dict, schema: str | os.PathLike) -> dict:
    """Check ``config`` against the JSON schema at ``schema``; fill in schema defaults.

    Raises
    ------
    ConfigError
        Naming the first offending key, e.g. ``config key synth.fig04.vms: -3 is less than
        the minimum of 1``.
    """
    with open(schema) as fh:
        sch = yaml.safe_load(fh)
    validator_cls = jsonschema.validators.validator_for(sch)
    validator = validator_cls(sch)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        e = errors[0]
        what = e.message
        if e.validator == "additionalProperties":
            what = "unknown key (see workflow/config/config.yaml for the valid ones)"
        raise ConfigError(f"config key {_key_path(e)}: {what}")
    _fill_defaults(config, sch)
    return config


def _fill_defaults(obj, sch) -> None:
    if not isinstance(obj, dict) or sch.get("type") != "object":
        if isinstance(obj, list) and "items" in sch:
            for item in obj:
                _fill_defaults(item, sch["items"])
        return
    for key, sub in sch.get("properties", {}).items():
        if key not in obj and "default" in sub:
            obj[key] = (
                sub["default"] if not isinstance(sub["default"], dict | list) else type(sub["default"])(sub["default"])
            )
        if key in obj:
            _fill_defaults(obj[key], sub)


def load_config(path: str | os.PathLike, schema: str | os.PathLike) -> dict:
    """Load and validate a YAML config file (for notebooks and tests)."""
    with open(path) as fh:
        cfg = yaml.safe_load(fh) or {}
    return validate_config(cfg, Path(schema))
