"""The lab's inventory file: the VM as host `lab`, with what the whole site needs to deploy.

The VM is reached through the forwards on 127.0.0.1. It gets Ollama from the simulator artifact
(the real binary cannot be downloaded here), TLS from certificate files made once per lab by a
private CA (so the checks can verify the chain), the checks' variables for its forwards, and
the monitor, whose status page its forward shows. Beside it, the lab's vault (host_vars/lab.yml,
ollama_fleet.lab.vault) turns the gateway on with the lab's keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ollama_fleet.fsutil import atomic_write
from ollama_fleet.lab.ports import HOST
from ollama_fleet.lab.ssh import USER
from ollama_fleet.lab.state import MONITOR_GUEST_PORT, LabInfo
from ollama_fleet.lab.vault import ensure_lab_vault

HEADER = (
    "# Written by `ollama-fleet lab up` on every start; edits are overwritten.\n"
    "# The lab VM as a GPU node (it has no GPU: the gpu role says so and skips it).\n"
)
SITE_NAME = "localhost"
REQUIRED_MODELS = ["llama3.2:1b", "qwen2.5:0.5b"]
TLS_DIR, CA_FILE, CERT_FILE, KEY_FILE = "tls", "tls/ca.pem", "tls/lab.crt", "tls/lab.key"
# qemu's user network: the guest sees connections through a host forward come from here
QEMU_GATEWAY = "10.0.2.2/32"


def ensure_tls(state_dir: Path) -> None:
    """The lab's private CA and its certificate for localhost, made once and then kept
    (a new certificate on every start would make every deploy change Caddy's files)."""
    if all((state_dir / name).is_file() for name in (CA_FILE, CERT_FILE, KEY_FILE)):
        return
    from ollama_fleet.testbed.certs import CertificateAuthority

    folder = state_dir / TLS_DIR
    authority = CertificateAuthority(folder, name="ollama-fleet lab CA")
    issued = authority.issue("lab", names=(SITE_NAME, "127.0.0.1"), not_after_days=825)
    authority.ca_file.replace(state_dir / CA_FILE)
    issued.cert.replace(state_dir / CERT_FILE)
    issued.key.replace(state_dir / KEY_FILE)


def lab_host_vars(info: LabInfo, *, base: str | None = None) -> dict[str, Any]:
    """Host variables of `lab`; paths start with `base` (default: the state directory)."""
    root = base if base is not None else str(info.state_dir)
    return {
        "ssh_hostname": HOST,
        "ssh_port": info.ssh_port,
        "ssh_user": USER,
        "ssh_key": f"{root}/{info.ssh_key.name}",
        "ssh_known_hosts_file": f"{root}/{info.known_hosts.name}",
        "ssh_strict_host_key_checking": "no",
        "lab_http_port": info.http_port,
        "lab_https_port": info.https_port,
        "lab_ollama_port": info.ollama_port,
        # deploy: Ollama from the simulator artifact, Caddy with the lab's certificate
        "ollama_artifact": "simulator",
        "required_models": list(REQUIRED_MODELS),
        "caddy_site_names": [SITE_NAME],
        "caddy_tls": "files",
        "caddy_tls_cert_file": f"{root}/{CERT_FILE}",
        "caddy_tls_key_file": f"{root}/{KEY_FILE}",
        # checks: through the forwards; Ollama's forward must not answer
        "public_url": f"https://{SITE_NAME}:{info.https_port}",
        "tls_ca_file": f"{root}/{CA_FILE}",
        "open_ports": [info.https_port, info.ssh_port],
        "closed_ports": [info.ollama_port],
        "port_forwarder": True,  # qemu accepts on every forward; closed = nothing answers
        # open without the gateway: anyone on this machine may generate (the write endpoints
        # stay refused by Caddy, and the auth check still proves that). The lab's vault beside
        # this file (host_vars/lab.yml) turns the gateway on with its keys, and closes it.
        "public_access": "open",
        # the monitor, on every address in the guest so that its forward reaches it; the
        # firewall lets in only qemu's user-net gateway as the guest sees it, where forwarded
        # connections come from (config inside the VM: nothing here connects to 10.0.2.x)
        "monitor_enabled": True,
        "monitor_address": "0.0.0.0",
        "monitor_port": MONITOR_GUEST_PORT,
        "monitor_intervals": {"connectivity": "5s"},  # an outage shows within seconds
        "firewall_allow_metrics": [QEMU_GATEWAY],
    }


COMMITTED_HEADER = (
    "# The default lab: what `ollama-fleet lab up` writes to ~/.cache/ollama-fleet/lab/\n"
    "# inventory.yml when it gets its default ports (a test keeps the two equal). Deployed\n"
    "# from here, the lab is open, without the gateway; the lab's own copy has the lab's vault\n"
    "# beside it (host_vars/lab.yml: the gateway and its keys), so deploy that one:\n"
    "#   ollama-fleet lab up && ollama-fleet deploy ~/.cache/ollama-fleet/lab/inventory.yml -y \\\n"
    "#       --vault-password-file ~/.cache/ollama-fleet/lab/vault-password\n"
    "# The lab VM as a GPU node (it has no GPU: the gpu role says so and skips it).\n"
)


def lab_inventory_text(info: LabInfo, *, base: str | None = None, header: str = HEADER) -> str:
    inventory = {"all": {"children": {"gpu": {"hosts": {"lab": lab_host_vars(info, base=base)}}}}}
    return header + yaml.safe_dump(inventory, sort_keys=False)


def write_lab_inventory(info: LabInfo) -> Path:
    """Write <state dir>/inventory.yml for `info` (see docs/lab.md); its path. The lab's
    certificate and its vault (the gateway's keys) are made the first time, then kept."""
    ensure_tls(info.state_dir)
    ensure_lab_vault(info.state_dir)
    atomic_write(info.inventory, lab_inventory_text(info), mode=0o644, what="lab inventory")
    return info.inventory
