"""The one read-only shell script that gathers a host's facts, and the splitting of its output.

Every command runs at once in the background, each with its own time bound, its stdout and
stderr kept apart and base64-encoded, so one SSH round trip brings back everything and no
output can be mistaken for a marker. The script changes nothing on the host: it writes only
to a temporary directory of its own, removed on exit; `caddy validate` runs with its home
and data dirs there, so it cannot create a certificate authority or storage anywhere else.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

# The units read on every host: ours and the ones our roles install.
UNITS = (
    "ollama.service",
    "caddy.service",
    "ollama-fleet-gateway.service",
    "ollama-fleet-monitor.service",
    "ollama-fleet-firewall.service",
)
UNIT_PROPERTIES = (
    "Id,LoadState,ActiveState,SubState,Result,NRestarts,ActiveEnterTimestamp,"
    "StateChangeTimestamp,ExecMainStatus,ExecMainCode,FragmentPath,DropInPaths,Environment"
)
JOURNAL_LINES = 60
JOURNAL_LINE_CHARS = 2000  # a megabyte-long log line stays on the host
WATCHDOG_S = 30  # a command stuck past its own bound (a hung NFS stat) is left behind
COMMAND_TIMEOUT_S = 10
CADDYFILE = "/etc/caddy/Caddyfile"
CADDY_CERTIFICATES = "/var/lib/caddy/.local/share/caddy/certificates"
DEFAULT_MODELS_DIR = "/usr/share/ollama/.ollama/models"
NVIDIA_QUERY = (
    "index,name,driver_version,memory.total,memory.used,"
    "ecc.errors.uncorrected.volatile.total,temperature.gpu,persistence_mode"
)
MARKER = "@@ollama-fleet-fact"

# name -> shell command; $OF_URL (Ollama's API on loopback, from its unit's OLLAMA_HOST) and
# $OF_MODELS (its models dir) are set by the script's prologue.
COMMANDS: Mapping[str, str] = {
    "os_release": "cat /etc/os-release",
    "uname": "uname -srm",
    "uid": "id -u",
    "units": f"systemctl show --no-pager -p {UNIT_PROPERTIES} {' '.join(UNITS)}",
    **{
        f"journal:{unit}": (  # no pipefail in dash: a missing journalctl says so itself
            "command -v journalctl >/dev/null || exit 127; "
            f"journalctl -u {unit} -n {JOURNAL_LINES} --no-pager -o short-iso --quiet"
            f" | cut -c1-{JOURNAL_LINE_CHARS}"
        )
        for unit in UNITS
    },
    "sockets": "ss -Hltnp",
    "ruleset": "nft -j list ruleset",
    # not `ollama --version`: it asks the server too, and the release is on disk
    "ollama_release": 'cat /opt/ollama/RELEASE; readlink -f "$(command -v ollama)"',
    "ollama_url": 'printf "%s\\n" "$OF_URL"',  # where the three below ask
    "api_version": 'curl -sS -m 5 "$OF_URL/api/version"',
    "api_tags": 'curl -sS -m 5 "$OF_URL/api/tags"',
    "api_ps": 'curl -sS -m 5 "$OF_URL/api/ps"',
    "models_dir": 'printf "%s\\n" "$OF_MODELS"; stat -c "%U %G %a" "$OF_MODELS"',
    "models_df": 'df -P -B1 "$OF_MODELS"',
    "models_dfi": 'df -P -i "$OF_MODELS"',
    "nvidia_smi": f"nvidia-smi --query-gpu={NVIDIA_QUERY} --format=csv,noheader,nounits",
    "nvidia_version": "cat /proc/driver/nvidia/version",
    "modules": "cat /proc/modules",
    "nvidia_module_file": "modinfo -n nvidia",
    "pci": (  # shell builtins only: one `cat` per device costs seconds on a slow VM
        "for d in /sys/bus/pci/devices/*; do "
        'read -r v <"$d/vendor" && read -r c <"$d/class" && echo "$v $c"; done'
    ),
    # as the caddy user, its home and data in our temp dir: Caddy 2.9+ creates the log files a
    # config names while validating, and root-owned ones would stop the service's next start
    "caddy_validate": (
        "if id caddy >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then "
        'd="$OF_TMP/caddy"; mkdir "$d" && chmod 711 "$OF_TMP" && chown caddy "$d" && '
        'exec runuser -u caddy -- env HOME="$d" XDG_DATA_HOME="$d/data" '
        f'XDG_CONFIG_HOME="$d/config" caddy validate --config {CADDYFILE} --adapter caddyfile; '
        f"else exec caddy adapt --config {CADDYFILE} --adapter caddyfile --validate; fi"
    ),
    "caddyfile": f"cat {CADDYFILE}",
    "caddy_certificates": (
        f"find {CADDY_CERTIFICATES} -name '*.crt' 2>/dev/null | head -n 50 | "
        'while read -r f; do printf "# %s\\n" "$f"; cat "$f"; done'
    ),
    "clock": "date +%s.%N",
    "ntp": "timedatectl show -p NTPSynchronized -p NTP --no-pager",
}

# reads of /proc, /sys and small files, and builtins: no time bound (no `timeout` and `sh`
# to start), which matters where every process start is slow (a VM without KVM, a loaded host)
QUICK = frozenset(
    {
        "os_release",
        "uname",
        "uid",
        "ollama_url",
        "ollama_release",
        "modules",
        "nvidia_version",
        "pci",
        "caddyfile",
        "clock",
    }
)

STARTED_FIRST = frozenset({"caddy_validate", "nvidia_smi", "units", "api_ps"})

# a command of plain words runs without `sh -c` (word-split by the script, nothing to expand)
_SIMPLE = re.compile(r"[A-Za-z0-9_./:=,+@-]+(?: [A-Za-z0-9_./:=,+@-]+)*")

_PROLOGUE = """\
export LC_ALL=C PATH=SEARCH_PATH
umask 077
renice -n 19 -p $$ >/dev/null 2>&1  # lowest CPU priority: the service diagnosed comes first
if ! command -v base64 >/dev/null 2>&1; then printf '%s base64 127 - -\\n' MARKER; exit 0; fi
OF_TMP=$(mktemp -d 2>/dev/null) || { printf '%s mktemp 1 - %s\\n' MARKER \
  "$(printf 'mktemp -d failed: /tmp full or read-only?' | base64 -w0)"; exit 0; }
trap 'rm -rf "$OF_TMP"' EXIT
trap 'exit 1' HUP INT TERM
env=$(systemctl show -p Environment --value ollama.service 2>/dev/null)
# shell builtins only (every process start costs on a slow host); xargs only for the rare
# value systemd had to quote ("OLLAMA_MODELS=/data/my models")
h="" OF_MODELS="" OLD_IFS=$IFS IFS=' '
case "$env" in *\\"*) env=$(printf '%s\\n' "$env" | xargs printf '%s\\n' 2>/dev/null); IFS='
';; esac
for word in $env; do
  case "$word" in
    OLLAMA_HOST=*) h=${word#OLLAMA_HOST=};;
    OLLAMA_MODELS=*) OF_MODELS=${word#OLLAMA_MODELS=};;
  esac
done
IFS=$OLD_IFS
case "$h" in ""|:*) h="127.0.0.1${h:-:11434}";; esac
case "$h" in http://*|https://*) ;; *) h="http://$h";; esac
case "$h" in
  *//0.0.0.0*) h="${h%%//*}//127.0.0.1${h#*//0.0.0.0}";;
  *//\\[::\\]*) h="${h%%//*}//[::1]${h#*//\\[::\\]}";;
esac
case "${h#*//}" in \\[*\\]:[0-9]*) ;; \\[*) h="$h:11434";; *:[0-9]*) ;; *) h="$h:11434";; esac
OF_URL=$h
OF_MODELS=${OF_MODELS:-DEFAULT_MODELS}
export OF_TMP OF_URL OF_MODELS
if command -v timeout >/dev/null 2>&1; then OF_T="timeout -k 2 TIMEOUT"; else OF_T=""; fi
fact() {
  case "$4" in
    quick) (eval "$3") >"$OF_TMP/$1.out" 2>"$OF_TMP/$1.err" </dev/null;;
    direct) $OF_T $3 >"$OF_TMP/$1.out" 2>"$OF_TMP/$1.err" </dev/null;;
    *) $OF_T sh -c "$3" >"$OF_TMP/$1.out" 2>"$OF_TMP/$1.err" </dev/null;;
  esac
  rc=$?
  { printf '%s %s %s ' MARKER "$2" "$rc"
    if [ -s "$OF_TMP/$1.out" ]; then base64 -w0 <"$OF_TMP/$1.out"; else printf -; fi
    printf ' '
    if [ -s "$OF_TMP/$1.err" ]; then base64 -w0 <"$OF_TMP/$1.err"; else printf -; fi
    echo; } >"$OF_TMP/$1.fact"
}
pids=""
"""


HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def probe_script(
    *,
    public_name: str | None = None,
    timeout_s: int = COMMAND_TIMEOUT_S,
    watchdog_s: int = WATCHDOG_S,
    search_path: str = HOST_PATH,
) -> str:
    """The script for one host; `public_name` (its public URL's host) is looked up there.

    `timeout_s` bounds each command, `watchdog_s` the whole script; `search_path` is the
    PATH it runs with (sudo's may lack /sbin).
    """
    commands = dict(COMMANDS)
    if public_name and not is_address(public_name):
        commands["dns"] = f"getent ahosts {shlex.quote(public_name)}"
    prologue = (
        _PROLOGUE.replace("DEFAULT_MODELS", DEFAULT_MODELS_DIR)
        .replace("TIMEOUT", str(int(timeout_s)))
        .replace("SEARCH_PATH", shlex.quote(search_path))
        .replace("MARKER", MARKER)
    )
    lines = [prologue]
    # the slowest start first, so they are not the last to finish
    ordered = sorted(commands.items(), key=lambda item: item[0] not in STARTED_FIRST)
    for number, (name, command) in enumerate(ordered):
        kind = "quick" if name in QUICK else "direct" if _SIMPLE.fullmatch(command) else "sh"
        lines.append(f"fact f{number} {shlex.quote(name)} {shlex.quote(command)} {kind} &")
        lines.append('pids="$pids $!"')
    lines += [
        # the watchdog's output goes nowhere, so a sleep it leaves cannot hold the SSH channel
        f"( sleep {int(watchdog_s)}; kill -9 $pids ) >/dev/null 2>&1 </dev/null &",
        "dog=$!",
        "wait $pids 2>/dev/null",
        'kill "$dog" 2>/dev/null',
        # each fact wrote its own line; one cat sends them all, in any order
        'cat "$OF_TMP"/*.fact 2>/dev/null',
        "exit 0",
    ]
    return "\n".join(lines) + "\n"


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """One command's result on the host: exit status, stdout and stderr as text."""

    name: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def missing(self) -> bool:
        """The command's program is not installed (the shell's 127)."""
        return self.rc == 127

    @property
    def timed_out(self) -> bool:
        return self.rc == 124


def split_outputs(text: str) -> dict[str, Output]:
    """{name: Output} from the script's output; lines that are not its own are ignored.

    One line per command: the marker, its name, its exit status, then stdout and stderr in
    base64 ("-" for nothing), so no line is ever empty (pyinfra drops empty lines).
    """
    found: dict[str, Output] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) != 5 or parts[0] != MARKER:
            continue
        try:
            rc = int(parts[2])
        except ValueError:
            rc = -1
        found[parts[1]] = Output(
            name=parts[1], rc=rc, stdout=_decode(parts[3]), stderr=_decode(parts[4])
        )
    return found


def _decode(line: str) -> str:
    if line == "-":
        return ""
    try:
        return base64.b64decode(line.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
