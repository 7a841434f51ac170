"""The write guard (autograder/student/guard.py): an audit hook that refuses writes and processes outside the scratch folder."""

import subprocess
import sys

from autograder.student import guard


def run_python(code: str, tmp_path):
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_the_guard_refuses_writes_and_processes_outside_and_logs_them(tmp_path):
    inside, outside = tmp_path / "scratch", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    log = tmp_path / "guard.log"
    code = f"""
import os, subprocess
from autograder.student import guard
guard.install([{str(inside)!r}], {str(log)!r})
open({str(inside / 'ok.txt')!r}, 'w').write('fine')
results = []
for attempt in (lambda: open({str(outside / 'x.txt')!r}, 'w'), lambda: os.remove({str(log)!r}),
                lambda: os.rename({str(inside / 'ok.txt')!r}, {str(outside / 'y.txt')!r}),
                lambda: os.symlink('/etc', {str(outside / 'link')!r}), lambda: subprocess.run(['touch', 'z'])):
    try:
        attempt()
        results.append('allowed')
    except PermissionError:
        results.append('refused')
print(results, open({str(outside.parent / 'guard.log')!r}).read().count('REFUSED'))
"""
    done = run_python(code, tmp_path)
    assert done.stdout.strip() == "['refused', 'refused', 'refused', 'refused', 'refused'] 5", done.stderr
    assert (inside / "ok.txt").exists() and list(outside.iterdir()) == []


def test_the_kernels_startup_file_installs_the_guard_from_its_module(tmp_path):
    startup = guard.write_startup(tmp_path / "ipython", [tmp_path / "scratch"], tmp_path / "guard.log")
    (tmp_path / "scratch").mkdir()
    attempt = f"try:\n    open({str(tmp_path / 'out.txt')!r}, 'w')\nexcept PermissionError:\n    print('refused')\n"
    code = startup.read_text() + "\n" + attempt
    done = run_python(code, tmp_path)
    assert done.stdout.strip() == "refused", done.stderr
    assert guard.refusals(tmp_path / "guard.log") == [f"write to {tmp_path / 'out.txt'}"]
