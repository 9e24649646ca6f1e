"""Task caching on inputs, with an expiration (Prefect's caching docs)."""

from datetime import timedelta

from prefect import flow, task
from prefect.tasks import task_input_hash


@task(cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1))
def sum_of_squares(n: int) -> int:
    return sum(i * i for i in range(n))


@task(persist_result=True)
def report(first: int, second: int) -> dict:
    return {"first": first, "second": second, "same": first == second}


@flow
def cached_squares(n: int = 10) -> dict:
    first = sum_of_squares(n)
    second = sum_of_squares(n)
    return report(first, second)
