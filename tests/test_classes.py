"""Class labels: the emoji categories of emoji.json, read from data/emoji/labels.csv."""

import collections
import csv

import pytest
import torch

from maskgit_lab.classes import CATEGORIES, NUM_CLASSES, SHORT_NAMES, class_id, labels_for, labels_of_test_set
from maskgit_lab.data import DEFAULT_ROOT, ImageFolder


def read_rows(name):
    with open(DEFAULT_ROOT / name, newline="") as f:
        return list(csv.DictReader(f))


def test_every_shipped_image_has_a_category_and_the_manifest_covers_the_labels():
    sources = {row["source"] for row in read_rows("groups.csv")}
    categories = {row["source"]: row["category"] for row in read_rows("labels.csv")}
    assert set(categories) == sources
    assert set(categories.values()) == set(CATEGORIES) | {"Component"}
    assert any(line.endswith("  labels.csv") for line in (DEFAULT_ROOT / "MANIFEST.sha256").read_text().splitlines())


def test_training_labels_follow_the_image_order_and_components_train_unlabelled():
    folder = ImageFolder(DEFAULT_ROOT, "train")
    names = [f.name for f in folder.files]
    labels = labels_for(names, DEFAULT_ROOT)
    categories = {row["source"]: row["category"] for row in read_rows("labels.csv")}
    expected = [NUM_CLASSES if categories[n] == "Component" else CATEGORIES.index(categories[n]) for n in names]
    assert labels.tolist() == expected
    assert (labels == NUM_CLASSES).sum().item() == sum(categories[n] == "Component" for n in names) == 5


def test_test_labels_come_from_the_index_in_test_image_order():
    index = read_rows("test/index.csv")
    categories = {row["source"]: row["category"] for row in read_rows("labels.csv")}
    labels = labels_of_test_set(DEFAULT_ROOT, len(index))
    assert labels.tolist() == [CATEGORIES.index(categories[row["source"]]) for row in index]
    counts = collections.Counter(labels.tolist())
    assert sum(counts.values()) == 545 and NUM_CLASSES not in counts  # no Component in test
    assert labels_of_test_set(DEFAULT_ROOT, 7).shape == (7,)


@pytest.mark.parametrize("name", ["flags", "Flags", "animals & nature", " people "])
def test_a_class_is_named_short_or_in_full(name):
    assert SHORT_NAMES[class_id(name)] == name.strip().lower().split()[0]


def test_an_unknown_class_is_refused_with_the_names():
    with pytest.raises(ValueError, match="unknown class 'cats'; choose one of: smileys, people, .*flags"):
        class_id("cats")


def test_a_name_missing_from_labels_csv_is_refused(tmp_path):
    (tmp_path / "labels.csv").write_text("source,category\na.png,Flags\n")
    assert labels_for(["a.png"], tmp_path).tolist() == [CATEGORIES.index("Flags")]
    with pytest.raises(ValueError, match="has no label for b.png"):
        labels_for(["a.png", "b.png"], tmp_path)
    with pytest.raises(FileNotFoundError, match="labels.csv is missing"):
        labels_for(["a.png"], tmp_path / "nowhere")
    assert torch.is_tensor(labels_for([], tmp_path))
