"""iptables (the nf_tables backend, RUNTIME-FACTS Q3): berth's rules live in its own chains, each
named BERTH-<kind>-<tag> (the tag is the daemon's default bridge name), so a daemon touches only its
own chains plus one jump rule per built-in chain, and a leak check finds any leftover by the prefix.

A chain is always written whole: `iptables-restore --noflush` with the chain declared (which empties
it) and its rules, in one call, atomically.
"""
from __future__ import annotations

import subprocess

PREFIX = "BERTH-"


class IptablesError(Exception):
    pass


class Iptables:
    def __init__(self, binary: str = "iptables"):
        self.binary = binary
        self.restore_binary = binary + "-restore"

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([self.binary, "-w", *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise IptablesError(f"iptables {' '.join(args)}: {result.stderr.strip()}")
        return result

    def write_chains(self, table: str, chains: dict[str, list[str]]) -> None:
        """Each chain created if missing and its rules replaced by `rules` (argument strings)."""
        lines = [f"*{table}"]
        lines += [f":{name} - [0:0]" for name in chains]
        for name, rules in chains.items():
            lines += [f"-A {name} {rule}" for rule in rules]
        lines.append("COMMIT\n")
        result = subprocess.run([self.restore_binary, "--noflush"], input="\n".join(lines),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise IptablesError(f"iptables-restore ({table}): {result.stderr.strip()}")

    def ensure_jump(self, table: str, builtin: str, rule: str) -> None:
        """`rule` (e.g. "-j BERTH-FWD-berth0") first in `builtin`, once."""
        args = rule.split()
        if self._run(["-t", table, "-C", builtin, *args], check=False).returncode != 0:
            self._run(["-t", table, "-I", builtin, "1", *args])

    def remove_jump(self, table: str, builtin: str, rule: str) -> None:
        args = rule.split()
        while self._run(["-t", table, "-C", builtin, *args], check=False).returncode == 0:
            self._run(["-t", table, "-D", builtin, *args], check=False)

    def delete_chain(self, table: str, chain: str) -> None:
        self._run(["-t", table, "-F", chain], check=False)
        self._run(["-t", table, "-X", chain], check=False)

    def chains(self, table: str) -> list[str]:
        out = self._run(["-t", table, "-S"], check=False).stdout
        return [line.split()[1] for line in out.splitlines() if line.startswith("-N ")]

    def rules(self, table: str) -> list[str]:
        return self._run(["-t", table, "-S"], check=False).stdout.splitlines()
