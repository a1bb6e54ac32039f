"""`--restart` as the docker CLI parses it (opts.ParseRestartPolicy), for run, create and update."""
from __future__ import annotations


def parse_restart(value: str | None) -> dict:
    """"" -> {}; "on-failure:3" -> {"Name": "on-failure", "MaximumRetryCount": 3}; the daemon validates names."""
    from app.cli.main import CommandError
    if not value:
        return {}
    name, colon, count = value.partition(":")
    if colon and not name:
        raise CommandError("invalid restart policy format: no policy provided before colon")
    policy = {"Name": name, "MaximumRetryCount": 0}
    if count:
        try:
            policy["MaximumRetryCount"] = int(count, 10)
        except ValueError:
            raise CommandError("invalid restart policy format: maximum retry count must be an integer") from None
    return policy
