"""The progress display on a terminal: one line per phase (bytes done of total, rate, ETA, what
is being worked on now), redrawn in place with rich and erased when the run ends, so the verdict
prints on a clean screen. The words come from render.progress_line."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TaskID
from rich.text import Text

from ..progress import ProgressEvent
from . import render


class _PhaseLine(ProgressColumn):
    """A whole phase line, fitted to the console's width as it is now (resizes included)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console

    def render(self, task: Task) -> Text:
        return Text(
            render.progress_line(
                task.description,
                int(task.completed),
                int(task.total) if task.total else None,
                task.fields["unit"],
                speed=task.speed,
                remaining=task.time_remaining,
                detail=task.fields["detail"],
                width=self._console.width,
            ),
            no_wrap=True,
            overflow="crop",
        )


class LiveProgress:
    """A progress callback (safe from any thread) that draws while `with self.display:` runs;
    leaving that block erases every line it drew."""

    def __init__(self, console: Console) -> None:
        self.display = self._progress = Progress(
            _PhaseLine(console),
            console=console,
            transient=True,
            refresh_per_second=8,
            speed_estimate_period=10,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        total = event.total or None
        with self._lock:
            task = self._tasks.get(event.stage)
            if task is None:
                task = self._progress.add_task(
                    event.stage, total=total, unit=event.unit, detail=event.detail
                )
                self._tasks[event.stage] = task
                self._progress.update(task, completed=event.done)
                self._progress.refresh()  # a short phase is seen, not skipped between frames
                return
        self._progress.update(task, completed=event.done, total=total, detail=event.detail)
        if event.unit == "items" and total is not None and event.done >= total:
            # A counted step that is over says nothing more; a byte phase stays as a record.
            self._progress.update(task, visible=False)
