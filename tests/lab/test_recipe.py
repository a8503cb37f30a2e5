"""The image recipe: its hash names the cache entry, so it must be stable and complete."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from ollama_fleet.lab.recipe import (
    DEFAULT_RECIPE,
    FILES,
    SSH_KEY_PARAM,
    ImageFile,
    ImageRecipe,
    recipe_hash,
)


def test_hash_is_short_hex_and_the_same_for_equal_recipes() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", recipe_hash())
    assert recipe_hash(ImageRecipe()) == recipe_hash(DEFAULT_RECIPE)


def test_hash_is_the_same_in_another_process() -> None:
    # Hash randomization must not leak in: a new process must find the same cache entry.
    code = "from ollama_fleet.lab.recipe import recipe_hash; print(recipe_hash())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.stdout.strip() == recipe_hash()


def _with_file_changed(path: str, content: str) -> ImageRecipe:
    files = tuple(dataclasses.replace(f, content=content) if f.path == path else f for f in FILES)
    return dataclasses.replace(DEFAULT_RECIPE, files=files)


CHANGED = {
    "version": dataclasses.replace(DEFAULT_RECIPE, version=DEFAULT_RECIPE.version + 1),
    "suite": dataclasses.replace(DEFAULT_RECIPE, suite="trixie"),
    "variant": dataclasses.replace(DEFAULT_RECIPE, variant="buildd"),
    "packages": dataclasses.replace(DEFAULT_RECIPE, packages=(*DEFAULT_RECIPE.packages, "vim")),
    "file content": _with_file_changed("etc/hostname", "other\n"),
    "file mode": dataclasses.replace(
        DEFAULT_RECIPE, files=(*FILES[:-1], dataclasses.replace(FILES[-1], mode=0o600))
    ),
    "new file": dataclasses.replace(
        DEFAULT_RECIPE, files=(*FILES, ImageFile(path="etc/motd", content="hi\n"))
    ),
    "links": dataclasses.replace(DEFAULT_RECIPE, links=()),
    "removals": dataclasses.replace(DEFAULT_RECIPE, remove=()),
    "disk size": dataclasses.replace(DEFAULT_RECIPE, disk_size="16G"),
}


@pytest.mark.parametrize("changed", CHANGED.values(), ids=CHANGED.keys())
def test_hash_changes_with_everything_that_shapes_the_image(changed: ImageRecipe) -> None:
    assert recipe_hash(changed) != recipe_hash()


@pytest.mark.parametrize("package", ["caddy", "nftables", "python3-venv"])
def test_image_leaves_the_deploys_packages_to_the_deploy(package: str) -> None:
    assert package not in DEFAULT_RECIPE.packages
    assert not any(name.startswith("ollama") for name in DEFAULT_RECIPE.packages)
    for item in DEFAULT_RECIPE.files:
        assert package not in item.content, item.path


def test_image_has_what_pyinfra_and_the_tests_need() -> None:
    for package in ("systemd-sysv", "openssh-server", "python3", "linux-image-amd64", "sudo"):
        assert package in DEFAULT_RECIPE.packages


def test_init_script_reads_the_kernel_parameter_qemu_passes() -> None:
    (script,) = (f for f in FILES if f.path == "usr/local/sbin/ollama-lab-init")
    assert f"{SSH_KEY_PARAM}=*)" in script.content
    assert script.mode == 0o755
    (link,) = DEFAULT_RECIPE.links
    assert link[0].startswith("etc/systemd/system/multi-user.target.wants/")


def test_sshd_allows_root_by_key_only() -> None:
    (config,) = (f for f in FILES if f.path.startswith("etc/ssh/sshd_config.d/"))
    assert "PermitRootLogin prohibit-password" in config.content
    assert "PasswordAuthentication no" in config.content
