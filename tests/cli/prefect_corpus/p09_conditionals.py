"""Deciding on task results and looping over a parameter in the flow body."""

from prefect import flow, task


@task
def count_rows(table: str) -> int:
    return len(table) * 10


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
    n = count_rows(table)
    if n > threshold:  # check[change]: if over a run-time value
        result = full_refresh(table)
    else:
        result = incremental(table)
    return result


@flow
def validate_all(rows: list[dict]) -> list[bool]:
    checks = []
    for row in rows:  # check[change]: for loop over a run-time value
        checks.append(validate.submit(row))
    return [c.result() for c in checks]
