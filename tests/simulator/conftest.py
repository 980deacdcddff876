"""Loads the simulator fixtures for these tests.

``pytest_plugins`` is only allowed in the top-level conftest, so register the plugin here
instead; registering an already loaded plugin is a no-op, so this stays harmless once the
top-level conftest loads it too.
"""


def pytest_configure(config):
    config.pluginmanager.import_plugin("zuora_simulator.pytest_plugin")
