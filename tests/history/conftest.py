"""The history tests use the reliability suite's ``env`` fixture: a migrated warehouse and
customers whose connections point at simulator tenants."""

from tests.reliability.conftest import env

__all__ = ["env"]
