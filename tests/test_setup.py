"""scripts/setup.sh, as far as it can be tried without installing anything."""
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_stops_with_advice_before_installing_when_the_disk_is_short(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", checkout / "scripts" / "setup.sh")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    df = fake_bin / "df"  # 1 GB free, in df -P -k's format
    df.write_text("#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
                  "echo '/dev/vda 264241152 263192576 1048576 100% /'\n")
    df.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}

    result = subprocess.run(["bash", "scripts/setup.sh"], cwd=checkout, env=env, capture_output=True, text=True)

    assert result.returncode == 1
    assert "only 1 GB free" in result.stderr and "needs about 8 GB" in result.stderr
    assert not (checkout / ".venv").exists()
