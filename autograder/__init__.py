"""maskgit-lab's autograder: checks shared by the notebooks' test cells and by pytest.

A check is a plain function decorated with :func:`graded`; calling it returns a
:class:`Result` (points, max points, a message that names the likely misconception).
Notebook test cells pass the result to :func:`show`, which prints it, or, when points were
lost, marks the cell failed (nbgrader scores it 0) without stopping Run All, and the student
sees why.
"""

from autograder.core import CheckFailed, Result, graded, show, use_or_reference, whose

__all__ = ["CheckFailed", "Result", "graded", "show", "use_or_reference", "whose"]
