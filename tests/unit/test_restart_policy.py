"""The pure restart decision (app/runtime/restart/policy.py) against moby's restartmanager rules."""
import itertools

import pytest

from app.errors import InvalidParameter
from app.runtime.restart.policy import FIRST_DELAY, MAX_DELAY, Decision, check_auto_remove, decide, validate

POLICIES = [("no", 0), ("always", 0), ("unless-stopped", 0), ("on-failure", 0), ("on-failure", 3)]
CODES = [0, 1, 137, 255]


def expected_restart(name, retries, code, by_user, count):
    if by_user or name == "no":
        return False
    if name in ("always", "unless-stopped"):
        return True
    return code != 0 and (retries == 0 or count < retries)


@pytest.mark.parametrize("name,retries,code,by_user,count", [
    (n, r, c, u, k) for (n, r), c, u, k in itertools.product(POLICIES, CODES, (False, True), (0, 1, 2, 3, 4, 10))])
def test_every_combination(name, retries, code, by_user, count):
    d = decide(name, retries, code, by_user, count, ran_for=1.0, last_delay=0.0)
    assert d.restart is expected_restart(name, retries, code, by_user, count)
    assert d.delay == FIRST_DELAY


def test_backoff_doubles_to_one_minute():
    delays, last = [], 0.0
    for _ in range(14):
        last = decide("always", 0, 0, False, 0, ran_for=0.5, last_delay=last).delay
        delays.append(last)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == MAX_DELAY and max(delays) == MAX_DELAY
    assert all(b == min(a * 2, MAX_DELAY) for a, b in zip(delays, delays[1:]))


@pytest.mark.parametrize("ran_for,want", [(9.99, 1.6), (10.0, FIRST_DELAY), (3600, FIRST_DELAY)])
def test_a_long_run_resets_the_backoff(ran_for, want):
    assert decide("always", 0, 0, False, 5, ran_for=ran_for, last_delay=0.8).delay == pytest.approx(want)


def test_on_failure_stops_after_n():
    count, restarts = 0, 0
    while decide("on-failure", 3, 1, False, count, 0.1, 0).restart:
        count += 1
        restarts += 1
        assert restarts < 10
    assert restarts == 3


def test_unknown_or_empty_policy_never_restarts():
    assert decide("", 0, 1, False, 0, 0, 0) == Decision(False, FIRST_DELAY)
    assert not decide("bogus", 0, 1, False, 0, 0, 0).restart


@pytest.mark.parametrize("policy,message", [
    ({"Name": "always", "MaximumRetryCount": 2}, "maximum retry count can only be used with 'on-failure'"),
    ({"Name": "no", "MaximumRetryCount": -1}, "can only be used with 'on-failure' and cannot be negative"),
    ({"Name": "on-failure", "MaximumRetryCount": -1}, "maximum retry count cannot be negative"),
    ({"Name": "sometimes"}, "unknown policy 'sometimes'"),
])
def test_validate_refuses_with_mobys_words(policy, message):
    with pytest.raises(InvalidParameter, match=message):
        validate(policy)


@pytest.mark.parametrize("policy", [None, {}, {"Name": ""}, {"Name": "no"}, {"Name": "always"},
                                    {"Name": "unless-stopped"}, {"Name": "on-failure", "MaximumRetryCount": 5}])
def test_validate_accepts(policy):
    validate(policy)


def test_auto_remove_with_a_policy():
    with pytest.raises(InvalidParameter, match="can't create 'AutoRemove' container with restart policy"):
        check_auto_remove({"AutoRemove": True, "RestartPolicy": {"Name": "always"}})
    check_auto_remove({"AutoRemove": True, "RestartPolicy": {"Name": "no"}})


def test_cli_parses_restart_as_docker():
    from app.cli.main import CommandError
    from app.cli.restartopt import parse_restart
    assert parse_restart("") == {}
    assert parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    with pytest.raises(CommandError, match="no policy provided before colon"):
        parse_restart(":3")
    with pytest.raises(CommandError, match="maximum retry count must be an integer"):
        parse_restart("on-failure:x")
