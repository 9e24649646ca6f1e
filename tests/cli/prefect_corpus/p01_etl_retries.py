"""An ETL flow with retries, in the style of Prefect's quickstart."""

import json

from prefect import flow, task


@task(retries=3, retry_delay_seconds=[1, 2, 4], log_prints=True)
def extract(raw: str) -> list[dict]:
    rows = json.loads(raw)
    print(f"extracted {len(rows)} rows")
    return rows


@task(retries=2, retry_delay_seconds=1)
def transform(rows: list[dict]) -> list[dict]:
    return [{**row, "total": row["price"] * row["qty"]} for row in rows]


@task
def load(rows: list[dict], table: str) -> dict:
    return {"table": table, "rows": len(rows), "revenue": sum(r["total"] for r in rows)}


@flow(name="etl-orders", retries=1, log_prints=True)
def etl_orders(raw: str, table: str = "orders") -> dict:
    rows = extract(raw)
    cleaned = transform(rows)
    return load(cleaned, table)


if __name__ == "__main__":
    etl_orders('[{"price": 2.5, "qty": 4}]')
