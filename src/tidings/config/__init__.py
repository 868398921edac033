"""Configuration: ``tidings.yaml`` with ``${ENV}`` values, validated into pydantic models."""

from ..units import Duration, Size, parse_duration, parse_size
from .destinations import destination_problems
from .loader import config_path, config_schema, load_config, parse_config
from .models import Config, DefaultRoute, DispatcherSettings, Match, Route, ServerSettings

__all__ = [
    "Config",
    "DefaultRoute",
    "DispatcherSettings",
    "Duration",
    "Match",
    "Route",
    "ServerSettings",
    "Size",
    "config_path",
    "config_schema",
    "destination_problems",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
]
