"""Training: data discovery, patient-level split, loss, checkpoints, log and resume."""

from __future__ import annotations

import csv

import pytest
import torch
from typer.testing import CliRunner

from monitor.cli import app
from monitor.model.autoencoder import load_checkpoint
from monitor.model.training import (
    TrainConfig,
    discover_volumes,
    generalised_dice_loss,
    reconstruction_loss,
    split_patients,
    train,
)
from monitor.sim import write_dataset


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    write_dataset(root, patients=5, seed=3, segmenters=("good",), images=True)
    return root


def test_discovers_acdc_layout_ed_and_es_only(dataset):
    volumes = discover_volumes(dataset / "gt")
    assert len(volumes) == 10  # 5 patients x (ED, ES); images are not masks
    assert {v.phase for v in volumes} == {"ED", "ES"}
    assert all(v.path.name.endswith("_gt.nii.gz") for v in volumes)


def test_plain_folder_is_accepted(dataset):
    volumes = discover_volumes(dataset / "predictions" / "good")
    assert len(volumes) == 10 and {v.patient for v in volumes} == {f"patient{i:03d}" for i in range(1, 6)}


def test_split_is_seeded_patient_level_80_20():
    patients = [f"p{i:03d}" for i in range(50)] * 2
    train_a, val_a = split_patients(patients, 0.2, seed=1)
    train_b, val_b = split_patients(patients, 0.2, seed=1)
    assert (train_a, val_a) == (train_b, val_b)
    assert len(val_a) == 10 and len(train_a) == 40 and not set(train_a) & set(val_a)
    assert split_patients(patients, 0.2, seed=2)[1] != val_a


def test_generalised_dice_loss_values():
    target = torch.zeros(2, 4, 8, 8)
    target[:, 0] = 1
    target[:, 0, 2:6, 2:6] = 0
    target[:, 3, 2:6, 2:6] = 1
    assert generalised_dice_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = target.roll(shifts=1, dims=1)
    assert generalised_dice_loss(wrong, target).item() == pytest.approx(1.0, abs=1e-6)
    # background left out before epoch 10: a perfect background does not lower the loss
    only_bg = torch.zeros_like(target)
    only_bg[:, 0] = target[:, 0]
    early = reconstruction_loss(only_bg, target, epoch=0)
    late = reconstruction_loss(only_bg, target, epoch=10)
    assert early.item() > late.item()


def test_train_writes_checkpoint_log_and_resumes(dataset, tmp_path):
    out = tmp_path / "ca.pt"
    meta = train(TrainConfig(data_dir=dataset / "gt", out=out, epochs=2, progress=False, threads=1))
    assert meta.epochs == 2 and meta.n_train_slices > 0 and meta.n_val_slices > 0
    assert len(meta.data_fingerprint) == 64
    _, loaded, _ = load_checkpoint(out)
    assert loaded.best_epoch in (0, 1) and set(loaded.val_dice) == {"LV", "RV", "MYO"}
    rows = list(csv.DictReader((tmp_path / "ca.log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_loss", "val_dice_LV", "val_hd_mm_RV"} <= set(rows[0])
    resumed = train(
        TrainConfig(data_dir=dataset / "gt", out=out, epochs=3, progress=False, resume=True, threads=1)
    )
    assert resumed.epochs == 3
    assert [r["epoch"] for r in csv.DictReader((tmp_path / "ca.log.csv").open())] == ["1", "2", "3"]


def test_train_cli(dataset, tmp_path):
    out = tmp_path / "cli.pt"
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(dataset / "gt"),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and "best epoch 1" in result.stdout
