"""Imports every model task module so that each registers itself in TASKS.

    model80_task  paper 000: Model-80 / Model-70
    mtl_task      paper 001: cross-modal multi-task transformer
    clip_task     paper 002: CLIP-style dual encoder
"""

from medcap.models import clip_task, model80_task, mtl_task  # noqa: F401
