"""Package archives built in memory for the package tests: a pure-Python wheel and an npm
tarball, so no test needs the network or a package index."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile


def wheel_bytes(
    name: str, version: str, files: dict[str, bytes], *, meta_name: str | None = None
) -> bytes:
    """A pure-Python wheel (PEP 427) holding ``files``, with its METADATA, WHEEL and a RECORD
    of every member's SHA-256; ``meta_name`` lets the metadata name another project."""
    dist_name = meta_name or name
    dist = f"{dist_name}-{version}.dist-info"
    files = {
        **files,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return buf.getvalue()


def wheel(name: str, version: str, module_source: str) -> tuple[str, bytes]:
    """A minimal pure-Python wheel for ``name``: its file name and bytes."""
    return f"{name}-{version}-py3-none-any.whl", wheel_bytes(
        name, version, {f"{name}.py": module_source.encode()}
    )


def npm_tarball(source: str, name: str = "leftpadx") -> bytes:
    """A package ``name@1.0.0`` whose index.js is ``source``, as npm packs it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in (
            ("package/package.json", f'{{"name": "{name}", "version": "1.0.0"}}'.encode()),
            ("package/index.js", source.encode()),
        ):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
