"""Remote profiling over a REAL OpenSSH server started on 127.0.0.1 for the test.

Needs Debian's openssh-server (``apt-get install -y openssh-server``); skipped with the reason
otherwise. The server gets a temporary host key and user key; the client reaches it through an
ssh_config file (alias, port, identity, strict known_hosts) exactly as a user's ~/.ssh/config would.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import profilers
from profilers.errors import ProfilerError
from profilers.stats import Protocol

from _spaces import MICRO_SPACE

pytestmark = pytest.mark.ssh

FAST = Protocol(warmup_runs=10, warmup_s=0.2, runs=20, min_time_s=0.0, max_attempts=1)
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SSHD is None:
        pytest.skip("sshd not installed (apt-get install -y openssh-server)")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "id.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel ERROR
Subsystem sftp internal-sftp
""")
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (d / "ssh_config").write_text(f"""\
Host hwnas-test
  HostName 127.0.0.1
  Port {port}
  User {getpass.getuser()}
  IdentityFile {d / 'id'}
  IdentitiesOnly yes
  UserKnownHostsFile {d / 'known_hosts'}
  StrictHostKeyChecking yes
""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"sshd did not start: {proc.stderr.read().decode()[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.skip("sshd did not start listening within 20 s")
    yield {"host": "hwnas-test", "ssh_config": str(d / "ssh_config")}
    proc.terminate()
    proc.wait(timeout=10)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()


def remote(sshd, backend="onnxruntime-cpu", **kw):
    opts = {"exporter": "torchscript"} if backend == "onnxruntime-cpu" else {}
    opts.update(kw)
    return profilers.get("ssh", host=sshd["host"], ssh_config=sshd["ssh_config"], backend=backend,
                         remote_python=sys.executable, protocol=FAST, **opts)


def test_measures_on_the_remote_host(sshd):
    prof = remote(sshd)
    m = prof.measure(small_model(), (torch.randn(1, 3, 16, 16),))
    assert m.runs >= FAST.runs and 0 < m.median_ms < 50 and m.info["via"] == "ssh" and m.info["host"] == "hwnas-test"
    dev = prof.device_info()
    assert dev["via"] == "ssh" and dev["runtime"] == "onnxruntime" and dev["threads"] == 1 and dev["cpu_model"]
    rdir = prof.remote_dir()
    assert Path(rdir, "model.onnx").exists()  # the remote is this machine: the sent artifact is there
    # a failing measurement is one clear error and the remote runner keeps serving
    with pytest.raises(ProfilerError, match="remote onnxruntime-cpu: .*1 inputs, 2 shapes given"):
        prof.measure_artifact(Path(rdir, "model.onnx"), [(1, 3, 16, 16), (1, 3, 16, 16)])
    assert prof.measure_artifact(Path(rdir, "model.onnx"), [(1, 3, 16, 16)]).runs >= FAST.runs
    prof.close()
    assert not Path(rdir).exists()


def test_remote_build_has_the_same_keys_as_a_local_build(sshd, tmp_path):
    from lut.build import build
    from lut.table import compatibility_problem
    from test_lut import SPACE, ort, synthetic_blocks

    blocks = synthetic_blocks()[:3]  # each remote block costs an scp + ssh round trip
    local = build(blocks, ort(), tmp_path / "local.parquet", SPACE, progress=False)
    prof = remote(sshd)
    far = build(blocks, prof, tmp_path / "remote.parquet", SPACE, progress=False)
    prof.close()
    assert sorted(far.keys) == sorted(local.keys) and len(far.rows) == len(local.rows)
    assert far.metadata["device"]["via"] == "ssh" and far.backend["name"] == "onnxruntime-cpu"
    # same machine, same runtime settings: the two tables may be mixed (where they ran is not identity)
    assert compatibility_problem(local.metadata, far.metadata) is None


def test_jetson_path_trtexec_over_ssh(sshd, tmp_path):
    """TensorRT on a remote board: copy, run trtexec there, parse; a stand-in trtexec on the 'board'."""
    from test_profilers import TRT_LOG, TRT_TIMES

    import json

    fake = tmp_path / "trtexec"
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do case $a in --exportTimes=*) out=${a#--exportTimes=};; esac; done\n"
                    f"printf '%s' '{json.dumps(TRT_TIMES)}' > \"$out\"\nprintf '%s\\n' '{TRT_LOG}'\n")
    fake.chmod(0o755)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read by the stand-in")
    prof = remote(sshd, backend="tensorrt", trtexec=str(fake))
    m = prof.measure_artifact(onnx, [(1, 3, 16, 16)])
    assert m.samples_ms == [1.5, 1.2, 1.3, 1.1, 9.0] and m.median_ms == 1.3
    dev = prof.device_info()
    assert dev["logical_cores"] == os.cpu_count() and dev["via"] == "ssh" and "nvpmodel" in dev
    prof.close()


def test_unreachable_host_is_one_clear_error(sshd):
    prof = profilers.get("ssh", host="no-such-host.invalid", ssh_config=sshd["ssh_config"], protocol=FAST,
                         exporter="torchscript", timeout_s=30)
    with pytest.raises(ProfilerError, match="ssh no-such-host.invalid: creating a remote work directory failed"):
        prof.measure(small_model(), (torch.randn(1, 3, 16, 16),))
    with pytest.raises(ProfilerError, match="a host is required"):
        profilers.get("ssh")


@pytest.mark.slow
def test_cli_remote_build_matches_local(sshd, tmp_path):
    """`hwnas lut build --host` through the local sshd gives the same keys as a local build (small space)."""
    from lut.table import LatencyTable

    space = tmp_path / "micro.yaml"
    space.write_text(MICRO_SPACE)
    base = [sys.executable, "-m", "hwnas", "lut", "build", "--space", str(space), "--no-progress", "--runs", "10",
            "--min-time-s", "0"]
    subprocess.run([*base, "--out", str(tmp_path / "local.parquet")], check=True, capture_output=True)
    subprocess.run([*base, "--out", str(tmp_path / "remote.parquet"), "--host", sshd["host"], "--ssh-config",
                    sshd["ssh_config"], "--remote-python", sys.executable], check=True, capture_output=True)
    a, b = LatencyTable.read(tmp_path / "local.parquet"), LatencyTable.read(tmp_path / "remote.parquet")
    assert sorted(a.keys) == sorted(b.keys) and len(a) > 20
