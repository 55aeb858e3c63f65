"""make console-assets unpacks the layout library only from a tarball with the pinned hash."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "console_assets", ROOT / "tools/console_assets.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_with_another_hash_is_refused_and_nothing_unpacked(tmp_path: Path) -> None:
    tool = _tool()
    forged = _tarball(
        tmp_path / "dagre.tgz",
        {"package/dist/dagre.min.js": b"alert(1)", "package/LICENSE": b"MIT"},
    )
    with pytest.raises(SystemExit, match="integrity"):
        tool.unpack(forged, tmp_path / "vendor")
    assert not (tmp_path / "vendor").exists()


def test_the_pinned_hash_lets_the_files_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _tool()
    tarball = _tarball(
        tmp_path / "dagre.tgz",
        {"package/dist/dagre.min.js": b"var dagre = {};", "package/LICENSE": b"MIT"},
    )
    monkeypatch.setattr(tool, "INTEGRITY", tool.integrity_of(tarball.read_bytes()))
    tool.unpack(tarball, tmp_path / "vendor")
    assert (tmp_path / "vendor/dagre.min.js").read_bytes() == b"var dagre = {};"
    assert sorted(p.name for p in (tmp_path / "vendor").iterdir()) == [
        "dagre.LICENSE",
        "dagre.min.js",
    ]


def test_without_npm_it_warns_and_carries_on_unless_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _tool()
    monkeypatch.setattr(tool.shutil, "which", lambda name: None)
    vendor = tmp_path / "v"
    assert tool.main(["--vendor", str(vendor), "--strict"]) == 1
    assert "make console-assets" in capsys.readouterr().out
    assert not vendor.exists()
    assert tool.main(["--vendor", str(vendor)]) == 0
    assert "make console-assets" in capsys.readouterr().out
    # the next make says nothing more, and no library appears
    assert tool.main(["--vendor", str(vendor)]) == 0
    assert capsys.readouterr().out == ""
    assert [p.name for p in vendor.iterdir()] == [tool.NO_NPM_MARKER]


def test_once_npm_is_there_the_marker_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool()
    vendor = tmp_path / "v"
    vendor.mkdir()
    (vendor / tool.NO_NPM_MARKER).write_text("x")
    monkeypatch.setattr(tool.shutil, "which", lambda name: "/bin/false")  # npm pack fails
    assert tool.main(["--vendor", str(vendor)]) == 0
    assert not (vendor / tool.NO_NPM_MARKER).exists()
