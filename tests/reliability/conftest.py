"""The reliability suite reuses the integration fixtures (real daemons, clients, busybox)."""
from tests.integration.conftest import *  # noqa: F401,F403
