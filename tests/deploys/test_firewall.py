"""Role firewall: the ruleset is planned only when it would keep SSH open."""

from __future__ import annotations

import pytest

from ollama_fleet.deploys.firewall import DEBIAN_CONF, OLD_MARKER, unsafe_ssh

from .answers import grep_finds, sshd_ports
from .conftest import Deployed, deploy_fakes, host

RULESET_OP = "firewall: ruleset (checked by nft -c, applied atomically)"
# Hosts this role firewalled before it kept to its own table: /etc/nftables.conf is ours.
OLD_RULESET = grep_finds(
    DEBIAN_CONF,
    OLD_MARKER,
    [
        "# Managed by ollama-fleet (the firewall role): changes here are overwritten on the next "
        "deploy."
    ],
)
MIGRATION_OPS = [
    "firewall: Debian's own /etc/nftables.conf back",
    "firewall: the old table inet filter removed",
    "firewall: Debian's nftables.service no longer enabled",  # its stop flushes every table
]

# -- pure ----------------------------------------------------------------------------------------


def test_ssh_port_that_sshd_uses_is_safe() -> None:
    assert unsafe_ssh([22], 22) is None
    assert unsafe_ssh([22, 2222], 2222) is None


def test_unknown_sshd_ports_are_trusted() -> None:
    assert unsafe_ssh([], 22) is None


def test_ssh_port_that_sshd_does_not_use_is_unsafe_naming_both() -> None:
    assert unsafe_ssh([2222], 22) == "sshd listens on 2222 but sshd_port is 22"
    assert unsafe_ssh([2200, 2222], 22) == "sshd listens on 2200, 2222 but sshd_port is 22"


# -- dry deploys on fake hosts -------------------------------------------------------------------

HOSTS = {
    "moved-ssh": host(sshd_ports(2222)),
    "moved-ssh-declared": host(sshd_ports(2222), sshd_port=2222),
    "two-ports": host(sshd_ports(22, 2222)),
    "sshd-unreadable": host(sshd_ports()),
    "off": host(sshd_ports(2222), firewall_enabled=False),
    "deployed-before": host(sshd_ports(22), OLD_RULESET),
}


@pytest.fixture(scope="module")
def firewall_run(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    return deploy_fakes(tmp_path_factory.mktemp("firewall"), HOSTS, roles=["firewall"])


@pytest.mark.integration
class TestDryDeploy:
    def test_host_whose_sshd_moved_is_refused_naming_both_ports(
        self, firewall_run: Deployed
    ) -> None:
        refusal = firewall_run.refusal("moved-ssh")

        assert refusal is not None
        assert "sshd listens on 2222 but sshd_port is 22" in refusal
        assert "would cut SSH" in refusal
        assert firewall_run.plans("moved-ssh") == {}
        assert firewall_run.outcome("moved-ssh").failed

    @pytest.mark.parametrize("name", ["moved-ssh-declared", "two-ports", "sshd-unreadable"])
    def test_ruleset_is_planned_when_ssh_stays_reachable(
        self, firewall_run: Deployed, name: str
    ) -> None:
        changes = firewall_run.changes(name)

        assert firewall_run.refusal(name) is None
        assert RULESET_OP in changes
        assert "firewall: loaded at boot" in changes
        assert not set(MIGRATION_OPS) & set(changes)

    def test_the_ruleset_this_role_wrote_before_goes_once_its_own_table_is_in_place(
        self, firewall_run: Deployed
    ) -> None:
        changes = firewall_run.changes("deployed-before")

        assert changes[-3:] == MIGRATION_OPS
        assert RULESET_OP in changes

    def test_firewall_enabled_false_touches_nothing(self, firewall_run: Deployed) -> None:
        assert firewall_run.refusal("off") is None
        assert firewall_run.plans("off") == {}

    def test_only_the_refused_host_fails(self, firewall_run: Deployed) -> None:
        assert [h.name for h in firewall_run.result.failed] == ["@strictfake/moved-ssh"]
