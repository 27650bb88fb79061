"""The compute-sanitizer driver (scripts/sanitizer_driver.py) run as a dry run on the CPU: every
op family it calls on the GPU must at least run here, so a GPU session's sanitizer time is not
spent on a broken driver."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_sanitizer_driver_runs_every_family_on_the_cpu():
    env = dict(os.environ, MEDKERN_SANITIZER_DEVICE="cpu")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "sanitizer_driver.py"), "--dtypes",
                           "float32,float64"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    families = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("ok")}
    assert {"conv2d", "conv3d", "linear", "pooling", "batch_norm", "norm_act", "relu", "preprocess"} <= families
