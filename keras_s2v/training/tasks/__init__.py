"""One task per model kind, registered by kind (``tasks.base``): ``get_task(config.model.kind)``.

Importing the package registers every task; a new kind's module is imported here.
"""

from keras_s2v.training.tasks import deblur, glance, speech2vid, syncnet, tgan  # noqa: F401  (they register)
from keras_s2v.training.tasks.base import Task, get_task, register_task, task_kinds

__all__ = ["Task", "get_task", "register_task", "task_kinds"]
