"""The backbones: every conf/model config builds a net that trains at 28x28, plus per-family structure."""

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from facemask.errors import FacemaskError
from facemask.models.mobilenet import MobileNetV2Lite
from facemask.models.xception import Block, XceptionLite

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"
MODEL_CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def build_net(name: str) -> nn.Module:
    """Only the net node: the rest of a model config interpolates ${trainer...}, absent here."""
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    return instantiate(cfg.net)


def count(net: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(module, kind) for module in net.modules())


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 1, 28, 28)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty TORCH_HOME and no network: any download attempt fails as it would offline."""

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return Path(torch.hub.get_dir()) / "checkpoints"


def test_configs_found() -> None:
    assert {"vgg16", "vgg19", "xception", "mobilenetv2"} <= {path.stem for path in MODEL_CONFIGS}


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda path: path.stem)
def test_config_builds_a_trainable_net(path: Path, images: torch.Tensor) -> None:
    net = build_net(path.stem)
    logits = net(images)
    assert logits.shape == (4, 2)

    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1])).backward()
    for name, param in net.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name
            assert torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name

    net.eval()
    with torch.no_grad():
        assert torch.equal(net(images), net(images))


@pytest.mark.parametrize(("name", "convs"), [("vgg16", 13), ("vgg19", 16)])
def test_vgg_depth(name: str, convs: int) -> None:
    net = build_net(name)
    assert count(net, nn.Conv2d) == convs
    assert count(net, nn.Linear) == 3


def test_vgg_pools_to_2x2(images: torch.Tensor) -> None:
    assert build_net("vgg16").forward_features(images).shape[-2:] == (2, 2)


def test_mobilenet_width_mult_scales_params() -> None:
    sizes = [n_params(MobileNetV2Lite(width_mult=mult)) for mult in (0.5, 1.0, 1.5)]
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == 3


def test_mobilenet_has_residuals(images: torch.Tensor) -> None:
    net = MobileNetV2Lite()
    assert any(getattr(module, "use_residual", False) for module in net.modules())
    assert net.forward_features(images).shape[-2:] == (4, 4)


def test_xception_structure(images: torch.Tensor) -> None:
    net = XceptionLite()
    depthwise = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    assert depthwise
    blocks = [m for m in net.modules() if isinstance(m, Block)]
    # 3 entry + 2 middle + 1 exit blocks; only the middle ones keep their shape (identity shortcut).
    assert len(blocks) == 6
    assert sum(isinstance(block.skip, nn.Identity) for block in blocks) == 2
    assert net.forward_features(images).shape[-2:] == (2, 2)


def test_pretrained_offline_without_cache_explains(offline: Path) -> None:
    with pytest.raises(FacemaskError) as error:
        MobileNetV2Lite(pretrained=True)
    message = str(error.value)
    filename = Path(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url).name
    assert str(offline / filename) in message
    assert "internet" in message
    assert "model.net.pretrained=false" in message


def test_pretrained_offline_from_cache(offline: Path, images: torch.Tensor) -> None:
    filename = Path(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url).name
    offline.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), offline / filename)

    net = MobileNetV2Lite(pretrained=True, pretrained_size=64).eval()
    with torch.no_grad():
        assert net(images).shape == (4, 2)
