import os

from hypothesis import HealthCheck, settings

# CI replays the same examples every run; locally each run explores new ones.
settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# The browser fixtures (app_url, browser, page, visit) for every browser test module.
from tests.browser import app_url, browser, page, visit  # noqa: E402,F401
