"""Cell search end to end on tiny configs: data, genotypes, every method's loop, resume, CLI, training."""

import json
import pickle

import numpy as np
import pytest
import torch

from deploy.fileio import IdentityError
from hwnas.cells.classification_data import load_data
from hwnas.cells.genotype import Genotype, load_genotype, plot_genotype, random_genotype
from hwnas.cells.cell_search import CellSearchConfig, run_search
from hwnas.cells.darts_space import PRIMITIVES, SearchNetwork, CellMix, GenotypeNetwork
from hwnas.cli import main
from hwnas.errors import ArchError, DataError

TINY = dict(image_size=8, batch_size=16, channels=4, layers=3, max_samples=16)


def _no_none(g: Genotype) -> bool:
    return all(op != "none" for cell in (g.normal, g.reduce) for node in cell for op, _ in node)


# ---------------------------------------------------------------- data


def test_digits_upsampled_three_channels():
    d = load_data("digits", 16)
    assert d.train_x.shape[1:] == (3, 16, 16) and d.num_classes == 10
    assert len(d.train_y) + len(d.test_y) == 1797
    assert abs(d.train_x.mean().item()) < 1e-4  # normalised on the training split


def _write_batch(path, n, num_classes, key=b"labels", seed=0):
    rng = np.random.default_rng(seed)
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: list(rng.integers(0, num_classes, n))}
    path.write_bytes(pickle.dumps(d))


def test_cifar10_folder_layout(tmp_path):
    for i in range(1, 6):
        _write_batch(tmp_path / f"data_batch_{i}", 4, 10, seed=i)
    _write_batch(tmp_path / "test_batch", 3, 10)
    d = load_data(f"cifar10:{tmp_path}")
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (3, 3, 32, 32) and d.num_classes == 10


def test_cifar100_folder_layout(tmp_path):
    _write_batch(tmp_path / "train", 5, 100, key=b"fine_labels")
    _write_batch(tmp_path / "test", 2, 100, key=b"fine_labels")
    d = load_data(f"cifar100:{tmp_path}", image_size=16)
    assert d.train_x.shape == (5, 3, 16, 16) and d.num_classes == 100


def test_wrong_data_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"cifar10:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match="missing data_batch_1"):
        load_data(f"cifar10:{tmp_path}")
    with pytest.raises(DataError, match="allowed: digits"):
        load_data("mnist")
    for name in ("train", "test"):
        (tmp_path / name).write_bytes(pickle.dumps(print))  # a pickle that names a callable
    with pytest.raises(DataError, match="refusing to load"):
        load_data(f"cifar100:{tmp_path}")


# ---------------------------------------------------------------- genotype


def test_genotype_json_round_trip_plot_and_validation(tmp_path):
    g = random_genotype(3)
    assert _no_none(g) and all(len(node) == 2 for node in g.normal)
    path = g.save(tmp_path / "g.json")
    assert load_genotype(path) == g
    png = plot_genotype(g, tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = g.to_dict()
    bad["normal"][0][0][0] = "none"
    with pytest.raises(ArchError, match="not allowed"):
        Genotype.from_dict(bad)
    bad = g.to_dict()
    bad["normal"][1][0][1] = 3  # node 1 may only read sources 0..2
    with pytest.raises(ArchError, match="out of range"):
        Genotype.from_dict(bad)


def test_networks_forward_shapes():
    net = SearchNetwork(channels=4, num_classes=10, layers=3)
    w = torch.softmax(torch.zeros(14, len(PRIMITIVES)), -1)
    assert net(torch.randn(2, 3, 8, 8), CellMix(w), CellMix(w)).shape == (2, 10)
    model = GenotypeNetwork(random_genotype(0), channels=4, num_classes=10, layers=3)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


# ---------------------------------------------------------------- search loop


@pytest.mark.parametrize("method,options", [
    ("darts", {}), ("dots", {}), ("dots", {"edges": "any"}), ("eoinas", {}), ("msdarts", {}),
])
def test_each_method_searches_and_writes_a_valid_genotype(tmp_path, method, options):
    r = run_search(CellSearchConfig(method=method, epochs=2, options=options, **TINY), tmp_path, progress=False)
    g = load_genotype(tmp_path / "genotype.json")
    assert g == r.genotype and _no_none(g)
    assert (tmp_path / "genotype.png").stat().st_size > 1000
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [1, 2]
    if method != "dots" or options.get("edges") != "any":
        assert all(len(node) == 2 for node in g.normal + g.reduce)
    if method == "eoinas":  # the pruning schedule ends at one op per edge
        state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        assert state["method"]["alive"].sum(-1).eq(1).all()


def test_resume_after_interruption_matches_an_unbroken_run(tmp_path, monkeypatch):
    from hwnas.cells.eoinas import EoiNAS

    cfg = CellSearchConfig(method="eoinas", epochs=2, **TINY)
    full = run_search(cfg, tmp_path / "full", progress=False)

    original = EoiNAS.begin_epoch

    def crash_in_epoch_2(self, epoch):
        if epoch == 1:  # 0-based: the second epoch
            raise KeyboardInterrupt
        original(self, epoch)

    monkeypatch.setattr(EoiNAS, "begin_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path / "cut", progress=False)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(EoiNAS, "begin_epoch", original)
    resumed = run_search(cfg, tmp_path / "cut", progress=False)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["method"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["method"]
    assert torch.equal(a["alpha"], b["alpha"]) and torch.equal(a["alive"], b["alive"])
    assert resumed.genotype == full.genotype

    with pytest.raises(IdentityError, match=r"cell-search checkpoint .* other settings \(.*epochs: "):
        run_search(CellSearchConfig(method="eoinas", epochs=3, **TINY), tmp_path / "cut", progress=False)


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["cells", "search", "--method", "nas", "--out", str(tmp_path)]) == 2
    assert "allowed: darts, dots, eoinas, msdarts" in capsys.readouterr().err
    assert main(["cells", "search", "--method", "dots", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "topology epoch" in capsys.readouterr().err
    assert main(["cells", "search", "--method", "darts", "--option", "bandwidth=0.1", "--out", str(tmp_path)]) == 2
    assert "unknown option" in capsys.readouterr().err
    assert main(["cells", "train", "--genotype", str(tmp_path / "missing.json")]) == 2


def test_cli_search_then_train(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["cells", "search", "--method", "darts", "--epochs", "1", "--out", str(out), "--image-size", "8",
               "--channels", "4", "--layers", "3", "--max-samples", "16", "--batch-size", "16", "--no-progress"])
    assert rc == 0 and (out / "genotype.json").exists()
    result = tmp_path / "train.json"
    rc = main(["cells", "train", "--genotype", str(out / "genotype.json"), "--epochs", "2", "--image-size", "8",
               "--channels", "4", "--layers", "3", "--no-progress", "--out", str(result)])
    assert rc == 0
    r = json.loads(result.read_text())
    # 2 epochs on 1438 digits: far above the 10 % of chance
    assert r["test_accuracy"] > 0.5, r
    assert "test accuracy" in capsys.readouterr().out


def test_cell_backbone_emits_the_five_level_pyramid():
    from hwnas.cells.backbone import CellBackbone

    bb = CellBackbone(random_genotype(1), channels=4, cells_per_level=1).eval()
    feats = bb(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]  # strides 2, 4, 8, 16, 32
    assert tuple(f.shape[1] for f in feats) == bb.out_channels == (16, 32, 64, 128, 256)
