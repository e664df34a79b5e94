"""nbgrader's configuration for this course (nbgrader 0.9.6); the commands are in docs/instructors.md.

The nbgrader course folder is nbgrader/ beside this file (git-ignored): source/course/ holds copies
of solutions/*.ipynb, release/ what students get (the same notebooks as exercises/), submitted/,
autograded/, feedback/ and gradebook.db. JupyterLab reads this file too (`make lab-instructor`).
"""

import os

c = get_config()  # noqa: F821 - nbgrader defines get_config when it reads this file
c.CourseDirectory.course_id = "fine-tuning-course"
c.CourseDirectory.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbgrader")
c.ExecutePreprocessor.timeout = 300  # seconds per cell: exercise 06's parts load and train a model
