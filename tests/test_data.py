"""Tests for maskgit_lab.data: loader errors, the shipped emoji set, prepare and verify."""

import csv
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit_lab import data
from maskgit_lab.data import (
    DEFAULT_ROOT,
    ImageFolder,
    InpaintingTestSet,
    evenly_spaced,
    load_image,
    load_mask,
    load_test_batch,
    prepare,
    take,
    to_numpy_image,
    to_tensor,
    to_uint8,
    verify,
)


def save(path: Path, array: np.ndarray, mode: str = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def rgb(value=0, size=64) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def mask_array(known_rows=32) -> np.ndarray:
    m = np.zeros((64, 64), dtype=np.uint8)
    m[:known_rows] = 255
    return m


def read_csv(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- load_image --------------------------------------------------------------------------

def test_load_image_scales_to_minus_one_one(tmp_path):
    pixels = rgb(0)
    pixels[0, 0] = (255, 0, 255)
    image = load_image(save(tmp_path / "a.png", pixels))
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert image[:, 0, 0].tolist() == [1.0, -1.0, 1.0]
    assert image[:, 1, 1].tolist() == [-1.0, -1.0, -1.0]


def test_load_image_reads_jpeg(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(rgb(200)).save(path, quality=95)
    assert load_image(path).shape == (3, 64, 64)


def test_load_image_wrong_size_names_size_and_fix(tmp_path):
    with pytest.raises(ValueError, match="65×64.*resize to 64×64"):
        load_image(save(tmp_path / "big.png", np.zeros((64, 65, 3), dtype=np.uint8)))


@pytest.mark.parametrize("mode", ["RGBA", "L", "P"])
def test_load_image_wrong_mode_names_fix(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (64, 64)).save(path)
    fix = "convert to RGB, compositing transparency on white"
    with pytest.raises(ValueError, match=f"mode is {mode}.*{fix}"):
        load_image(path)


def test_load_image_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        load_image(tmp_path / "nothere.png")


# --- load_mask ---------------------------------------------------------------------------

def test_images_must_be_nchw_uint8_or_minus_one_to_one():
    with pytest.raises(ValueError, match="channels last"):
        to_uint8(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        to_uint8(torch.full((2, 3, 8, 8), 255.0))
    floats = torch.tensor([-1.0, -0.2, 0.0, 1.0, 1.3]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(floats)[0, 0, 0].tolist() == [0, 102, 128, 255, 255]  # rounded like a PNG save


def test_to_numpy_image_maps_the_range_to_bytes():
    image = torch.stack([torch.full((2, 2), -1.0), torch.zeros(2, 2), torch.ones(2, 2)])
    pixels = to_numpy_image(image)
    assert pixels.shape == (2, 2, 3) and pixels[0, 0].tolist() == [0, 128, 255]


def test_uint8_pixels_survive_the_round_trip():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(to_numpy_image(to_tensor(pixels)), pixels)


def test_a_subset_of_the_test_batch_keeps_names_and_tensors_aligned():
    batch = load_test_batch(DEFAULT_ROOT, limit=9)
    index = evenly_spaced(4, 9)
    assert index.tolist() == [0, 2, 5, 8]
    few = take(batch, index)
    assert few["names"] == [batch["names"][i] for i in (0, 2, 5, 8)]
    assert torch.equal(few["masked"], batch["masked"][[0, 2, 5, 8]]) and torch.equal(few["gt"][1], batch["gt"][2])
    assert take({**batch, "gt": None}, index)["gt"] is None


def test_load_mask_white_is_known(tmp_path):
    mask = load_mask(save(tmp_path / "m.png", mask_array(10), "L"))
    assert mask.dtype == torch.bool and mask.shape == (64, 64)
    assert mask[:10].all() and not mask[10:].any()


def test_load_mask_accepts_mode_1_and_gray_rgb(tmp_path):
    bilevel = tmp_path / "one.png"
    Image.fromarray(mask_array(20), "L").convert("1").save(bilevel)
    gray_rgb = save(tmp_path / "rgb.png", np.repeat(mask_array(20)[..., None], 3, axis=2))
    assert torch.equal(load_mask(bilevel), load_mask(gray_rgb))
    assert load_mask(bilevel).sum() == 20 * 64


def test_load_mask_gray_values_say_threshold(tmp_path):
    m = mask_array()
    m[40, 40] = 200
    with pytest.raises(ValueError, match="threshold the mask at 128"):
        load_mask(save(tmp_path / "gray.png", m, "L"))


def test_load_mask_coloured_rgb_rejected(tmp_path):
    m = rgb(255)
    m[0, 0] = (255, 0, 0)
    with pytest.raises(ValueError, match="mode L"):
        load_mask(save(tmp_path / "colour.png", m))


def test_load_mask_wrong_size(tmp_path):
    with pytest.raises(ValueError, match="32×32.*resize to 64×64"):
        load_mask(save(tmp_path / "small.png", np.zeros((32, 32), dtype=np.uint8), "L"))


# --- ImageFolder -------------------------------------------------------------------------

def test_image_folder_missing_and_empty_say_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="data prepare --from"):
        ImageFolder(tmp_path, "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.png.*data prepare --from"):
        ImageFolder(tmp_path, "train")


def test_image_folder_sorted_with_transform(tmp_path):
    for name, value in (("b.png", 255), ("a.png", 0)):
        save(tmp_path / "train" / name, rgb(value))
    folder = ImageFolder(tmp_path, transform=lambda x: x.flip(-1))
    assert [f.name for f in folder.files] == ["a.png", "b.png"]
    assert folder[0].min() == -1.0 and folder[1].max() == 1.0


# --- InpaintingTestSet -------------------------------------------------------------------

def make_triples(root: Path, n: int, gt=True):
    for i in range(n):
        save(root / "test" / "masked_image" / f"image_{i:03d}.png", rgb(10 * i))
        save(root / "test" / "mask64" / f"mask_{i:03d}.png", mask_array(i + 1), "L")
        if gt:
            save(root / "test" / "test_gt" / f"image_{i:03d}.png", rgb(10 * i + 1))


def test_test_set_pairs_by_number(tmp_path):
    make_triples(tmp_path, 3)
    items = InpaintingTestSet(tmp_path)
    assert len(items) == 3
    item = items[2]
    assert item["name"] == "image_002"
    assert item["mask"].sum() == 3 * 64
    assert item["gt"].shape == (3, 64, 64)


def shipped_triple(root: Path, index: int, mask_index: int):
    """One image of the shipped test set, with the mask of another (or its own)."""
    for folder, name in (("masked_image", f"image_{index:03d}"), ("test_gt", f"image_{index:03d}"),
                         ("mask64", f"mask_{mask_index:03d}")):
        (root / "test" / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(DEFAULT_ROOT / "test" / folder / f"{name}.png", root / "test" / folder / f"image_{index:03d}.png")


@pytest.mark.parametrize("shift", [1, 3])
def test_a_mask_that_does_not_match_the_painted_hole_is_refused(tmp_path, shift):
    shipped_triple(tmp_path, 0, 0)
    assert data.stray_hole_pixels(*(InpaintingTestSet(tmp_path)[0][k] for k in ("masked", "mask", "gt"))) == 0
    mask = np.asarray(Image.open(DEFAULT_ROOT / "test" / "mask64" / "mask_000.png"))
    save(tmp_path / "test" / "mask64" / "image_000.png", np.roll(mask, shift, axis=0), "L")  # the hole moved down
    with pytest.raises(ValueError, match=r"mask64/image_000.png does not match the hole painted in .*image_000.png: "
                                         r"pixels it calls known differ from the ground truth \(\d+% of the hole's size\)"):
        InpaintingTestSet(tmp_path)[0]
    shipped_triple(tmp_path, 0, 1)  # another image's mask
    with pytest.raises(ValueError, match="pair each masked image with the mask that made it"):
        load_test_batch(tmp_path)


def test_a_mask_hole_larger_than_the_painted_one_is_accepted(tmp_path):
    shipped_triple(tmp_path, 0, 0)
    mask = np.asarray(Image.open(DEFAULT_ROOT / "test" / "mask64" / "mask_000.png")).copy()
    mask[:4] = 0  # four more rows unknown: inpainted like the rest of the hole
    save(tmp_path / "test" / "mask64" / "image_000.png", mask, "L")
    assert not InpaintingTestSet(tmp_path)[0]["mask"][:4].any()


def test_test_set_without_gt_gives_none(tmp_path):
    make_triples(tmp_path, 2, gt=False)
    assert InpaintingTestSet(tmp_path)[0]["gt"] is None


def test_test_set_missing_mask_named(tmp_path):
    make_triples(tmp_path, 3)
    (tmp_path / "test" / "mask64" / "mask_001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no mask for .*image_001\.png"):
        InpaintingTestSet(tmp_path)


def test_test_set_extra_mask_named(tmp_path):
    make_triples(tmp_path, 3)
    save(tmp_path / "test" / "mask64" / "mask_007.png", mask_array(), "L")
    with pytest.raises(ValueError, match=r"mask_007\.png has no masked image"):
        InpaintingTestSet(tmp_path)


def test_test_set_missing_gt_named(tmp_path):
    make_triples(tmp_path, 2)
    (tmp_path / "test" / "test_gt" / "image_000.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no ground truth for .*image_000\.png"):
        InpaintingTestSet(tmp_path)


def test_test_set_missing_folder_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no masked_image/ folder.*cat_face"):
        InpaintingTestSet(tmp_path)


def test_lab_layout_with_csv_ground_truth(tmp_path):
    """The lab's folders as shipped: cat_face/masked_image, mask64 beside it, test_gt.csv."""
    lab = tmp_path / "lab5_dataset"
    truths = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(3)]
    for i, truth in enumerate(truths):
        masked = truth.copy()
        masked[32:] = 128
        save(lab / "cat_face" / "masked_image" / f"image_{i}.png", masked)
        save(lab / "mask64" / f"mask_{i}.png", np.repeat(mask_array()[..., None], 3, axis=2))
    with open(lab / "test_gt.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(range(64 * 64 * 3))  # pandas-style header of column numbers
        writer.writerows(t.reshape(-1).tolist() for t in truths)
    items = InpaintingTestSet(lab)
    assert len(items) == 3
    for i, truth in enumerate(truths):
        item = items[i]
        expected = torch.from_numpy(truth).permute(2, 0, 1).float() / 127.5 - 1
        torch.testing.assert_close(item["gt"], expected)
        torch.testing.assert_close(item["masked"][:, :32], expected[:, :32])
        assert item["mask"][:32].all() and not item["mask"][32:].any()


def test_lab_training_images_are_found_under_cat_face(tmp_path):
    lab = tmp_path / "lab5_dataset"
    for split, count in (("train", 3), ("val", 2)):
        for i in range(count):
            save(lab / "cat_face" / split / f"{i}.jpg", rgb())
    assert (len(ImageFolder(lab, "train")), len(ImageFolder(lab, "val"))) == (3, 2)
    with pytest.raises(FileNotFoundError, match="cat_face/test"):
        ImageFolder(lab, "test")


def test_unnumbered_names_pair_by_sorted_position(tmp_path):
    """When the two folders share no numbering, fall back to the lab's k-th with k-th."""
    for name, mask_name, rows in (("cat.png", "x.png", 8), ("dog.png", "y.png", 16)):
        save(tmp_path / "masked_image" / name, rgb())
        save(tmp_path / "mask64" / mask_name, mask_array(rows), "L")
    items = InpaintingTestSet(tmp_path)
    assert [items[i]["mask"].sum().item() for i in range(2)] == [8 * 64, 16 * 64]


# --- the shipped emoji set ---------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    if not (DEFAULT_ROOT / "MANIFEST.sha256").is_file():
        pytest.fail(f"{DEFAULT_ROOT} is missing; rebuild it with {data.REBUILD}")
    return DEFAULT_ROOT


def test_shipped_masks_are_bool_and_cover_20_to_60_percent(shipped):
    items = InpaintingTestSet(shipped)
    index = read_csv(shipped / "test" / "index.csv")
    assert len(items) == len(index) > 0
    known = torch.stack([load_mask(path) for path in items.masks])  # (B, 64, 64)
    assert known.dtype == torch.bool and known.shape[1:] == (64, 64)
    fraction = (~known).float().mean(dim=(1, 2))  # (B,) share of unknown pixels
    assert ((fraction >= 0.2) & (fraction <= 0.6)).all()
    listed = torch.tensor([float(row["masked_fraction"]) for row in index])
    assert [row["name"] for row in index] == [path.stem for path in items.masked]
    assert (fraction - listed).abs().max() < 1e-4


def test_shipped_masked_images_are_ground_truth_with_a_gray_hole(shipped):
    items = InpaintingTestSet(shipped)
    gray = torch.tensor(128.0) / 127.5 - 1.0  # float32, as load_image computes it
    for i in range(0, len(items), 10):
        item = items[i]
        expected = torch.where(item["mask"], item["gt"], gray)  # (3, 64, 64): known → gt, hole → gray
        assert torch.equal(item["masked"], expected), item["name"]


def test_shipped_uses_every_mask_kind(shipped):
    kinds = {row["mask_kind"] for row in read_csv(shipped / "test" / "index.csv")}
    assert kinds == set(data.MASK_KINDS)


def test_shipped_groups_never_cross_splits(shipped):
    rows = read_csv(shipped / "groups.csv")
    split_of_group = {}
    for row in rows:
        split_of_group.setdefault(row["group"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of_group.values())
    # the files on disk agree with groups.csv
    train_files = {p.name for p in (shipped / "train").glob("*.png")}
    test_sources = {row["source"] for row in read_csv(shipped / "test" / "index.csv")}
    assert train_files == {r["source"] for r in rows if r["split"] == "train"}
    assert test_sources == {r["source"] for r in rows if r["split"] == "test"}
    # independent of groups.csv: a base code with its skin tones removed sits in one split
    def base(name):
        return data.without_skin_tones(Path(name).stem)
    assert not {base(n) for n in train_files} & {base(n) for n in test_sources}


def test_shipped_split_is_about_85_15(shipped):
    rows = read_csv(shipped / "groups.csv")
    test_share = sum(r["split"] == "test" for r in rows) / len(rows)
    assert 0.12 <= test_share <= 0.18


def test_verify_passes_on_shipped_and_flags_a_change(shipped, tmp_path):
    assert verify(shipped) == []
    # a small copy: three shipped files and their manifest lines (a full copy is slow to delete)
    lines = (shipped / "MANIFEST.sha256").read_text().splitlines()
    kept = [line for line in lines if line.endswith(("groups.csv", "test/index.csv"))]
    kept += [next(line for line in lines if "  train/" in line)]
    copy = tmp_path / "emoji"
    for line in kept:
        rel = line.split("  ", 1)[1]
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped / rel, copy / rel)
    kept.sort(key=lambda line: line.split("  ", 1)[1])  # the manifest is sorted by path
    (copy / "MANIFEST.sha256").write_text("".join(line + "\n" for line in kept))
    assert verify(copy) == []

    victim = next(copy.glob("train/*.png"))
    pixels = np.asarray(Image.open(victim)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(victim)
    (copy / "stray.txt").write_text("not shipped")
    (copy / "groups.csv").unlink()
    assert verify(copy) == [
        "missing: groups.csv",
        f"changed: train/{victim.name} (sha256 differs from MANIFEST.sha256)",
        "not in manifest: stray.txt",
    ]


def test_shipped_train_loads(shipped):
    train = ImageFolder(shipped, "train")
    image = train[0]
    assert image.shape == (3, 64, 64) and -1 <= image.min() and image.max() <= 1


# --- prepare on a tiny synthetic package -------------------------------------------------

def png_bytes(colour, alpha=200) -> bytes:
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[16:48, 16:48] = (*colour, alpha)  # a translucent square on a transparent page
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def codes_by_split(count):
    """``count`` codes the hash sends to test and ``count`` it sends to train."""
    test, train = [], []
    for value in range(0x1F600, 0x1F700):
        code = f"{value:X}"
        bucket = test if data.in_test_split(code) else train
        if len(bucket) < count:
            bucket.append(code)
    return test, train


def build_package(path: Path):
    """A tarball shaped like emoji-datasource-google: emoji.json + img/google/64/*.png."""
    test_codes, train_codes = codes_by_split(3)
    hand, single_test, twin_test = test_codes
    single_train, twin_train = train_codes[:2]
    tones = ("1F3FB", "1F3FC")
    entries = [{"unified": hand, "image": f"{hand.lower()}.png", "category": "People & Body",
                "skin_variations": {t: {"unified": f"{hand}-{t}", "image": f"{hand.lower()}-{t.lower()}.png"}
                                    for t in tones}}]
    singles = (single_test, twin_test, single_train, twin_train)
    entries += [{"unified": code, "image": f"{code.lower()}.png", "category": "Flags"} for code in singles]
    files = {f"{hand.lower()}.png": png_bytes((200, 150, 0)),
             f"{hand.lower()}-1f3fb.png": png_bytes((230, 190, 150)),
             f"{hand.lower()}-1f3fc.png": png_bytes((200, 160, 120)),
             f"{hand.lower()}-1f3ff.png": png_bytes((90, 60, 40)),  # not in emoji.json
             f"{single_test.lower()}.png": png_bytes((0, 0, 255)),
             f"{single_train.lower()}.png": png_bytes((255, 0, 0)),
             f"{twin_test.lower()}.png": png_bytes((0, 128, 0)),  # pixel-identical twins
             f"{twin_train.lower()}.png": png_bytes((0, 128, 0))}
    with tarfile.open(path, "w:gz") as tar:
        def add(name, payload):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        add("package/emoji.json", json.dumps(entries).encode())
        for name, payload in files.items():
            add(f"package/img/google/64/{name}", payload)
    return hand.lower(), twin_test.lower(), twin_train.lower()


def tree_bytes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_prepare_is_deterministic_and_keeps_groups_whole(tmp_path):
    package = tmp_path / "pkg.tgz"
    hand, twin_a, twin_b = build_package(package)
    first, second = tmp_path / "one", tmp_path / "two"
    summary = prepare(package, first)
    prepare(package, second)
    assert tree_bytes(first) == tree_bytes(second)
    assert summary["images"] == 8 and summary["test_images"] + summary["train_images"] == 8
    assert summary["test_images"] > 0 and summary["train_images"] > 0

    split = {row["source"]: row["split"] for row in read_csv(first / "groups.csv")}
    hand_files = [name for name in split if name.startswith(hand)]
    assert len(hand_files) == 4  # the unlisted -1f3ff variant joined its base
    assert {split[name] for name in hand_files} == {"test"}
    assert split[f"{twin_a}.png"] == split[f"{twin_b}.png"]  # identical pixels merged
    category = {row["source"]: row["category"] for row in read_csv(first / "labels.csv")}
    assert {category[name] for name in hand_files} == {"People & Body"}  # skin tones, listed or not
    assert category[f"{twin_a}.png"] == "Flags" and len(category) == 8
    assert verify(first) == []

    items = InpaintingTestSet(first)
    assert len(items) == summary["test_images"]
    page = items[0]["gt"][:, 0, 0]
    assert page.tolist() == [1.0, 1.0, 1.0]  # transparency became white
    train = ImageFolder(first)
    assert len(train) == summary["train_images"]


def test_prepare_rejects_a_tarball_without_emoji(tmp_path):
    package = tmp_path / "empty.tgz"
    with tarfile.open(package, "w:gz"):
        pass
    with pytest.raises(ValueError, match="npm pack emoji-datasource-google@16.0.0"):
        prepare(package, tmp_path / "out")


def test_make_hole_keeps_coverage_in_range():
    for kind in data.MASK_KINDS:
        for seed in range(20):
            hole = data.make_hole(kind, np.random.default_rng(seed))
            assert hole.dtype == bool and 0.2 <= hole.mean() <= 0.6
    with pytest.raises(ValueError, match="choose one of"):
        data.make_hole("circle", np.random.default_rng(0))
