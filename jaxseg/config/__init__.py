"""Configs: the default config (defaults), config files loaded by path with overrides (files), and the one
place a config is checked before work starts (checks)."""
