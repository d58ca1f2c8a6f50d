"""Named schema migrations: ``m<NNNN>_<name>.py`` modules with ``up(db)``, applied in name order.

Number ranges keep parallel work apart: 0001-0099 core (users, projects, classes, datasets),
0100-0199 jobs/models/images, 0200-0299 fleet, 0300-0399 evaluations, 0400-0499 mining, 0500-0599 labeling,
0600-0699 iterations.
"""
