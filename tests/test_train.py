"""Supernet training: schedule, checkpoints (space identity, RNG), exact resume after kill -9, torchrun."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from hwnas.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synth")
    write_synthetic(root, n=16, seed=0, size=64, val_fraction=0.25)
    return root


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _train_cmd(data, out, steps, extra=()):
    return [sys.executable, "-m", "hwnas", "supernet", "train", "--space", "inas-tiny", "--data", str(data),
            "--out", str(out), "--steps", str(steps), "--batch-size", "2", "--resolutions", "64",
            "--threads", "1", "--save-every", "3", "--warmup-steps", "2", "--no-progress", *extra]


def _losses(run: Path) -> dict[int, tuple[float, float, float]]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss_largest"], r["loss_smallest"], r["loss_random"]) for r in rows}


def test_poly_schedule():
    from hwnas.supernet_training import poly_factor

    assert poly_factor(0, 100, 10, 0.9) == pytest.approx(0.1)
    assert poly_factor(5, 100, 10, 0.9) == pytest.approx(0.55)
    assert poly_factor(10, 100, 10, 0.9) == pytest.approx(1.0)
    assert poly_factor(55, 100, 10, 0.9) == pytest.approx(0.5**0.9)
    assert poly_factor(100, 100, 10, 0.9) == 0.0


def test_checkpoint_round_trip_and_space_identity(tmp_path, tiny_space, sod_space):
    from hwnas.checkpoint import capture_rng, load_checkpoint, load_supernet, restore_rng, save_checkpoint, space_record
    from hwnas.supernet import Supernet

    net = Supernet(tiny_space)
    rng = capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    path = save_checkpoint({"space": space_record(tiny_space), "model": net.state_dict(), "rng": rng, "step": 7},
                           tmp_path / "ck.pt")
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary file
    ck = load_checkpoint(path)
    assert ck["step"] == 7 and ck["space"]["hash"] == tiny_space.hash
    restore_rng(ck["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    loaded = load_supernet(path)  # space rebuilt from the checkpoint
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    with pytest.raises(CheckpointError, match=rf"'inas-tiny' \(hash {tiny_space.hash}\).*'inas-sod' \(hash {sod_space.hash}\)"):
        load_supernet(path, space="inas-sod")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_train_step_updates_and_teacher_student_losses(tiny_data, tmp_path):
    from hwnas.supernet_training import TrainConfig, Trainer

    t = Trainer(TrainConfig(space="inas-tiny", data=str(tiny_data), out=str(tmp_path / "r"), steps=2, batch_size=2,
                            resolutions=[64], progress=False, warmup_steps=1))
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    images, masks = next(iter(t._loader(0, 1)))
    assert images.shape == (2, 3, 64, 64) and masks.shape == (2, 1, 64, 64)
    row = t.train_step(images, masks)
    assert row["resolution"] == 64 and row["loss"] == pytest.approx(
        row["loss_largest"] + row["loss_smallest"] + 2 * row["loss_random"])
    changed = [k for k, v in t.net.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) > 0.5 * len(before)  # one optimizer step moved (most of) the weights


def test_resume_after_kill_9_matches_uninterrupted_run(tiny_data, tmp_path):
    steps = 9
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_train_cmd(tiny_data, ref, steps), check=True, env=_env(), capture_output=True, timeout=300)
    proc = subprocess.Popen(_train_cmd(tiny_data, run, steps), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (run / "supernet.pt").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # as hard as a crash: no cleanup, no final checkpoint
    finally:
        proc.wait()
    from hwnas.checkpoint import load_checkpoint

    killed_at = load_checkpoint(run / "supernet.pt")["step"]
    assert 0 < killed_at < steps, "the run must be killed part-way for this test to mean anything"
    out = subprocess.run(_train_cmd(tiny_data, run, steps), check=True, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert f"resumed from {run / 'supernet.pt'} at step {killed_at}" in out.stderr
    a, b = _losses(ref), _losses(run)
    assert sorted(b) == list(range(1, steps + 1))
    for s in range(1, steps + 1):
        assert a[s] == b[s], f"step {s}: uninterrupted {a[s]} vs resumed {b[s]}"
    # a finished run rerun with other settings refuses instead of silently mixing runs
    bad = subprocess.run(_train_cmd(tiny_data, run, steps, ["--lr", "0.1"]), env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "other settings (lr: 0.002 vs 0.1;" in bad.stderr
    assert (run / "curve.png").stat().st_size > 1000


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_torchrun_two_processes_hold_identical_weights(tiny_data, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "hwnas",
           *_train_cmd(tiny_data, tmp_path / "ddp", 3)[3:]]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["world_size"] == 2 and summary["steps"] == 3
    digests = summary["rank_state_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    from hwnas.checkpoint import load_checkpoint
    from hwnas.supernet_training import state_digest
    from hwnas.supernet import Supernet
    from hwnas.space import create

    net = Supernet(create("inas-tiny"))
    net.load_state_dict(load_checkpoint(tmp_path / "ddp" / "supernet.pt")["model"])
    assert state_digest(net) == digests[0]  # the saved weights are the ranks' weights


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_torchrun_two_processes_keep_a_minutes_budget(tiny_data, tmp_path):
    """The --minutes path agrees on every step's learning rate and on the last step across ranks (over
    gloo here; its collectives are the ones NCCL would run, on the group's device)."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    argv = _train_cmd(tiny_data, tmp_path / "ddp", 1)[3:]
    i = argv.index("--steps")
    argv[i:i + 2] = ["--minutes", "0.2"]
    out = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "hwnas", *argv], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["world_size"] == 2 and summary["steps"] == summary["total_steps"] >= 3
    assert summary["final_lr"] == 0.0 and summary["elapsed_s"] <= 1.10 * 12
    digests = summary["rank_state_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]


def test_budget_schedule_decays_with_the_budget_spent():
    from hwnas.supernet_training.schedule import END_FACTOR, BudgetSchedule

    sched = BudgetSchedule(warmup_steps=2, power=0.9)
    assert sched.factor(0, 0.05, last=False) == pytest.approx(0.1)  # warm-up by steps
    assert sched.factor(1, 0.10, last=False) == pytest.approx(0.55)
    assert sched.factor(2, 0.20, last=False) == pytest.approx(1.0)  # decay starts at the peak
    assert sched.factor(3, 0.60, last=False) == pytest.approx(0.5**0.9)  # half the remaining budget spent
    assert sched.factor(4, 0.90, last=True) == END_FACTOR == 0.0
    resumed = BudgetSchedule(warmup_steps=2, power=0.9)
    resumed.load_state_dict(sched.state_dict())
    assert resumed.factor(4, 0.60, last=False) == pytest.approx(0.5**0.9)  # same curve after a resume
    # warm-up cut short by a tiny budget: the last step still ends the schedule
    assert BudgetSchedule(warmup_steps=50, power=0.9).factor(3, 0.97, last=True) == 0.0


def test_minutes_budget_ends_on_time_with_the_schedule_finished(tiny_data, tmp_path):
    from hwnas.checkpoint import load_checkpoint
    from hwnas.supernet_training import TrainConfig, train

    minutes = 0.25  # 15 s: a loaded 2-core machine spends ~5 s on set-up, first checkpoint and plots
    cfg = TrainConfig(space="inas-tiny", data=str(tiny_data), out=str(tmp_path / "r"), minutes=minutes, batch_size=2,
                      resolutions=[64], progress=False, warmup_steps=3, threads=1)
    t0 = time.perf_counter()
    summary = train(cfg)
    wall_s = time.perf_counter() - t0
    assert wall_s <= 1.10 * minutes * 60, f"a {minutes * 60:.0f} s budget took {wall_s:.2f} s"
    assert summary["elapsed_s"] <= 1.10 * minutes * 60
    rows = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows]
    assert len(rows) == summary["steps"] == summary["total_steps"] >= 5
    assert lrs[-1] == summary["final_lr"] == 0.0  # the schedule's end value: poly decay to 0
    assert lrs[3] == pytest.approx(cfg.lr)  # the first step after warm-up runs at the peak
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # then only decays
    assert 0 < lrs[len(lrs) // 2 + 1] < cfg.lr
    ckpt = load_checkpoint(tmp_path / "r" / "supernet.pt")
    assert ckpt["total_steps"] == ckpt["step"] == summary["steps"]
    # rerunning a finished budgeted run trains no further
    assert train(cfg)["steps"] == summary["steps"]


def test_distributed_helpers_make_tensors_on_the_group_device(monkeypatch):
    """NCCL reduces only CUDA tensors: every collective's tensor must be on the group's device."""
    import torch.distributed as dist

    from hwnas.process_group import ProcessGroup

    group = ProcessGroup.__new__(ProcessGroup)  # no process group needed to check where tensors live
    group.device, group.world_size, group.rank, group.enabled, group._dist = torch.device("meta"), 2, 0, True, dist
    seen = []

    def record(t, *args, **kwargs):
        seen.append(t.device)
        raise StopIteration  # a meta tensor holds no value to continue with

    monkeypatch.setattr(dist, "all_reduce", record)
    monkeypatch.setattr(dist, "broadcast", record)
    with pytest.raises(StopIteration):
        group.broadcast_floats([0.5, 1.0])
    with pytest.raises(StopIteration):
        group.average_([torch.ones(3)])
    assert seen == [torch.device("meta")] * 2




def test_threads_auto_probes_a_copy_and_keeps_the_fastest(tiny_data, tmp_path):
    from hwnas.supernet_training import TrainConfig, Trainer
    from hwnas.supernet_training.threads import choose_threads

    # 2 threads beside a busy process: 4x slower, so 1; idle: 2 is 1.7x faster; a near tie: fewer threads
    assert choose_threads({1: 1.0, 2: 4.0}) == 1
    assert choose_threads({1: 1.0, 2: 0.6}) == 2
    assert choose_threads({1: 1.0, 2: 0.97}) == 1
    cfg = dict(space="inas-tiny", data=str(tiny_data), steps=2, batch_size=2, resolutions=[64], progress=False)
    auto = Trainer(TrainConfig(out=str(tmp_path / "a"), threads="auto", **cfg))
    rng_auto = torch.get_rng_state()
    fixed = Trainer(TrainConfig(out=str(tmp_path / "f"), threads=1, **cfg))
    assert torch.equal(rng_auto, torch.get_rng_state())  # the probe's dropout/inputs drew nothing from torch's RNG
    cores = len(os.sched_getaffinity(0))
    assert set(auto.threads_probe_s) == set(range(1, cores + 1)) if cores > 1 else auto.threads_probe_s == {}
    assert all(s > 0 for s in auto.threads_probe_s.values())
    # the probe ran on a copy: the weights and the BN statistics are those of an unprobed run
    a, f = auto.net.state_dict(), fixed.net.state_dict()
    assert all(torch.equal(a[k], f[k]) for k in a)
    with pytest.raises(Exception, match="threads"):
        TrainConfig(out=str(tmp_path / "x"), threads=0, **cfg).validate()
