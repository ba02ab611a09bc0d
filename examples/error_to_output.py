"""Fallback pattern 3: errors mapped into the run's output, so a caller (an HTTP handler, say)
gets a structured answer either way."""

from __future__ import annotations

import json

from flowrt import ErrorHandling, Workflow

wf = Workflow(
    "error-to-output",
    output={
        "ok": "$.enrich.status",
        "profile": "$.enrich.output",
        "error_type": "$.enrich.error.type",
        "error": "$.enrich.error.message || none",
    },
)


@wf.node(
    error_handling=ErrorHandling(behavior="return", max_retries=2, retry_interval_seconds=0.01)
)
async def enrich(email: str) -> dict[str, str]:
    if not email.endswith(".com"):
        raise LookupError(f"no profile for {email}")
    return {"email": email, "company": email.split("@")[1]}


def main() -> None:
    for email in ("ada@example.com", "bob@example.invalid"):
        print(json.dumps(wf.run_sync({"email": email}).output))


if __name__ == "__main__":
    main()
