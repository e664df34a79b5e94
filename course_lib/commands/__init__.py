"""The `course` commands that sit above one concept each: options (typed dataclasses) and printing only.

    vram         `course vram` (lesson 04's table; lesson 08's per-GPU table under ZeRO)

A concept module (course_lib.memory.vram, ...) never imports from here; course_lib.cli dispatches here.
"""
