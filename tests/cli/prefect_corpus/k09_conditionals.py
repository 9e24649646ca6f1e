"""p09 converted: the comparison is a task, `branch` chooses; `.map` loops."""

from orchestrator import branch, flow, task


@task
def count_rows(table: str) -> int:
    return len(table) * 10


@task
def above(n: int, threshold: int) -> bool:
    return n > threshold


@task
def full_refresh(table: str) -> str:
    return f"full:{table}"


@task
def incremental(table: str) -> str:
    return f"incremental:{table}"


@task
def validate(row: dict) -> bool:
    return row.get("id") is not None


@flow
def refresh(table: str, threshold: int = 100) -> str:
    big = above(count_rows(table), threshold)
    return branch(big, then=lambda: full_refresh(table), otherwise=lambda: incremental(table))


@flow
def validate_all(rows: list[dict]) -> list[bool]:
    return validate.map(rows)
