#!/bin/bash
# Runs INSIDE the OpenZFS VM (as root): reproduces an interrupted resumable receive, incremental and full,
# and writes the real outputs bdr parses into $1 (default /root/capture), one file per command and stream.
# From the host: ssh ... root@127.0.0.1 'bash -s' < capture.sh ; then copy /root/capture back (see README.md).
# Destroys and recreates the pool "tp" on /var/tmp/p.img.
set -uo pipefail
OUT=${1:-/root/capture}
rm -rf "$OUT"
mkdir -p "$OUT"
cd "$OUT" || exit 1

modprobe zfs
zpool destroy tp 2>/dev/null
rm -f /var/tmp/p.img
truncate -s 512M /var/tmp/p.img
zpool create -O compression=off tp /var/tmp/p.img

zfs create tp/src
head -c 8000000 /dev/urandom > /tp/src/a
zfs snapshot tp/src@s1
zfs send tp/src@s1 | zfs receive -u tp/dst
head -c 50000000 /dev/urandom > /tp/src/b
zfs snapshot tp/src@s2

# Interrupted incremental: the receiver sees only the first 20 MB of the stream.
zfs send -i @s1 tp/src@s2 | head -c 20000000 | zfs receive -u -s tp/dst > recv-incremental.stdout 2> recv-incremental.stderr
echo $? > recv-incremental.rc
# Interrupted full stream into a new dataset.
zfs send tp/src@s2 | head -c 20000000 | zfs receive -u -s tp/full > recv-full.stdout 2> recv-full.stderr
echo $? > recv-full.rc

zfs get -H -p -o value receive_resume_token tp/dst > token-incremental.txt
zfs get -H -p -o value receive_resume_token tp/full > token-full.txt
zfs send -nvt "$(cat token-incremental.txt)" > send-nvt-incremental.stdout 2> send-nvt-incremental.stderr
echo $? > send-nvt-incremental.rc
zfs send -nvt "$(cat token-full.txt)" > send-nvt-full.stdout 2> send-nvt-full.stderr
echo $? > send-nvt-full.rc
zfs get -H -p guid tp/src@s1 tp/src@s2 > guids.txt
zfs version > zfs-version.stdout 2>&1

# What bdr's capability probe runs (zfs/capabilities.ts probeCapabilities), stdout and stderr apart.
zfs '-?' > zfs-usage.stdout 2> zfs-usage.stderr; echo $? > zfs-usage.rc
zpool '-?' > zpool-usage.stdout 2> zpool-usage.stderr; echo $? > zpool-usage.rc
zfs version > zfs-version-probe.stdout 2> zfs-version-probe.stderr; echo $? > zfs-version-probe.rc
zfs receive -n -u bdr-capability-probe-nonexistent/x < /dev/null > recv-probe.stdout 2> recv-probe.stderr; echo $? > recv-probe.rc

uname -r > uname.txt
ls -l "$OUT"
