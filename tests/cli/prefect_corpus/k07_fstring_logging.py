"""p07 converted: the text is made, and logged, in the task that has the values."""

from orchestrator import flow, get_run_logger, task


@task
def query(day: str) -> list[dict]:
    return [{"day": day, "n": i} for i in range(3)]


@task(retries=2)
def export(rows: list[dict], bucket: str, day: str) -> str:
    get_run_logger().info(f"Exporting {day}")
    path = "gs://%s/daily.json" % bucket
    return f"{path}:{len(rows)}"


@flow(name="daily-export")
def daily_export(day: str, bucket: str = "exports") -> str:
    rows = query(day)
    return export(rows, bucket, day)
