"""Logging and naming with f-strings in the flow body, as Prefect allows."""

from prefect import flow, get_run_logger, task


@task
def query(day: str) -> list[dict]:
    return [{"day": day, "n": i} for i in range(3)]


@task(retries=2)
def export(rows: list[dict], path: str) -> str:
    return f"{path}:{len(rows)}"


@flow(name="daily-export")
def daily_export(day: str, bucket: str = "exports") -> str:
    logger = get_run_logger()
    logger.info(f"Exporting {day}")  # check[change]: f-string over a run-time value
    rows = query(day)
    path = "gs://%s/daily.json" % bucket  # check[change]: `%` formatting over a run-time value
    return export(rows, path)
