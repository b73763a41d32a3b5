"""Precision resolution: bf16 autocast only where it is fast (GPU, AVX-512 CPUs); fp32 elsewhere."""

import pytest
import torch

from synthaug.generators.cgan import CGAN, CGANConfig
from synthaug.training.config import TrainConfig
from synthaug.training.loop import autocast
from synthaug.utils import use_bf16

CPU = torch.device("cpu")


@pytest.fixture
def cpu_capability(monkeypatch):
    def set_capability(name: str) -> None:
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: name)

    return set_capability


def test_auto_is_fp32_on_cpu_and_bf16_on_gpu(cpu_capability):
    cpu_capability("AVX512")
    assert not use_bf16("auto", CPU)
    assert not use_bf16("fp32", torch.device("cuda"))
    assert use_bf16("auto", torch.device("cuda"))


def test_bf16_on_avx512_cpu_is_honoured(cpu_capability):
    cpu_capability("AVX512")
    assert use_bf16("bf16", CPU)
    with autocast(CPU, TrainConfig(precision="bf16")):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")


def test_bf16_on_avx2_cpu_warns_and_keeps_fp32(cpu_capability):
    cpu_capability("AVX2")
    with pytest.warns(UserWarning, match="no fast bf16 kernels"):
        assert not use_bf16("bf16", CPU)
    with pytest.warns(UserWarning, match="no fast bf16"):
        with autocast(CPU, TrainConfig(precision="bf16")):
            assert not torch.is_autocast_enabled("cpu")
    with pytest.warns(UserWarning, match="no fast bf16"):
        gen = CGAN(CGANConfig(precision="bf16", progress=False), (1, 8, 8), ["a", "b"])
    assert gen.bf16 is False
    assert gen.sample(torch.tensor([0, 1]), seed=0).dtype == torch.uint8
