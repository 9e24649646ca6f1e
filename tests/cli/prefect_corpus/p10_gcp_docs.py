"""prefect-gcp's docs style: block methods called straight from the flow; a bucket method
kumoflow's GcsBucket lacks."""

from prefect import flow, task
from prefect_gcp.cloud_storage import GcsBucket


@flow
def example_cloud_storage_flow() -> bytes:
    gcs_bucket = GcsBucket.load("corpus-bucket")
    # check[change]: gcs_bucket.write_path(...) in a flow body
    path = gcs_bucket.write_path("notes/notes.txt", b"hello")
    return gcs_bucket.read_path(path)  # check[change]: gcs_bucket.read_path(...) in a flow body


@task
def top_level_names(block: str) -> list[str]:
    gcs_bucket = GcsBucket.load(block)
    blobs = gcs_bucket.get_bucket().list_blobs()  # check[unsupported]: GcsBucket.get_bucket
    return sorted(b.name for b in blobs)


@flow
def bucket_names(block: str = "corpus-bucket") -> list[str]:
    return top_level_names(block)
