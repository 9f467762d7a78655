"""Reload through a Kubernetes ConfigMap volume: the kubelet never edits a mounted file;
it writes a new timestamped directory, points `..data_tmp` at it, renames that over
`..data` (one atomic step) and deletes the old directory, while the visible names
(`routes.yaml`, `tiers.yaml`) stay symlinks through `..data` (its AtomicWriter). A
running gateway must see each swap, ignore the hidden entries, and keep the last good
config when the new files do not validate."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import RunningGateway
from tests.limits.conftest import wait_until
from tests.servers import Backend


class KubeletVolume:
    """A directory kept the way the kubelet keeps a ConfigMap or Secret volume."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self._seq = 0

    def project(self, files: dict[str, str]) -> None:
        self._seq += 1
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{self._seq:09d}"
        new = self.path / stamp
        new.mkdir()
        for name, text in files.items():
            (new / name).write_text(text)
        data = self.path / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.path / "..data_tmp"
        os.symlink(stamp, tmp)
        os.rename(tmp, data)  # the one atomic step: every file changes at once
        for name in files:
            link = self.path / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        for entry in self.path.iterdir():  # names no longer in the ConfigMap
            if entry.is_symlink() and not entry.name.startswith("..") and not entry.exists():
                entry.unlink()
        if old is not None:
            shutil.rmtree(self.path / old)


def routes_text(backend: Backend, *names: str) -> str:
    return yaml.safe_dump({
        "version": 1, "upstreams": {"main": {"targets": [{"url": backend.url}]}},
        "routes": [{"name": n, "match": {"prefix": f"/{n}"}, "upstream": "main",
                    "rewrite": "/", "public": True} for n in names]})


def policies_text(tenants: dict[str, Any]) -> dict[str, str]:
    return {"tiers.yaml": yaml.safe_dump({"version": 1, "tiers": {"free": {"rate": "5/minute"}}}),
            "tenants.yaml": yaml.safe_dump({"version": 1, "tenants": tenants})}


def test_a_configmap_symlink_swap_is_reloaded(tmp_path: Path, backend: Backend,
                                              start_gateway: Callable[..., RunningGateway]):
    routes, policies = KubeletVolume(tmp_path / "routes"), KubeletVolume(tmp_path / "policies")
    routes.project({"routes.yaml": routes_text(backend, "a")})
    policies.project(policies_text({"acme": {"tier": "free"}}))
    gw = start_gateway(routes_file=routes.path / "routes.yaml", policies_dir=policies.path)
    assert gw.client.get("/a/x").status_code == 200
    assert gw.client.get("/b/x").status_code == 404

    routes.project({"routes.yaml": routes_text(backend, "b")})
    wait_until(lambda: gw.client.get("/b/x").status_code == 200)
    assert gw.client.get("/a/x").status_code == 404

    policies.project(policies_text({"acme": {"tier": "free"}, "globex": {"tier": "free"}}))
    wait_until(lambda: "globex" in gw.holder.current.tenants)

    # A swap to a file that does not validate: refused, the last good config serves on.
    generation = gw.holder.generation
    routes.project({"routes.yaml": "version: 1\nroutes: [{name: c}]\n"})
    wait_until(lambda: gw.holder.reload_failures > 0)
    assert gw.holder.generation == generation
    assert gw.client.get("/b/x").status_code == 200
    routes.project({"routes.yaml": routes_text(backend, "c")})
    wait_until(lambda: gw.client.get("/c/x").status_code == 200)
    assert sorted(p.name for p in policies.path.iterdir() if not p.name.startswith("..")) \
        == ["tenants.yaml", "tiers.yaml"]


def test_signing_keys_load_from_a_read_only_secret_volume(tmp_path: Path, monkeypatch):
    """The replicas' shared signing keys come as a Secret volume, which is read-only: a
    directory that holds keys is only read (no lock file, no new key)."""
    import errno

    from gateway.auth.signing_keys import SigningKeys

    made = tmp_path / "made"
    SigningKeys(made)  # a first key, as `gateway signing-key rotate` writes one
    (pem,) = made.glob("*.pem")
    secret = KubeletVolume(tmp_path / "secret")
    secret.project({pem.name: pem.read_text()})
    real_open = os.open

    def read_only_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).startswith(str(secret.path)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    keys = SigningKeys(secret.path)
    assert keys.active.path.name == pem.name
    assert len(keys.by_kid) == 1
