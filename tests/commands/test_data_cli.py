"""``fetal data``: help, verify (exit status, one line per problem, --format json, no TF/torch), fetch messages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fetal_lib.cli import main

HEAVY = ("torch", "tensorflow", "keras")
PROBE = (
    "import sys\n"
    "from fetal_lib.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})\n"
    "print('HEAVY_MODULES=' + ','.join(heavy))\n"
    "sys.exit(rc)\n"
).format(heavy=set(HEAVY))


def run_fetal(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``fetal`` in a fresh interpreter (stderr is a pipe, not a TTY) and report heavy imports."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=full_env,
                          timeout=300)


def test_fetal_data_alone_prints_its_help(capsys):
    assert main(["data"]) == 2
    out = capsys.readouterr().out
    assert "usage: fetal data" in out and "verify" in out and "fetch" in out and "list" in out


@pytest.mark.parametrize("argv", [["data"], ["data", "verify"], ["data", "fetch"], ["data", "list"]])
def test_every_data_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert f"usage: fetal {' '.join(argv)}" in capsys.readouterr().out


def test_list_names_every_dataset(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("hc18", "fetal_planes", "fetal_brain_anomaly_us", "fetal_brain_anomaly_16class",
                 "fetal_brain_atlases", "feta", "brain_age"):
        assert f"{name}  [" in out


@pytest.fixture
def corrupted_root(real_dataset, tmp_path) -> tuple[Path, Path]:
    """A data root of symlinks into the real hc18, with one truncated PNG copy."""
    hc18 = real_dataset("hc18")
    root = tmp_path / "data"
    images = sorted((hc18 / "training_set").glob("*HC.png"))[:3]
    for src in images + [hc18 / "training_set_pixel_size_and_HC.csv", hc18 / "test_set_pixel_size.csv"]:
        dst = root / "hc18" / src.relative_to(hc18)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src)
    bad = root / "hc18" / images[0].relative_to(hc18)
    data = images[0].read_bytes()
    bad.unlink()
    bad.write_bytes(data[: len(data) // 3])
    return root, bad


def test_verify_exits_non_zero_with_one_line_per_problem_and_no_heavy_imports(corrupted_root):
    root, bad = corrupted_root
    result = run_fetal("data", "verify", "--data-dir", str(root), "hc18")
    assert result.returncode == 1, result.stderr
    assert "HEAVY_MODULES=\n" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("hc18 ") and "partial" in line and "3 of 999" in line for line in lines)
    bad_lines = [line for line in lines if line.startswith(f"{bad}: ")]
    assert len(bad_lines) == 1 and "truncated PNG" in bad_lines[0] and "sha256 mismatch" in bad_lines[0]
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_verify_json_is_machine_readable(corrupted_root):
    root, bad = corrupted_root
    result = run_fetal("data", "verify", "--format", "json", "--data-dir", str(root), "hc18")
    assert result.returncode == 1
    report = json.loads(result.stdout.split("HEAVY_MODULES=")[0])
    assert report["ok"] is False
    (hc18,) = report["datasets"]
    assert hc18["status"] == "partial" and hc18["n_present"] == 3 and hc18["n_expected"] == 999
    assert [p for p in hc18["problems"] if p.startswith(f"{bad}: ")]


def test_verify_on_a_real_dataset_from_the_environment(real_dataset):
    root = real_dataset("fetal_brain_anomaly_us").parent  # small: the full root is verified in tests/data
    result = run_fetal("data", "verify", "fetal_brain_anomaly_us", env={"FETAL_DATA_DIR": str(root)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY_MODULES=\n" in result.stdout
    n_images = len(list(root.glob("fetal_brain_anomaly_us/*/images/*.jpg")))
    assert any(line.split()[:3] == ["fetal_brain_anomaly_us", "complete", str(n_images)]
               for line in result.stdout.splitlines()), result.stdout


def test_fetch_registration_only_prints_what_to_do(tmp_path, capsys):
    assert main(["data", "fetch", "brain_age", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not openly downloadable" in err and "camcan" in err and str(tmp_path / "brain_age") in err
    assert list(tmp_path.iterdir()) == []
    # the old spelling --dest still works (hidden from --help)
    assert main(["data", "fetch", "brain_age", "--dest", str(tmp_path / "old")]) == 2
    assert str(tmp_path / "old" / "brain_age") in capsys.readouterr().err


def test_fetch_without_network_names_the_url(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/records/1327317/files"
    rc = main(["data", "fetch", "hc18", "--data-dir", str(tmp_path / "d"), "--base-url", closed, "--timeout", "5"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fetal: error: {closed}/training_set.zip?download=1: download failed")


def test_fetch_unknown_dataset_is_one_error_line(tmp_path, capsys):
    assert main(["data", "fetch", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "no manifest for dataset 'nope'" in capsys.readouterr().err


def test_verify_shows_a_progress_bar_on_a_terminal(corrupted_root):
    import fcntl
    import pty
    import struct
    import termios

    root, _ = corrupted_root
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", PROBE, "data", "verify", "--data-dir", str(root), "hc18"],
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    err = b""
    while True:
        try:
            block = os.read(master, 4096)
        except OSError:
            break
        if not block:
            break
        err += block
    os.close(master)
    assert proc.wait(timeout=120) == 1
    assert b"verify:" in err and b"file/s" in err
