"""blockmon's one immutable settings object: defaults, TOML file, environment, validation."""

from monitor.settings.load import DEFAULT_CONFIG_NAME, SettingsError, load_settings
from monitor.settings.render import render_default_config, render_settings_table
from monitor.settings.sections import (
    SECTIONS,
    AlertsSettings,
    Check,
    CollectorSettings,
    ProbeSettings,
    ReportsSettings,
    ScheduleSettings,
    Settings,
    StorageSettings,
    TargetsSettings,
    knobs_from,
    setting,
)
from monitor.settings.specs import ENV_PREFIX, SettingSpec, setting_specs
from monitor.settings.values import WatchWindow

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "ENV_PREFIX",
    "SECTIONS",
    "AlertsSettings",
    "Check",
    "CollectorSettings",
    "ProbeSettings",
    "ReportsSettings",
    "ScheduleSettings",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "TargetsSettings",
    "WatchWindow",
    "knobs_from",
    "load_settings",
    "render_default_config",
    "render_settings_table",
    "setting",
    "setting_specs",
]
