"""The reliability suite drives real daemons with the integration fixtures."""
from tests.integration.conftest import *  # noqa: F401,F403
