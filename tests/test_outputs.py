"""Output folders: claimed by one command, cleared of its own earlier files, never in data/."""

import json

import pytest

from maskgit_lab.outputs import MARKER, SHIPPED_DATA, OutputFolder, read_marker


def write(folder, *names):
    for name in names:
        (folder / name).write_bytes(b"x")


def test_a_new_folder_is_claimed_and_lists_what_was_written(tmp_path):
    out = OutputFolder(tmp_path / "out", "inpaint", ground_truth="gt")
    assert not out.path.exists()  # checked, not yet written
    out.claim()
    assert read_marker(out.path) == {"command": "inpaint", "files": None, "ground_truth": "gt"}
    write(out.path, "image_000.png", "image_001.png")
    out.finish()
    assert read_marker(out.path)["files"] == ["image_000.png", "image_001.png"]


def test_a_second_run_removes_the_first_runs_files(tmp_path):
    first = OutputFolder(tmp_path, "inpaint")
    first.claim()
    write(tmp_path, "image_000.png", "image_001.png", "image_002.png", "image_003.png")
    first.finish()
    second = OutputFolder(tmp_path, "inpaint")
    assert len(list(tmp_path.glob("*.png"))) == 4  # removed only when the new results are ready
    second.claim()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]
    write(tmp_path, "image_000.png", "image_001.png")
    second.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "image_000.png", "image_001.png"]


def test_an_interrupted_run_counts_everything_since_its_claim_as_its_own(tmp_path):
    OutputFolder(tmp_path, "inpaint").claim()  # never finished
    write(tmp_path, "image_000.png")
    OutputFolder(tmp_path, "inpaint").claim()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]


@pytest.mark.parametrize("marker", [None, {"command": "demo", "files": []}])
def test_a_folder_of_other_files_is_refused_without_overwrite(tmp_path, marker):
    write(tmp_path, "old.png", "notes.txt")
    if marker is not None:
        (tmp_path / MARKER).write_text(json.dumps(marker))
    with pytest.raises(FileExistsError, match="did not write .*pass --overwrite to clear its images first"):
        OutputFolder(tmp_path, "inpaint")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != MARKER) == ["notes.txt", "old.png"]


def test_a_file_added_after_the_run_is_not_ours(tmp_path):
    out = OutputFolder(tmp_path, "inpaint")
    out.claim()
    write(tmp_path, "image_000.png")
    out.finish()
    write(tmp_path, "mine.png")
    with pytest.raises(FileExistsError, match=r"\(mine.png, 1 in all\)"):
        OutputFolder(tmp_path, "inpaint")


def test_overwrite_clears_the_images_and_keeps_other_files(tmp_path):
    write(tmp_path, "old.png", "old.JPG", "notes.txt")
    (tmp_path / "sub").mkdir()
    out = OutputFolder(tmp_path, "inpaint", overwrite=True)
    out.claim()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "notes.txt", "sub"]
    write(tmp_path, "image_000.png")
    out.finish()
    assert read_marker(tmp_path)["files"] == ["image_000.png"]  # notes.txt and sub/ stay the user's


def test_shipped_data_and_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="is inside .*the shipped data and checkpoints.*--out artifacts/inpaint"):
        OutputFolder(SHIPPED_DATA / "emoji" / "test" / "test_gt", "inpaint")
    write(tmp_path, "a.png")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        OutputFolder(tmp_path / "a.png", "inpaint")
