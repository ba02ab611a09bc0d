"""An agent-style loop: a researcher refines its notes step by step until it is confident, with
a loop limit and a best-effort answer when the limit is reached."""

from __future__ import annotations

import sys
from typing import Any

from flowrt import Final, Workflow

wf = Workflow("agent-loop")


def best_effort(state: dict[str, Any]) -> str:
    return f"best effort after {len(state['notes'])} notes: {state['notes'][-1]}"


@wf.loop(
    max_loops=5,
    on_max_loops="return",
    finalize=best_effort,
    inputs={"question": "$.input.question", "needed": "$.input.needed"},
)
async def researcher(state: dict[str, Any]) -> Any:
    """One step: add a note; answer once there are enough notes."""
    notes = [
        *state.get("notes", []),
        f"note {len(state.get('notes', [])) + 1} on {state['question']}",
    ]
    if len(notes) >= state["needed"]:
        return Final(f"answer from {len(notes)} notes")
    return {**state, "notes": notes}


def main(needed: int) -> None:
    result = wf.run_sync({"question": "why is the sky blue", "needed": needed})
    print(result["researcher"].output)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
