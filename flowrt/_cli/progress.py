"""Live progress of ``flowrt run`` on stderr: a rich progress bar on a terminal (nodes done out
of the total, the ones running, how many failed), plain lines elsewhere; a line per retry or
failure in both."""

from __future__ import annotations

from typing import IO, Any

from .._models import Event


def _said(event: Event) -> str | None:
    """The line an event deserves (a retry, a failure), or None."""
    error = f"{event.error.type}: {event.error.message}".splitlines()[0] if event.error else ""
    if event.kind == "node.retrying":
        return (
            f"  {event.node}: attempt {event.attempt} failed ({error}), retrying in {event.wait:g}s"
        )
    if event.kind == "run.retrying":
        return f"  run attempt {event.attempt} failed ({error}), running again in {event.wait:g}s"
    if event.kind == "node.item_failed":
        return f"  {event.node}[{event.item}]: item failed ({error})"
    if event.kind == "node.finished" and event.status == "failure":
        return f"  {event.node}: failed ({error})"
    return None


class Progress:
    """Plain lines (a pipe, a file): one per retry or failure."""

    def __init__(self, total: int, out: IO[str]) -> None:
        self.total = total
        self.out = out

    def __call__(self, event: Event) -> None:
        line = _said(event)
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()


class LiveProgress:
    """A rich progress bar on a terminal: nodes done out of the total, those running, failures;
    retries and failures are printed above it."""

    def __init__(self, total: int, out: IO[str], **console: Any) -> None:
        # optional: rich is imported only when a terminal is attached (import time)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(file=out, **console)
        self.bar = Progress(
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            transient=True,
        )
        self.task = self.bar.add_task("", total=total)
        self.running: dict[str, None] = {}
        self.failed = 0
        self.bar.start()

    def __call__(self, event: Event) -> None:
        line = _said(event)
        if line is not None:
            self.console.print(line, markup=False, highlight=False)
        node = event.node or ""
        if event.kind == "node.started":
            self.running[node] = None
        elif event.kind == "node.finished":
            self.running.pop(node, None)
            self.failed += event.status == "failure"
            self.bar.advance(self.task)
        elif event.kind == "run.finished":
            self.bar.stop()
            return
        shown = ", ".join(list(self.running)[:3]) + (" ..." if len(self.running) > 3 else "")
        failed = f"  {self.failed} failed" if self.failed else ""
        self.bar.update(self.task, description=f"running {shown or '-'}{failed}")


def progress_for(total: int, out: IO[str]) -> Progress | LiveProgress:
    """A live bar where a terminal is attached, plain lines otherwise."""
    return LiveProgress(total, out) if out.isatty() else Progress(total, out)
