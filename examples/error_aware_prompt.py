"""Fallback pattern 2: an error-aware prompt. The scraper's failure is returned as data; the
summarizer's prompt template receives both its output and its error message."""

from __future__ import annotations

from flowrt import ErrorHandling, Workflow

wf = Workflow("error-aware-prompt")


@wf.node(error_handling=ErrorHandling(behavior="return", timeout_seconds=0.05))
async def scraper(url: str) -> dict[str, str]:
    if "unreachable" in url:
        raise ConnectionError(f"could not reach {url}")
    return {"content": f"the text of {url}"}


@wf.node(
    inputs={
        "prompt": (
            "{% if scraper.status == 'success' %}Summarize: {{ scraper.output.content }}"
            "{% else %}The page could not be read ({{ scraper.error.message }}). "
            "Tell the user what went wrong.{% endif %}"
        ),
        "content": "$.scraper.output.content",
        "problem": "$.scraper.error.message",
    }
)
async def summarizer(prompt: str, content: str | None, problem: str | None) -> str:
    # A stand-in for an LLM call: it echoes the prompt it was given.
    return prompt


def main() -> None:
    for url in ("https://example.org/a", "https://unreachable.invalid/b"):
        result = wf.run_sync({"url": url})
        print(result["summarizer"].output)


if __name__ == "__main__":
    main()
