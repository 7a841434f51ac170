# The nbgrader course configuration, copied into every scratch course the autograder builds.
c = get_config()  # noqa: F821 (nbgrader provides get_config)

c.CourseDirectory.course_id = "maskgit-lab"
c.ClearSolutions.code_stub = {
    "python": '# YOUR CODE HERE\nraise NotImplementedError("TODO: replace this line with your code (see the task above)")'
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.Execute.timeout = 600  # seconds per cell (autograder/README.md: choosing --cell-timeout); the old ExecutePreprocessor.timeout name is ignored by nbgrader 0.9
