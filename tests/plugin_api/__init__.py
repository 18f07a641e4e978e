"""Tests of the plugin framework: Plugin base, PluginStorage, locks, namespaces, deps."""
