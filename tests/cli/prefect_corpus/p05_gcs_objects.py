"""GcsBucket in tasks, as prefect-gcp's examples use it: file objects, folders, listing."""

import io
import tempfile
from pathlib import Path

from prefect import flow, task
from prefect_gcp.cloud_storage import GcsBucket


@task(retries=2)
def upload_report(csv_text: str, name: str) -> str:
    gcs_bucket = GcsBucket.load("corpus-bucket")
    with io.BytesIO(csv_text.encode()) as buf:
        return gcs_bucket.upload_from_file_object(buf, f"reports/{name}")


@task
def archive(paths: list[str]) -> list[str]:
    gcs_bucket = GcsBucket.load("corpus-bucket")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "reports"
        folder.mkdir()
        for path in paths:
            with open(folder / Path(path).name, "wb") as f:
                gcs_bucket.download_object_to_file_object(path, f)
        gcs_bucket.upload_from_folder(folder, "archive")
    return [blob.name for blob in gcs_bucket.list_blobs("archive")]


@task
def restore(names: list[str]) -> dict[str, str]:
    gcs_bucket = GcsBucket.load("corpus-bucket")
    with tempfile.TemporaryDirectory() as tmp:
        where = gcs_bucket.download_folder_to_path("archive", Path(tmp) / "restored")
        files = {p.name: p.read_text() for p in sorted(where.iterdir())}
    return {"folders": ",".join(gcs_bucket.list_folders()), **files}


@flow
def publish_reports(daily_csv: str, weekly_csv: str) -> dict:
    first = upload_report(daily_csv, "a.csv")
    second = upload_report(weekly_csv, "b.csv")
    archived = archive([first, second])
    return {"archived": archived, "restored": restore(archived)}
