#!/bin/bash
# Boots a KVM virtual machine running Ubuntu 24.04 (noble) with OpenZFS, reachable as root over ssh on
# 127.0.0.1:$OZVM_PORT, for verifying bdr's OpenZFS-only paths (resume tokens) that zfs-fuse cannot exercise.
# Manual tool, not part of `npm test`. Run as root with OZVM_MIRROR set to an Ubuntu archive mirror you may use
# (this project's package sources are npm and Debian only; issue 17 replaces this VM with a Debian one).
#
# Cloud images were not resolvable from the build host, so the root
# file system is built with debootstrap from the Ubuntu archive instead, and booted with qemu's -kernel/-initrd
# (no boot loader). Ubuntu's kernel ships zfs.ko prebuilt, so nothing is compiled.
#
# Everything large stays in $OZVM_DIR (default /var/tmp/openzfs-vm), never in the repository. Re-running reuses
# what is already built; `boot.sh stop` stops the VM started from $OZVM_DIR (by its pid file).
set -euo pipefail

DIR=${OZVM_DIR:-/var/tmp/openzfs-vm}
PORT=${OZVM_PORT:-2222}
SUITE=${OZVM_SUITE:-noble}
MIRROR=${OZVM_MIRROR:?set OZVM_MIRROR to an Ubuntu archive mirror (URL of its ubuntu/ directory)}
MEM=${OZVM_MEM:-2048}
ROOT_SIZE=${OZVM_ROOT_SIZE:-4G}
# tcg (qemu's own emulator) by default: the build host's /dev/kvm is kvm-pvm (a nested, software-assisted KVM)
# whose instruction emulator could not run a stock Ubuntu kernel (see README.md). On a host with hardware
# KVM, OZVM_ACCEL=kvm is faster.
ACCEL=${OZVM_ACCEL:-tcg}
if [ "$ACCEL" = kvm ]; then ACCEL_ARGS=(-enable-kvm -cpu host); else ACCEL_ARGS=(-accel 'tcg,thread=multi' -cpu max); fi

mkdir -p "$DIR"
cd "$DIR"

if [ "${1:-}" = stop ]; then
  [ -f qemu.pid ] && kill "$(cat qemu.pid)" && rm -f qemu.pid
  exit 0
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need qemu-system-x86_64 || ! need debootstrap || ! need mkfs.ext4 || ! need ssh ; then
  apt-get install -y qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client
fi

# 1. Root file system. Debian's debootstrap may predate the suite; every Ubuntu suite uses the gutsy script.
if [ ! -f rootfs/.debootstrap-done ]; then
  [ -e "/usr/share/debootstrap/scripts/$SUITE" ] || ln -s gutsy "/usr/share/debootstrap/scripts/$SUITE"
  rm -rf rootfs
  # --no-check-gpg: the host (Debian) has no Ubuntu archive keyring package. Inside the VM apt verifies
  # signatures normally (debootstrap installs ubuntu-keyring there).
  debootstrap --no-check-gpg --variant=minbase --components=main,universe \
    --include=systemd-sysv,openssh-server,iproute2,ca-certificates "$SUITE" rootfs "$MIRROR"
  touch rootfs/.debootstrap-done
fi

# 2. Kernel (with zfs.ko), zfsutils, networking, root's ssh key.
if [ ! -f rootfs/.configured ]; then
  [ -f id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C openzfs-vm -f id_ed25519
  printf '#!/bin/sh\nexit 101\n' > rootfs/usr/sbin/policy-rc.d
  chmod +x rootfs/usr/sbin/policy-rc.d
  for fs in proc sys dev; do mountpoint -q "rootfs/$fs" || mount --bind "/$fs" "rootfs/$fs"; done
  trap 'for fs in dev sys proc; do umount "rootfs/$fs" 2>/dev/null || true; done' EXIT
  chroot rootfs env DEBIAN_FRONTEND=noninteractive apt-get update
  chroot rootfs env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    linux-image-virtual initramfs-tools zfsutils-linux kmod
  for fs in dev sys proc; do umount "rootfs/$fs"; done
  trap - EXIT
  rm -f rootfs/usr/sbin/policy-rc.d
  echo openzfs-vm > rootfs/etc/hostname
  printf '/dev/vda / ext4 defaults 0 1\n' > rootfs/etc/fstab
  mkdir -p rootfs/etc/systemd/network rootfs/root/.ssh
  printf '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' > rootfs/etc/systemd/network/10-dhcp.network
  chroot rootfs systemctl enable systemd-networkd ssh serial-getty@ttyS0
  install -m 600 id_ed25519.pub rootfs/root/.ssh/authorized_keys
  echo 'zfs' > rootfs/etc/modules-load.d/zfs.conf
  # No root password: the console cannot be logged into, only ssh with the generated key.
  touch rootfs/.configured
fi

# 3. Disk image, kernel and initrd taken out of the root file system (qemu boots them directly).
if [ ! -f root.img ]; then
  cp -L rootfs/boot/vmlinuz vmlinuz
  cp -L rootfs/boot/initrd.img initrd.img
  mkfs.ext4 -q -F -L root -d rootfs root.img "$ROOT_SIZE"
fi

# 4. Boot.
if [ -f qemu.pid ] && kill -0 "$(cat qemu.pid)" 2>/dev/null; then
  echo "already running (pid $(cat qemu.pid))"
else
  rm -f console.log
  qemu-system-x86_64 "${ACCEL_ARGS[@]}" -m "$MEM" -smp 2 -display none -daemonize -pidfile qemu.pid \
    -kernel vmlinuz -initrd initrd.img -append 'root=/dev/vda rw console=ttyS0 quiet systemd.show_status=1' -monitor "unix:$DIR/monitor.sock,server,nowait" \
    -drive file=root.img,if=virtio,format=raw \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:22" -device virtio-net-pci,netdev=n0 \
    -serial file:console.log
fi

SSH=(ssh -i "$DIR/id_ed25519" -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5 root@127.0.0.1)
# About a minute under tcg on 2 cores; wait up to 10.
for _ in $(seq 1 300); do
  if "${SSH[@]}" true 2>/dev/null; then
    "${SSH[@]}" 'modprobe zfs && zfs version'
    echo "ssh: ${SSH[*]}"
    echo "host key: $(cut -d' ' -f1,2 rootfs/etc/ssh/ssh_host_ed25519_key.pub)"
    exit 0
  fi
  sleep 2
done
echo "VM did not answer on ssh; see $DIR/console.log" >&2
exit 1
