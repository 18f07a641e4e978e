"""Tests of the shipped plugins, one folder per plugin (``tests/plugins/<name>/``).

Empty until the plugins land; the plugin framework itself is tested in ``tests/plugin_api/``.
"""
