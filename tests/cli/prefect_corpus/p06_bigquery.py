"""A parameterized BigQuery query (prefect-gcp's bigquery_query example)."""

from prefect import flow, task
from prefect_gcp import GcpCredentials
from prefect_gcp.bigquery import bigquery_query


@task
def words(rows: list) -> list[str]:
    return [row["word"] for row in rows]


@flow
def shakespeare(corpus: str = "romeoandjuliet", min_word_count: int = 250) -> list[str]:
    gcp_credentials = GcpCredentials.load("corpus-credentials")
    query = """
        SELECT word, word_count
        FROM `bigquery-public-data.samples.shakespeare`
        WHERE corpus = @corpus AND word_count >= @min_word_count
        ORDER BY word_count DESC
    """
    query_params = [("corpus", "STRING", corpus), ("min_word_count", "INT64", min_word_count)]
    rows = bigquery_query(query, gcp_credentials, query_params=query_params)
    return words(rows)
