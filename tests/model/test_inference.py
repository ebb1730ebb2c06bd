"""The inference form of the autoencoder computes the trained model's function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from monitor.model.autoencoder import ConvAutoencoder, load_checkpoint
from monitor.model.inference import InferenceNetwork, SubpixelTransposedConv, resolve_precision
from monitor.model.preprocess import one_hot, to_model_space
from tests.phantoms import phantom_volume, segmented_volume


@pytest.fixture(scope="module")
def trained() -> ConvAutoencoder:
    model, _, _ = load_checkpoint()
    return model


@pytest.fixture(scope="module")
def slices() -> np.ndarray:
    """Model-space slices of a ground-truth-like phantom and of a badly segmented one."""
    out = []
    for volume in (phantom_volume(3), segmented_volume(4, "poor")[0]):
        out.append(to_model_space(volume.labels, volume.spacing_mm)[0])
    return np.concatenate(out)


@pytest.mark.parametrize("c_in,c_out", [(32, 4), (3, 5)])
def test_subpixel_form_equals_the_transposed_convolution(c_in, c_out):
    torch.manual_seed(0)
    transposed = nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
    x = torch.randn(2, c_in, 9, 7)
    with torch.no_grad():
        expected = transposed(x)
        got = SubpixelTransposedConv(transposed)(x)
    assert got.shape == expected.shape == (2, c_out, 18, 14)
    assert torch.allclose(got, expected, atol=1e-5)


def test_subpixel_form_refuses_other_geometries():
    with pytest.raises(ValueError, match="kernel_size=4, stride=2, padding=1"):
        SubpixelTransposedConv(nn.ConvTranspose2d(4, 4, kernel_size=3, stride=1, padding=1))


def test_inference_network_equals_the_trained_model(trained, slices):
    network = InferenceNetwork(trained, torch.device("cpu"), "fp32")
    with torch.inference_mode():
        expected = trained(one_hot(slices))
        got = network(network.encode(slices))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4
    # re-ordered float sums may flip a near-tie, nothing more
    assert (got.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.9999
    assert torch.allclose(got.sum(1), torch.ones(()), atol=1e-5)


def test_batchnorm_statistics_are_folded(slices):
    """A model whose BatchNorm layers have far-from-identity statistics still gives the same outputs."""
    torch.manual_seed(1)
    model = ConvAutoencoder(dropout=0.3)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    network = InferenceNetwork(model, torch.device("cpu"), "fp32")
    with torch.inference_mode():
        x = one_hot(slices[:4])
        assert (network(network.encode(slices[:4])) - model(x)).abs().max().item() < 1e-4


def test_building_leaves_the_trained_model_untouched(trained):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    trained.train()
    InferenceNetwork(trained, torch.device("cpu"))
    assert trained.training  # its mode is restored
    trained.eval()
    after = trained.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_encode_is_one_hot_in_channels_last_memory(slices):
    network = InferenceNetwork(ConvAutoencoder(), torch.device("cpu"), "fp32")
    encoded = network.encode(slices[:3])
    assert torch.equal(encoded, one_hot(slices[:3]))
    assert encoded.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_moves_probabilities_little_and_labels_rarely(trained, slices, precision):
    """Autocast (emulated on this CPU): mean |softmax difference| < 1e-3, arg-max equal on >= 99.9%
    of pixels (single boundary pixels near 0.5 may flip)."""
    fp32 = InferenceNetwork(trained, torch.device("cpu"), "fp32")
    reduced = InferenceNetwork(trained, torch.device("cpu"), precision)
    with torch.inference_mode():
        a = fp32(fp32.encode(slices))
        b = reduced(reduced.encode(slices))
    assert b.dtype == torch.float32
    assert (a - b).abs().mean().item() < 1e-3
    assert (a.argmax(1) == b.argmax(1)).float().mean().item() >= 0.999


def test_precision_is_resolved_per_device():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8", torch.device("cpu"))


def test_precision_lists_agree():
    from typing import get_args

    from monitor.cli.options import Precision
    from monitor.config import Settings
    from monitor.model.inference import PRECISIONS

    assert set(PRECISIONS) == {p.value for p in Precision}
    assert set(PRECISIONS) == set(get_args(Settings.model_fields["precision"].annotation))
    assert Settings().precision == "fp32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_network_matches_the_cpu_one(trained, slices):
    cpu = InferenceNetwork(trained, torch.device("cpu"), "fp32")
    gpu = InferenceNetwork(trained.to("cuda"), torch.device("cuda"), "fp32")
    with torch.inference_mode():
        a = cpu(cpu.encode(slices))
        b = gpu(gpu.encode(slices)).cpu()
    trained.to("cpu")
    assert (a - b).abs().max().item() < 1e-3
