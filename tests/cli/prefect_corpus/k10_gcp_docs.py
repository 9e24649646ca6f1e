"""p10 converted: the bucket's reads and writes happen in tasks; list_blobs for get_bucket."""

from orchestrator import flow, task
from orchestrator.gcp import GcsBucket


@task
def write_note(bucket: GcsBucket) -> str:
    return bucket.write_path("notes/notes.txt", b"hello")


@task
def read_note(bucket: GcsBucket, path: str) -> str:
    return bucket.read_path(path).decode()


@flow
def example_cloud_storage_flow() -> str:
    gcs_bucket = GcsBucket.load("corpus-bucket")
    return read_note(gcs_bucket, write_note(gcs_bucket))


@task
def top_level_names(block: str) -> list[str]:
    gcs_bucket = GcsBucket.load(block)
    return sorted(b.name for b in gcs_bucket.list_blobs())


@flow
def bucket_names(block: str = "corpus-bucket") -> list[str]:
    return top_level_names(block)
