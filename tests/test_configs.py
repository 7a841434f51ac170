import pytest
import torch

from maskgit_lab.configs import CONFIGS, get_config
from maskgit_lab.transformer import BidirectionalTransformer
from maskgit_lab.vq import VQTokenizer


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_config_pairs_a_transformer_with_its_tokenizers_grid_and_codebook(name):
    cfg = get_config(name)
    torch.manual_seed(0)
    tokens = VQTokenizer(cfg.vq).eval().encode(torch.rand(2, 3, 64, 64) * 2 - 1)
    grid = 64 // cfg.vq.downsample
    assert tokens.shape == (2, grid * grid) == (2, cfg.transformer.num_tokens)
    assert cfg.transformer.num_codes == cfg.vq.num_codes
    logits = BidirectionalTransformer(cfg.transformer).eval()(tokens)
    assert logits.shape == (2, grid * grid, cfg.vq.num_codes)


def test_the_default_configs_tokens_each_see_their_own_4x4_patch():
    cfg = get_config("default").vq
    torch.manual_seed(0)
    encoder = VQTokenizer(cfg).eval().encoder
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    changed = images.clone()
    changed[0, :, 21, 38] = -images[0, :, 21, 38]  # one pixel, in the patch at grid row 5, column 9
    moved = (encoder(images) - encoder(changed)).abs().sum(dim=1)[0] > 0  # (16, 16)
    assert moved.shape == (16, 16)
    assert moved.nonzero().tolist() == [[5, 9]]
