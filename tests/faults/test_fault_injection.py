"""The fault-injection harness (harness.py) in CI's small setting: 150 operations from 4 clients with
the daemon SIGKILLed 4 times at random moments. The seed is printed, so a failure can be replayed:
    .venv/bin/python -m tests.faults.harness --ops 150 --kills 4 --seed SEED"""
import json

from tests.faults.harness import Harness


def test_mixed_operations_survive_random_daemon_kills(make_daemon, busybox_tar):
    harness = Harness(make_daemon(), busybox_tar, ops=150, kills=4, clients=4)
    report = harness.run()
    summary = report.summary()
    print(json.dumps({"seed": harness.seed, **summary}, indent=2))
    assert report.kills == 4
    assert summary["succeeded"] > 50, summary           # the run did real work, not only refusals
    assert not report.problems, f"seed {harness.seed}:\n" + "\n".join(report.problems)
