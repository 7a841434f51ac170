"""The course's data: 64×64 RGB emoji for training, and masked test images for inpainting.

What this module holds, in reading order:

* loaders that check their input at the edge: ``load_image`` (RGB → (3, 64, 64) float in
  [-1, 1]) and ``load_mask`` (white/black → (64, 64) bool, True = known pixel);
* ``ImageFolder``: the training images, ``root/<split>/*.png|*.jpg``;
* images ⇄ tensors: ``to_tensor`` (uint8 → float), ``to_uint8`` (float → uint8, as a PNG
  save rounds), ``to_numpy_image`` (one image for matplotlib and PIL);
* ``InpaintingTestSet``: masked image + mask (+ ground truth) triples, and
  ``load_test_batch``: the whole set as stacked tensors (``take`` a subset, ``evenly_spaced``
  indices for a varied one);
* ``prepare``: rebuilds ``data/emoji`` byte for byte from the npm package
  ``emoji-datasource-google@16.0.0`` (Noto emoji, Apache-2.0; data MIT), and ``verify``,
  which checks the shipped files against ``MANIFEST.sha256``.

Test-set layout (one convention for our emoji set and the original NYCU DLP "Lab 5 MaskGIT"
cat-face folders, so ``--data-root`` can point at either, unchanged)::

    <root>/test/masked_image/image_000.png   RGB, unknown pixels painted gray (128)
    <root>/test/mask64/mask_000.png          L, 255 = known pixel, 0 = unknown
    <root>/test/test_gt/image_000.png        RGB ground truth (optional)
    <root>/test/index.csv                    name, source emoji, group, mask kind, hole size
    <root>/groups.csv                        every source image with its group and split
    <root>/labels.csv                        every source image with its emoji.json category

The lab's folders are found too: ``masked_image`` and ``mask64`` may sit in ``<root>/test``,
``<root>`` or ``<root>/cat_face`` (the lab's ``inpainting.py`` defaults to
``lab5_dataset/cat_face/masked_image`` and ``lab5_dataset/mask64``), and the ground truth may
instead be the lab's ``test_gt.csv`` (in ``<root>`` or ``<root>/test``): a header line, then
one row per image of 64·64·3 values 0–255 in (row, column, channel) order.

Pairing rule. The lab's ``inpainting.py`` lists each folder with ``sorted(os.listdir(...))``
and zips the two lists, so the k-th masked image goes with the k-th mask. We pair by the
*index* in the file name instead (its last run of digits: ``image_007.png`` ↔
``mask_007.png``; a name without digits is its own index), which gives the same pairs
whenever the folders number their files alike, and lets a missing file be named. Only if
the masked images and masks share no index at all do we fall back to the lab's sorted
position. Items come in sorted masked-image order, the order the lab's outputs
(``image_{i:03d}.png``) follow. The lab uses ``test_gt.csv`` only for FID, where order does
not matter, so that row k belongs to the k-th masked image is our assumption.

Split rule. All images of one emoji (the base entry of ``emoji.json`` plus its
``skin_variations``) form a group; groups whose pixels are identical (flags of territories
that share a flag, family glyphs) are merged, so no picture sits on both sides. A group goes
to test iff the first 8 bytes of sha256(its key) modulo 10 000 fall below 1 500 (≈ 15 %).
"""

import csv
import hashlib
import io
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError
from torch.nn import functional as F
from torch.utils.data import Dataset

PathLike = Union[str, Path]

IMAGE_SIZE = 64
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data" / "emoji"
PACKAGE_IMAGES = "package/img/google/64/"
PACKAGE_INDEX = "package/emoji.json"
REBUILD = "python -m maskgit_lab data prepare --from PACKAGE.tgz"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SKIN_TONES = ("1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff")  # Fitzpatrick modifiers
TEST_PER_10000 = 1_500
HOLE_FRACTION = (0.20, 0.60)  # share of unknown pixels every test mask must have
STRAY_TOLERANCE = 0.1  # in [-1, 1] units (13 of 255 levels): a "known" pixel further from the truth is paint
STRAY_HOLE_LIMIT = 0.02  # stray_hole_pixels above this: the mask and the masked image's hole disagree
HOLE_GRAY = 128  # the lab's masked images show gray in the hole; its exact level is our pick
WHITE = (255, 255, 255, 255)

MASKED_DIR, MASK_DIR, GT_DIR, GT_CSV = "masked_image", "mask64", "test_gt", "test_gt.csv"
TEST_DIR_CANDIDATES = ("test", ".", "cat_face")  # ours, the lab's flat layout, the lab's cat_face


# ---------------------------------------------------------------------------------------
# Loading files into tensors
# ---------------------------------------------------------------------------------------

def open_image(path: PathLike) -> Image.Image:
    """Open a PNG/JPEG, or raise FileNotFoundError / ValueError naming the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err}); save it as PNG or JPEG") from err
    if img.format not in ("PNG", "JPEG"):
        raise ValueError(f"{path}: format is {img.format}; save it as PNG or JPEG")
    return img


def _size_problem(img: Image.Image, how: str) -> Optional[str]:
    if img.size == (IMAGE_SIZE, IMAGE_SIZE):
        return None
    w, h = img.size
    return f"size is {w}×{h}; resize to {IMAGE_SIZE}×{IMAGE_SIZE} ({how})"


def load_image(path: PathLike) -> torch.Tensor:
    """RGB PNG/JPEG, 64×64 → float tensor (3, 64, 64) in [-1, 1]."""
    img = open_image(path)
    problems = []
    if img.mode != "RGB":
        problems.append(f"mode is {img.mode}, expected RGB; convert to RGB, compositing "
                        f"transparency on white (maskgit_lab.data.composite_on_white)")
    size = _size_problem(img, "e.g. Image.resize((64, 64), Image.BICUBIC)")
    if size:
        problems.append(size)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return to_tensor(np.asarray(img, dtype=np.uint8))


# --- images ⇄ tensors: the one place pixels change representation ---------------------------

ImageBatch = Union[torch.Tensor, np.ndarray]


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float (3, H, W) in [-1, 1]: 0 → -1, 255 → 1."""
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 127.5 - 1.0


def to_uint8(images: ImageBatch) -> torch.Tensor:
    """Check an (N, 3, H, W) batch and return it as uint8; floats in [-1, 1] are rounded."""
    x = torch.as_tensor(images).detach().cpu()
    if x.ndim != 4 or x.shape[1] != 3:
        hint = " (channels last? use .permute(0, 3, 1, 2))" if x.ndim == 4 and x.shape[-1] == 3 else ""
        raise ValueError(f"images must be (N, 3, H, W); got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError("no images given: the batch is empty")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise TypeError(f"images must be uint8 in [0, 255] or float in [-1, 1]; got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    lo, hi = x.min().item(), x.max().item()
    if lo < -2 or hi > 2:  # clearly not [-1, 1]; a little overshoot is clipped like a PNG save
        raise ValueError(f"float images must lie in [-1, 1]; got values in [{lo:.3g}, {hi:.3g}] (pass uint8 for 0..255)")
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [-1, 1] → (S, S, 3) uint8, rounded exactly as FID sees it."""
    return to_uint8(image.unsqueeze(0))[0].permute(1, 2, 0).numpy()



def _mask_values(img: Image.Image, path: PathLike) -> np.ndarray:
    """Gray levels (H, W) uint8 of a mode 1 / L / gray-RGB mask."""
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if img.mode == "RGB":
        rgb = np.asarray(img, dtype=np.uint8)  # (H, W, 3)
        if (rgb == rgb[..., :1]).all():  # the lab's loaders read masks as RGB
            return rgb[..., 0]
        raise ValueError(f"{path}: mask has colour (R, G, B differ); save it as a grayscale "
                         f"(mode L) image, white 255 = known, black 0 = unknown")
    raise ValueError(f"{path}: mask mode is {img.mode}; save it as mode L, "
                     f"white 255 = known, black 0 = unknown")


def load_mask(path: PathLike) -> torch.Tensor:
    """Black/white PNG, 64×64 → bool tensor (64, 64), True = known (white) pixel."""
    img = open_image(path)
    size = _size_problem(img, "use Image.NEAREST so it stays black and white")
    if size:
        raise ValueError(f"{path}: mask {size}")
    values = _mask_values(img, path)
    stray = np.setdiff1d(np.unique(values), [0, 255])
    if stray.size:
        raise ValueError(f"{path}: mask holds gray values {stray[:5].tolist()} besides 0 and 255; "
                         f"threshold the mask at 128 (white 255 = known, black 0 = unknown)")
    return torch.from_numpy(values == 255)


def stray_hole_pixels(masked: torch.Tensor, known: torch.Tensor, gt: torch.Tensor) -> float:
    """Pixels the mask calls known that differ from the ground truth, as a share of the hole's size.

    Outside its hole a masked image is the ground truth, so with the mask that made it this is 0.
    When the painted hole is larger than the mask's, or elsewhere, its paint lies among the "known"
    pixels and inpainting would paste it back (gray in the output). A mask hole larger than the
    painted one is accepted: those pixels are inpainted like the rest of the hole, nothing stays gray.
    Without a ground truth the paint cannot be told from the picture, so nothing is checked.
    ``masked``, ``gt`` are (3, S, S) in [-1, 1], ``known`` (S, S) bool with True = known.
    """
    differs = (masked - gt).abs().amax(dim=0) > STRAY_TOLERANCE  # (S, S); a tolerance for lossy (JPEG) copies
    return (differs & known).sum().item() / max(1, (~known).sum().item())


def list_images(folder: Path) -> List[Path]:
    """PNG/JPG files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class ImageFolder(Dataset):
    """Images of ``root/<split>/`` (or the lab's ``root/cat_face/<split>/``), sorted by file
    name, as (3, 64, 64) floats in [-1, 1]."""

    def __init__(self, root: PathLike = DEFAULT_ROOT, split: str = "train",
                 transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        candidates = [Path(root) / split, Path(root) / "cat_face" / split]
        self.folder = next((c for c in candidates if c.is_dir()), candidates[0])
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no image folder {self.folder} (nor {candidates[1]}); rebuild the data with {REBUILD}")
        self.files = list_images(self.folder)
        if not self.files:
            raise FileNotFoundError(f"no *.png / *.jpg images in {self.folder}; "
                                    f"rebuild the data with {REBUILD}")
        self.transform = transform  # e.g. a random flip for augmentation

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = load_image(self.files[i])
        return self.transform(image) if self.transform else image


def file_index(name: str) -> Union[int, str]:
    """The pairing key of a file: the last run of digits in its stem, or the stem itself."""
    stem = Path(name).stem
    digits = re.findall(r"\d+", stem)
    return int(digits[-1]) if digits else stem


def _find(root: Path, name: str, want_dir: bool) -> Optional[Path]:
    for parent in TEST_DIR_CANDIDATES:
        path = root / parent / name
        if (path.is_dir() if want_dir else path.is_file()):
            return path
    return None


def ground_truth_dir(root: PathLike) -> Optional[Path]:
    """The test set's ground-truth folder (``test_gt/``) under ``root``, resolved, or None."""
    found = _find(Path(root), GT_DIR, want_dir=True)
    return found.resolve() if found else None


def _keyed(files: Sequence[Path]) -> Dict[Union[int, str], Path]:
    keyed = {}
    for f in files:
        key = file_index(f.name)
        if key in keyed:
            raise ValueError(f"{keyed[key]} and {f} have the same index {key!r}; "
                             f"give every file in {f.parent} its own number")
        keyed[key] = f
    return keyed


def _pair(masked: List[Path], folder: Path, what: str) -> List[Path]:
    """For each masked image, its partner in ``folder`` (by index, else by sorted position)."""
    others = list_images(folder)
    mine, theirs = _keyed(masked), _keyed(others)
    if not set(mine) & set(theirs) and len(masked) == len(others):
        return others  # no shared numbering: the lab's rule, k-th with k-th
    for f in masked:
        if file_index(f.name) not in theirs:
            raise FileNotFoundError(
                f"{folder} has no {what} for {f} (files pair by the number in their name, "
                f"here {file_index(f.name)!r}); add the {what} or remove the masked image; "
                f"for the emoji set rebuild with {REBUILD}")
    extra = sorted(set(theirs) - set(mine), key=str)
    if extra:
        raise ValueError(f"{theirs[extra[0]]} has no masked image in {masked[0].parent} "
                         f"({len(others)} files for {len(masked)} masked images); "
                         f"remove it or add the masked image")
    return [theirs[file_index(f.name)] for f in masked]


def _read_gt_csv(path: Path, expected_rows: int) -> np.ndarray:
    """The lab's test_gt.csv → uint8 (N, 64, 64, 3)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r][1:]  # line 1 is a header, as pandas.read_csv assumes
    width = IMAGE_SIZE * IMAGE_SIZE * 3
    lengths = sorted({len(r) for r in rows})
    if len(rows) != expected_rows or lengths != [width]:
        raise ValueError(f"{path}: expected a header line and {expected_rows} rows of {width} values "
                         f"(one flattened 64×64×3 image per masked image), got {len(rows)} rows "
                         f"of {lengths} values")
    values = np.asarray(rows, dtype=np.float64)  # (N, 64·64·3), the lab's rows may read "12.0"
    return values.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3)


class InpaintingTestSet(Dataset):
    """Masked image, mask and (if present) ground truth, paired as the module docstring says.

    Each item: ``dict(name=str, masked=(3, 64, 64) float, mask=(64, 64) bool True = known,
    gt=(3, 64, 64) float or None)``. Folders are searched in ``root/test``, ``root`` and
    ``root/cat_face``; pass ``masked_dir`` / ``mask_dir`` / ``gt`` to point elsewhere.
    """

    def __init__(self, root: PathLike = DEFAULT_ROOT, masked_dir: Optional[PathLike] = None,
                 mask_dir: Optional[PathLike] = None, gt: Optional[PathLike] = None):
        root = Path(root)
        masked_dir = Path(masked_dir) if masked_dir else _find(root, MASKED_DIR, want_dir=True)
        mask_dir = Path(mask_dir) if mask_dir else _find(root, MASK_DIR, want_dir=True)
        for name, folder in ((MASKED_DIR, masked_dir), (MASK_DIR, mask_dir)):
            if folder is None or not folder.is_dir():
                raise FileNotFoundError(
                    f"no {name}/ folder in {root}/test, {root} or {root}/cat_face; point "
                    f"--data-root at the folder holding it, or rebuild the emoji set with {REBUILD}")
        self.masked = list_images(masked_dir)
        if not self.masked:
            raise FileNotFoundError(f"no *.png / *.jpg images in {masked_dir}; rebuild with {REBUILD}")
        self.masks = _pair(self.masked, mask_dir, "mask")
        self.gt_files: Optional[List[Path]] = None
        self.gt_pixels: Optional[np.ndarray] = None
        gt = Path(gt) if gt else (_find(root, GT_DIR, want_dir=True) or _find(root, GT_CSV, want_dir=False))
        if gt is not None and not gt.exists():
            raise FileNotFoundError(f"no ground truth at {gt}; give a test_gt/ folder "
                                    f"or the lab's test_gt.csv")
        if gt is not None and gt.is_dir():
            self.gt_files = _pair(self.masked, gt, "ground truth")
        elif gt is not None:
            self.gt_pixels = _read_gt_csv(gt, len(self.masked))

    def __len__(self) -> int:
        return len(self.masked)

    def _gt(self, i: int) -> Optional[torch.Tensor]:
        if self.gt_files is not None:
            return load_image(self.gt_files[i])
        if self.gt_pixels is not None:
            return to_tensor(self.gt_pixels[i])
        return None

    def __getitem__(self, i: int) -> dict:
        masked, mask, gt = load_image(self.masked[i]), load_mask(self.masks[i]), self._gt(i)
        stray = 0.0 if gt is None else stray_hole_pixels(masked, mask, gt)
        if stray > STRAY_HOLE_LIMIT:
            raise ValueError(f"{self.masks[i]} does not match the hole painted in {self.masked[i]}: pixels it calls known "
                             f"differ from the ground truth ({stray:.0%} of the hole's size), so paint would stay in the "
                             f"output; pair each masked image with the mask that made it")
        return dict(name=self.masked[i].stem, masked=masked, mask=mask, gt=gt)


def load_test_batch(root: PathLike = DEFAULT_ROOT, limit: Optional[int] = None, needs_gt: Optional[str] = None) -> dict:
    """The test set as tensors: names, masked (M, 3, S, S), known (M, S, S), gt or None.

    ``needs_gt`` says why the ground truth is required; without it, a missing one raises.
    """
    test = InpaintingTestSet(root)
    items = [test[i] for i in range(len(test) if limit is None else min(limit, len(test)))]
    gts = [item["gt"] for item in items]
    if needs_gt and any(g is None for g in gts):
        raise FileNotFoundError(f"{root} has no test ground truth (test_gt/), {needs_gt}")
    return {
        "names": [item["name"] for item in items],
        "masked": torch.stack([item["masked"] for item in items]),
        "known": torch.stack([item["mask"] for item in items]),
        "gt": None if any(g is None for g in gts) else torch.stack(gts),
    }


def evenly_spaced(count: int, total: int) -> torch.Tensor:
    """``count`` indices spread over ``total`` items: the test set is sorted by code point (flags first)."""
    return torch.linspace(0, total - 1, count).long()


def take(batch: dict, index) -> dict:
    """The items ``index`` of a ``load_test_batch`` dict: tensors indexed, the list of names picked."""
    return {key: None if value is None else [value[i] for i in index] if isinstance(value, list) else value[index]
            for key, value in batch.items()}


# ---------------------------------------------------------------------------------------
# Building data/emoji from the npm tarball
# ---------------------------------------------------------------------------------------

def composite_on_white(img: Image.Image) -> Image.Image:
    """Any-mode image → RGB, transparent pixels laid over a white page ("over" compositing)."""
    rgba = img.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba).convert("RGB")


def read_package(package_tgz: PathLike) -> Tuple[list, Dict[str, Image.Image]]:
    """emoji.json entries and every 64×64 PNG (file name → RGB on white), read from the tar."""
    entries, images = None, {}
    try:
        with tarfile.open(package_tgz, "r:gz") as tar:
            for member in tar:
                if member.name == PACKAGE_INDEX:
                    entries = json.load(tar.extractfile(member))
                elif member.name.startswith(PACKAGE_IMAGES) and member.name.endswith(".png"):
                    payload = io.BytesIO(tar.extractfile(member).read())
                    images[member.name[len(PACKAGE_IMAGES):]] = composite_on_white(Image.open(payload))
    except (tarfile.TarError, OSError, EOFError) as err:  # not gzip, not a tar, or cut short
        raise ValueError(f"{package_tgz} is not a readable .tgz ({type(err).__name__}); get the package with: "
                         f"npm pack emoji-datasource-google@16.0.0") from None
    if entries is None or not images:
        raise ValueError(f"{package_tgz}: expected {PACKAGE_INDEX} and {PACKAGE_IMAGES}*.png; "
                         f"get the package with: npm pack emoji-datasource-google@16.0.0")
    return entries, images


def without_skin_tones(stem: str) -> str:
    """'1f9d1-1f3fb-200d-1f91d-200d-1f9d1-1f3fc' → '1F9D1-200D-1F91D-200D-1F9D1'."""
    return "-".join(p for p in stem.lower().split("-") if p not in SKIN_TONES).upper()


def categories_of(entries: list, groups: Dict[str, List[str]]) -> Dict[str, str]:
    """Image file name → the ``emoji.json`` category of its group's base entry (``skin_tone_groups``),
    so a skin-tone variant has its base emoji's; "" for a group no entry names."""
    category = {entry["unified"].upper(): entry["category"] for entry in entries}
    return {name: category.get(key, "") for key, names in groups.items() for name in names}


def skin_tone_groups(entries: list, names: Sequence[str]) -> Dict[str, List[str]]:
    """Group key (the base emoji's ``unified`` code) → its image file names.

    An entry and all its ``skin_variations`` form one group. A file that emoji.json does not
    list joins the group whose code equals its own with the skin-tone parts removed (or starts
    a group of that name), so toned variants of one base never end up apart.
    """
    base_of = {}
    for entry in entries:
        base_of[entry["image"]] = entry["unified"].upper()
        for variant in (entry.get("skin_variations") or {}).values():
            base_of[variant["image"]] = entry["unified"].upper()
    groups: Dict[str, List[str]] = {}
    for name in sorted(names):
        key = base_of.get(name) or without_skin_tones(Path(name).stem)
        groups.setdefault(key, []).append(name)
    return groups


def merge_identical(groups: Dict[str, List[str]], images: Dict[str, Image.Image]) -> Dict[str, List[str]]:
    """Merge groups that share a pixel-identical image; the merged key is the smallest one."""
    parent = {key: key for key in groups}

    def root(key):
        while parent[key] != key:
            key = parent[key]
        return key

    first_with = {}  # pixel digest → the first group seen with that picture
    for key in sorted(groups):
        for name in groups[key]:
            digest = hashlib.sha256(images[name].tobytes()).digest()
            other = first_with.setdefault(digest, key)
            keep, absorb = sorted((root(key), root(other)))  # union: the smaller key survives
            parent[absorb] = keep
    merged: Dict[str, List[str]] = {}
    for key in sorted(groups):
        merged.setdefault(root(key), []).extend(groups[key])
    return {key: sorted(names) for key, names in merged.items()}


def in_test_split(key: str) -> bool:
    """Stable ≈15 % choice: sha256 of the group key, not Python's salted hash()."""
    draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return draw % 10_000 < TEST_PER_10000


def split_groups(groups: Dict[str, List[str]]) -> Tuple[List[str], List[str]]:
    """(train file names, test file names), each sorted; a group never straddles the two."""
    train, test = [], []
    for key, names in groups.items():
        (test if in_test_split(key) else train).extend(names)
    return sorted(train), sorted(test)


# Masks. Each maker returns a "hole": bool (64, 64), True = unknown pixel.

def box_mask(rng: np.random.Generator) -> np.ndarray:
    """One to three axis-aligned rectangles."""
    hole = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for _ in range(rng.integers(1, 4)):
        h, w = rng.integers(12, 48, size=2)
        y, x = rng.integers(0, IMAGE_SIZE - h + 1), rng.integers(0, IMAGE_SIZE - w + 1)
        hole[y:y + h, x:x + w] = True
    return hole


def stroke_mask(rng: np.random.Generator) -> np.ndarray:
    """Free-form brush strokes: thick random polylines with round joints."""
    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(1, 5)):
        width = int(rng.integers(5, 12))
        point = rng.uniform(0, IMAGE_SIZE, size=2)
        points = [tuple(point)]
        for _ in range(rng.integers(2, 6)):  # a random walk of 8–24 px steps
            angle, step = rng.uniform(0, 2 * np.pi), rng.uniform(8, 24)
            point = np.clip(point + step * np.array([np.cos(angle), np.sin(angle)]), 0, IMAGE_SIZE - 1)
            points.append(tuple(point))
        draw.line(points, fill=255, width=width, joint="curve")
        for x, y in points:  # round caps, so stroke ends are not cut square
            r = width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(canvas) > 0


def half_mask(rng: np.random.Generator) -> np.ndarray:
    """The left, right, top or bottom half (exactly 50 %)."""
    hole = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    half = IMAGE_SIZE // 2
    side = ("left", "right", "top", "bottom")[rng.integers(4)]
    region = {"left": (slice(None), slice(0, half)), "right": (slice(None), slice(half, None)),
              "top": (slice(0, half), slice(None)), "bottom": (slice(half, None), slice(None))}[side]
    hole[region] = True
    return hole


def centre_mask(rng: np.random.Generator) -> np.ndarray:
    """A centred square, 30–49 px a side (22–59 % of the image)."""
    hole = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    side = int(rng.integers(30, 50))
    start = (IMAGE_SIZE - side) // 2
    hole[start:start + side, start:start + side] = True
    return hole


MASK_KINDS: Dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "boxes": box_mask, "strokes": stroke_mask, "half": half_mask, "centre": centre_mask,
}


def make_hole(kind: str, rng: np.random.Generator, tries: int = 1000) -> np.ndarray:
    """Draw masks of ``kind`` until one hides 20–60 % of the pixels."""
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {sorted(MASK_KINDS)}")
    low, high = HOLE_FRACTION
    for _ in range(tries):
        hole = MASK_KINDS[kind](rng)
        if low <= hole.mean() <= high:
            return hole
    raise RuntimeError(f"no {kind} mask with {low:.0%}–{high:.0%} coverage in {tries} tries")


def seeded_rng(name: str) -> np.random.Generator:
    """One generator per test image, seeded from its source file name (order-independent)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))


def paint_hole(image: Image.Image, hole: np.ndarray) -> Image.Image:
    pixels = np.asarray(image, dtype=np.uint8).copy()  # (H, W, 3)
    pixels[hole] = HOLE_GRAY
    return Image.fromarray(pixels, "RGB")


def save_png(image: Image.Image, path: Path):
    """PNG with no metadata and fixed zlib settings, so a rebuild gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = Image.fromarray(np.asarray(image))  # drops .info (ICC profile, gamma, text)
    clean.save(path, format="PNG", compress_level=9, optimize=False)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(root: Path):
    """``MANIFEST.sha256``: "<sha256>  <relative path>" per file, sorted by path."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.name != "MANIFEST.sha256")
    lines = [f"{_sha256(root / rel)}  {rel}\n" for rel in files]
    (root / "MANIFEST.sha256").write_text("".join(lines))


def _clear(out: Path):
    """Remove what a previous ``prepare`` wrote, and nothing else."""
    for stale in ("train", "test", "groups.csv", "labels.csv", "MANIFEST.sha256"):
        path = out / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_test_set(out: Path, test: List[str], images: Dict[str, Image.Image],
                   group_of: Dict[str, str]) -> Dict[str, List[float]]:
    """test_gt/, mask64/, masked_image/ and index.csv; returns hole fractions per mask kind."""
    folder = out / "test"
    width = max(3, len(str(len(test) - 1)))  # image_000 like the lab's outputs, wider if needed
    kinds = list(MASK_KINDS)
    rows, fractions = [], {kind: [] for kind in kinds}
    for i, name in enumerate(test):
        kind = kinds[i % len(kinds)]  # take turns, so every kind is equally common
        hole = make_hole(kind, seeded_rng(name))
        fraction = float(hole.mean())
        assert HOLE_FRACTION[0] <= fraction <= HOLE_FRACTION[1], (name, kind, fraction)
        number = f"{i:0{width}d}"
        save_png(images[name], folder / GT_DIR / f"image_{number}.png")
        save_png(Image.fromarray(np.where(hole, 0, 255).astype(np.uint8), "L"),
                 folder / MASK_DIR / f"mask_{number}.png")
        save_png(paint_hole(images[name], hole), folder / MASKED_DIR / f"image_{number}.png")
        rows.append((f"image_{number}", name, group_of[name], kind, f"{fraction:.4f}"))
        fractions[kind].append(fraction)
    if rows:
        _write_csv(folder / "index.csv", ("name", "source", "group", "mask_kind", "masked_fraction"), rows)
    return fractions


def _stats(values: Sequence[float]) -> dict:
    return dict(count=len(values), min=min(values), mean=float(np.mean(values)), max=max(values))


def prepare(package_tgz: PathLike, out_root: PathLike = DEFAULT_ROOT) -> dict:
    """Rebuild ``out_root`` (train/, test/, groups.csv, labels.csv, MANIFEST.sha256) from the npm tarball.

    Deterministic: same tarball, same Pillow/zlib → same bytes. Other files in ``out_root``
    are left alone (and listed in the manifest). Returns counts and mask-coverage statistics,
    the numbers PROVENANCE.md reports.
    """
    out = Path(out_root)
    entries, images = read_package(package_tgz)
    by_base = skin_tone_groups(entries, list(images))
    groups = merge_identical(by_base, images)
    train, test = split_groups(groups)
    group_of = {name: key for key, names in groups.items() for name in names}

    _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in train:
        save_png(images[name], out / "train" / name)
    fractions = write_test_set(out, test, images, group_of)
    in_test = set(test)
    _write_csv(out / "groups.csv", ("source", "group", "split"),
               [(n, group_of[n], "test" if n in in_test else "train") for n in sorted(images)])
    category = categories_of(entries, by_base)
    _write_csv(out / "labels.csv", ("source", "category"), [(n, category[n]) for n in sorted(images)])
    write_manifest(out)

    test_groups = sum(in_test_split(key) for key in groups)
    every = [f for values in fractions.values() for f in values]
    return dict(
        images=len(images), groups=len(groups), train_images=len(train), test_images=len(test),
        train_groups=len(groups) - test_groups, test_groups=test_groups,
        coverage={kind: _stats(v) for kind, v in fractions.items() if v},
        coverage_all=_stats(every) if every else None,
    )


def verify(root: PathLike = DEFAULT_ROOT) -> List[str]:
    """Compare the files under ``root`` with its MANIFEST.sha256; [] means all is well."""
    root = Path(root)
    manifest = root / "MANIFEST.sha256"
    if not manifest.is_file():
        return [f"{manifest} is missing; rebuild the data with {REBUILD}"]
    expected, problems = {}, []
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            problems.append(f"MANIFEST.sha256 line {number} is not '<sha256>  <path>': {line!r}")
            continue
        expected[rel] = digest
    for rel, digest in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif _sha256(path) != digest:
            problems.append(f"changed: {rel} (sha256 differs from MANIFEST.sha256)")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and p.name != "MANIFEST.sha256"}
    problems += [f"not in manifest: {rel}" for rel in sorted(present - set(expected))]
    return problems
