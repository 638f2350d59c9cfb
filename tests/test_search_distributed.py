"""`torchrun -m hwnas search` (gloo, 2 CPU ranks) = a one-process search, and it resumes after kill -9 of one rank.

Synthetic latency and fitness (``--synthetic``) keep it fast; what is tested is the split of the
candidates over ranks, the gather, rank 0's files and the resume, not the fitness itself.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwnas.search.evolution import CACHE_FILE

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
SEARCH = ["--synthetic", "--population", "40", "--groups", "4", "--keep", "12", "--iterations", "4", "--seed", "3", "--quiet"]

pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found next to the Python interpreter")


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(out: Path, *extra: str, port: int) -> list[str]:
    return [TORCHRUN, "--nproc_per_node", "2", "--master_port", str(port), "-m", "hwnas", "search", *SEARCH, *extra, "--out", str(out)]


def _single(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas", "search", *SEARCH, *extra, "--out", str(out)],
                          env=_env(), capture_output=True, text=True, timeout=120)


def _same_outputs(a: Path, b: Path) -> None:
    assert (a / "population.csv").read_text() == (b / "population.csv").read_text()
    assert (a / "pareto.csv").read_text() == (b / "pareto.csv").read_text()
    assert sorted(p.name for p in (a / "pareto").iterdir()) == sorted(p.name for p in (b / "pareto").iterdir())
    sa, sb = (json.loads((d / "search_state.json").read_text()) for d in (a, b))
    assert sa["population"] == sb["population"] and sa["cache"] == sb["cache"]


def test_torchrun_two_ranks_equals_one_process(tmp_path):
    one = _single(tmp_path / "one", "--predictor", "ridge")
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(_torchrun(tmp_path / "two", "--predictor", "ridge", port=29561), env=_env(),
                         capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    _same_outputs(tmp_path / "one", tmp_path / "two")
    # rank 1 did its share: half of every round (rounds of 2 candidates, the odd ones)
    evaluated = len((tmp_path / "two" / "population.csv").read_text().splitlines()) - 1
    assert f"search rank 1: evaluated {evaluated // 2} candidates" in two.stderr
    assert not (tmp_path / "two" / "search_state.json.tmp").exists()


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun worker ``rank`` (a child of the torchrun agent ``parent``)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if f"RANK={rank}".encode() in env:
            return int(proc.name)
    return None


def _journal_rows(out: Path) -> int:
    path = out / CACHE_FILE
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"arch"' in line)


@pytest.mark.slow  # three torchrun launches and a one-process reference: ~20 s idle, a minute on a busy machine
def test_kill_9_of_one_rank_then_resume(tmp_path):
    out = tmp_path / "run"
    # 30 ms per evaluation: the job is still evaluating when rank 1 is killed
    proc = subprocess.Popen(_torchrun(out, "--synthetic-eval-ms", "30", port=29562), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and _journal_rows(out) < 50:  # into iteration 1
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    victim = _rank_pid(proc.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0  # torchrun reports the lost rank and stops the other
    done = _journal_rows(out)
    assert 50 <= done < 40 + 4 * 12

    again = subprocess.run(_torchrun(out, "--synthetic-eval-ms", "30", port=29563), env=_env(),
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    total = len((out / "population.csv").read_text().splitlines()) - 1
    assert f"({total - done} computed by this run, the rest from the cache)" in again.stderr
    ref = _single(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    _same_outputs(tmp_path / "ref", out)
