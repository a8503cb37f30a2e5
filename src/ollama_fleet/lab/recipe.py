"""The lab image's recipe: what debootstrap installs and which files shape it (pure data)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

# Bump when the build steps change in a way the fields below do not capture.
RECIPE_VERSION = 1

DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOSTNAME = "ollama-lab"
# The kernel parameter that carries root's public key (base64) into the guest.
SSH_KEY_PARAM = "ollama_fleet.ssh_key"
# How the image boots; these depend on the image (fstab, interfaces) but do not shape it.
KERNEL_ARGS = ("root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0")

# A stock Debian 12 host with systemd, SSH and Python for pyinfra, and nothing a deploy
# installs itself (caddy, nftables, python3-venv, ...).
PACKAGES = (
    "systemd-sysv",
    "openssh-server",
    "linux-image-amd64",
    "ifupdown",
    "isc-dhcp-client",
    "python3",
    "ca-certificates",
    "curl",
    "iproute2",
    "procps",
    "sudo",
)

_INIT_SCRIPT = f"""\
#!/bin/sh
# ollama-fleet lab: runs before sshd on every boot. The image is generic and key-less:
# each lab gets its own host key on first boot, and root's key from the kernel command line.
set -euf
host_key=/etc/ssh/ssh_host_ed25519_key
[ -e "$host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$host_key"
key=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        {SSH_KEY_PARAM}=*) key=$(printf '%s' "${{arg#*=}}" | base64 -d) ;;
    esac
done
[ -n "$key" ] || exit 0
install -d -m 700 /root/.ssh
touch /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
grep -qxF "$key" /root/.ssh/authorized_keys || printf '%s\\n' "$key" >> /root/.ssh/authorized_keys
"""

_INIT_UNIT = """\
[Unit]
Description=ollama-fleet lab: SSH host key, and root's key from the kernel command line
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ollama-lab-init

[Install]
WantedBy=multi-user.target
"""

_SSHD_CONFIG = """\
# ollama-fleet lab: root logs in with the lab's key only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
# One host key: generating RSA keys on first boot costs ~15 s under TCG.
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
"""

_SOURCES_LIST = """\
deb http://deb.debian.org/debian bookworm main non-free-firmware
deb http://deb.debian.org/debian bookworm-updates main non-free-firmware
deb http://deb.debian.org/debian-security bookworm-security main non-free-firmware
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFile:
    """A file written into the image; `path` is relative to its root."""

    path: str
    content: str
    mode: int = 0o644


FILES = (
    ImageFile(path="etc/hostname", content=f"{HOSTNAME}\n"),
    ImageFile(
        path="etc/hosts",
        content=f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n::1\tlocalhost ip6-localhost\n",
    ),
    ImageFile(
        path="etc/network/interfaces",
        content="source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
        "auto eth0\niface eth0 inet dhcp\n",
    ),
    ImageFile(path="etc/fstab", content="/dev/vda / ext4 defaults,errors=remount-ro 0 1\n"),
    ImageFile(path="etc/apt/sources.list", content=_SOURCES_LIST),
    ImageFile(path="etc/ssh/sshd_config.d/ollama-lab.conf", content=_SSHD_CONFIG),
    ImageFile(path="usr/local/sbin/ollama-lab-init", content=_INIT_SCRIPT, mode=0o755),
    ImageFile(path="etc/systemd/system/ollama-lab-init.service", content=_INIT_UNIT),
    # Empty: systemd makes a machine id on first boot, so no two labs share one.
    ImageFile(path="etc/machine-id", content=""),
)

# (link, target): symlinks made in the image, as `systemctl enable` would.
LINKS = (
    (
        "etc/systemd/system/multi-user.target.wants/ollama-lab-init.service",
        "/etc/systemd/system/ollama-lab-init.service",
    ),
)

# Globs removed from the image: the build host's traces, and state a deploy must make
# itself (package lists: a deploy runs `apt-get update` like on any fresh host).
REMOVE = (
    "etc/ssh/ssh_host_*",
    "etc/resolv.conf",
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*_*",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRecipe:
    """Everything that shapes the image; its hash names the cache entry."""

    version: int = RECIPE_VERSION
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = PACKAGES
    files: tuple[ImageFile, ...] = FILES
    links: tuple[tuple[str, str], ...] = LINKS
    remove: tuple[str, ...] = REMOVE
    disk_size: str = "8G"
    label: str = HOSTNAME


DEFAULT_RECIPE = ImageRecipe()


def recipe_hash(recipe: ImageRecipe = DEFAULT_RECIPE) -> str:
    """A short stable hash of the recipe: same recipe, same cache entry.

    The mirror is not part of it: any Debian mirror yields the same image.
    """
    canonical = json.dumps(asdict(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
