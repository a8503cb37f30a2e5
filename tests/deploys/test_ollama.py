"""Role ollama: the install script run for real in a temporary tree, and what a dry deploy plans
depending on the release the host already has.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from ollama_fleet.deploys.ollama import RELEASE_MARKER, install_script, untraversable

from .answers import marker, path_modes
from .conftest import Deployed, deploy_fakes, host, release_line

# -- the install script, run with sh against a temporary tree -----------------------------------

SYSTEM_LINK = "/usr/local/bin/ollama"


def archive(path: Path, version: str, *, with_binary: bool = True) -> str:
    """An Ollama-like release archive (bin/ollama printing `version`); returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        members = {"lib/ollama/libggml.so": b"\0"}
        if with_binary:
            members["bin/ollama"] = f"#!/bin/sh\necho ollama version is {version}\n".encode()
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Tree:
    """/opt/ollama, the download cache and /usr/local/bin, under a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opt = root / "opt" / "ollama"
        self.cache = root / "var" / "cache"
        self.link = root / "usr" / "local" / "bin" / "ollama"
        self.marker = self.opt / "RELEASE"
        for folder in (self.opt, self.cache, self.link.parent):
            folder.mkdir(parents=True)

    def install(
        self, version: str, *, sha256: str | None = None, with_binary: bool = True
    ) -> subprocess.CompletedProcess[str]:
        pushed = self.cache / f"ollama-{version}.tgz"
        real_sha = archive(pushed, version, with_binary=with_binary)
        sha = sha256 or real_sha
        script = install_script(
            str(pushed), sha, str(self.opt / version), str(self.marker), f"{version} sha256:{sha}"
        )
        # the link's path is fixed in the script; point it into the tree (see the report)
        assert SYSTEM_LINK in script
        script = script.replace(SYSTEM_LINK, str(self.link))
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)

    def ollama_version(self) -> str:
        return subprocess.run(
            [str(self.link)], capture_output=True, text=True, check=True
        ).stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def test_install_unpacks_links_and_records_the_release(tree: Tree) -> None:
    done = tree.install("0.12.0")

    assert done.returncode == 0, done.stderr
    assert tree.link.resolve() == tree.opt / "0.12.0" / "bin" / "ollama"
    assert tree.ollama_version() == "ollama version is 0.12.0"
    assert (tree.opt / "0.12.0" / "lib" / "ollama" / "libggml.so").is_file()
    assert tree.marker.read_text().startswith("0.12.0 sha256:")
    assert not (tree.cache / "ollama-0.12.0.tgz").exists()  # the pushed archive is removed


def test_upgrade_switches_the_link_to_the_new_release(tree: Tree) -> None:
    assert tree.install("0.11.0").returncode == 0
    done = tree.install("0.12.0")

    assert done.returncode == 0, done.stderr
    assert tree.ollama_version() == "ollama version is 0.12.0"
    assert tree.marker.read_text().startswith("0.12.0 sha256:")


def test_wrong_sha256_is_refused_and_the_old_release_stays(tree: Tree) -> None:
    assert tree.install("0.11.0").returncode == 0
    old_marker = tree.marker.read_text()

    done = tree.install("0.12.0", sha256="0" * 64)

    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr
    assert tree.ollama_version() == "ollama version is 0.11.0"
    assert tree.marker.read_text() == old_marker
    assert not (tree.opt / "0.12.0").exists()


def test_archive_without_the_binary_is_refused_and_the_old_release_stays(tree: Tree) -> None:
    assert tree.install("0.11.0").returncode == 0

    done = tree.install("0.12.0", with_binary=False)

    assert done.returncode != 0
    assert tree.ollama_version() == "ollama version is 0.11.0"
    assert tree.marker.read_text().startswith("0.11.0 ")
    assert not (tree.opt / "0.12.0").exists()


def test_models_dir_parent_without_o_x_is_untraversable() -> None:
    modes = [("755", "/srv/ai/models"), ("750", "/srv/ai"), ("755", "/srv")]

    assert untraversable(modes, "/srv/ai/models") == ["/srv/ai"]
    assert untraversable([("700", "/srv/ai/models"), ("711", "/srv/ai")], "/srv/ai/models") == []


# -- dry deploys on fake hosts -------------------------------------------------------------------

ARTIFACT = b"not really a tarball: the dry run only hashes it"
VERSION = "0.12.0"
INSTALL_OP = f"ollama: install {VERSION} (sha256 checked)"
PUSH_OP = "ollama: push ollama-linux-amd64.tgz from the controller"
DOWNLOAD_OP = "ollama: download ollama-linux-amd64.tgz"


@pytest.fixture(scope="module")
def ollama_run(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    folder = tmp_path_factory.mktemp("ollama")
    pushed = folder / "artifacts" / "ollama-linux-amd64.tgz"
    pushed.parent.mkdir()
    pushed.write_bytes(ARTIFACT)
    current = release_line(pushed, VERSION)
    artifact = {"ollama_artifact": "artifacts/ollama-linux-amd64.tgz"}
    hosts = {
        "current": host(marker(RELEASE_MARKER, current), **artifact),
        "older": host(marker(RELEASE_MARKER, current.replace(VERSION, "0.11.0")), **artifact),
        "other-build": host(marker(RELEASE_MARKER, f"{VERSION} sha256:{'e' * 64}"), **artifact),
        "fresh": host(**artifact),
        "download": host(ollama_sha256="d" * 64),
        "models-blocked": host(
            path_modes(
                "/srv/private/models",
                {"/srv/private/models": "755", "/srv/private": "700", "/srv": "755"},
            ),
            ollama_models_dir="/srv/private/models",
            **artifact,
        ),
    }
    return deploy_fakes(folder, hosts, roles=["ollama"], ollama_version=VERSION)


@pytest.mark.integration
class TestDryDeploy:
    def test_same_release_is_neither_pushed_nor_installed(self, ollama_run: Deployed) -> None:
        plans = ollama_run.plans("current")

        assert plans, "the role planned nothing at all"
        assert not [op for op in plans if "push" in op or "install" in op or "cache" in op]

    @pytest.mark.parametrize("name", ["older", "other-build", "fresh"])
    def test_another_release_line_is_pushed_and_installed(
        self, ollama_run: Deployed, name: str
    ) -> None:
        changes = ollama_run.changes(name)

        assert PUSH_OP in changes
        assert INSTALL_OP in changes
        assert changes.index(PUSH_OP) < changes.index(INSTALL_OP)
        assert DOWNLOAD_OP not in ollama_run.plans(name)

    def test_without_an_artifact_the_host_downloads_the_release(self, ollama_run: Deployed) -> None:
        changes = ollama_run.changes("download")

        assert DOWNLOAD_OP in changes
        assert INSTALL_OP in changes
        assert PUSH_OP not in ollama_run.plans("download")

    def test_unit_and_environment_are_managed_on_every_host(self, ollama_run: Deployed) -> None:
        for name in ("current", "older", "download"):
            assert {"ollama: systemd unit", "ollama: environment drop-in"} <= set(
                ollama_run.plans(name)
            )

    def test_models_dir_behind_a_closed_parent_is_refused(self, ollama_run: Deployed) -> None:
        refusal = ollama_run.refusal("models-blocked")

        assert refusal is not None
        assert "ollama_models_dir: /srv/private cannot be entered by the ollama user" in refusal
        assert "chmod o+x" in refusal
        assert ollama_run.plans("models-blocked") == {}
        assert [h.name for h in ollama_run.result.failed] == ["@strictfake/models-blocked"]
