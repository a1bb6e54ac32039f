"""Reliability tests use the integration suite's real daemons and clients."""
from tests.integration.conftest import *  # noqa: F401,F403
