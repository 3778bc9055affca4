"""The backbones: every conf/model config builds a net that trains at 28x28, per-family structure, timm's API."""

import math
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from facemask import runs
from facemask.errors import FacemaskError
from facemask.models import mobilenet
from facemask.models.layers import FeaturesHead
from facemask.models.mobilenet import MobileNetV2Lite
from facemask.models.vgg import CFGS, MiniVGG, vgg16, vgg19
from facemask.models.xception import Block, XceptionLite

CONFIG_DIR = Path(runs.CONFIG_DIR) / "model"
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


@pytest.fixture
def imagenet_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """pretrained=True builds torchvision's MobileNetV2 features untrained: the layout without the download."""
    monkeypatch.setattr(
        mobilenet, "load_imagenet_features", lambda: torchvision.models.mobilenet_v2().features
    )


# Every shape of network the API must describe: the configs, a custom VGG list, other widths, pretrained.
NETS: dict[str, Callable[[], FeaturesHead]] = {
    **{path.stem: lambda name=path.stem: build_net(name) for path in MODEL_CONFIGS},
    "vgg_custom": lambda: MiniVGG([8, "M", 16, "M", 16, 16, "M"], fc=[], batch_norm=False),
    "vgg19_wide": lambda: vgg19(width_mult=2.0, fc=[64]),
    "xception_narrow": lambda: XceptionLite(width_mult=0.5, middle_repeats=0),
    "mobilenetv2_wide": lambda: MobileNetV2Lite(width_mult=1.5),
    "mobilenetv2_pretrained": lambda: MobileNetV2Lite(pretrained=True),
    "mobilenetv2_pretrained_64": lambda: MobileNetV2Lite(pretrained=True, pretrained_size=64),
}


@pytest.fixture(params=list(NETS))
def net(request: pytest.FixtureRequest, imagenet_features: None) -> FeaturesHead:
    torch.manual_seed(0)
    return NETS[request.param]().eval()


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


@pytest.mark.parametrize("size", [48, 56, 64])
def test_vgg_strided_stem_takes_a_larger_face_at_about_the_cost_of_28_px(size: int) -> None:
    """stem_stride=2 halves the face in the first conv: the same 2x2 map, MACs near 28 px's (the first conv
    at full size adds a little), and the fc head sized for it."""
    from facemask.models.profile import count_macs

    at_28 = count_macs(vgg16(), (1, 1, 28, 28))
    net = vgg16(in_chans=3, img_size=size, stem_stride=2)
    faces = torch.rand(2, 3, size, size)
    assert net.forward_features(faces).shape[-2:] == (2, 2) and net(faces).shape == (2, 2)
    assert (
        count_macs(net, (1, 3, size, size))
        < 1.6 * at_28
        < count_macs(vgg16(in_chans=3, img_size=size), (1, 3, size, size))
    )
    assert net.feature_info[0]["reduction"] == 2


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


@pytest.mark.parametrize(("name", "make"), [("vgg16", vgg16), ("vgg19", vgg19)])
def test_vgg_constructors_build_their_layer_list(name: str, make: Callable[..., MiniVGG]) -> None:
    assert OmegaConf.load(CONFIG_DIR / f"{name}.yaml").net._target_ == f"facemask.models.vgg.{name}"
    torch.manual_seed(0)
    built = make(width_mult=0.5, fc=[32], dropout=0.1)
    torch.manual_seed(0)
    direct = MiniVGG(CFGS[name], width_mult=0.5, fc=[32], dropout=0.1)
    expected = direct.state_dict()
    assert list(built.state_dict()) == list(expected)
    assert all(torch.equal(value, expected[key]) for key, value in built.state_dict().items())
    assert count(built, nn.Conv2d) == {"vgg16": 13, "vgg19": 16}[name]
    assert built.head[1].out_features == 32


def test_num_features_and_pre_logits(net: FeaturesHead, images: torch.Tensor) -> None:
    with torch.no_grad():
        features = net.forward_features(images)
        pre_logits = net.forward_head(features, pre_logits=True)
        logits = net.forward_head(features)
    assert features.shape[1] == net.num_features == net.feature_info[-1]["num_chs"]
    assert pre_logits.shape == (4, net.head_hidden_size)
    assert torch.equal(net.get_classifier()(pre_logits), logits)
    assert torch.equal(logits, net(images))


def test_feature_info_matches_the_maps(net: FeaturesHead, images: torch.Tensor) -> None:
    """Each stage's channels and reduction are those a forward pass measures, and it ends its resolution."""
    shapes: dict[str, torch.Size] = {}
    names = [f"features.{i}" for i in range(len(net.features))]
    hooks = [
        net.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: shapes.update({name: output.shape})
        )
        for name in names
    ]
    with torch.no_grad():
        net.forward_features(images)
    for hook in hooks:
        hook.remove()

    side = net.features_input_size(28)
    assert side == (net.pretrained_size if getattr(net, "pretrained", False) else 28)
    info = net.feature_info
    assert [stage["reduction"] for stage in info] == sorted({stage["reduction"] for stage in info})
    assert info[-1]["module"] == names[-1]
    for stage in info:
        shape = shapes[stage["module"]]
        assert shape[1] == stage["num_chs"], stage
        assert shape[-2:] == (math.ceil(side / stage["reduction"]),) * 2, stage
        following = names[names.index(stage["module"]) + 1 :]
        assert not following or shapes[following[0]][-1] < shape[-1], stage  # the last at its resolution
    # every resolution features goes through has its stage
    assert {shape[-1] for shape in shapes.values()} == {shapes[stage["module"]][-1] for stage in info}
