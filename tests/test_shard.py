"""`grade --shard I/N`: the cut of a class, the shard from the SLURM environment, the array's limits."""

import argparse
import itertools
import random
import re

import pytest

from autograder import slurm
from autograder.grader import grade, shard
from autograder.grader.shard import ShardError
from autograder.student import limits


def loads(cut: dict, handed_in: dict, count: int) -> list:
    return [sum(handed_in[s] for s in cut if cut[s] == i) for i in range(count)]


def test_every_student_lands_in_exactly_one_shard_whatever_the_order_given():
    rng = random.Random(0)
    handed_in = {f"s{i:03d}": rng.randint(0, 5) for i in range(57)}
    shuffled = dict(rng.sample(sorted(handed_in.items()), len(handed_in)))
    cut = shard.partition(handed_in, 4)
    assert cut == shard.partition(shuffled, 4)
    assert sorted(cut) == sorted(handed_in) and set(cut.values()) == {0, 1, 2, 3}


def test_shards_are_balanced_by_notebooks_not_by_names():
    # the full submissions sort first by name: a cut in name order would give shard 0 all of them
    handed_in = {**{f"a{i}": 5 for i in range(6)}, **{f"z{i}": 1 for i in range(6)}}
    cut = shard.partition(handed_in, 2)
    assert loads(cut, handed_in, 2) == [18, 18]
    by_name = {s: int(i >= 6) for i, s in enumerate(sorted(handed_in))}
    assert loads(by_name, handed_in, 2) == [30, 6]


def test_no_shard_is_heavier_than_another_by_more_than_one_student_s_notebooks():
    rng = random.Random(1)
    for count, size in itertools.product((2, 3, 7), (5, 40)):
        handed_in = {f"s{i}": rng.randint(1, 5) for i in range(size)}
        weights = loads(shard.partition(handed_in, count), handed_in, count)
        assert max(weights) - min(weights) <= max(handed_in.values()), (count, size, weights)


def test_students_who_handed_in_nothing_are_spread_by_count():
    cut = shard.partition({f"s{i}": 0 for i in range(7)}, 3)
    assert sorted(list(cut.values()).count(i) for i in range(3)) == [2, 2, 3]


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, (3, 4)),
])
def test_the_shard_comes_from_the_array_task(env, expected):
    assert shard.from_environment(env) == expected


@pytest.mark.parametrize("text, message", [("1-4", "write I/N"), ("4/4", "I counts from 0 to N-1"), ("0/0", "N at least 1")])
def test_a_bad_shard_says_how_to_write_it(text, message):
    with pytest.raises(ShardError, match=re.escape(message)):
        shard.parse(text)


def test_a_shard_outside_the_array_s_range_is_refused():
    with pytest.raises(ShardError, match=re.escape("--array=0-3")):
        shard.from_environment({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_an_unreadable_submission_fails_the_shard_naming_the_file(tmp_path):
    dangling = tmp_path / "alice" / "01.ipynb"
    dangling.parent.mkdir()
    dangling.symlink_to(tmp_path / "gone.ipynb")
    with pytest.raises(ShardError, match=f"cannot read {re.escape(str(dangling))}"):
        shard.check_readable({"alice": {"01": dangling}})


def test_the_array_s_limits_follow_grade_s_own():
    assert slurm.resources(10, jobs=2, timeout=600, memory=4096) == {"cpus-per-task": 4, "mem": f"{2 * 4096 + 2048}M",
                                                                     "time": slurm.TEMPLATE_MINUTES + 5 * 10}
    assert slurm.resources(1, timeout=30)["time"] == slurm.TEMPLATE_MINUTES + 1
    # the script's own defaults are the wrapper's for grade's defaults (-j 1)
    script = slurm.GRADE_SCRIPT.read_text()
    defaults = slurm.resources(1)
    for option in ("cpus-per-task", "mem"):
        assert f"#SBATCH --{option}={defaults[option]}\n" in script
    assert limits.DEFAULT_MEMORY + slurm.GRADER_MB == int(defaults["mem"][:-1])


@pytest.mark.parametrize("flags", [[], ["-j", "2", "--timeout", "90.5", "--memory", "0", "--cell-timeout", "30",
                                        "--no-sandbox", "--no-figures"]])
def test_the_wrapper_hands_every_grade_option_on_to_the_tasks(flags, tmp_path):
    given = slurm.parser().parse_args([str(tmp_path), "--shards", "2", "--dir", str(tmp_path / "out"), *flags])
    grade_parser = argparse.ArgumentParser()
    grade.add_limit_args(grade_parser)
    handed_on = grade_parser.parse_args(grade.limit_options(given))
    assert vars(handed_on) == {**{name: getattr(given, name) for name in vars(handed_on)}, "source": given.source.resolve()}
