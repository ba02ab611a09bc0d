"""Sub-workflows: onboarding calls a KYC workflow as a child run, and checks every director
of the company with a map of children (one child run per director, at most 3 at a time).

Each child is a run of its own, with the id ``"<parent>:<node>"`` (``"<parent>:<node>[<i>]"``
for a map item), linked to its parent in the store: ``flowrt runs show RUN_ID`` names the
children, the run viewer links both ways, and a crash never makes a second child.

    python examples/onboarding.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio

from flowrt import ErrorHandling, SQLiteStore, Worker, Workflow

kyc = Workflow("kyc")


@kyc.node
async def verify_identity(name: str, country: str = "FR") -> dict[str, object]:
    await anyio.sleep(0.01)  # a call to the identity provider
    if name.startswith("?"):
        raise LookupError(f"no identity record for {name!r}")
    return {"name": name, "country": country, "verified": True}


@kyc.node(inputs={"identity": "$.verify_identity.output"})
async def screen_sanctions(identity: dict[str, object]) -> str:
    return "clear"


onboarding = Workflow(
    "onboarding", output={"company": "$.company.output", "directors": "$.directors.output"}
)
onboarding.subworkflow(kyc, name="company", input={"name": "$.input.company"})
onboarding.map(
    kyc,
    name="directors",
    items="$.input.directors",
    concurrency=3,
    error_handling=ErrorHandling(behavior="return"),  # one unknown director does not stop the rest
)


async def main(folder: Path) -> None:
    async with SQLiteStore(folder / "runs.db", poll_seconds=0.05) as store:
        directors = [{"name": "Ada"}, {"name": "?Bob"}, {"name": "Cy", "country": "DE"}]
        run_id = await onboarding.submit(
            {"company": "Acme SAS", "directors": directors}, store=store, run_id="acme"
        )
        async with anyio.create_task_group() as group:
            # one slot is enough: a parent waiting for its children gives its slot up
            group.start_soon(
                Worker(store, [onboarding, kyc], concurrency=1, poll_seconds=0.05).serve
            )
            result = await onboarding.result(run_id, store=store, timeout=60)
            group.cancel_scope.cancel()
        print("company:", result.output["company"])
        for item in result.output["directors"]:
            print("director:", item["status"], item["output"] or item["error"]["message"])
        children = await store.list_runs(parent=run_id)
        print("child runs:", ", ".join(sorted(child.run_id for child in children)))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        anyio.run(main, Path(folder))
