"""Labeling: tasks over a dataset version, the built-in annotator, Label Studio as an external backend.

The labeling-task interface (agreed with the iteration workflow, which hands its label step to a task
and waits for it). Implemented in ``hub/labeling/tasks.py``:

* ``create_task(ws, *, version_id, classes=None, name="", assignees=(), pre_annotations=True,
  backend="builtin", created_by=None) -> dict`` — ``classes`` default: the project's targets;
  pre-annotations are the ``pred`` boxes the version already holds (a mined version carries the
  model's predictions).
* ``get_task(database, task_id) -> dict`` — keys at least ``id, project_id, version_id, name, classes,
  backend, state`` (``open | in_progress | done | cancelled``), ``images_total, images_done,
  result_version_id`` (set once done).
* ``save_labels(ws, task_id, sha1, boxes, *, user_id=None, done=True) -> dict`` — ``boxes``: dicts with
  ``x1, y1, x2, y2, class`` (pixels; optional ``source``: ``human | prediction``); ``[]`` with
  ``done=True`` is "no objects".
* ``finish_task(ws, task_id, *, user_id=None, name=None) -> dict`` — a new ``ready`` version (operation
  ``label``) whose ground truth is the labels; returns the task with ``result_version_id``.
* ``cancel_task(ws, task_id, *, user_id=None) -> dict``.
"""
