"""Build the lab's Debian 12 disk image once per recipe and cache it outside the repo.

The cache entry is `<cache>/lab-images/<recipe hash>/` with `disk.img` (raw ext4, read-only:
labs boot from qcow2 overlays backed by it), `vmlinuz`, `initrd.img`, `image.json` and the
build log. A build runs in a temporary directory beside it, under a file lock, and is
renamed into place when complete: a reader never sees half an image.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from ollama_fleet.errors import ConfigError, TestbedError
from ollama_fleet.lab.files import exclusive_lock, remove_tree
from ollama_fleet.lab.recipe import DEFAULT_MIRROR, DEFAULT_RECIPE, ImageRecipe, recipe_hash
from ollama_fleet.lab.tools import Progress, no_progress, require_tool, run_tool, timed_step

MANIFEST = "image.json"
DEBOOTSTRAP_TIMEOUT_S = 1800.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LabImage:
    """A built image in the cache."""

    directory: Path
    recipe_hash: str
    kernel_version: str

    @property
    def disk(self) -> Path:
        return self.directory / "disk.img"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/ollama-fleet, or ~/.cache/ollama-fleet."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "ollama-fleet"


def images_dir(cache_dir: Path) -> Path:
    return cache_dir / "lab-images"


def load_image(directory: Path) -> LabImage | None:
    """The image in `directory` if it is complete, else None."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        image = LabImage(
            directory=directory,
            recipe_hash=str(manifest["recipe_hash"]),
            kernel_version=str(manifest["kernel_version"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if all(path.is_file() for path in (image.disk, image.kernel, image.initrd)):
        return image
    return None


def find_image(
    cache_dir: Path | None = None, recipe: ImageRecipe = DEFAULT_RECIPE
) -> LabImage | None:
    """The cached image for `recipe`, or None if it was never built."""
    return load_image(images_dir(cache_dir or default_cache_dir()) / recipe_hash(recipe))


def build_image(
    cache_dir: Path | None = None,
    *,
    recipe: ImageRecipe = DEFAULT_RECIPE,
    mirror: str = DEFAULT_MIRROR,
    progress: Progress = no_progress,
) -> LabImage:
    """The image for `recipe`: from the cache, or built now (needs root, ~2-3 minutes)."""
    check_mirror(mirror)
    cache_dir = cache_dir or default_cache_dir()
    key = recipe_hash(recipe)
    images = images_dir(cache_dir)
    final = images / key
    image = load_image(final)
    if image is not None:
        return image
    if os.geteuid() != 0:
        raise TestbedError(
            "building the lab image needs root (debootstrap): run `ollama-fleet lab build` "
            f"as root, with XDG_CACHE_HOME={cache_dir.parent}; later runs use the cached image"
        )
    require_tool("debootstrap")
    require_tool("mkfs.ext4")
    images.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(images / f".{key}.lock"):
        image = load_image(final)  # built by another process while this one waited
        if image is not None:
            progress(f"lab image {key}: built by another process meanwhile")
            return image
        for leftover in [final, *images.glob(f".{key}.build-*")]:
            if leftover.exists():
                remove_tree(leftover)  # an interrupted build, or an entry damaged by hand
        work = Path(tempfile.mkdtemp(prefix=f".{key}.build-", dir=images))
        log = images / f"{key}.build.log"  # stays here, named in the error, if the build fails
        log.write_text("", encoding="utf-8")
        try:
            _build(work, log, recipe=recipe, key=key, mirror=mirror, progress=progress)
            log.replace(work / "build.log")
            work.rename(final)
        finally:
            if work.exists():
                remove_tree(work)
    image = load_image(final)
    if image is None:
        raise TestbedError(f"{final}: the image build finished but the image is incomplete")
    return image


def check_mirror(mirror: str) -> None:
    """ConfigError unless `mirror` is an http(s) URL."""
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--mirror {mirror}: expected an http(s) URL of a Debian mirror")


def _build(
    work: Path, log: Path, *, recipe: ImageRecipe, key: str, mirror: str, progress: Progress
) -> None:
    start = time.monotonic()
    rootfs = work / "rootfs"
    progress(f"lab image {key}: not cached; building it from {mirror} (2-3 minutes)")
    with timed_step(progress, f"lab image: debootstrap {recipe.suite}"):
        run_tool(
            [
                "debootstrap",
                f"--variant={recipe.variant}",
                f"--include={','.join(recipe.packages)}",
                recipe.suite,
                str(rootfs),
                mirror,
            ],
            what="debootstrap",
            log=log,
            timeout_s=DEBOOTSTRAP_TIMEOUT_S,
        )
    with timed_step(progress, "lab image: configure it and copy out the kernel"):
        configure_rootfs(rootfs, recipe)
        kernel_version = copy_boot_files(rootfs, work)
    disk = work / "disk.img"
    with timed_step(progress, f"lab image: mkfs.ext4 ({recipe.disk_size}, sparse)"):
        run_tool(
            ["mkfs.ext4", "-q", "-F", "-L", recipe.label, "-d", str(rootfs), str(disk)]
            + [recipe.disk_size],
            what="mkfs.ext4",
            log=log,
        )
        disk.chmod(0o444)  # overlays use it as their backing file; nothing writes to it
        remove_tree(rootfs)
    manifest = {
        "recipe_hash": key,
        "recipe_version": recipe.version,
        "suite": recipe.suite,
        "kernel_version": kernel_version,
        "mirror": mirror,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.monotonic() - start, 1),
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    work.chmod(0o755)  # mkdtemp made it 0700; other users may boot labs from it
    progress(f"lab image: built in {manifest['build_seconds']} s: {work.parent / key}")


def configure_rootfs(rootfs: Path, recipe: ImageRecipe) -> None:
    """Apply the recipe's removals, files and links to a debootstrapped tree, without booting."""
    for pattern in recipe.remove:
        # glob.glob, unlike Path.glob, also finds dangling links such as etc/resolv.conf.
        for path in map(Path, glob.glob(str(rootfs / pattern))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for item in recipe.files:
        target = rootfs / item.path
        if target.is_symlink():
            target.unlink()  # never write through a link to somewhere outside the tree
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.content, encoding="utf-8")
        target.chmod(item.mode)
    for link, destination in recipe.links:
        path = rootfs / link
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(destination)


def copy_boot_files(rootfs: Path, directory: Path) -> str:
    """Copy the kernel and initrd out of the tree (qemu boots them directly); their version."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise TestbedError(f"{rootfs}/boot: expected one kernel, found {len(kernels)}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise TestbedError(f"{initrd}: missing; the kernel package did not make an initrd")
    shutil.copyfile(kernels[0], directory / "vmlinuz")
    shutil.copyfile(initrd, directory / "initrd.img")
    return version
