"""/etc/hosts and /etc/resolv.conf as Docker writes them (moby libnetwork/etchosts, resolvconf)."""
from __future__ import annotations

import ipaddress
import os

HOSTS_HEAD = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
              "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]       # moby's fallback when the host's only resolvers are local


def hosts_text(own: list[tuple[str, str]], extra: list[tuple[str, str]], links: list[tuple[str, list[str]]],
               peers: list[tuple[str, list[str]]] = ()) -> str:
    """own: (ip, names) of this container; extra: --add-host (name, ip); links/peers: (ip, names)."""
    text = HOSTS_HEAD
    text += "".join(f"{ip}\t{name}\n" for name, ip in extra)
    text += "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in links)
    text += "".join(f"{ip}\t{name}\n" for ip, name in own)
    text += "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in peers)
    return text


def _is_local(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_text(host_config: dict, host_resolv: str = "/etc/resolv.conf", network_mode: str = "bridge") -> str:
    """The host's resolv.conf with moby's rules: loopback nameservers dropped (they mean nothing in the
    container's namespace; none left → Google's), --dns / --dns-search / --dns-option replacing their
    lines. With the host's network the host's resolvers stay as they are."""
    try:
        with open(host_resolv, errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    servers, search, options, other = [], [], [], []
    for line in lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
        else:
            other.append(line)
    if network_mode != "host":
        servers = [s for s in servers if not _is_local(s)]
        if not servers:
            servers = list(DEFAULT_DNS)
    if host_config.get("Dns"):
        servers = list(host_config["Dns"])
    if host_config.get("DnsSearch"):
        search = [] if host_config["DnsSearch"] == ["."] else list(host_config["DnsSearch"])
    if host_config.get("DnsOptions"):
        options = list(host_config["DnsOptions"])
    text = "".join(f"nameserver {s}\n" for s in servers)
    if search:
        text += "search " + " ".join(search) + "\n"
    if options:
        text += "options " + " ".join(options) + "\n"
    return text


def write_in_place(path: str, text: str) -> None:
    """Rewrite a file a container has bind-mounted: the same inode, so the container sees the change."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.truncate(0)
        fh.write(text)
