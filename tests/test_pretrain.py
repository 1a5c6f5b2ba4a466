"""Pre-training, saving and loading a conv feature extractor."""

import pytest
import torch

from birram.errors import ConfigError
from birram.models.conv import FrozenExtractor
from birram.pretrain import extractor_meta, load_extractor, pretrain_extractor, save_extractor
from tests.conftest import blobs, tiny_images


def test_pretrain_save_load_round_trip(tmp_path):
    data = tiny_images(n_classes=4, side=8)
    module, accuracy = pretrain_extractor(data, layers=2, channels=4, iters=40, batch_size=32,
                                          lr=1e-2, seed=0, head_hidden=(16,))
    assert 0.0 <= accuracy <= 1.0 and accuracy > 0.5
    path = save_extractor(module, tmp_path / "sub" / "ext.pt", {"dataset": "tiny"})
    assert not list(path.parent.glob(".*tmp"))  # written atomically, no leftovers
    loaded = load_extractor(path)
    assert isinstance(loaded, FrozenExtractor) and not loaded.training
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(loaded(x), module.eval()(x))
    assert extractor_meta(path) == {"dataset": "tiny"}


def test_pretrain_is_deterministic():
    data = tiny_images(n_classes=4, side=8)
    a, _ = pretrain_extractor(data, layers=1, channels=2, iters=3, head_hidden=(8,))
    b, _ = pretrain_extractor(data, layers=1, channels=2, iters=3, head_hidden=(8,))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                  b.state_dict().values()))


def test_bad_inputs_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="images"):
        pretrain_extractor(blobs(), iters=1)
    with pytest.raises(ConfigError, match="does not exist"):
        load_extractor(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not an extractor"):
        load_extractor(tmp_path / "junk.pt")
