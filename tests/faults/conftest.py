"""The fault-injection suite reuses the integration fixtures (real daemons, busybox)."""
from tests.integration.conftest import *  # noqa: F401,F403
