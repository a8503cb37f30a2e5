"""Rendered files against the real tools: caddy validate, nft in network namespaces, systemd."""

from __future__ import annotations

import ctypes
import functools
import itertools
import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ollama_fleet import hostvars, render
from ollama_fleet.deploys.gateway_fleet import resolve_gateways
from ollama_fleet.errors import TestbedError
from ollama_fleet.inventory import load_inventory
from ollama_fleet.testbed import caddy
from ollama_fleet.testbed.certs import CertificateAuthority

pytestmark = pytest.mark.integration

T = TypeVar("T")


def role(name: str, **values: Any) -> dict[str, Any]:
    """A role's variables as the roles get them: passed the validation step, then resolved."""
    hostvars.validate(values, where=f"the {name} variables of this test")
    return hostvars.resolved(values, name)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `apt-get install nftables iproute2 systemd`")
    return path


# -- Caddyfile: caddy validate --------------------------------------------------------------------


def validate_caddyfile(directory: Path, text: str) -> None:
    """Write the Caddyfile into its own folder; caddy's HOME and XDG dirs stay in there."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "Caddyfile"
    path.write_text(text)
    caddy.validate(path)


CADDY_VARIANTS: dict[str, dict[str, Any]] = {
    "internal-ollama": {},
    "internal-gateway-no-hsts-many-names": {
        "caddy_hsts": False,
        "site_names": ["llm.example.com", "gpu-1.example.com", "*.gpu.example.com"],
        "upstream": "127.0.0.1:8080",
        "upstream_is_ollama": False,
    },
    "acme-email-many-names": {
        "caddy_tls": "acme",
        "caddy_acme_email": "ops@example.com",
        "site_names": ["llm.example.com", "gpu-1.example.com"],
    },
    "acme-no-hsts-gateway": {
        "caddy_tls": "acme",
        "caddy_acme_email": "ops+caddy@example.com",
        "caddy_hsts": False,
        "upstream": "http://localhost:8080",
        "upstream_is_ollama": False,
    },
    "internal-extra-directives": {
        "caddy_extra_directives": (
            "@blocked path /api/delete /api/pull /api/push\n"
            "respond @blocked 403\n"
            "basicauth /admin/* {\n"
            "\tadmin $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG\n"
            "}\n"
        ),
        "caddy_response_timeout": "600",
    },
    "internal-ipv6-upstream": {"upstream": "[::1]:11434", "caddy_response_timeout": "1h"},
}


@pytest.mark.parametrize("variant", CADDY_VARIANTS)
def test_caddyfile_variants_pass_caddy_validate(tmp_path: Path, variant: str) -> None:
    values = dict(CADDY_VARIANTS[variant])
    params: dict[str, Any] = {
        "site_names": ["llm.example.com"],
        "upstream": "127.0.0.1:11434",
        "upstream_is_ollama": True,
        "log_file": str(tmp_path / "log" / "access.log"),
    }
    params.update({k: values.pop(k) for k in list(values) if not k.startswith("caddy_")})
    validate_caddyfile(
        tmp_path / "caddy", render.render_caddyfile(role("caddy", **values), **params)
    )


@pytest.mark.parametrize("hsts", [True, False])
def test_caddyfile_with_certificate_files_passes_caddy_validate(tmp_path: Path, hsts: bool) -> None:
    # A folder with a space: the paths must be quoted for Caddy to find the files.
    cert = CertificateAuthority(tmp_path / "tls files").issue("llm", names=("llm.example.com",))
    caddy_vars = role(
        "caddy",
        caddy_tls="files",
        caddy_tls_cert_file="tls/llm.pem",
        caddy_tls_key_file="tls/llm.key",
        caddy_hsts=hsts,
    )
    text = render.render_caddyfile(
        caddy_vars,
        site_names=["llm.example.com"],
        upstream="127.0.0.1:11434",
        upstream_is_ollama=True,
        cert_file=str(cert.cert),
        key_file=str(cert.key),
        log_file=str(tmp_path / "access.log"),
    )
    validate_caddyfile(tmp_path / "caddy", text)
    # The files are really loaded: without them the same Caddyfile is refused.
    cert.key.unlink()
    with pytest.raises(TestbedError, match="llm"):
        validate_caddyfile(tmp_path / "caddy", text)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("reverse_proxyy x", "unrecognized directive: reverse_proxyy"),
        ("basic_auth /admin/* {\n\tadmin x\n}", "unrecognized directive: basic_auth"),
        ("reverse_proxy /x localhost:1 {\n\tflush_interval soon\n}", "bad duration value 'soon'"),
    ],
)
def test_broken_extra_directives_fail_caddy_validate(
    tmp_path: Path, extra: str, message: str
) -> None:
    text = render.render_caddyfile(
        role("caddy", caddy_extra_directives=extra),
        site_names=["llm.example.com"],
        upstream="127.0.0.1:11434",
        upstream_is_ollama=True,
        log_file=str(tmp_path / "access.log"),
    )
    with pytest.raises(TestbedError, match=message):
        validate_caddyfile(tmp_path / "caddy", text)


# -- network namespaces ---------------------------------------------------------------------------

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_names = itertools.count()


def ip(*args: str) -> None:
    subprocess.run([tool("ip"), *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Namespace:
    name: str

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("ip"), "netns", "exec", self.name, *command],
            capture_output=True,
            text=True,
            check=False,
        )

    def inside(self, make: Callable[[], T]) -> T:
        """Call `make` on a thread that entered this namespace: sockets it opens stay in it."""
        result: list[T] = []
        errors: list[BaseException] = []

        def enter_and_make() -> None:
            try:
                with open(f"/run/netns/{self.name}") as handle:
                    if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                        errno = ctypes.get_errno()
                        raise OSError(errno, f"setns {self.name}: {os.strerror(errno)}")
                result.append(make())
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=enter_and_make)
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return result[0]


@pytest.fixture
def namespaces() -> Iterator[Callable[[], Namespace]]:
    """Make network namespaces on demand; every one made is deleted, pass or fail."""
    made: list[Namespace] = []

    def make() -> Namespace:
        namespace = Namespace(f"of-test-{os.getpid()}-{next(_names)}")
        ip("netns", "add", namespace.name)
        made.append(namespace)
        ip("-n", namespace.name, "link", "set", "lo", "up")
        return namespace

    yield make
    for namespace in made:
        subprocess.run([tool("ip"), "netns", "delete", namespace.name], check=False)


# -- nftables.conf: nft -c inside a namespace -----------------------------------------------------

NFT_VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # a node behind gateways (deploys/gateway_fleet adds their addresses as /32 and /128)
    "gateway-node": {"firewall_allow_ollama": ["10.0.0.0/24", "10.0.0.20/32", "fd00::20/128"]},
    "custom-sshd-extra-ports": {"sshd_port": 2222, "firewall_extra_tcp_ports": [8443, 9000, 22]},
    "ollama-v4-v6-overlapping": {
        "firewall_allow_ollama": ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.7", "fd00::/8", "::1"],
    },
    "metrics-many-ports": {
        "firewall_allow_metrics": ["198.51.100.0/24", "2001:db8::/32"],
        "firewall_metrics_ports": [9464, 9100, 9464],
    },
    "metrics-networks-no-ports": {
        "firewall_allow_metrics": ["10.0.0.0/8"],
        "firewall_metrics_ports": [],
    },
    "ipv6-only-everything": {
        "firewall_allow_ollama": ["2001:db8:1::/48"],
        "firewall_allow_metrics": ["2001:db8:2::1"],
    },
    "forward-managed": {"firewall_manage_forward": True},
}


@pytest.mark.parametrize("http_ports", [(80, 443), (443,), ()], ids=["http-https", "https", "none"])
@pytest.mark.parametrize("variant", NFT_VARIANTS)
def test_nftables_variants_pass_nft_check(
    tmp_path: Path, namespaces: Callable[[], Namespace], variant: str, http_ports: tuple[int, ...]
) -> None:
    ruleset = tmp_path / "nftables.conf"
    ruleset.write_text(
        render.render_nftables(
            role("firewall", **NFT_VARIANTS[variant]), ollama_port=11434, http_ports=http_ports
        )
    )
    checked = namespaces().run(tool("nft"), "-c", "-f", str(ruleset))
    assert checked.returncode == 0, checked.stderr


def test_nft_check_in_a_namespace_does_reject_a_broken_ruleset(
    tmp_path: Path, namespaces: Callable[[], Namespace]
) -> None:
    broken = tmp_path / "nftables.conf"
    broken.write_text(
        render.render_nftables(role("firewall"), ollama_port=11434).replace("policy drop", "policy")
    )
    checked = namespaces().run(tool("nft"), "-c", "-f", str(broken))
    assert checked.returncode != 0
    assert "syntax error" in checked.stderr


# -- other tables on the host: Docker's and fail2ban's survive our ruleset -----------------------

# Tables as iptables-nft makes them for Docker (nat and filter, its chains and jumps) and as
# fail2ban's nftables action makes its own (a set of banned addresses and a drop rule).
FOREIGN_RULESET = """\
table ip nat {
	chain DOCKER {
		iifname "docker0" counter return
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump DOCKER
	}
	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		ip daddr != 127.0.0.0/8 fib daddr type local counter jump DOCKER
	}
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade
	}
}
table ip filter {
	chain DOCKER {
		ip daddr 172.17.0.2 iifname != "docker0" oifname "docker0" tcp dport 80 counter accept
	}
	chain DOCKER-USER {
		counter return
	}
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		counter jump DOCKER-USER
		oifname "docker0" ct state related,established counter accept
		oifname "docker0" counter jump DOCKER
		iifname "docker0" oifname != "docker0" counter accept
	}
}
table inet f2b-table {
	set addr-set-sshd {
		type ipv4_addr
		elements = { 192.0.2.66, 203.0.113.9 }
	}
	chain f2b-chain {
		type filter hook input priority filter - 1; policy accept;
		tcp dport 22 ip saddr @addr-set-sshd drop
	}
}
"""
FOREIGN_TABLES = {("ip", "nat"), ("ip", "filter"), ("inet", "f2b-table")}
OURS = ("inet", "ollama_fleet")


def listed_ruleset(namespace: Namespace) -> list[dict[str, Any]]:
    """`nft -j list ruleset`: every table, chain, rule and set with its handle and elements."""
    listed = namespace.run(tool("nft"), "-j", "list", "ruleset")
    assert listed.returncode == 0, listed.stderr
    return [item for item in json.loads(listed.stdout)["nftables"] if "metainfo" not in item]


def table_of(item: dict[str, Any]) -> tuple[str, str]:
    ((kind, body),) = item.items()
    return body["family"], body["name"] if kind == "table" else body["table"]


def host_with_foreign_tables(namespace: Namespace, tmp_path: Path) -> list[dict[str, Any]]:
    foreign = tmp_path / "foreign.nft"
    foreign.write_text(FOREIGN_RULESET)
    loaded = namespace.run(tool("nft"), "-f", str(foreign))
    assert loaded.returncode == 0, loaded.stderr
    before = listed_ruleset(namespace)
    assert {table_of(item) for item in before} == FOREIGN_TABLES
    return before


@pytest.mark.parametrize("manage_forward", [False, True], ids=["default", "forward-managed"])
def test_other_tables_survive_the_firewall_applied_and_applied_again(
    tmp_path: Path, namespaces: Callable[[], Namespace], manage_forward: bool
) -> None:
    namespace = namespaces()
    before = host_with_foreign_tables(namespace, tmp_path)
    ruleset = tmp_path / "ollama-fleet.nft"
    ruleset.write_text(
        render.render_nftables(
            role("firewall", firewall_manage_forward=manage_forward), ollama_port=11434
        )
    )
    expected_chains = {"input": ("input", "drop")}
    if manage_forward:
        expected_chains["forward"] = ("forward", "drop")

    for _ in ("applied", "applied again"):
        applied = namespace.run(tool("nft"), "-f", str(ruleset))
        assert applied.returncode == 0, applied.stderr
        after = listed_ruleset(namespace)
        # Same tables, chains, rules (handles included) and set elements, in the same order.
        assert [item for item in after if table_of(item) != OURS] == before
        ours = [item for item in after if table_of(item) == OURS]
        assert [item["table"]["name"] for item in ours if "table" in item] == ["ollama_fleet"]
        chains = {
            item["chain"]["name"]: (item["chain"]["hook"], item["chain"]["policy"])
            for item in ours
            if "chain" in item
        }
        assert chains == expected_chains
    banned = [item["set"] for item in after if "set" in item]
    assert [(s["table"], s["name"], s["elem"]) for s in banned] == [
        ("f2b-table", "addr-set-sshd", ["192.0.2.66", "203.0.113.9"])
    ]


def test_stopping_the_firewall_unit_deletes_only_its_table(
    tmp_path: Path, namespaces: Callable[[], Namespace]
) -> None:
    namespace = namespaces()
    before = host_with_foreign_tables(namespace, tmp_path)
    ruleset = tmp_path / "ollama-fleet.nft"
    ruleset.write_text(render.render_nftables(role("firewall"), ollama_port=11434))
    unit = render.render_firewall_unit(ruleset=str(ruleset))
    start, stop = (
        shlex.split(line.partition("=")[2])
        for key in ("ExecStart=", "ExecStop=")
        for line in unit.splitlines()
        if line.startswith(key)
    )
    started = namespace.run(*start)
    assert started.returncode == 0, started.stderr
    assert OURS in {table_of(item) for item in listed_ruleset(namespace)}

    for _ in ("stopped", "stopped again, with the table gone"):
        stopped = namespace.run(*stop)
        assert stopped.returncode == 0, stopped.stderr
        assert listed_ruleset(namespace) == before


# -- the ruleset applied for real between two namespaces ------------------------------------------

A4, B4, A6, B6 = "198.18.0.1", "198.18.0.2", "fd00:198:18::1", "fd00:198:18::2"
SSHD, HTTPS, OLLAMA, METRICS = 2222, 443, 11434, 9464
DUAL_STACK: dict[str, Any] = {"family": socket.AF_INET6, "dualstack_ipv6": True}
DROPPED_AFTER_S = 1.0  # a veth answers in microseconds; a dropped SYN is never answered


@dataclass(frozen=True)
class Pair:
    """Host `a` (the firewalled one) and client `b`, joined by a veth pair, listeners on `a`."""

    a: Namespace
    b: Namespace
    listeners: dict[int, socket.socket]
    sockets: ExitStack

    def apply(self, tmp_path: Path, monitor_port: int | None = None, **firewall: Any) -> None:
        ruleset = tmp_path / "nftables.conf"
        ruleset.write_text(
            render.render_nftables(
                role("firewall", sshd_port=SSHD, **firewall),
                ollama_port=OLLAMA,
                monitor_port=monitor_port,
            )
        )
        applied = self.a.run(tool("nft"), "-f", str(ruleset))
        assert applied.returncode == 0, applied.stderr

    def connect(self, address: str, port: int) -> str:
        """'connected', 'dropped' (no answer at all) or 'refused', as seen from `b`."""

        def attempt() -> str:
            try:
                with socket.create_connection((address, port), timeout=DROPPED_AFTER_S):
                    return "connected"
            except TimeoutError:
                return "dropped"
            except ConnectionRefusedError:
                return "refused"

        return self.b.inside(attempt)

    def open(self, address: str, port: int) -> socket.socket:
        """A connection from `b`, kept open."""
        client = self.b.inside(lambda: socket.create_connection((address, port), timeout=5))
        return self.sockets.enter_context(client)

    def datagram(self, source: tuple[str, int], destination: tuple[str, int]) -> str:
        """'received' or 'dropped': one UDP datagram from `source` on `b` to `destination` on `a`
        (an address may name its interface: fe80::1%veth0)."""

        def resolved(host: str, port: int) -> Any:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            return socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4]

        def receiver() -> socket.socket:
            server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            server.bind(("::", destination[1]))
            return server

        def send() -> None:
            family = socket.AF_INET6 if ":" in source[0] else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as client:
                client.bind(resolved(*source))
                client.sendto(b"reply", resolved(*destination))

        with self.a.inside(receiver) as server:
            server.settimeout(DROPPED_AFTER_S)
            self.b.inside(send)
            try:
                return "received" if server.recv(64) == b"reply" else "garbled"
            except TimeoutError:
                return "dropped"


@pytest.fixture
def pair(namespaces: Callable[[], Namespace]) -> Iterator[Pair]:
    tool("nft")
    a, b = namespaces(), namespaces()
    ip(
        "-n",
        a.name,
        "link",
        "add",
        "veth0",
        "type",
        "veth",
        "peer",
        "name",
        "veth0",
        "netns",
        b.name,
    )
    for namespace, v4, v6 in ((a, A4, A6), (b, B4, B6)):
        ip("-n", namespace.name, "addr", "add", f"{v4}/24", "dev", "veth0")
        ip("-n", namespace.name, "addr", "add", f"{v6}/64", "dev", "veth0", "nodad")
        ip("-n", namespace.name, "link", "set", "veth0", "up")
    with ExitStack() as sockets:
        listeners = {
            port: sockets.enter_context(
                a.inside(functools.partial(socket.create_server, ("::", port), **DUAL_STACK))
            )
            for port in (SSHD, HTTPS, OLLAMA, METRICS)
        }
        yield Pair(a, b, listeners, sockets)


def test_firewall_lets_in_ssh_https_and_metrics_only_from_allowed_networks(
    tmp_path: Path, pair: Pair
) -> None:
    every_port = (SSHD, HTTPS, OLLAMA, METRICS)
    # Without a ruleset every port answers, so a closed port below is the firewall's doing.
    assert {port: pair.connect(A4, port) for port in every_port} == dict.fromkeys(
        every_port, "connected"
    )

    pair.apply(tmp_path, firewall_allow_metrics=[f"{B4}/32"])
    assert {port: pair.connect(A4, port) for port in every_port} == {
        SSHD: "connected",
        HTTPS: "connected",
        OLLAMA: "dropped",
        METRICS: "connected",
    }

    pair.apply(tmp_path, firewall_allow_metrics=["198.19.0.0/24", "fd00:198:19::/64"])
    assert pair.connect(A4, METRICS) == "dropped"
    assert pair.connect(A4, SSHD) == "connected"


def node_behind_a_gateway(tmp_path: Path, gateway_address: str) -> dict[str, Any]:
    """The firewall variables the deploy gives node `gpu-1`, fronted by gateway `gw-1` at
    `gateway_address` (resolved from the inventory, as `ollama-fleet deploy` does)."""
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        f"    gpu-1: {{ssh_hostname: {A4}, ollama_host: '0.0.0.0:{OLLAMA}',"
        " caddy_enabled: false}\n"
        f"    gw-1: {{ssh_hostname: '{gateway_address}', ollama_enabled: false,"
        " gateway_enabled: true, gateway_nodes: [gpu-1],"
        f" gateway_api_keys: ['sha256:{'0' * 64}']}}\n"
    )
    node = resolve_gateways(load_inventory(inventory)).host("gpu-1")
    return {k: v for k, v in node.vars.items() if k.startswith("firewall_")}


def test_a_node_behind_a_gateway_lets_only_the_gateway_reach_ollama(
    tmp_path: Path, pair: Pair
) -> None:
    pair.apply(tmp_path, **node_behind_a_gateway(tmp_path, B4))
    assert pair.connect(A4, OLLAMA) == "connected"  # b is the gateway
    assert pair.connect(A4, HTTPS) == "connected"

    pair.apply(tmp_path, **node_behind_a_gateway(tmp_path, "198.18.0.9"))
    assert pair.connect(A4, OLLAMA) == "dropped"  # b is anyone else
    assert pair.connect(A4, HTTPS) == "connected"


def test_firewall_opens_the_monitors_port_only_to_the_metrics_networks(
    tmp_path: Path, pair: Pair
) -> None:
    # the monitor on METRICS, no other metrics ports: its port is what opens it
    pair.apply(tmp_path, firewall_allow_metrics=[f"{B4}/32"], firewall_metrics_ports=[])
    assert pair.connect(A4, METRICS) == "dropped"

    pair.apply(
        tmp_path,
        monitor_port=METRICS,
        firewall_allow_metrics=[f"{B4}/32"],
        firewall_metrics_ports=[],
    )
    assert pair.connect(A4, METRICS) == "connected"
    assert pair.connect(A6, METRICS) == "dropped"  # b's IPv6 address is not allowed
    assert pair.connect(A4, OLLAMA) == "dropped"

    pair.apply(tmp_path, monitor_port=METRICS, firewall_allow_metrics=["198.19.0.0/24"])
    assert pair.connect(A4, METRICS) == "dropped"


def test_firewall_keeps_ipv6_neighbour_discovery_working(tmp_path: Path, pair: Pair) -> None:
    pair.apply(tmp_path, firewall_allow_ollama=[f"{B6}/128"])
    # Forget the neighbours: reaching `a` now needs neighbour solicitations through its firewall.
    for namespace in (pair.a, pair.b):
        ip("-n", namespace.name, "neigh", "flush", "dev", "veth0")
    assert pair.connect(A6, HTTPS) == "connected"
    assert pair.connect(A6, OLLAMA) == "connected"
    assert pair.connect(A6, METRICS) == "dropped"


def test_firewall_accepts_dhcp_replies_to_the_client_port_only(tmp_path: Path, pair: Pair) -> None:
    for namespace, link_local in ((pair.a, "fe80::a"), (pair.b, "fe80::b")):
        ip("-n", namespace.name, "addr", "add", f"{link_local}/64", "dev", "veth0", "nodad")
    # Without a ruleset a datagram arrives, so a dropped one below is the firewall's doing.
    assert pair.datagram((B4, 70), (A4, 68)) == "received"

    pair.apply(tmp_path)
    # DHCPv6: from a server's port to the client's link-local address.
    assert pair.datagram(("fe80::b%veth0", 547), ("fe80::a%veth0", 546)) == "received"
    assert pair.datagram(("fe80::b%veth0", 548), ("fe80::a%veth0", 546)) == "dropped"
    assert pair.datagram((B6, 547), (A6, 546)) == "dropped"
    assert pair.datagram(("fe80::b%veth0", 547), ("fe80::a%veth0", 547)) == "dropped"
    # DHCPv4: from port 67 to 68 (a renewal over a UDP socket sees it).
    assert pair.datagram((B4, 67), (A4, 68)) == "received"
    assert pair.datagram((B4, 69), (A4, 68)) == "dropped"


def test_firewall_does_not_cut_the_ssh_connection_it_is_applied_over(
    tmp_path: Path, pair: Pair
) -> None:
    client = pair.open(A4, SSHD)
    pair.listeners[SSHD].settimeout(5)
    server, _ = pair.listeners[SSHD].accept()
    pair.sockets.enter_context(server)
    server.settimeout(5)
    client.sendall(b"before")
    assert server.recv(64) == b"before"

    pair.apply(tmp_path)

    client.sendall(b"after")
    assert server.recv(64) == b"after"
    server.sendall(b"reply")
    assert client.recv(64) == b"reply"


# -- systemd units: systemd-analyze -------------------------------------------------------------


@dataclass(frozen=True)
class Units:
    """A unit directory searched before the system's, with stub executables for ExecStart=."""

    directory: Path
    venv: Path
    ollama: Path

    def write(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def analyze(self, *args: str) -> subprocess.CompletedProcess[str]:
        # The trailing colon keeps the system's own directories (network-online.target...).
        env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{self.directory}:"}
        return subprocess.run(
            [tool("systemd-analyze"), *args], capture_output=True, text=True, env=env, check=False
        )

    def verify(self, name: str) -> str:
        """Every complaint systemd has about the unit, its drop-ins and what it starts."""
        verified = self.analyze("verify", "--man=no", str(self.directory / name))
        return (
            f"exit {verified.returncode}\n{verified.stderr}"
            if verified.returncode
            else (verified.stderr)
        )


def stub(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def units(tmp_path: Path) -> Units:
    venv = tmp_path / "venv"
    stub(venv / "bin" / "ollama-fleet")
    return Units(tmp_path / "units", venv, stub(tmp_path / "bin" / "ollama"))


def services(units: Units, **values: Any) -> dict[str, Any]:
    return role("services", fleet_venv=str(units.venv), **values)


FLEET_UNITS: dict[str, Callable[[dict[str, Any]], str]] = {
    "ollama-fleet-check.service": render.render_fleet_check_service,
    "ollama-fleet-monitor.service": render.render_monitor_service,
    "ollama-fleet-gateway.service": render.render_gateway_service,
}


@pytest.mark.parametrize("name", FLEET_UNITS)
def test_fleet_service_units_pass_systemd_verify(units: Units, name: str) -> None:
    units.write(name, FLEET_UNITS[name](services(units)))
    assert units.verify(name) == ""


@pytest.mark.parametrize("name", FLEET_UNITS)
def test_fleet_services_are_rated_ok_by_systemd_security(units: Units, name: str) -> None:
    units.write(name, FLEET_UNITS[name](services(units)))
    # Exposure is 0-10 ("OK" below 2); the threshold is in tenths.
    rated = units.analyze(
        "security", "--offline=yes", "--threshold=20", str(units.directory / name)
    )
    assert rated.returncode == 0, rated.stdout.splitlines()[-1:]


def test_monitor_unit_for_a_gpu_host_passes_systemd_verify_and_security(units: Units) -> None:
    name = "ollama-fleet-monitor.service"
    units.write(name, render.render_monitor_service(services(units), gpu=True))
    assert units.verify(name) == ""
    rated = units.analyze(
        "security", "--offline=yes", "--threshold=20", str(units.directory / name)
    )
    assert rated.returncode == 0, rated.stdout.splitlines()[-1:]


@pytest.mark.parametrize("interval", ["5min", "1h 30min", "90s", "2 days"])
def test_check_timer_passes_systemd_verify(units: Units, interval: str) -> None:
    values = services(units, fleet_check_interval=interval)
    units.write("ollama-fleet-check.service", render.render_fleet_check_service(values))
    units.write("ollama-fleet-check.timer", render.render_fleet_check_timer(values))
    assert units.verify("ollama-fleet-check.timer") == ""
    parsed = units.analyze("timespan", interval)
    assert parsed.returncode == 0, parsed.stderr


@pytest.mark.parametrize("models_dir", ["/usr/share/ollama/.ollama/models", "/home/ai/models"])
def test_ollama_unit_and_dropin_pass_systemd_verify(units: Units, models_dir: str) -> None:
    units.write(
        "ollama.service",
        render.render_ollama_unit(
            binary=str(units.ollama),
            models_dir=models_dir,
            nvidia_modprobe=str(stub(units.directory.parent / "bin" / "nvidia-modprobe")),
        ),
    )
    dropin = render.render_ollama_dropin(
        role(
            "ollama",
            ollama_models_dir=models_dir,
            ollama_flash_attention=True,
            ollama_origins=["https://app.example.com", "app://*"],
            ollama_extra_env={
                "OLLAMA_CONTEXT_LENGTH": 8192,
                "NOTE": 'a "quoted" 100% \\ $HOME value',
            },
        )
    )
    units.write("ollama.service.d/ollama-fleet.conf", dropin)
    assert units.verify("ollama.service") == ""


def test_firewall_unit_passes_systemd_verify(units: Units) -> None:
    unit = render.render_firewall_unit(ruleset="/etc/nftables.d/ollama-fleet.nft")
    units.write("ollama-fleet-firewall.service", unit)
    assert units.verify("ollama-fleet-firewall.service") == ""


def test_systemd_verify_here_does_read_the_dropins(units: Units) -> None:
    units.write("ollama.service", render.render_ollama_unit(binary=str(units.ollama)))
    units.write("ollama.service.d/broken.conf", '[Service]\nEnvironment="1BAD=x" "NOTE=%Z"\n')
    complaints = units.verify("ollama.service")
    assert "broken.conf" in complaints
    assert "1BAD" in complaints
