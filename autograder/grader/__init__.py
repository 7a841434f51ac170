"""The grader: the one process per class (or per shard of it) that writes grades.csv and the feedback.

grade.py grades a class, one student's process at a time per ``-j`` (autograder/student/);
feedback.py writes what each student reads; shard.py cuts a class for a SLURM array and merge.py
puts the shards back together, gradebook.py being the one writer of the course's gradebook.
"""
