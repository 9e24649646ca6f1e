"""A parent flow calling a subflow twice and merging their results."""

from prefect import flow, task


@task
def clean(text: str) -> list[str]:
    return text.lower().replace(",", " ").split()


@task
def tally(words: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return counts


@task
def merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {w: a.get(w, 0) + b.get(w, 0) for w in sorted(a.keys() | b.keys())}


@flow(name="count-words")
def count_words(text: str) -> dict[str, int]:
    return tally(clean(text))


@flow(name="word-report")
def word_report(first: str, second: str) -> dict[str, int]:
    a = count_words(first)
    b = count_words(second)
    return merge(a, b)
