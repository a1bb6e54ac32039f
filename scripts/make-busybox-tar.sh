#!/usr/bin/env bash
# Builds a busybox root filesystem tar from Debian's busybox-static (no registry needed):
#   bash scripts/make-busybox-tar.sh busybox.tar && python3 cli.py import busybox.tar busybox:latest
set -euo pipefail
out=${1:?usage: make-busybox-tar.sh OUT.tar}
bb=$(command -v busybox || true)
[ -x /bin/busybox ] && bb=/bin/busybox
[ -n "$bb" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
mkdir -p "$stage"/{bin,etc,tmp,root,proc,sys,dev,var/spool/cron,usr/bin,usr/sbin,sbin,home}
cp "$bb" "$stage/bin/busybox"
# one symlink per applet, at its usual path, pointing at /bin/busybox inside the image
"$stage/bin/busybox" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$stage/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$stage/etc/passwd"
printf 'root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n' > "$stage/etc/group"
chmod 1777 "$stage/tmp"
tar --numeric-owner --owner=0 --group=0 -C "$stage" -cf "$out" .
