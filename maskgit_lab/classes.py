"""Class labels for conditional generation: the emoji categories of ``emoji.json``.

Every image has the ``category`` of its ``emoji.json`` entry (``data/emoji/labels.csv``; a skin-tone
variant has its base emoji's). The nine categories with pictures of their own are the classes,
numbered in the order emoji pickers show them. ``Component`` holds the five Fitzpatrick skin-tone
swatches (flat coloured squares): they are parts that other emoji are built from, not a kind of
picture to ask for, so they train unlabelled — with the null class, as dropped labels do.

The transformer takes a class id in [0, C) or the null id C ("no label"); classifier-free
guidance contrasts the two (``decoding``). On the command line a class is named by its short name
(``flags``) or its full name (``"Animals & Nature"``).
"""

import csv
from pathlib import Path
from typing import Dict, List, Sequence

import torch

CATEGORIES = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
              "Activities", "Objects", "Symbols", "Flags")
SHORT_NAMES = ("smileys", "people", "animals", "food", "travel", "activities", "objects", "symbols", "flags")
UNLABELLED = ("Component",)  # categories trained with the null class only
NUM_CLASSES = len(CATEGORIES)  # C; the null class is id C
LABELS_FILE = "labels.csv"


def class_id(name: str) -> int:
    """'flags', 'Flags' or 'Animals & Nature' → its id; an unknown name is refused with the list."""
    wanted = name.strip().lower()
    for i, (full, short) in enumerate(zip(CATEGORIES, SHORT_NAMES)):
        if wanted in (full.lower(), short):
            return i
    raise ValueError(f"unknown class {name!r}; choose one of: {', '.join(SHORT_NAMES)}")


def read_categories(root) -> Dict[str, str]:
    """Image file name → category, from ``<root>/labels.csv``."""
    path = Path(root) / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: class labels come from it; rebuild the data with "
                                f"python -m maskgit_lab data prepare --from PACKAGE.tgz, or train without --conditional")
    with open(path, newline="") as f:
        return {row["source"]: row["category"] for row in csv.DictReader(f)}


def labels_for(names: Sequence[str], root) -> torch.Tensor:
    """(M,) class ids of the image files ``names``; the null id C for an unlabelled category."""
    categories = read_categories(root)
    missing = [n for n in names if n not in categories]
    if missing:
        raise ValueError(f"{Path(root) / LABELS_FILE} has no label for {missing[0]} ({len(missing)} images in all); "
                         f"it does not belong to this data folder")
    ids: List[int] = []
    for name in names:
        category = categories[name]
        if category in UNLABELLED:
            ids.append(NUM_CLASSES)
        elif category in CATEGORIES:
            ids.append(CATEGORIES.index(category))
        else:
            raise ValueError(f"{name} has the category {category!r}, which is neither a class nor unlabelled")
    return torch.tensor(ids, dtype=torch.long)


def labels_of_test_set(root, count: int) -> torch.Tensor:
    """(count,) class ids of the first ``count`` test images, via ``test/index.csv``'s source column."""
    index = Path(root) / "test" / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} is missing: it names each test image's source emoji, which its label needs")
    with open(index, newline="") as f:
        sources = [row["source"] for row in csv.DictReader(f)][:count]
    return labels_for(sources, root)
