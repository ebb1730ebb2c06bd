"""The autoencoder's architecture and the checkpoint format."""

from __future__ import annotations

import pickle

import pytest
import torch

from monitor.errors import CheckpointError
from monitor.model.autoencoder import CheckpointMeta, ConvAutoencoder, load_checkpoint, save_checkpoint

# (channels, height) after each encoder block for a 256 x 256 input, from the paper's layer table
ENCODER_SHAPES = [
    (32, 128),
    (32, 64),
    (32, 32),
    (32, 32),
    (64, 16),
    (64, 16),
    (128, 8),
    (64, 8),
    (32, 8),
    (100, 4),
]
DECODER_SHAPES = [
    (32, 8),
    (64, 8),
    (128, 8),
    (64, 16),
    (64, 16),
    (32, 32),
    (32, 32),
    (32, 64),
    (32, 128),
    (4, 256),
]


def _conv_params(c_in, c_out, k):
    return c_in * c_out * k * k + c_out


def test_block_output_shapes():
    model = ConvAutoencoder().eval()
    h = torch.zeros(2, 4, 256, 256)
    for block, (channels, size) in zip(model.encoder, ENCODER_SHAPES, strict=True):
        h = block(h)
        assert tuple(h.shape) == (2, channels, size, size)
    for block, (channels, size) in zip(model.decoder, DECODER_SHAPES, strict=True):
        h = block(h)
        assert tuple(h.shape) == (2, channels, size, size)


def test_parameter_count_matches_layer_table():
    table = [
        (4, 32, 4),
        (32, 32, 4),
        (32, 32, 4),
        (32, 32, 3),
        (32, 64, 4),
        (64, 64, 3),
        (64, 128, 4),
        (128, 64, 3),
        (64, 32, 3),
        (32, 100, 4),
    ]
    conv = sum(_conv_params(i, o, k) for i, o, k in table) + sum(_conv_params(o, i, k) for i, o, k in table)
    # BatchNorm (weight + bias) after every hidden layer: all but the latent and the output layer
    batchnorm = 2 * (sum(o for _, o, _ in table[:-1]) + sum(i for i, _, _ in table[1:]))
    model = ConvAutoencoder()
    assert sum(p.numel() for p in model.parameters()) == conv + batchnorm == 779_176


def test_softmax_output_and_hidden_layer_composition():
    model = ConvAutoencoder().eval()
    with torch.inference_mode():
        out = model(torch.rand(3, 4, 256, 256))
    assert torch.allclose(out.sum(dim=1), torch.ones(3, 256, 256), atol=1e-5)
    hidden = model.encoder[0]
    kinds = [type(m).__name__ for m in hidden]
    assert kinds == ["Conv2d", "BatchNorm2d", "LeakyReLU", "PooledDropout"]
    assert type(model.decoder[-1]).__name__ == "ConvTranspose2d"


def test_he_normal_initialisation_scale():
    torch.manual_seed(0)
    model = ConvAutoencoder()
    conv = model.encoder[6][0]  # 64 -> 128, k4: fan_in = 64 * 16
    expected_std = (2.0 / (1 + 0.2**2) / (64 * 16)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)


def test_pooled_dropout_statistics():
    model = ConvAutoencoder(dropout=0.3).train()
    drop = model.encoder[0][3]
    x = torch.ones(4, 32, 64, 64)
    y = drop(x)
    assert (y == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)
    model.eval()
    assert torch.equal(drop(x), x)


def test_checkpoint_round_trip(tmp_path):
    model = ConvAutoencoder(dropout=0.2)
    meta = CheckpointMeta(dropout=0.2, epochs=3, val_dice={"LV": 0.9})
    path = save_checkpoint(tmp_path / "ca.pt", model, meta)
    loaded, loaded_meta, _ = load_checkpoint(path)
    assert loaded_meta.epochs == 3 and loaded_meta.val_dice == {"LV": 0.9}
    assert not loaded.training
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pt"
    with path.open("wb") as fh:
        pickle.dump({"format": "cmr-monitor-ca/1", "payload": Evil()}, fh)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a"):
        load_checkpoint(tmp_path / "other.pt")
